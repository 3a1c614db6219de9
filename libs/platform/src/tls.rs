//! TLS to the backing services: PostgreSQL, RabbitMQ, Redis and Kafka
//! (docs/security.md, "TLS to the backing services").
//!
//! Each connection verifies the server's certificate and name. The CA to trust comes
//! from a PEM file named by a setting (`sslrootcert` in `DATABASE_URL`,
//! `AMQP_TLS_CA_FILE`, `REDIS_TLS_CA_FILE`, `KAFKA_SSL_CA_LOCATION`); settings that
//! contradict each other (a CA file with a plaintext URL, a CA file that is missing or
//! holds no certificate) stop the service at start with a message naming the setting.
//!
//! One crypto library: rustls with ring everywhere (sqlx, lapin, redis, reqwest, kube;
//! reqwest, the OTLP exporter's too, has no provider of its own and takes this one:
//! [`http_client_builder`]).
//! A build that also compiles aws-lc-rs into rustls (feature unification in a
//! workspace-wide build) makes rustls's `ClientConfig::builder()` panic unless a
//! process-wide provider is installed: [`install_crypto_provider`] does that, and the
//! code here calls it before building any TLS client.

use std::path::Path;

use rustls::pki_types::pem::PemObject;

/// Install ring as the process's rustls crypto provider, unless one already is.
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Err only when another thread installed one first: that one stays.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// A reqwest client builder whose TLS is rustls with ring. reqwest is built without a
/// crypto provider of its own (Cargo.toml: no aws-lc-rs), so every client takes the
/// process's, and building one before a provider is installed panics (reqwest's
/// `Client::new()`, `Client::builder().build()` and `reqwest::get` alike): this
/// installs ring first ([`install_crypto_provider`]). https:// URLs are verified
/// against the system's roots (the platform verifier).
pub fn http_client_builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
}

/// The PEM CA bundle at `path`, which `setting` names: every certificate in it must be
/// usable as a trust anchor, and there must be at least one.
pub fn read_ca_bundle(setting: &str, path: &Path) -> anyhow::Result<Vec<u8>> {
    let pem = std::fs::read(path)
        .map_err(|e| anyhow::anyhow!("{setting}: cannot read {}: {e}", path.display()))?;
    let mut anchors = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        let cert = cert
            .map_err(|e| anyhow::anyhow!("{setting}: {} is not a PEM file: {e}", path.display()))?;
        anchors.add(cert).map_err(|e| {
            anyhow::anyhow!(
                "{setting}: {} holds a certificate that cannot be trusted as a CA: {e}",
                path.display()
            )
        })?;
    }
    if anchors.is_empty() {
        anyhow::bail!(
            "{setting}: {} holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)",
            path.display()
        );
    }
    Ok(pem)
}

/// Checks the TLS parameters of a PostgreSQL URL (libpq's names, as sqlx reads
/// them): a `sslrootcert` must be a readable CA bundle, and it is only accepted with
/// `sslmode=verify-full` or `verify-ca`: with `require` or `prefer`, sqlx encrypts
/// without checking the certificate at all, which a CA file suggests it does.
pub(crate) fn check_database_url(url: &str) -> anyhow::Result<()> {
    let Ok(url) = reqwest::Url::parse(url) else {
        // sqlx parsed it already; a URL it takes that this does not has no TLS query.
        return Ok(());
    };
    let mut mode = None;
    let mut root_cert = None;
    for (key, value) in url.query_pairs() {
        match &*key {
            "sslmode" | "ssl-mode" => mode = Some(value.to_ascii_lowercase()),
            "sslrootcert" | "ssl-root-cert" | "ssl-ca" => root_cert = Some(value.into_owned()),
            _ => {}
        }
    }
    let Some(root_cert) = root_cert else {
        return Ok(());
    };
    let mode = mode.unwrap_or_else(|| "prefer".to_owned());
    if !matches!(mode.as_str(), "verify-full" | "verify-ca") {
        anyhow::bail!(
            "DATABASE_URL: sslrootcert is set but sslmode={mode} does not check the server's \
             certificate; use sslmode=verify-full"
        );
    }
    read_ca_bundle("DATABASE_URL's sslrootcert", Path::new(&root_cert))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// reqwest has no rustls provider of its own: a client built with reqwest's own
    /// builder in a process where none is installed panics. nextest runs each test
    /// in a process of its own, so nothing was installed before this one.
    #[test]
    fn an_http_client_builds_with_no_provider_installed_beforehand() {
        assert!(http_client_builder().build().is_ok());
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }

    fn scratch(name: &str, content: &[u8]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("sales-tls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    #[test]
    fn a_ca_file_that_is_missing_or_not_pem_is_refused_naming_the_setting() {
        let missing = Path::new("/nonexistent/ca.crt");
        let err = read_ca_bundle("AMQP_TLS_CA_FILE", missing)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("AMQP_TLS_CA_FILE: cannot read /nonexistent/ca.crt"),
            "{err}"
        );

        let text = scratch("ca.crt", b"not a certificate\n");
        let err = read_ca_bundle("REDIS_TLS_CA_FILE", &text)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("REDIS_TLS_CA_FILE:") && err.contains("no PEM certificate"),
            "{err}"
        );

        let garbage = scratch(
            "ca.crt",
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        let err = read_ca_bundle("REDIS_TLS_CA_FILE", &garbage)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot be trusted as a CA"), "{err}");
        for file in [text, garbage] {
            let _ = std::fs::remove_dir_all(file.parent().unwrap());
        }
    }

    #[test]
    fn sslrootcert_without_a_verifying_sslmode_is_refused() {
        for mode in ["require", "prefer", "disable"] {
            let url = format!("postgres://u@db:5432/x?sslmode={mode}&sslrootcert=/ca.crt");
            let err = check_database_url(&url).unwrap_err().to_string();
            assert!(
                err.contains(&format!("sslmode={mode}")) && err.contains("verify-full"),
                "{err}"
            );
        }
        // No sslmode is libpq's and sqlx's `prefer`.
        let err = check_database_url("postgres://u@db/x?sslrootcert=/ca.crt").unwrap_err();
        assert!(err.to_string().contains("sslmode=prefer"), "{err}");
        let err = check_database_url("postgres://u@db/x?sslmode=verify-full&sslrootcert=/none.crt")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("DATABASE_URL's sslrootcert: cannot read /none.crt"),
            "{err}"
        );
        // Without a CA file nothing is read: verify-full then trusts the webpki roots.
        check_database_url("postgres://u@db/x?sslmode=verify-full").unwrap();
        check_database_url("postgres://u:p@db/x").unwrap();
    }
}
