//! The standard `OTEL_*` settings the SDK does not check itself: where traces go
//! (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_ENDPOINT`,
//! `OTEL_TRACES_EXPORTER`) and which are kept (`OTEL_TRACES_SAMPLER`,
//! `OTEL_TRACES_SAMPLER_ARG`), and the resource's `OTEL_RESOURCE_ATTRIBUTES`. The SDK reads them too, but takes a value it does not
//! understand for its default (a mistyped endpoint becomes `localhost:4318`, a mistyped
//! ratio 1.0); here such a value stops the service at start, saying what is wrong.

use opentelemetry_sdk::trace::Sampler;

/// The OTLP/HTTP URL spans are sent to, or `None`: not exported. The per-signal
/// variable is used as given; the generic one gets `/v1/traces` appended (the OTLP
/// exporter specification). `exporter` is `OTEL_TRACES_EXPORTER`: `otlp` (the
/// default) or `none`.
pub fn traces_endpoint(
    exporter: Option<&str>,
    traces_endpoint: Option<&str>,
    endpoint: Option<&str>,
) -> Result<Option<String>, String> {
    fn set(v: Option<&str>) -> Option<&str> {
        v.map(str::trim).filter(|v| !v.is_empty())
    }
    match set(exporter) {
        None | Some("otlp") => {}
        Some("none") => return Ok(None),
        Some(other) => {
            return Err(format!(
                "OTEL_TRACES_EXPORTER {other:?} is not supported: `otlp` (the default) or `none`"
            ));
        }
    }
    let (variable, url) = match (set(traces_endpoint), set(endpoint)) {
        (Some(url), _) => ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", url.to_owned()),
        (None, Some(base)) => (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("{}/v1/traces", base.trim_end_matches('/')),
        ),
        (None, None) => return Ok(None),
    };
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("{variable} {url:?} is not a URL: {e}"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err(format!(
            "{variable} {url:?} is not an http:// or https:// URL with a host"
        ));
    }
    Ok(Some(url))
}

/// The sampler `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` name; unset, the
/// specification's default, `parentbased_always_on`. The ratio of the `traceidratio`
/// samplers is a number from 0 to 1 (unset: 1).
pub fn sampler(name: Option<&str>, arg: Option<&str>) -> Result<Sampler, String> {
    let ratio = || -> Result<f64, String> {
        match arg.map(str::trim).filter(|a| !a.is_empty()) {
            None => Ok(1.0),
            Some(text) => match text.parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                _ => Err(format!(
                    "OTEL_TRACES_SAMPLER_ARG {text:?} is not a sampling ratio: a number from 0 to 1"
                )),
            },
        }
    };
    let parent_based = |root: Sampler| Sampler::ParentBased(Box::new(root));
    Ok(match name.map(str::trim).filter(|n| !n.is_empty()) {
        None | Some("parentbased_always_on") => parent_based(Sampler::AlwaysOn),
        Some("parentbased_always_off") => parent_based(Sampler::AlwaysOff),
        Some("parentbased_traceidratio") => parent_based(Sampler::TraceIdRatioBased(ratio()?)),
        Some("always_on") => Sampler::AlwaysOn,
        Some("always_off") => Sampler::AlwaysOff,
        Some("traceidratio") => Sampler::TraceIdRatioBased(ratio()?),
        Some(other) => {
            return Err(format!(
                "OTEL_TRACES_SAMPLER {other:?} is not supported: always_on, always_off, \
                 traceidratio, parentbased_always_on (the default), parentbased_always_off \
                 or parentbased_traceidratio"
            ));
        }
    })
}

/// `OTEL_RESOURCE_ATTRIBUTES`: `key=value` pairs separated by commas, values
/// percent-decoded (the specification's format). An entry without `=` or a key that
/// is empty is refused (the SDK would drop it without a word).
pub fn resource_attributes(text: Option<&str>) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    for entry in text.unwrap_or_default().split(',').map(str::trim) {
        if entry.is_empty() {
            continue;
        }
        match entry.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => {
                let value = percent_encoding::percent_decode_str(value.trim())
                    .decode_utf8()
                    .map_err(|e| format!("OTEL_RESOURCE_ATTRIBUTES {entry:?}: {e}"))?;
                pairs.push((key.trim().to_owned(), value.into_owned()));
            }
            _ => {
                return Err(format!(
                    "OTEL_RESOURCE_ATTRIBUTES {entry:?} is not `key=value`"
                ));
            }
        }
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_attributes_are_pairs_with_percent_encoded_values() {
        let pairs = resource_attributes(Some(
            "k8s.namespace.name=shop, deployment.environment.name = prod%20eu,,",
        ))
        .unwrap();
        assert_eq!(
            pairs,
            [
                ("k8s.namespace.name".to_owned(), "shop".to_owned()),
                (
                    "deployment.environment.name".to_owned(),
                    "prod eu".to_owned()
                ),
            ]
        );
        assert_eq!(resource_attributes(None).unwrap(), []);
        for bad in ["k8s.pod.name", "=x", "a=%FF"] {
            let err = resource_attributes(Some(bad)).unwrap_err();
            assert!(err.starts_with("OTEL_RESOURCE_ATTRIBUTES"), "{err}");
        }
    }

    #[test]
    fn the_per_signal_endpoint_is_used_as_given_and_the_generic_one_gets_the_path() {
        let traces = Some("http://collector:4318/custom/traces");
        let base = Some("http://collector:4318/");
        assert_eq!(
            traces_endpoint(None, traces, base).unwrap().as_deref(),
            traces
        );
        assert_eq!(
            traces_endpoint(None, None, base).unwrap().as_deref(),
            Some("http://collector:4318/v1/traces")
        );
        assert_eq!(
            traces_endpoint(Some("otlp"), Some(""), Some(" https://c:443 ")).unwrap(),
            Some("https://c:443/v1/traces".to_owned())
        );
        // Unset or empty: spans are made (ids in logs, context propagated), not sent.
        assert_eq!(traces_endpoint(None, Some(""), None).unwrap(), None);
        assert_eq!(traces_endpoint(Some("none"), traces, base).unwrap(), None);
    }

    #[test]
    fn a_wrong_endpoint_or_exporter_is_refused() {
        for (exporter, traces, base, says) in [
            (
                None,
                Some("collector:4318"),
                None,
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            ),
            (
                None,
                None,
                Some("ftp://collector"),
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            ),
            (None, None, Some("http://"), "OTEL_EXPORTER_OTLP_ENDPOINT"),
            (
                Some("zipkin"),
                None,
                Some("http://c:4318"),
                "OTEL_TRACES_EXPORTER",
            ),
        ] {
            let err = traces_endpoint(exporter, traces, base).unwrap_err();
            assert!(err.starts_with(says), "{err}");
        }
    }

    #[test]
    fn the_standard_samplers_are_read_and_others_refused() {
        let name = |n: Option<&str>, a: Option<&str>| format!("{:?}", sampler(n, a).unwrap());
        assert_eq!(name(None, None), "ParentBased(AlwaysOn)");
        assert_eq!(name(Some("always_off"), None), "AlwaysOff");
        assert_eq!(name(Some("always_on"), None), "AlwaysOn");
        assert_eq!(
            name(Some("parentbased_always_off"), None),
            "ParentBased(AlwaysOff)"
        );
        assert_eq!(
            name(Some("parentbased_traceidratio"), Some("0.25")),
            "ParentBased(TraceIdRatioBased(0.25))"
        );
        assert_eq!(name(Some("traceidratio"), None), "TraceIdRatioBased(1.0)");
        for (n, a, says) in [
            (Some("traceidratio"), Some("1.5"), "OTEL_TRACES_SAMPLER_ARG"),
            (
                Some("parentbased_traceidratio"),
                Some("half"),
                "OTEL_TRACES_SAMPLER_ARG",
            ),
            (Some("jaeger_remote"), None, "OTEL_TRACES_SAMPLER"),
            (Some("AlwaysOn"), None, "OTEL_TRACES_SAMPLER"),
        ] {
            let err = sampler(n, a).unwrap_err();
            assert!(err.starts_with(says), "{err}");
        }
    }
}
