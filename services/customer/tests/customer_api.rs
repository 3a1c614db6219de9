//! The customer service against a real PostgreSQL: accounts, tokens, the admin from
//! configuration, profile visibility, seed 000's and seed 002's shapes, and a clear
//! 4xx for bad input everywhere.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use clap::Parser;
use customer_service::{Config, build};
use reqwest::{Method, StatusCode};
use sales_platform::identity::IDENTITY_ISSUER;
use secrecy::SecretString;
use serde_json::{Value, json};
use support::{ANONYMOUS, Customers, Who, as_admin, as_customer};

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
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "accepted");
    assert!(body.get("token").is_none(), "{body}");

    // Log in with the email in another case.
    let (status, body) = svc.login("ada@EXAMPLE.com", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = body["customer_id"].as_i64().unwrap();
    let claims = svc.verify(body["token"].as_str().unwrap()).await;
    assert_eq!(claims.sub, id.to_string());
    assert_eq!(claims.name.as_deref(), Some("Ada Lovelace"));
    assert_eq!(claims.email.as_deref(), Some("Ada@Example.com"));
    assert_eq!(claims.role, "customer");
    assert_eq!(claims.iss, IDENTITY_ISSUER);
    assert_eq!(claims.ver, Some(1));
    assert_eq!(claims.exp - claims.iat, 3600, "TOKEN_TTL defaults to 1h");
    assert_eq!(time(&body["expires_at"]).timestamp(), claims.exp);

    // The profile holds what was registered.
    let (status, me) = svc.get_as("/api/v1/customers/me", as_customer(id)).await;
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
    let claims = svc.verify(&token).await;
    assert_eq!(claims.exp - claims.iat, 300);
    svc.stop().await;
}

#[tokio::test]
async fn an_email_registers_once_whatever_its_case_and_no_one_learns_which_are_taken() {
    // Six hashes at once on a loaded machine may wait longer than the default turn.
    let svc = Customers::start_with(|c| c.throttle.hashing_wait = Duration::from_secs(120)).await;
    let (grace, _) = svc.register("Grace@Example.com", PASSWORD, "Grace").await;
    let (_, fresh) = svc
        .post(
            "/api/v1/customers/register",
            json!({"email": "new@example.com", "password": PASSWORD, "name": "New"}),
        )
        .await;

    // The same answer for a taken email as for a free one; the account is unchanged.
    let (status, body) = svc
        .post(
            "/api/v1/customers/register",
            json!({"email": "grace@example.COM", "password": "another password", "name": "Other Grace"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body, fresh);
    assert_eq!(
        svc.login("grace@example.com", "another password").await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, login) = svc.login("grace@example.com", PASSWORD).await;
    assert_eq!(
        (status, login["customer_id"].as_i64()),
        (StatusCode::OK, Some(grace))
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
    assert!(
        statuses.iter().all(|s| *s == StatusCode::ACCEPTED),
        "{statuses:?}"
    );

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
    for (path, body) in [
        (
            "/api/v1/customers/register",
            json!({"email": "kim@example.com", "password": secret, "name": "Kim"}),
        ),
        (
            "/users/user/register",
            json!({"email": "lee@example.com", "password": secret, "name": "Lee"}),
        ),
        (
            "/api/v1/customers/login",
            json!({"email": "kim@example.com", "password": secret}),
        ),
        (
            "/users/user/login",
            json!({"email": "lee@example.com", "password": secret}),
        ),
        (
            "/api/v1/customers/register",
            json!({"email": "kim@example.com", "password": secret, "name": "Kim"}),
        ),
    ] {
        answers.push(svc.text(Method::POST, path, ANONYMOUS, Some(body)).await);
    }
    let admin = Who::Admin(999);
    answers.push(
        svc.text(Method::GET, "/api/v1/customers", admin, None)
            .await,
    );
    answers.push(
        svc.text(Method::GET, "/api/v1/customers/1", admin, None)
            .await,
    );
    answers.push(svc.text(Method::GET, "/customers/1", admin, None).await);
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
    assert_eq!(claims.role, "admin");
    assert_eq!(claims.email.as_deref(), Some("Root@Example.com"));
    let admin_id: i64 = claims.sub.parse().unwrap();
    let (_, first_login) = svc.login("root@example.com", "admin password 1").await;
    let first_token = first_login["token"].as_str().unwrap().to_owned();
    assert_eq!(svc.introspect(&first_token).await["active"], true);
    let (status, list) = svc.get_as("/api/v1/customers", as_admin(admin_id)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list[0]["role"], "admin");
    assert_eq!(admin_count(&svc).await, (1, 1));

    // Restart with the same admin: still one admin account, and its token version
    // is kept: nothing changed.
    let svc = svc
        .restart(with_admin("root@example.com", "admin password 1"))
        .await;
    let claims = svc
        .wait_for_login("root@example.com", "admin password 1", |_| true)
        .await;
    assert_eq!(claims.sub, admin_id.to_string());
    assert_eq!(
        claims.ver,
        Some(1),
        "an unchanged admin keeps its token version"
    );
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
    let (_, second_login) = svc.login("root@example.com", "admin password 2").await;
    let admin_token = second_login["token"].as_str().unwrap().to_owned();
    assert_eq!(svc.introspect(&admin_token).await["active"], true);

    // Without the configuration there is no admin: the account is a customer again,
    // and its admin tokens stop working.
    let svc = svc.restart(|_| {}).await;
    let claims = svc
        .wait_for_login("root@example.com", "admin password 2", |c| {
            c.role == "customer"
        })
        .await;
    assert_eq!(claims.sub, admin_id.to_string());
    assert_eq!(admin_count(&svc).await, (0, 1));
    assert_eq!(svc.introspect(&admin_token).await, json!({"active": false}));
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
    let identity = sales_testkit::identity::TestIdentity::start().await;
    let refused = |adjust: &dyn Fn(&mut Config)| {
        let mut config = support::config(&identity);
        adjust(&mut config);
        async move { build(config).await.err().expect("refused").to_string() }
    };
    let err = refused(&|c| c.token_signing_keys = SecretString::from("not a key")).await;
    assert!(err.contains("TOKEN_SIGNING_KEYS: no signing key"), "{err}");
    let err = refused(&|c| {
        c.token_signing_keys = SecretString::from(
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n",
        )
    })
    .await;
    assert!(err.contains("not an Ed25519 private key"), "{err}");
    let err = refused(&|c| c.service_clients = SecretString::from("order=short")).await;
    assert!(err.contains("at least 16 characters"), "{err}");
    let err =
        refused(&|c| c.service_clients = SecretString::from("mallory=0123456789abcdef0")).await;
    assert!(err.contains("not a service of this system"), "{err}");
    let err = refused(&|c| c.admin_email = Some("root@example.com".into())).await;
    assert!(err.contains("ADMIN_PASSWORD is not"), "{err}");
    let err = refused(&|c| {
        c.admin_email = Some("root@example.com".into());
        c.admin_password = Some(SecretString::from("short"));
    })
    .await;
    assert!(
        err.contains("ADMIN_PASSWORD: password must be at least 8"),
        "{err}"
    );

    // The signing keys and the clients have no default.
    if std::env::var_os("TOKEN_SIGNING_KEYS").is_none() {
        let err = Config::try_parse_from([
            "customer-service",
            "--http-addr=127.0.0.1:0",
            "--admin-addr=127.0.0.1:0",
            "--database-url=postgres://unused",
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("--token-signing-keys"), "{err}");
    }
}

#[tokio::test]
async fn customers_see_only_their_own_profile() {
    let svc = Customers::start().await;
    let (alice, _) = svc.register("alice@example.com", PASSWORD, "Alice").await;
    let (bob, _) = svc.register("bob@example.com", PASSWORD, "Bob").await;

    let (status, me) = svc.get_as("/api/v1/customers/me", as_customer(alice)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["customer_id"], alice);
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["name"], "Alice");
    assert_eq!(me["address"], Value::Null);
    assert!(me.get("password_hash").is_none());

    // Without a credential, and as someone without an account: 401.
    for who in [Who::Nobody, ANONYMOUS] {
        let (status, body) = svc.get_as("/api/v1/customers/me", who).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{who:?}");
        assert_eq!(body["error"]["code"], "unauthenticated");
    }

    // Own: 200. Another's: 404, reading or writing.
    let own = format!("/api/v1/customers/{alice}");
    let other = format!("/api/v1/customers/{bob}");
    assert_eq!(svc.get_as(&own, as_customer(alice)).await.0, StatusCode::OK);
    let (status, body) = svc.get_as(&other, as_customer(alice)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body["error"]["message"],
        format!("customer {bob} not found")
    );
    assert_eq!(
        svc.get_as(&format!("/customers/{bob}"), as_customer(alice))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (status, _) = svc
        .put_as(&other, as_customer(alice), json!({"name": "Hacked"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, updated) = svc
        .put_as(
            &own,
            as_customer(alice),
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
        svc.verify(login["token"].as_str().unwrap())
            .await
            .name
            .as_deref(),
        Some("Alice Liddell")
    );
    // Bob is unchanged.
    assert_eq!(svc.get(&other).await.1["name"], "Bob");

    // Admins see anyone; only they list.
    assert_eq!(svc.get_as(&other, as_admin(999)).await.0, StatusCode::OK);
    let (status, _) = svc
        .put_as(&other, as_admin(999), json!({"name": "Robert"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = svc.get_as("/api/v1/customers", as_customer(alice)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "forbidden");
    let (status, list) = svc.get_as("/api/v1/customers", as_admin(999)).await;
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
        svc.get_as("/api/v1/customers/me", as_customer(424242))
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
    let claims = svc.verify(&token).await;
    assert_eq!(
        (
            claims.name.as_deref(),
            claims.email.as_deref(),
            claims.role.as_str()
        ),
        (Some("Budi"), Some("budi@example.com"), "customer")
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
    assert_eq!(svc.verify(&token).await.sub, claims.sub);

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
    assert_eq!(
        svc.verify(body["data"]["token"].as_str().unwrap())
            .await
            .name
            .as_deref(),
        Some("Sari")
    );

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

    // With the seeds' routes closed, seed 000's registration is not there for callers
    // without an account (its 409 would tell which emails are taken), nor for
    // customers; logging in still is.
    let closed = Who::Anonymous { seed_compat: false };
    let request = json!({"email": "wayan@example.com", "password": PASSWORD, "name": "Wayan"});
    let (status, _) = svc
        .post_as("/users/user/register", closed, request.clone())
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = svc
        .post_as("/users/user/register", Who::Customer(1), request)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = svc
        .post_as(
            "/users/user/login",
            closed,
            json!({"email": "budi@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
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
    let (status, got) = svc.get_as(&format!("/customers/{id}"), ANONYMOUS).await;
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
    let (status, row) = svc
        .get_as(&format!("/customers/{account}"), as_customer(account))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        row.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["address", "contact", "created_at", "id", "name"]
    );
    // A caller without an account reads only profiles made without one, as in seed
    // 002: never a registered customer's.
    let (status, _) = svc
        .get_as(&format!("/customers/{account}"), ANONYMOUS)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

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
    let who = if method == Method::POST {
        ANONYMOUS
    } else {
        Who::Admin(999)
    };
    let (got, answer) = svc.request(method.clone(), path, who, Some(body)).await;
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
    // A header that tries to say who is calling counts for nothing.
    let (status, _, body) = svc
        .exchange(Method::GET, "/api/v1/customers/me", Some("alice"), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "invalid_token");
    let r = svc
        .http()
        .get(format!("{}/api/v1/customers/me", svc.base))
        .header("x-customer-id", alice.to_string())
        .header("x-customer-role", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
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
        ("/api/v1/customers/logout", &["post"]),
        ("/api/v1/customers/me/password", &["put"]),
        ("/.well-known/jwks.json", &["get"]),
        ("/oauth/token", &["post"]),
        ("/oauth/introspect", &["post"]),
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
    assert_eq!(doc["paths"].as_object().unwrap().len(), 16);
    let (status, _) = svc.get("/docs/").await;
    assert_eq!(status, StatusCode::OK);
    svc.stop().await;
}
