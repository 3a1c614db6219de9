use super::*;

fn counter() -> impl FnMut(usize) -> String {
    let mut n = 0;
    move |len| {
        n += 1;
        format!("r{n}-{len}")
    }
}

/// Completes with [`counter`] values and numbered keys (`key-1`, `key-2`...).
fn complete(c: &Credentials, existing: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut random = counter();
    let mut keys = 0;
    let mut signing_key = || {
        keys += 1;
        Ok(format!("key-{keys}"))
    };
    c.complete(
        existing,
        &mut Sources {
            random: &mut random,
            signing_key: &mut signing_key,
        },
    )
    .unwrap()
}

#[test]
fn a_database_secret_is_made_whole_once() {
    let c = Credentials::Database {
        host: "s-order-db".into(),
        database: "orders".into(),
        tls: false,
    };
    let made = complete(&c, &BTreeMap::new());
    assert_eq!(made["password"], "r1-32");
    assert_eq!(made["url"], "postgres://sales:r1-32@s-order-db:5432/orders");
    assert!(!made.contains_key(TLS_URL_KEY));
    // Nothing is regenerated when the Secret exists.
    let again = complete(&c, &made);
    assert_eq!(again, made);
}

#[test]
fn a_missing_url_is_made_from_the_existing_password() {
    let c = Credentials::Broker {
        host: "s-rabbitmq".into(),
        tls: false,
    };
    let existing = BTreeMap::from([
        ("username".to_owned(), "sales".to_owned()),
        ("password".to_owned(), "kept".to_owned()),
    ]);
    let made = complete(&c, &existing);
    assert_eq!(made["password"], "kept");
    assert_eq!(made["url"], "amqp://sales:kept@s-rabbitmq:5672/%2f");
}

#[test]
fn with_tls_the_urls_over_tls_follow_the_password() {
    let database = Credentials::Database {
        host: "s-order-db".into(),
        database: "orders".into(),
        tls: true,
    };
    let made = complete(&database, &BTreeMap::new());
    assert_eq!(
        made[TLS_URL_KEY],
        "postgres://sales:r1-32@s-order-db:5432/orders?sslmode=verify-full\
         &sslrootcert=/etc/sales-system/tls/ca.crt"
    );
    let mut changed = made.clone();
    changed.insert("password".into(), "new".into());
    assert!(complete(&database, &changed)[TLS_URL_KEY].starts_with("postgres://sales:new@"));
    let broker = Credentials::Broker {
        host: "s-rabbitmq".into(),
        tls: true,
    };
    let made = complete(&broker, &BTreeMap::new());
    assert_eq!(made[TLS_URL_KEY], "amqps://sales:r1-32@s-rabbitmq:5671/%2f");
    assert_eq!(made["url"], "amqp://sales:r1-32@s-rabbitmq:5672/%2f");
    let cache = Credentials::Cache {
        host: "s-redis".into(),
        tls: true,
    };
    let made = complete(&cache, &BTreeMap::new());
    assert_eq!(made[TLS_URL_KEY], "rediss://:r1-32@s-redis:6379");
}

#[test]
fn the_kafka_secret_follows_its_password_and_keeps_its_cluster_id() {
    let made = complete(&Credentials::Kafka, &BTreeMap::new());
    assert_eq!(made["username"], "sales");
    assert_eq!(made["password"], "r1-32");
    assert_eq!(made["cluster-id"], "r2-21A");
    assert_eq!(
        made["jaas"],
        "org.apache.kafka.common.security.plain.PlainLoginModule required user_sales=\"r1-32\";"
    );
    assert_eq!(complete(&Credentials::Kafka, &made), made);
    // A password changed by hand is what the brokers accept next.
    let mut changed = made.clone();
    changed.insert("password".into(), "new".into());
    let followed = complete(&Credentials::Kafka, &changed);
    assert!(
        followed["jaas"].contains("user_sales=\"new\""),
        "{followed:?}"
    );
    assert_eq!(followed["cluster-id"], made["cluster-id"]);
    // Quotes and backslashes are escaped, as a quoted JAAS value reads them.
    changed.insert("password".into(), r#"a"b\c"#.into());
    let escaped = complete(&Credentials::Kafka, &changed);
    assert!(
        escaped["jaas"].ends_with(r#"user_sales="a\"b\\c";"#),
        "{escaped:?}"
    );
    // A real id: 22 characters of base64url that decode to 16 bytes.
    let real = Sources::system(|s| Credentials::Kafka.complete(&BTreeMap::new(), s)).unwrap();
    let id = &real["cluster-id"];
    assert_eq!(id.len(), 22);
    assert!(id.chars().all(|c| c.is_ascii_alphanumeric()) && id.ends_with('A'));
}

#[test]
fn the_admin_password_is_generated_once() {
    let first = complete(&Credentials::Admin, &BTreeMap::new());
    assert_eq!(first.keys().collect::<Vec<_>>(), ["admin-password"]);
    assert_eq!(first["admin-password"], "r1-24");
    assert_eq!(complete(&Credentials::Admin, &first), first);
}

#[test]
fn the_identity_holds_both_issuers_keys_and_every_clients_secret() {
    let made = complete(&Credentials::Identity, &BTreeMap::new());
    assert_eq!(
        made.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "client-secret-gateway",
            "client-secret-inventory",
            "client-secret-notification",
            "client-secret-order",
            "client-secret-payment",
            "client-secret-product",
            "client-secret-shipping",
            "gateway-signing-keys",
            "service-clients",
            "token-signing-keys",
        ]
    );
    assert_eq!(made["token-signing-keys"], "key-1");
    assert_eq!(made["gateway-signing-keys"], "key-2");
    // In AppService::ALL order: product, order, payment, inventory, shipping...
    assert_eq!(made["client-secret-product"], "r1-48");
    assert_eq!(made["client-secret-gateway"], "r7-48");
    assert_eq!(
        made["service-clients"],
        "gateway=r7-48,inventory=r4-48,notification=r6-48,order=r2-48,\
         payment=r3-48,product=r1-48,shipping=r5-48"
    );
    // Nothing is regenerated when the Secret exists.
    assert_eq!(complete(&Credentials::Identity, &made), made);
}

#[test]
fn service_clients_follow_the_client_secrets() {
    let mut existing = complete(&Credentials::Identity, &BTreeMap::new());
    // A client secret changed by hand, another removed (to have a new one made),
    // a signing key rotated: kept, made, kept; `service-clients` follows.
    existing.insert(
        "client-secret-order".into(),
        "changed-by-hand-0123456789".into(),
    );
    existing.remove("client-secret-shipping");
    existing.insert("token-signing-keys".into(), "new\nold".into());
    let made = complete(&Credentials::Identity, &existing);
    assert_eq!(made["client-secret-order"], "changed-by-hand-0123456789");
    assert_eq!(made["client-secret-shipping"], "r1-48");
    assert_eq!(made["token-signing-keys"], "new\nold");
    assert_eq!(
        made["gateway-signing-keys"],
        existing["gateway-signing-keys"]
    );
    let clients = &made["service-clients"];
    assert!(
        clients.contains("order=changed-by-hand-0123456789,"),
        "{clients}"
    );
    assert!(clients.ends_with(",shipping=r1-48"), "{clients}");
}

#[test]
fn generated_signing_keys_are_ed25519_pkcs8_pem_that_sign() {
    let made = Sources::system(|sources| Credentials::Identity.complete(&BTreeMap::new(), sources))
        .unwrap();
    for key in ["token-signing-keys", "gateway-signing-keys"] {
        assert!(made[key].starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let keys = sales_platform::identity::keys::SigningKeys::from_pem(&made[key]).unwrap();
        assert_eq!(keys.jwks().keys.len(), 1);
    }
    assert_ne!(made["token-signing-keys"], made["gateway-signing-keys"]);
    for service in AppService::service_clients() {
        assert_eq!(
            made[&client_secret_key(service)].len(),
            CLIENT_SECRET_LENGTH
        );
    }
}

#[test]
fn what_is_generated_follows_what_the_spec_references() {
    let names = Names::new("shop", "sales");
    let mut spec = SalesSystemSpec::default();
    let of = |spec: &SalesSystemSpec| -> Vec<String> {
        generated(&names, spec)
            .into_iter()
            .filter(|s| s.component.is_none())
            .map(|s| s.name)
            .collect()
    };
    assert_eq!(of(&spec), ["shop-identity", "shop-auth"]);
    spec.auth.identity_secret = Some(crate::crd::IdentitySecretRef {
        secret_name: "mine".into(),
    });
    spec.auth.admin.enabled = false;
    assert!(of(&spec).is_empty());
}

#[test]
fn random_values_are_long_and_url_safe() {
    let v = random_alphanumeric(32);
    assert_eq!(v.len(), 32);
    assert!(v.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_ne!(v, random_alphanumeric(32));
}
