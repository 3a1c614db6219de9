//! Secrets never reach the logs: a whole system at debug level goes through
//! registrations, logins (good and bad), a password change, a logout, orders and
//! payments, service-to-service calls with service tokens, operations endpoints and
//! refused forgeries; then every line every service wrote is searched for the
//! passwords, tokens, signing keys and client secrets it used, and for anything that
//! looks like a token at all.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use system_tests::{ADMIN_PASSWORD, Service, System, SystemOptions};

const ALICE_PASSWORD: &str = "alice-Pa55word-9f2c";
const ALICE_NEW_PASSWORD: &str = "alice-n3w-Pa55word-77ab";
const BUDI_PASSWORD: &str = "budi-Pa55word-4e1d";
const WRONG_PASSWORD: &str = "not-her-Pa55word-0c9e";

/// The base64 body of every PEM block in `pem`, and its longest lines.
fn key_material(pem: &str) -> Vec<String> {
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    let mut pieces = vec![body.clone()];
    // Any 24 characters of it would give the key away in part.
    pieces.extend(
        body.as_bytes()
            .chunks(24)
            .map(|c| String::from_utf8_lossy(c).into_owned()),
    );
    pieces.retain(|p| p.len() >= 16);
    pieces
}

/// Anything shaped like a JWT: three base64url parts, the first two JSON.
fn looks_like_a_token(line: &str) -> Option<&str> {
    let start = line.find("eyJ")?;
    let candidate = &line[start..];
    let end = candidate
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
        .unwrap_or(candidate.len());
    let candidate = &candidate[..end];
    (candidate.split('.').count() == 3 && candidate.len() > 40).then_some(candidate)
}

async fn log_in(sys: &System, email: &str, password: &str) -> (StatusCode, Value) {
    sys.call(
        Method::POST,
        "/api/v1/customers/login",
        Some(json!({"email": email, "password": password})),
        None,
    )
    .await
}

#[tokio::test]
async fn no_password_token_or_key_is_ever_logged() {
    let debug = "debug,h2=info,hyper=info,hyper_util=info,tower=info,lapin=info,amq_protocol=info,pinky_swear=info".to_owned();
    let env: HashMap<Service, Vec<(String, String)>> = Service::ALL
        .into_iter()
        .map(|s| (s, vec![("RUST_LOG".to_owned(), debug.clone())]))
        .collect();
    let sys = System::start_with(SystemOptions {
        logs_to_files: true,
        env,
        ..Default::default()
    })
    .await;
    let mut tokens: Vec<String> = Vec::new();

    let admin = sys.admin_token().await;
    tokens.push(admin.clone());
    let sku = "LOG-1";
    let product = sys.add_product_as(&admin, sku, 1250, 20).await;

    // Accounts: canonical and seed 000 registration, good and bad logins.
    let (status, _) = sys
        .call(
            Method::POST,
            "/api/v1/customers/register",
            Some(
                json!({"email": "alice@example.com", "password": ALICE_PASSWORD, "name": "Alice"}),
            ),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, budi) = sys
        .call(
            Method::POST,
            "/users/user/register",
            Some(json!({"email": "budi@example.com", "password": BUDI_PASSWORD, "name": "Budi"})),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{budi}");
    tokens.push(budi["data"]["token"].as_str().unwrap().to_owned());
    for _ in 0..3 {
        assert_eq!(
            log_in(&sys, "alice@example.com", WRONG_PASSWORD).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    let (_, login) = log_in(&sys, "alice@example.com", ALICE_PASSWORD).await;
    let alice = login["token"].as_str().unwrap().to_owned();
    tokens.push(alice.clone());

    // An order, paid: the order service calls the catalogue, the inventory and the
    // payment service with its service token.
    let (status, order) = sys
        .call(
            Method::POST,
            "/api/v1/orders",
            Some(json!({"items": [{"product_id": product, "quantity": 2}]})),
            Some(&alice),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    let order_id = order["order_id"].as_i64().unwrap();
    let (status, paid) = sys
        .call(
            Method::POST,
            &format!("/api/v1/orders/{order_id}/pay"),
            None,
            Some(&alice),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{paid}");

    // Forgeries and junk are refused (and their reasons logged, not the tokens).
    let forged = format!("{}x", &alice[..alice.len() - 1]);
    for bad in [
        forged.as_str(),
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.",
        "garbage",
    ] {
        let (status, _) = sys
            .call(Method::GET, "/api/v1/orders", None, Some(bad))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = sys
            .request(
                Method::GET,
                Service::Order,
                "/api/v1/orders",
                None,
                &[("authorization", &format!("Bearer {bad}"))],
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    // Operations endpoints with the admin's token.
    let r = sales_testkit::http_client()
        .get(format!(
            "{}/admin/dead-letters",
            sys.admin_url(Service::Inventory)
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // A password change and a logout.
    let (status, changed) = sys
        .call(
            Method::PUT,
            "/api/v1/customers/me/password",
            Some(json!({"current_password": ALICE_PASSWORD, "new_password": ALICE_NEW_PASSWORD})),
            Some(&alice),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    let alice2 = changed["token"].as_str().unwrap().to_owned();
    tokens.push(alice2.clone());
    let (status, _) = sys
        .call(
            Method::POST,
            "/api/v1/customers/logout",
            None,
            Some(&alice2),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        sys.call(Method::GET, "/api/v1/orders", None, Some(&alice2))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );

    // Let the events settle, so the consumers have logged what they do.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let identity = &sys.wiring.identity;
    let mut secrets: Vec<(String, String)> = vec![
        ("alice's password".into(), ALICE_PASSWORD.into()),
        ("alice's new password".into(), ALICE_NEW_PASSWORD.into()),
        ("budi's password".into(), BUDI_PASSWORD.into()),
        ("a wrong password".into(), WRONG_PASSWORD.into()),
        ("the admin's password".into(), ADMIN_PASSWORD.into()),
    ];
    for token in &tokens {
        secrets.push(("an access token".into(), token.clone()));
        let signature = token.rsplit('.').next().unwrap().to_owned();
        secrets.push(("an access token's signature".into(), signature));
    }
    for piece in key_material(&identity.customer_signing_keys) {
        secrets.push(("the customer service's signing key".into(), piece));
    }
    for piece in key_material(&identity.gateway_signing_keys) {
        secrets.push(("the gateway's signing key".into(), piece));
    }
    for (service, secret) in &identity.client_secrets {
        secrets.push((
            format!("the {} client secret", service.name()),
            secret.clone(),
        ));
    }

    let logs = sys.logs();
    let lines: usize = logs.iter().map(|(_, text)| text.lines().count()).sum();
    assert!(
        lines > 200,
        "the services logged only {lines} lines at debug level"
    );
    let mut found = Vec::new();
    for (service, text) in &logs {
        for (n, line) in text.lines().enumerate() {
            for (what, secret) in &secrets {
                if line.contains(secret.as_str()) {
                    found.push(format!("{} line {}: {what}", service.name(), n + 1));
                }
            }
            if let Some(token) = looks_like_a_token(line) {
                found.push(format!(
                    "{} line {}: something shaped like a token ({}...)",
                    service.name(),
                    n + 1,
                    &token[..20]
                ));
            }
        }
    }
    assert!(
        found.is_empty(),
        "secrets in the logs:\n{}",
        found.join("\n")
    );
    sys.stop().await;
}
