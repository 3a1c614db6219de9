//! Pods get the environment the services read: every variable the operator sets is
//! one the service's `Config` declares, every variable the service requires is set,
//! and every variable of the local run (`sales_testkit::launch`) that the service
//! reads is set in Kubernetes too.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeSet, HashMap};

use clap::{CommandFactory, Parser};
use sales_operator::catalogue::AppService;
use sales_operator::children::env::{secret_env, variable_names};
use sales_operator::children::names::Names;
use sales_operator::crd::SalesSystem;
use sales_testkit::launch::{IdentityMaterial, Service, Wiring};

/// (declared, required) environment variables of a service's `Config`.
fn declared(service: AppService) -> (BTreeSet<String>, BTreeSet<String>) {
    let command = declared_command(service);
    let mut all = BTreeSet::new();
    let mut required = BTreeSet::new();
    for arg in command.get_arguments() {
        if let Some(env) = arg.get_env() {
            let name = env.to_string_lossy().into_owned();
            if arg.is_required_set() {
                required.insert(name.clone());
            }
            all.insert(name);
        }
    }
    (all, required)
}

fn example(name: &str) -> SalesSystem {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    let text = std::fs::read_to_string(path).expect("example");
    sales_operator::render::parse(&text).expect("a SalesSystem")
}

fn testkit_service(service: AppService) -> Service {
    Service::ALL
        .into_iter()
        .find(|s| s.name() == service.name())
        .expect("the same services run locally")
}

#[test]
fn the_catalogue_matches_the_local_run() {
    let local: Vec<_> = Service::ALL
        .iter()
        .map(|s| (s.name(), s.database()))
        .collect();
    let ours: Vec<_> = AppService::ALL
        .iter()
        .map(|s| (s.name(), s.database()))
        .collect();
    assert_eq!(ours, local);
}

#[test]
fn every_variable_set_is_read_and_every_required_one_is_set() {
    for file in [
        "salessystem.yaml",
        "salessystem-external.yaml",
        "salessystem-minimal.yaml",
        "salessystem-autoscaling.yaml",
        "salessystem-kafka.yaml",
        "salessystem-strimzi.yaml",
        "salessystem-strimzi-scram.yaml",
    ] {
        let system = example(file);
        let names = Names::new("shop", "sales");
        for service in AppService::ALL {
            let (all, required) = declared(service);
            let set: BTreeSet<String> = variable_names(&names, &system.spec, service)
                .into_iter()
                .collect();
            let unknown: Vec<_> = set.difference(&all).collect();
            assert!(
                unknown.is_empty(),
                "{file}: {service} does not read {unknown:?}"
            );
            let missing: Vec<_> = required.difference(&set).collect();
            assert!(missing.is_empty(), "{file}: {service} needs {missing:?}");
        }
    }
}

#[test]
fn kubernetes_gets_what_the_local_run_gives() {
    let system = example("salessystem.yaml");
    let names = Names::new("shop", "sales");
    let wiring = Wiring {
        ports: Service::ALL.iter().map(|s| (*s, (8000, 9000))).collect(),
        database_urls: HashMap::new(),
        amqp_url: String::new(),
        amqp_prefix: String::new(),
        log_format: "json".into(),
        log_filter: "info".into(),
        env: Vec::new(),
        service_env: HashMap::new(),
        redis_url: String::new(),
        redis_prefix: String::new(),
        identity: IdentityMaterial::generate().unwrap(),
        admin: Some(("admin@example.com".into(), "password".into())),
    };
    for service in AppService::ALL {
        let (all, _) = declared(service);
        let local: BTreeSet<String> = wiring
            .env_for(testkit_service(service))
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| all.contains(k))
            .collect();
        let ours: BTreeSet<String> = variable_names(&names, &system.spec, service)
            .into_iter()
            .collect();
        let missing: Vec<_> = local.difference(&ours).collect();
        assert!(
            missing.is_empty(),
            "{service}: the local run sets {missing:?}, the operator does not"
        );
    }
}

#[test]
fn secrets_only_come_from_secret_references() {
    let system = example("salessystem.yaml");
    let names = Names::new("shop", "sales");
    for service in AppService::ALL {
        for var in secret_env(&names, &system.spec, service) {
            assert!(var.value.is_none(), "{service}: {} is inline", var.name);
            assert!(var.value_from.and_then(|f| f.secret_key_ref).is_some());
        }
        let plain = sales_operator::children::env::plain_settings(&names, &system.spec, service);
        for secret in [
            "DATABASE_URL",
            "AMQP_URL",
            "REDIS_URL",
            "ADMIN_PASSWORD",
            "TOKEN_SIGNING_KEYS",
            "GATEWAY_SIGNING_KEYS",
            "SERVICE_CLIENTS",
            "SERVICE_CLIENT_SECRET",
        ] {
            assert!(
                !plain.contains_key(secret),
                "{service}: {secret} in a ConfigMap"
            );
        }
    }
}

/// `service`'s command line for the environment the operator gives it: plain settings
/// from the ConfigMap, secrets from `secret` (the identity Secret's values, a stand-in
/// for the others).
fn command_line(
    names: &Names,
    system: &SalesSystem,
    service: AppService,
    secret: &dyn Fn(&str, &str) -> String,
) -> Vec<String> {
    use sales_operator::children::env::plain_settings;
    let command = declared_command(service);
    let long_of = |variable: &str| -> String {
        command
            .get_arguments()
            .find(|a| a.get_env().is_some_and(|e| e == variable))
            .and_then(|a| a.get_long())
            .unwrap_or_else(|| panic!("{service} has no argument for {variable}"))
            .to_owned()
    };
    let mut args = vec![service.image_name()];
    for (variable, value) in plain_settings(names, &system.spec, service) {
        args.push(format!("--{}={value}", long_of(&variable)));
    }
    for var in secret_env(names, &system.spec, service) {
        let from = var.value_from.and_then(|f| f.secret_key_ref).unwrap();
        args.push(format!(
            "--{}={}",
            long_of(&var.name),
            secret(&from.name, &from.key)
        ));
    }
    args
}

fn declared_command(service: AppService) -> clap::Command {
    match service {
        AppService::Product => product_service::Config::command(),
        AppService::Order => order_service::Config::command(),
        AppService::Customer => customer_service::Config::command(),
        AppService::Payment => payment_service::Config::command(),
        AppService::Inventory => inventory_service::Config::command(),
        AppService::Shipping => shipping_service::Config::command(),
        AppService::Notification => notification_service::Config::command(),
        AppService::Gateway => gateway_service::Config::command(),
    }
}

/// Every service starts from what the operator gives it: its settings parse (durations,
/// booleans, required ones present), the customer service accepts every other
/// service's client secret from the generated identity, the gateway its trusted
/// proxies, and each issuer's signing keys load.
#[test]
fn the_generated_identity_is_what_the_services_parse() {
    use sales_operator::children::env::client_secret_key;
    use sales_operator::children::secrets::{Credentials, Sources};

    let mut system = example("salessystem.yaml");
    system.spec.gateway.trusted_proxies = vec!["10.0.0.0/8".into(), "2001:db8::/32".into()];
    let names = Names::new("shop", "sales");
    let identity = Sources::system(|s| Credentials::Identity.complete(&Default::default(), s))
        .expect("generated");
    let secret = |name: &str, key: &str| -> String {
        if name == names.identity_secret() {
            identity.get(key).cloned().expect("a key of the identity")
        } else {
            "stand-in://for-a-secret".into()
        }
    };
    for service in AppService::ALL {
        let args = command_line(&names, &system, service, &secret);
        if let Err(e) = declared_command(service).try_get_matches_from(&args) {
            panic!("{service} does not start with {args:?}: {e}");
        }
    }

    let customer = customer_service::Config::try_parse_from(command_line(
        &names,
        &system,
        AppService::Customer,
        &secret,
    ))
    .unwrap();
    let clients =
        customer_service::service_clients::ClientSecrets::parse(&customer.service_clients)
            .expect("SERVICE_CLIENTS parses");
    for rights in customer_service::service_clients::CLIENTS {
        let service = AppService::ALL
            .into_iter()
            .find(|s| s.name() == rights.id)
            .expect("every client the customer service knows is a service");
        let own = &identity[&client_secret_key(service)];
        assert_eq!(
            clients.authenticate(rights.id, own).map(|r| r.id),
            Some(rights.id),
            "{service}'s client secret"
        );
    }
    assert_eq!(
        AppService::service_clients().count(),
        customer_service::service_clients::CLIENTS.len()
    );

    let gateway = gateway_service::Config::try_parse_from(command_line(
        &names,
        &system,
        AppService::Gateway,
        &secret,
    ))
    .unwrap();
    let proxies =
        gateway_service::client_address::TrustedProxies::parse(&gateway.rate_limit.trusted_proxies)
            .expect("TRUSTED_PROXIES parses");
    assert!(proxies.trusts("10.1.2.3".parse().unwrap()));
    assert!(proxies.trusts("2001:db8::7".parse().unwrap()));
    assert!(!proxies.trusts("192.0.2.1".parse().unwrap()));
    assert!(!gateway.auth.seed_compat_open, "closed unless asked");
    assert_eq!(
        gateway.auth.revocation_prefix, customer.revocation_prefix,
        "the gateway reads the token versions where the customer service writes them"
    );
    assert_eq!(customer.revocation_prefix, "sales.shop:token-version:");
    assert_eq!(
        customer.gateway_jwks_url,
        "http://shop-gateway:8080/.well-known/jwks.json"
    );
    for key in ["token-signing-keys", "gateway-signing-keys"] {
        sales_platform::identity::keys::SigningKeys::from_pem(&identity[key])
            .unwrap_or_else(|e| panic!("{key}: {e}"));
    }
}

/// On Kafka every service that uses the broker gets the Kafka settings and no AMQP
/// ones, its credentials from the generated Secret (managed) or none (Strimzi, where
/// the operator's KafkaTopics own the topics), and starts with them.
#[test]
fn the_kafka_examples_give_the_services_kafka_and_nothing_of_rabbitmq() {
    use sales_operator::children::env::plain_settings;
    let names = Names::new("shop", "sales");
    let secret = |_: &str, _: &str| "stand-in".to_owned();
    let cases = [
        (
            "salessystem-kafka.yaml",
            "shop-kafka.sales.svc:9092",
            "sasl_plaintext",
            "3",
            "6",
            "true",
        ),
        (
            "salessystem-strimzi.yaml",
            "events-kafka-bootstrap.sales.svc:9092",
            "plaintext",
            "3",
            "3",
            "false",
        ),
    ];
    for (file, bootstrap, protocol, replication, partitions, create) in cases {
        let system = example(file);
        for service in AppService::ALL {
            let plain = plain_settings(&names, &system.spec, service);
            let secrets: Vec<String> = secret_env(&names, &system.spec, service)
                .into_iter()
                .map(|e| e.name)
                .collect();
            assert!(!plain.contains_key("AMQP_PREFIX") && !secrets.contains(&"AMQP_URL".into()));
            if !service.uses_broker() {
                assert!(!plain.contains_key("MESSAGING_KIND"), "{file}: {service}");
                continue;
            }
            let get = |k: &str| plain.get(k).map(String::as_str);
            assert_eq!(get("MESSAGING_KIND"), Some("kafka"), "{file}: {service}");
            assert_eq!(get("KAFKA_BOOTSTRAP_SERVERS"), Some(bootstrap));
            assert_eq!(get("KAFKA_SECURITY_PROTOCOL"), Some(protocol));
            assert_eq!(get("KAFKA_REPLICATION_FACTOR"), Some(replication));
            assert_eq!(get("KAFKA_TOPIC_PARTITIONS"), Some(partitions));
            assert_eq!(get("KAFKA_CREATE_TOPICS"), Some(create));
            let sasl = protocol == "sasl_plaintext";
            assert_eq!(get("KAFKA_SASL_MECHANISM"), sasl.then_some("PLAIN"));
            assert_eq!(
                secrets.contains(&"KAFKA_SASL_PASSWORD".into()),
                sasl,
                "{file}: {service}: {secrets:?}"
            );
            let args = command_line(&names, &system, service, &secret);
            if let Err(e) = declared_command(service).try_get_matches_from(&args) {
                panic!("{file}: {service} does not start with {args:?}: {e}");
            }
        }
    }
}

/// The services other than the issuers find the identity provider and the gateway's
/// keys inside the namespace.
#[test]
fn the_services_find_both_issuers() {
    let system = example("salessystem.yaml");
    let names = Names::new("shop", "sales");
    for service in AppService::ALL {
        let plain = sales_operator::children::env::plain_settings(&names, &system.spec, service);
        let (identity, jwks) = (plain.get("IDENTITY_URL"), plain.get("GATEWAY_JWKS_URL"));
        match service {
            AppService::Gateway => assert_eq!((identity, jwks), (None, None)),
            AppService::Customer => assert_eq!(identity, None),
            _ => assert_eq!(
                identity.map(String::as_str),
                Some("http://shop-customer:8080")
            ),
        }
        if service != AppService::Gateway {
            assert_eq!(
                jwks.map(String::as_str),
                Some("http://shop-gateway:8080/.well-known/jwks.json")
            );
        }
        let refs: Vec<(String, String, String)> = secret_env(&names, &system.spec, service)
            .into_iter()
            .filter_map(|e| {
                let r = e.value_from?.secret_key_ref?;
                (r.name == "shop-identity").then_some((e.name, r.name, r.key))
            })
            .collect();
        let own = format!("client-secret-{service}");
        let expected: Vec<(&str, &str)> = match service {
            AppService::Customer => vec![
                ("TOKEN_SIGNING_KEYS", "token-signing-keys"),
                ("SERVICE_CLIENTS", "service-clients"),
            ],
            AppService::Gateway => vec![
                ("GATEWAY_SIGNING_KEYS", "gateway-signing-keys"),
                ("SERVICE_CLIENT_SECRET", own.as_str()),
            ],
            _ => vec![("SERVICE_CLIENT_SECRET", own.as_str())],
        };
        let got: Vec<(&str, &str)> = refs
            .iter()
            .map(|(v, _, k)| (v.as_str(), k.as_str()))
            .collect();
        assert_eq!(got, expected, "{service}");
    }
}

/// The seeds' unauthenticated routes stay closed, and no proxy is believed, unless a
/// SalesSystem asks: in the CRD's defaults, the operator's, and every example.
#[test]
fn the_seeds_routes_are_closed_and_no_proxy_is_trusted_by_default() {
    let crd = serde_json::to_value(sales_operator::crd::crd()).unwrap();
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
    assert_eq!(spec["seedCompatOpen"]["default"], false);
    assert_eq!(
        spec["gateway"]["properties"]["trustedProxies"]["default"],
        serde_json::json!([])
    );
    let empty = sales_operator::crd::SalesSystemSpec::default();
    assert!(!empty.seed_compat_open && empty.gateway.trusted_proxies.is_empty());
    let names = Names::new("shop", "sales");
    for file in [
        "salessystem.yaml",
        "salessystem-external.yaml",
        "salessystem-minimal.yaml",
        "salessystem-autoscaling.yaml",
    ] {
        let system = example(file);
        let gateway = sales_operator::children::env::plain_settings(
            &names,
            &system.spec,
            AppService::Gateway,
        );
        assert_eq!(gateway["SEED_COMPAT_OPEN"], "false", "{file}");
        assert_eq!(
            gateway["TRUSTED_PROXIES"],
            system.spec.gateway.trusted_proxies.join(","),
            "{file}"
        );
    }
}
