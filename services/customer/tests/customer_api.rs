//! The customer service against a real PostgreSQL: accounts, tokens, the admin from
//! configuration, profile visibility, seed 000's and seed 002's shapes, and a clear
//! 4xx for bad input everywhere.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use clap::Parser;
use customer_service::{Config, build};
use reqwest::{Method, StatusCode};
use sales_contracts::api::auth::{ISSUER, Role};
use secrecy::SecretString;
use serde_json::{Value, json};
use support::{Customers, as_admin, as_customer, verify};

const PASSWORD: &str = "correct horse battery";

fn time(v: &Value) -> chrono::DateTime<chrono::Utc> {
    serde_json::from_value(v.clone()).unwrap()
}

#[tokio::test]
async fn register_and_login_give_tokens_with_the_right_claims() {
    let svc = Customers::start().await;

    let (status, body) = svc
        .post(
            "/api/v1/customers/register",
            json!({"email": "Ada@Example.com", "password": PASSWORD, "name": "Ada Lovelace",
                   "address": "12 St James's Square", "contact": "+44 20 7946 0000"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["customer_id"].as_i64().unwrap();
    let claims = verify(body["token"].as_str().unwrap());
    assert_eq!(claims.sub, id.to_string());
    assert_eq!(claims.name, "Ada Lovelace");
    assert_eq!(claims.email, "Ada@Example.com");
    assert_eq!(claims.role, Role::Customer);
    assert_eq!(claims.iss, ISSUER);
    assert_eq!(claims.exp - claims.iat, 3600, "TOKEN_TTL defaults to 1h");
    assert_eq!(time(&body["expires_at"]).timestamp(), claims.exp);

    // Log in with the email in another case.
    let (status, body) = svc.login("ada@EXAMPLE.com", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["customer_id"], id);
    let claims = verify(body["token"].as_str().unwrap());
    assert_eq!(claims.sub, id.to_string());
    assert_eq!(claims.email, "Ada@Example.com");
    assert_eq!(claims.role, Role::Customer);

    // The profile holds what was registered.
    let (status, me) = svc.get_as("/api/v1/customers/me", &as_customer(id)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["address"], "12 St James's Square");
    assert_eq!(me["contact"], "+44 20 7946 0000");
    assert_eq!(me["role"], "customer");

    let _ = svc.login("ada@example.com", "wrong password").await;
    let metrics = svc.metrics().await;
    assert!(
        metrics.contains(r#"customer_registrations_total{service="customer"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"customer_logins_total{outcome="success",service="customer"} 1"#));
    assert!(metrics.contains(r#"customer_logins_total{outcome="failure",service="customer"} 1"#));
    svc.stop().await;
}

#[tokio::test]
async fn token_lifetime_follows_token_ttl() {
    let svc = Customers::start_with(|c| c.token_ttl = Duration::from_secs(300)).await;
    let (_, token) = svc.register("ttl@example.com", PASSWORD, "Ttl").await;
    let claims = verify(&token);
    assert_eq!(claims.exp - claims.iat, 300);
    svc.stop().await;
}

#[tokio::test]
async fn an_email_registers_once_whatever_its_case() {
    let svc = Customers::start().await;
    svc.register("Grace@Example.com", PASSWORD, "Grace").await;

    let (status, body) = svc
        .post(
            "/api/v1/customers/register",
            json!({"email": "grace@example.COM", "password": PASSWORD, "name": "Other Grace"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "email_taken");
    assert_eq!(
        body["error"]["message"],
        "an account with this email already exists"
    );

    // Many at once for a new email: exactly one account.
    let attempts = (0..6).map(|i| {
        let svc = &svc;
        async move {
            svc.post(
                "/api/v1/customers/register",
                json!({"email": if i % 2 == 0 { "race@example.com" } else { "RACE@example.com" },
                       "password": PASSWORD, "name": format!("Racer {i}")}),
            )
            .await
            .0
        }
    });
    let statuses = futures::future::join_all(attempts).await;
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, refused), (1, 5), "{statuses:?}");

    let pool = svc.pool().await;
    let n: i64 = sqlx::query_scalar(
        "select count(*) from customers where lower(email) = 'race@example.com'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(n, 1);
    pool.close().await;
    svc.stop().await;
}

#[tokio::test]
async fn wrong_password_and_unknown_email_get_the_same_401() {
    let svc = Customers::start().await;
    svc.register("linus@example.com", PASSWORD, "Linus").await;

    let (s1, wrong_password) = svc.login("linus@example.com", "not the password").await;
    let (s2, unknown_email) = svc.login("nobody@example.com", PASSWORD).await;
    assert_eq!(s1, StatusCode::UNAUTHORIZED);
    assert_eq!(s2, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong_password, unknown_email);
    assert_eq!(wrong_password["error"]["code"], "invalid_credentials");
    assert_eq!(
        wrong_password["error"]["message"],
        "the email or the password is incorrect"
    );

    // Seed 000's login alike.
    let (s1, a) = svc
        .post(
            "/users/user/login",
            json!({"email": "linus@example.com", "password": "not the password"}),
        )
        .await;
    let (s2, b) = svc
        .post(
            "/users/user/login",
            json!({"email": "nobody@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        (s1, s2),
        (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED)
    );
    assert_eq!(a, b);
    assert_eq!(a["success"], false);

    svc.stop().await;
}

#[tokio::test]
async fn the_password_is_never_answered_nor_stored_in_clear() {
    let svc = Customers::start().await;
    let secret = "Sup3r-Secret-Passw0rd";
    let mut answers = Vec::new();
    answers.push(
        svc.text(
            Method::POST,
            "/api/v1/customers/register",
            Some(json!({"email": "kim@example.com", "password": secret, "name": "Kim"})),
        )
        .await,
    );
    answers.push(
        svc.text(
            Method::POST,
            "/users/user/register",
            Some(json!({"email": "lee@example.com", "password": secret, "name": "Lee"})),
        )
        .await,
    );
    answers.push(
        svc.text(
            Method::POST,
            "/api/v1/customers/login",
            Some(json!({"email": "kim@example.com", "password": secret})),
        )
        .await,
    );
    answers.push(
        svc.text(
            Method::POST,
            "/users/user/login",
            Some(json!({"email": "lee@example.com", "password": secret})),
        )
        .await,
    );
    answers.push(
        svc.text(
            Method::POST,
            "/api/v1/customers/register",
            Some(json!({"email": "kim@example.com", "password": secret, "name": "Kim"})),
        )
        .await,
    );
    answers.push(svc.text(Method::GET, "/api/v1/customers", None).await);
    answers.push(svc.text(Method::GET, "/api/v1/customers/1", None).await);
    answers.push(svc.text(Method::GET, "/customers/1", None).await);
    for answer in &answers {
        assert!(!answer.contains(secret), "password in an answer: {answer}");
        assert!(!answer.contains("argon2"), "hash in an answer: {answer}");
        assert!(!answer.contains("password"), "password field in: {answer}");
    }

    let pool = svc.pool().await;
    let hashes: Vec<String> = sqlx::query_scalar("select password_hash from customers order by id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(hashes.len(), 2);
    for hash in &hashes {
        assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
    }
    assert_ne!(hashes[0], hashes[1], "same password, different salts");
    let in_clear: i64 =
        sqlx::query_scalar("select count(*) from customers c where strpos(c::text, $1) > 0")
            .bind(secret)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(in_clear, 0);
    pool.close().await;
    svc.stop().await;
}

fn with_admin(email: &str, password: &str) -> impl FnOnce(&mut Config) {
    let email = email.to_owned();
    let password = password.to_owned();
    move |c: &mut Config| {
        c.admin_email = Some(email);
        c.admin_password = Some(SecretString::from(password));
    }
}

async fn admin_count(svc: &Customers) -> (i64, i64) {
    let pool = svc.pool().await;
    let admins: i64 = sqlx::query_scalar("select count(*) from customers where role = 'admin'")
        .fetch_one(&pool)
        .await
        .unwrap();
    let accounts: i64 = sqlx::query_scalar(
        "select count(*) from customers where lower(email) = 'root@example.com'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    (admins, accounts)
}

#[tokio::test]
async fn the_admin_comes_from_configuration_only() {
    let svc = Customers::start_with(with_admin("Root@Example.com", "admin password 1")).await;
    let claims = svc
        .wait_for_login("root@example.com", "admin password 1", |_| true)
        .await;
    assert_eq!(claims.role, Role::Admin);
    assert_eq!(claims.email, "Root@Example.com");
    let admin_id: i64 = claims.sub.parse().unwrap();
    let (status, list) = svc.get_as("/api/v1/customers", &as_admin(admin_id)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list[0]["role"], "admin");
    assert_eq!(admin_count(&svc).await, (1, 1));

    // Restart with the same admin: still one admin account.
    let svc = svc
        .restart(with_admin("root@example.com", "admin password 1"))
        .await;
    let claims = svc
        .wait_for_login("root@example.com", "admin password 1", |_| true)
        .await;
    assert_eq!(claims.sub, admin_id.to_string());
    assert_eq!(admin_count(&svc).await, (1, 1));

    // A new password in the configuration replaces the old one.
    let svc = svc
        .restart(with_admin("root@example.com", "admin password 2"))
        .await;
    let claims = svc
        .wait_for_login("root@example.com", "admin password 2", |_| true)
        .await;
    assert_eq!(claims.sub, admin_id.to_string());
    assert_eq!(
        svc.login("root@example.com", "admin password 1").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(admin_count(&svc).await, (1, 1));

    // Without the configuration there is no admin: the account is a customer again.
    let svc = svc.restart(|_| {}).await;
    let claims = svc
        .wait_for_login("root@example.com", "admin password 2", |c| {
            c.role == Role::Customer
        })
        .await;
    assert_eq!(claims.sub, admin_id.to_string());
    assert_eq!(admin_count(&svc).await, (0, 1));
    svc.stop().await;
}

#[tokio::test]
async fn there_is_no_admin_without_configuration() {
    let svc = Customers::start().await;
    svc.register("first@example.com", PASSWORD, "First").await;
    // Give the start-up tasks time to have done anything they would do.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pool = svc.pool().await;
    let (admins, total): (i64, i64) =
        sqlx::query_as("select count(*) filter (where role = 'admin'), count(*) from customers")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((admins, total), (0, 1));
    pool.close().await;
    for (email, password) in [
        ("admin@example.com", "admin"),
        ("admin@example.com", "password"),
        ("admin@localhost.com", "admin123"),
    ] {
        assert_eq!(svc.login(email, password).await.0, StatusCode::UNAUTHORIZED);
    }
    svc.stop().await;
}

#[tokio::test]
async fn a_bad_configuration_refuses_to_start() {
    let mut config = support::config();
    config.jwt_secret = SecretString::from("too short");
    let err = build(config).await.err().expect("refused").to_string();
    assert!(
        err.contains("JWT_SECRET must be at least 32 bytes"),
        "{err}"
    );

    let mut config = support::config();
    config.admin_email = Some("root@example.com".into());
    let err = build(config).await.err().expect("refused").to_string();
    assert!(err.contains("ADMIN_PASSWORD is not"), "{err}");

    let mut config = support::config();
    config.admin_email = Some("root@example.com".into());
    config.admin_password = Some(SecretString::from("short"));
    let err = build(config).await.err().expect("refused").to_string();
    assert!(
        err.contains("ADMIN_PASSWORD: password must be at least 8"),
        "{err}"
    );

    // JWT_SECRET has no default.
    if std::env::var_os("JWT_SECRET").is_none() {
        let err = Config::try_parse_from([
            "customer-service",
            "--http-addr=127.0.0.1:0",
            "--admin-addr=127.0.0.1:0",
            "--database-url=postgres://unused",
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("--jwt-secret"), "{err}");
    }
}

#[tokio::test]
async fn customers_see_only_their_own_profile() {
    let svc = Customers::start().await;
    let (alice, _) = svc.register("alice@example.com", PASSWORD, "Alice").await;
    let (bob, _) = svc.register("bob@example.com", PASSWORD, "Bob").await;

    let (status, me) = svc
        .get_as("/api/v1/customers/me", &as_customer(alice))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["customer_id"], alice);
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["name"], "Alice");
    assert_eq!(me["address"], Value::Null);
    assert!(me.get("password_hash").is_none());

    let (status, body) = svc.get("/api/v1/customers/me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthenticated");

    // Own: 200. Another's: 404, reading or writing.
    let own = format!("/api/v1/customers/{alice}");
    let other = format!("/api/v1/customers/{bob}");
    assert_eq!(
        svc.get_as(&own, &as_customer(alice)).await.0,
        StatusCode::OK
    );
    let (status, body) = svc.get_as(&other, &as_customer(alice)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body["error"]["message"],
        format!("customer {bob} not found")
    );
    assert_eq!(
        svc.get_as(&format!("/customers/{bob}"), &as_customer(alice))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (status, _) = svc
        .put_as(&other, &as_customer(alice), json!({"name": "Hacked"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, updated) = svc
        .put_as(
            &own,
            &as_customer(alice),
            json!({"name": " Alice Liddell ", "address": "Oxford", "contact": "alice@home"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["name"], "Alice Liddell");
    assert_eq!(updated["address"], "Oxford");
    assert_eq!(updated["contact"], "alice@home");
    assert_eq!(updated["email"], "alice@example.com");
    assert!(time(&updated["updated_at"]) > time(&me["updated_at"]));
    // The new name is in the next token.
    let (_, login) = svc.login("alice@example.com", PASSWORD).await;
    assert_eq!(
        verify(login["token"].as_str().unwrap()).name,
        "Alice Liddell"
    );
    // Bob is unchanged.
    assert_eq!(svc.get(&other).await.1["name"], "Bob");

    // Admins and internal callers see anyone; only they list.
    assert_eq!(svc.get_as(&other, &as_admin(999)).await.0, StatusCode::OK);
    assert_eq!(svc.get(&other).await.0, StatusCode::OK);
    let (status, _) = svc
        .put_as(&other, &as_admin(999), json!({"name": "Robert"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = svc.get_as("/api/v1/customers", &as_customer(alice)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "forbidden");
    let (status, list) = svc.get_as("/api/v1/customers", &as_admin(999)).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Alice Liddell", "Robert"]);
    let (status, page) = svc.get("/api/v1/customers?limit=1&offset=1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page.as_array().unwrap().len(), 1);
    assert_eq!(page[0]["customer_id"], bob);

    // Unknown ids are 404 for everyone.
    assert_eq!(
        svc.get("/api/v1/customers/424242").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        svc.get_as("/api/v1/customers/me", &as_customer(424242))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    svc.stop().await;
}

#[tokio::test]
async fn seed_000_routes_answer_in_its_envelope() {
    let svc = Customers::start().await;

    let (status, body) = svc
        .post(
            "/users/user/register",
            json!({"email": "budi@example.com", "password": PASSWORD, "name": "Budi"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let token = body["data"]["token"].as_str().unwrap().to_owned();
    assert_eq!(
        body,
        json!({"success": true, "data": {"token": token}, "error_message": null})
    );
    let claims = verify(&token);
    assert_eq!(
        (claims.name.as_str(), claims.email.as_str(), claims.role),
        ("Budi", "budi@example.com", Role::Customer)
    );

    let (status, body) = svc
        .post(
            "/users/user/login",
            json!({"email": "budi@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let token = body["data"]["token"].as_str().unwrap().to_owned();
    assert_eq!(
        body,
        json!({"success": true, "data": {"token": token}, "error_message": null})
    );
    assert_eq!(verify(&token).sub, claims.sub);

    let (status, body) = svc
        .post(
            "/users/user/register",
            json!({"email": "BUDI@example.com", "password": PASSWORD, "name": "Budi 2"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        body,
        json!({"success": false, "data": null,
               "error_message": "an account with this email already exists"})
    );

    // Seed 000's schema calls the name `fullname`.
    let (status, body) = svc
        .post(
            "/users/user/register",
            json!({"email": "sari@example.com", "password": PASSWORD, "fullname": "Sari"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(verify(body["data"]["token"].as_str().unwrap()).name, "Sari");

    // Every error in the envelope.
    let cases: Vec<(&str, Value, StatusCode, &str)> = vec![
        (
            "/users/user/register",
            json!({"email": "x@example.com", "password": PASSWORD}),
            StatusCode::BAD_REQUEST,
            "missing field `name`",
        ),
        (
            "/users/user/register",
            json!({"email": "not-an-email", "password": PASSWORD, "name": "X"}),
            StatusCode::BAD_REQUEST,
            "email is invalid",
        ),
        (
            "/users/user/register",
            json!({"email": "x@example.com", "password": "short", "name": "X"}),
            StatusCode::BAD_REQUEST,
            "password must be at least 8 characters",
        ),
        (
            "/users/user/login",
            json!({"email": "x@example.com"}),
            StatusCode::BAD_REQUEST,
            "missing field `password`",
        ),
        (
            "/users/user/login",
            json!({"email": "budi@example.com", "password": "wrong password"}),
            StatusCode::UNAUTHORIZED,
            "the email or the password is incorrect",
        ),
    ];
    for (path, request, expected, message) in cases {
        let (status, body) = svc.post(path, request.clone()).await;
        assert_eq!(status, expected, "{path} {request}: {body}");
        assert_eq!(body["success"], false, "{body}");
        assert_eq!(body["data"], Value::Null, "{body}");
        let got = body["error_message"].as_str().unwrap();
        assert!(got.contains(message), "{path} {request}: {got}");
    }
    for path in ["/users/user/register", "/users/user/login"] {
        let (status, body) = svc
            .send_raw(Method::POST, path, Some("application/json"), "{\"email\": ")
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body["error_message"]
                .as_str()
                .unwrap()
                .contains("not valid JSON")
        );
        let huge =
            json!({"email": "a@example.com", "password": PASSWORD, "name": "x".repeat(70_000)});
        let (status, body) = svc.post(path, huge).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body["success"], false);
    }
    svc.stop().await;
}

#[tokio::test]
async fn seed_002_customers_are_stored_rows() {
    let svc = Customers::start().await;
    let (status, row) = svc
        .post(
            "/customers",
            json!({"name": "Nguyen Van A", "address": "1 Le Loi, Hanoi", "contact": "0901234567"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{row}");
    let id = row["id"].as_i64().unwrap();
    let created_at = row["created_at"].as_str().unwrap().to_owned();
    assert_eq!(
        row,
        json!({"id": id, "name": "Nguyen Van A", "address": "1 Le Loi, Hanoi",
               "contact": "0901234567", "created_at": created_at})
    );
    let (status, got) = svc.get(&format!("/customers/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, row);

    // The same customer in the canonical API: a profile without an account.
    let (_, canonical) = svc.get(&format!("/api/v1/customers/{id}")).await;
    assert_eq!(canonical["email"], Value::Null);
    assert_eq!(canonical["role"], "customer");

    // Address and contact may be left out; a registered account reads the same way.
    let (status, row) = svc.post("/customers", json!({"name": "Tran"})).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(row["address"], Value::Null);
    let (account, _) = svc.register("minh@example.com", PASSWORD, "Minh").await;
    let (status, row) = svc.get(&format!("/customers/{account}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        row.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["address", "contact", "created_at", "id", "name"]
    );

    let (status, body) = svc.get("/customers/999999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["message"], "customer 999999 not found");
    svc.stop().await;
}

/// `(method, path, body)` -> expected status and words of the message.
async fn expect_4xx(
    svc: &Customers,
    method: Method,
    path: &str,
    body: Value,
    status: StatusCode,
    words: &str,
) {
    let (got, answer) = svc.request(method.clone(), path, &[], Some(body)).await;
    assert_eq!(got, status, "{method} {path}: {answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(words),
        "{method} {path}: {message:?} should say {words:?}"
    );
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_everywhere() {
    let svc = Customers::start().await;
    let (alice, _) = svc.register("alice@example.com", PASSWORD, "Alice").await;
    let own = format!("/api/v1/customers/{alice}");
    let bad = StatusCode::BAD_REQUEST;

    let register = "/api/v1/customers/register";
    let login = "/api/v1/customers/login";
    for (method, path, body, status, words) in [
        (
            Method::POST,
            register,
            json!({"email": "a@example.com", "name": "A"}),
            bad,
            "missing field `password`",
        ),
        (
            Method::POST,
            register,
            json!({"password": PASSWORD, "name": "A"}),
            bad,
            "missing field `email`",
        ),
        (
            Method::POST,
            register,
            json!({"email": "a@example.com", "password": PASSWORD}),
            bad,
            "missing field `name`",
        ),
        (
            Method::POST,
            register,
            json!({"email": "a@example", "password": PASSWORD, "name": "A"}),
            bad,
            "email is invalid",
        ),
        (
            Method::POST,
            register,
            json!({"email": "a b@example.com", "password": PASSWORD, "name": "A"}),
            bad,
            "email is invalid",
        ),
        (
            Method::POST,
            register,
            json!({"email": "a@example.com", "password": "1234567", "name": "A"}),
            bad,
            "password must be at least 8 characters",
        ),
        (
            Method::POST,
            register,
            json!({"email": "a@example.com", "password": PASSWORD, "name": "  "}),
            bad,
            "name must not be empty",
        ),
        (
            Method::POST,
            register,
            json!({"email": "a@example.com", "password": PASSWORD, "name": "A", "role": "admin"}),
            bad,
            "unknown field `role`",
        ),
        (
            Method::POST,
            register,
            json!({"email": 7, "password": PASSWORD, "name": "A"}),
            bad,
            "invalid type",
        ),
        (
            Method::POST,
            register,
            json!({"email": "a@example.com", "password": PASSWORD, "name": "x".repeat(201)}),
            bad,
            "name must be at most 200 characters",
        ),
        (
            Method::POST,
            register,
            json!({"email": "a@example.com", "password": "x".repeat(300), "name": "A"}),
            bad,
            "password must be at most 256 characters",
        ),
        (
            Method::POST,
            login,
            json!({"email": "alice@example.com"}),
            bad,
            "missing field `password`",
        ),
        (
            Method::POST,
            login,
            json!({"email": "alice", "password": PASSWORD}),
            bad,
            "email is invalid",
        ),
        (
            Method::PUT,
            own.as_str(),
            json!({"address": "x"}),
            bad,
            "missing field `name`",
        ),
        (
            Method::PUT,
            own.as_str(),
            json!({"name": ""}),
            bad,
            "name must not be empty",
        ),
        (
            Method::PUT,
            own.as_str(),
            json!({"name": "A", "email": "new@example.com"}),
            bad,
            "unknown field `email`",
        ),
        (
            Method::PUT,
            own.as_str(),
            json!({"name": "A", "contact": "x".repeat(201)}),
            bad,
            "contact must be at most 200",
        ),
        (
            Method::PUT,
            "/api/v1/customers/abc",
            json!({"name": "A"}),
            bad,
            "invalid path parameter",
        ),
        (
            Method::POST,
            "/customers",
            json!({"address": "x"}),
            bad,
            "missing field `name`",
        ),
        (
            Method::POST,
            "/customers",
            json!({"name": "A", "address": "x".repeat(501)}),
            bad,
            "address must be at most 500",
        ),
    ] {
        expect_4xx(&svc, method, path, body, status, words).await;
    }

    // Malformed JSON, a missing content type and an oversized body, on every body route.
    for (method, path) in [
        (Method::POST, register),
        (Method::POST, login),
        (Method::PUT, own.as_str()),
        (Method::POST, "/customers"),
    ] {
        let (status, body) = svc
            .send_raw(method.clone(), path, Some("application/json"), "{oops")
            .await;
        assert_eq!(status, bad, "{method} {path}: {body}");
        assert_eq!(
            body["error"]["code"], "malformed_json",
            "{method} {path}: {body}"
        );
        let (status, body) = svc
            .send_raw(method.clone(), path, None, "{\"name\": \"A\"}")
            .await;
        assert_eq!(
            status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{method} {path}: {body}"
        );
        let huge = format!("{{\"name\": \"{}\"}}", "x".repeat(70_000));
        let (status, body) = svc
            .send_raw(method.clone(), path, Some("application/json"), huge)
            .await;
        assert_eq!(
            status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{method} {path}: {body}"
        );
        assert_eq!(body["error"]["code"], "payload_too_large");
    }

    // Paths, queries and headers.
    for (path, words) in [
        ("/api/v1/customers/abc", "invalid path parameter"),
        ("/customers/abc", "invalid path parameter"),
        (
            "/api/v1/customers?limit=0",
            "limit must be between 1 and 500",
        ),
        ("/api/v1/customers?limit=x", "invalid query string"),
        ("/api/v1/customers?offset=-1", "offset cannot be negative"),
    ] {
        let (status, body) = svc.get(path).await;
        assert_eq!(status, bad, "{path}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(words),
            "{path}: {body}"
        );
    }
    let (status, body) = svc
        .get_as(
            "/api/v1/customers/me",
            &[("x-customer-id", "alice".to_owned())],
        )
        .await;
    assert_eq!(status, bad);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("x-customer-id must be an integer")
    );
    let (status, body) = svc.get("/api/v1/customers/register").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    svc.stop().await;
}

#[tokio::test]
async fn the_openapi_document_lists_every_route() {
    let svc = Customers::start().await;
    let (status, doc) = svc.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    for (path, methods) in [
        ("/api/v1/customers/register", &["post"][..]),
        ("/api/v1/customers/login", &["post"]),
        ("/api/v1/customers/me", &["get"]),
        ("/api/v1/customers", &["get"]),
        ("/api/v1/customers/{id}", &["get", "put"]),
        ("/users/user/register", &["post"]),
        ("/users/user/login", &["post"]),
        ("/customers", &["post"]),
        ("/customers/{id}", &["get"]),
        ("/health", &["get"]),
        ("/ready", &["get"]),
    ] {
        for method in methods {
            assert!(
                doc["paths"][path][method].is_object(),
                "{method} {path} missing from the OpenAPI document"
            );
        }
    }
    assert_eq!(doc["paths"].as_object().unwrap().len(), 11);
    let (status, _) = svc.get("/docs/").await;
    assert_eq!(status, StatusCode::OK);
    svc.stop().await;
}
