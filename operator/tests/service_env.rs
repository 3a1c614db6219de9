//! Pods get the environment the services read: every variable the operator sets is
//! one the service's `Config` declares, every variable the service requires is set,
//! and every variable of the local run (`sales_testkit::launch`) that the service
//! reads is set in Kubernetes too.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeSet, HashMap};

use clap::CommandFactory;
use sales_operator::catalogue::AppService;
use sales_operator::children::env::{secret_env, variable_names};
use sales_operator::children::names::Names;
use sales_operator::crd::SalesSystem;
use sales_testkit::launch::{Service, Wiring};

/// (declared, required) environment variables of a service's `Config`.
fn declared(service: AppService) -> (BTreeSet<String>, BTreeSet<String>) {
    let command = match service {
        AppService::Product => product_service::Config::command(),
        AppService::Order => order_service::Config::command(),
        AppService::Customer => customer_service::Config::command(),
        AppService::Payment => payment_service::Config::command(),
        AppService::Inventory => inventory_service::Config::command(),
        AppService::Shipping => shipping_service::Config::command(),
        AppService::Notification => notification_service::Config::command(),
        AppService::Gateway => gateway_service::Config::command(),
    };
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
        jwt_secret: String::new(),
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
            "JWT_SECRET",
            "ADMIN_PASSWORD",
        ] {
            assert!(
                !plain.contains_key(secret),
                "{service}: {secret} in a ConfigMap"
            );
        }
    }
}
