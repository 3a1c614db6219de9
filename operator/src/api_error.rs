//! Errors of the Kubernetes API as sentences, for status conditions, Events and logs.
//!
//! kube's `Display` of an API error is `ApiError: <message>: <reason> (Status {..})`,
//! the client library's debug output; a 404 from a kind the cluster does not serve
//! (a CRD not installed) even reads `404 page not found: Failed to parse error data`,
//! because the API server answers it in plain text. These say what failed in words a
//! user acts on; the caller says on which object.

/// What went wrong with a request to the API server, as one sentence without the
/// object (e.g. "the API server refused it as invalid: spec.replicas: ...").
pub fn describe(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => {
            let message = status.message.trim();
            let plain_text = status.reason == "Failed to parse error data";
            match status.code {
                404 if plain_text || message.contains("page not found") => {
                    "the cluster does not serve this kind (its CustomResourceDefinition is not \
                     installed)"
                        .into()
                }
                404 => format!("not found ({})", unquoted(message)),
                409 if status.reason == "AlreadyExists" => {
                    format!("it already exists ({})", unquoted(message))
                }
                409 => format!(
                    "it changed while the operator wrote it (conflict); retrying: {}",
                    unquoted(message)
                ),
                422 => format!(
                    "the API server refused it as invalid: {}",
                    invalid_causes(message)
                ),
                400 => format!("the API server refused the request: {}", unquoted(message)),
                401 => "the operator's credentials were not accepted (401 Unauthorized)".into(),
                403 => format!(
                    "the operator is not allowed to do this; check its RBAC ({})",
                    unquoted(message)
                ),
                410 => "the API server no longer has that version of it (410 Gone)".into(),
                429 => "the API server is throttling requests (429); retrying".into(),
                code @ 500..=599 => format!(
                    "the API server failed ({code}{}); retrying",
                    if message.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", unquoted(message))
                    }
                ),
                code => format!("the API server answered {code}: {}", unquoted(message)),
            }
        }
        kube::Error::HyperError(e) => {
            format!("cannot reach the API server ({e}); retrying")
        }
        kube::Error::Service(e) => format!("cannot reach the API server ({e}); retrying"),
        kube::Error::SerdeError(e) => {
            format!("the API server's answer could not be read ({e})")
        }
        kube::Error::BuildRequest(e) => format!("the request could not be built ({e})"),
        other => format!("the request failed ({other})"),
    }
}

/// A 422's message without the object's own name repeated before the causes: the
/// API server writes `Kind.group "name" is invalid: field: Invalid value: ...`.
fn invalid_causes(message: &str) -> String {
    match message.split_once(" is invalid: ") {
        Some((_, causes)) => causes.trim().to_owned(),
        None => unquoted(message),
    }
}

/// The message with the API server's escaped quotes read back.
fn unquoted(message: &str) -> String {
    message.trim().replace("\\\"", "\"")
}

/// `err` is a 404 because the kind is not served (not: the object is absent).
pub fn kind_not_served(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(status) if status.code == 404 => {
            status.reason == "Failed to parse error data"
                || status.message.contains("page not found")
                // A JSON 404 without details names no object: the path is unknown.
                || (status.reason == "NotFound" && status.details.is_none())
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use kube::core::Status;

    use super::*;

    fn api(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(Status::failure(message, reason).with_code(code).boxed())
    }

    #[test]
    fn a_kind_that_is_not_served_reads_as_such() {
        // What kube makes of the API server's plain-text answer.
        let err = api(404, "Failed to parse error data", "404 page not found\n");
        assert!(kind_not_served(&err));
        let text = describe(&err);
        assert!(text.contains("CustomResourceDefinition"), "{text}");
        assert!(!text.contains("Failed to parse"), "{text}");
        // An object that is absent is not a missing kind.
        let status: Status = serde_json::from_value(serde_json::json!({
            "status": "Failure", "code": 404, "reason": "NotFound",
            "message": "secrets \"x\" not found", "details": {"name": "x", "kind": "secrets"},
        }))
        .expect("a Status");
        assert!(!kind_not_served(&kube::Error::Api(status.boxed())));
    }

    #[test]
    fn conflicts_invalid_objects_and_outages_read_as_sentences() {
        let conflict = describe(&api(
            409,
            "Conflict",
            "Operation cannot be fulfilled on secrets \"shop-order-db\": the object has been modified",
        ));
        assert!(
            conflict.starts_with("it changed while the operator wrote it"),
            "{conflict}"
        );
        let invalid = describe(&api(
            422,
            "Invalid",
            "StatefulSet.apps \"shop-order-db\" is invalid: spec: Forbidden: updates to statefulset spec for fields other than 'replicas' are forbidden",
        ));
        assert_eq!(
            invalid,
            "the API server refused it as invalid: spec: Forbidden: updates to statefulset \
             spec for fields other than 'replicas' are forbidden"
        );
        let forbidden = describe(&api(
            403,
            "Forbidden",
            "secrets is forbidden: User \"x\" cannot list",
        ));
        assert!(forbidden.contains("RBAC"), "{forbidden}");
        let down = describe(&api(503, "ServiceUnavailable", ""));
        assert_eq!(down, "the API server failed (503); retrying");
        for text in [conflict, invalid, forbidden, down] {
            assert!(
                !text.contains("ApiError") && !text.contains("Status {"),
                "{text}"
            );
        }
        let unreachable = describe(&kube::Error::Service("connection refused".into()));
        assert_eq!(
            unreachable,
            "cannot reach the API server (connection refused); retrying"
        );
    }
}
