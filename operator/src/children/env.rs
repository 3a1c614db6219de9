//! The environment each service's container gets: the same variables the local run
//! (`sales_testkit::launch::Wiring::env_for`) gives it, reduced to the ones that
//! service's `Config` reads. Plain values go to the service's ConfigMap (loaded with
//! `envFrom`); secrets come from Secrets through `secretKeyRef`, never inline.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, SecretKeySelector};

use super::names::{Component, Names};
use crate::catalogue::{ADMIN_PORT, AppService, HTTP_PORT, SHUTDOWN_GRACE_SECONDS};
use crate::crd::{
    DatabaseChoice, KafkaChoice, KafkaSecurityProtocol, KafkaSpec, SalesSystemSpec, SecretKeyRef,
    StrimziAuthentication,
};

/// `max_connections` of a managed PostgreSQL: the official image's default, which the
/// operator leaves as it is.
pub const MANAGED_MAX_CONNECTIONS: i32 = 100;
/// Of a managed PostgreSQL's connections, those the pools leave to others:
/// PostgreSQL's 3 for superusers, and 7 for a person with psql, a backup, an exporter.
pub const KEPT_CONNECTIONS: i32 = 10;
/// A pod's pool when its database has room (the services' own default).
pub const DEFAULT_DATABASE_POOL: i32 = 10;
/// The smallest pool the operator gives a pod: one order pod at 32 clients took as
/// many orders with 5 as with 10 (docs/benchmarks.md, "Scale-out").
pub const MIN_DATABASE_POOL: i32 = 5;

/// Key of the generated auth Secret holding the admin's password.
pub const ADMIN_PASSWORD_KEY: &str = "admin-password";
/// Key of the identity Secret: the customer service's signing keys (PEM blocks).
pub const TOKEN_SIGNING_KEYS_KEY: &str = "token-signing-keys";
/// Key of the identity Secret: the gateway's signing keys (PEM blocks).
pub const GATEWAY_SIGNING_KEYS_KEY: &str = "gateway-signing-keys";
/// Key of the identity Secret: `gateway=<secret>,inventory=<secret>,...`, every
/// service's client secret, as the customer service reads them (`SERVICE_CLIENTS`).
pub const SERVICE_CLIENTS_KEY: &str = "service-clients";

/// Key of the identity Secret holding `service`'s client secret.
pub fn client_secret_key(service: AppService) -> String {
    format!("client-secret-{}", service.name())
}

/// Every key an identity Secret holds (the user's must hold them all).
pub fn identity_secret_keys() -> Vec<String> {
    let mut keys = vec![
        TOKEN_SIGNING_KEYS_KEY.to_owned(),
        GATEWAY_SIGNING_KEYS_KEY.to_owned(),
        SERVICE_CLIENTS_KEY.to_owned(),
    ];
    keys.extend(AppService::service_clients().map(client_secret_key));
    keys
}

/// The identity Secret of the system: the user's, or the generated one.
pub fn identity_secret_name(names: &Names, spec: &SalesSystemSpec) -> String {
    match &spec.auth.identity_secret {
        Some(own) => own.secret_name.clone(),
        None => names.identity_secret(),
    }
}

/// `(variable, key of the identity Secret)` for each identity secret `service` reads:
/// an issuer its signing keys, every service but the customer its client secret, the
/// customer service every client's.
pub fn identity_variables(service: AppService) -> Vec<(&'static str, String)> {
    match service {
        AppService::Customer => vec![
            ("TOKEN_SIGNING_KEYS", TOKEN_SIGNING_KEYS_KEY.to_owned()),
            ("SERVICE_CLIENTS", SERVICE_CLIENTS_KEY.to_owned()),
        ],
        AppService::Gateway => vec![
            ("GATEWAY_SIGNING_KEYS", GATEWAY_SIGNING_KEYS_KEY.to_owned()),
            ("SERVICE_CLIENT_SECRET", client_secret_key(service)),
        ],
        _ => vec![("SERVICE_CLIENT_SECRET", client_secret_key(service))],
    }
}

/// Where the gateway publishes its public keys, inside the namespace.
pub fn gateway_jwks_url(names: &Names) -> String {
    format!(
        "{}{}",
        names.service_url(AppService::Gateway),
        sales_platform::identity::JWKS_PATH
    )
}

/// The plain (non-secret) settings of `service`: its ConfigMap's data.
pub fn plain_settings(
    names: &Names,
    spec: &SalesSystemSpec,
    service: AppService,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let mut set = |k: &str, v: String| {
        env.insert(k.to_owned(), v);
    };
    set("HTTP_ADDR", format!("0.0.0.0:{HTTP_PORT}"));
    set("ADMIN_ADDR", format!("0.0.0.0:{ADMIN_PORT}"));
    set("SHUTDOWN_GRACE", format!("{SHUTDOWN_GRACE_SECONDS}s"));
    // The pod's preStop sleep is the drain window (catalogue::DRAIN_SECONDS).
    set("SHUTDOWN_DRAIN_DELAY", "0s".into());
    set("LOG_FORMAT", spec.observability.log_format.as_str().into());
    set("RUST_LOG", spec.observability.log_level.clone());
    if let Some(endpoint) = &spec.observability.otlp_endpoint {
        set("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.clone());
    }
    // The traces' resource (docs/observability.md): which service, in which namespace.
    set("OTEL_SERVICE_NAME", service.name().to_owned());
    set(
        "OTEL_RESOURCE_ATTRIBUTES",
        format!("k8s.namespace.name={}", names.namespace),
    );
    if service.uses_broker() {
        match spec.kafka() {
            Some(kafka) => {
                for (k, v) in kafka_settings(names, &kafka, spec.tls.enabled()) {
                    set(k, v);
                }
            }
            None => {
                set("AMQP_PREFIX", spec.rabbitmq.prefix.clone());
                set(
                    "AMQP_QUEUE_TYPE",
                    spec.rabbitmq.queue_type().as_str().to_owned(),
                );
            }
        }
    }
    // Keys carry the namespace and the system so systems can share an external Redis.
    let redis_prefix = format!("{}.{}:", names.namespace, names.instance);
    // The customer service publishes token versions under this prefix, the gateway
    // reads them: the same value for both.
    let revocation_prefix = format!("{redis_prefix}token-version:");
    match service {
        AppService::Product | AppService::Order => {
            set("CACHE_PREFIX", format!("{redis_prefix}cache:"));
        }
        AppService::Customer => {
            set("REVOCATION_PREFIX", revocation_prefix);
        }
        AppService::Gateway => {
            set("RATE_LIMIT_PREFIX", format!("{redis_prefix}ratelimit:"));
            set("REVOCATION_PREFIX", revocation_prefix);
            set("SEED_COMPAT_OPEN", spec.seed_compat_open.to_string());
            set("TRUSTED_PROXIES", spec.gateway.trusted_proxies.join(","));
        }
        _ => {}
    }
    // Who checks tokens: the gateway's (every service but the gateway itself) and the
    // customer service's (every service but the two issuers, which know their keys).
    if service != AppService::Gateway {
        set("GATEWAY_JWKS_URL", gateway_jwks_url(names));
    }
    if !matches!(service, AppService::Customer | AppService::Gateway) {
        set("IDENTITY_URL", names.service_url(AppService::Customer));
    }
    if service == AppService::Order {
        set("UNPAID_ORDER_TIMEOUT", spec.unpaid_order_timeout.clone());
    }
    if let Some(pool) = database_pool(spec, service) {
        set("DATABASE_MAX_CONNECTIONS", pool.to_string());
    }
    if service == AppService::Customer && spec.auth.admin.enabled {
        set("ADMIN_EMAIL", spec.auth.admin.email.clone());
    }
    for peer in service.calls() {
        set(&peer.url_variable(), names.service_url(*peer));
    }
    for (variable, value) in super::tls_clients::settings(spec, service) {
        set(variable, value);
    }
    env
}

/// The most pods of `service` that run at once: its replicas and, autoscaled, its
/// consumers at `maxReplicas`, each Deployment with one pod more while it rolls out
/// (`maxSurge: 1`).
pub fn most_pods(spec: &SalesSystemSpec, service: AppService) -> i32 {
    let api = spec.services.get(service).replicas + 1;
    let consumers = match spec.autoscaling.get(service) {
        Some(scaled) if spec.autoscaling.enabled(service) => scaled.max_replicas + 1,
        _ => 0,
    };
    api + consumers
}

/// Each pod's PostgreSQL pool (`DATABASE_MAX_CONNECTIONS`); `None` for the gateway.
/// `services.<service>.databasePool` if given; else on a managed database an equal
/// share, per pod at its most, of what the pools may take of it (between
/// [`MIN_DATABASE_POOL`] and [`DEFAULT_DATABASE_POOL`]), likewise on the shared
/// CloudNativePG Cluster; on an external one [`DEFAULT_DATABASE_POOL`].
pub fn database_pool(spec: &SalesSystemSpec, service: AppService) -> Option<i32> {
    let choice = spec.postgres.choice(service)?;
    if let Some(given) = spec.services.get(service).database_pool {
        return Some(given);
    }
    Some(match choice {
        DatabaseChoice::Managed(_) => ((MANAGED_MAX_CONNECTIONS - KEPT_CONNECTIONS)
            / most_pods(spec, service).max(1))
        .clamp(MIN_DATABASE_POOL, DEFAULT_DATABASE_POOL),
        // The shared CloudNativePG Cluster's connections are every service's.
        DatabaseChoice::CloudNativePg(cnpg) if cnpg.shared => {
            super::cloudnative_pg_shared::database_pool(spec)
        }
        DatabaseChoice::External(_) | DatabaseChoice::CloudNativePg(_) => DEFAULT_DATABASE_POOL,
    })
}

/// The secret settings of `service`, each from a Secret key.
pub fn secret_env(names: &Names, spec: &SalesSystemSpec, service: AppService) -> Vec<EnvVar> {
    let mut env = Vec::new();
    // With `spec.tls`, the managed servers' URLs over TLS (`tls-url`).
    let url_key = || match spec.tls.enabled() {
        true => super::secrets::TLS_URL_KEY.to_owned(),
        false => "url".to_owned(),
    };
    if let Some(choice) = spec.postgres.choice(service) {
        let on_cnpg = matches!(choice, DatabaseChoice::CloudNativePg(_));
        let (secret, key) = match choice {
            DatabaseChoice::Managed(_) => (names.database_secret(service), url_key()),
            DatabaseChoice::External(r) => (r.secret_name, r.key),
            DatabaseChoice::CloudNativePg(cnpg) => {
                super::cloudnative_pg::database_secret(names, service, &cnpg)
            }
        };
        if on_cnpg && spec.tls.enabled() {
            // CloudNativePG's `uri` with verify-full against its CA, made by the kubelet.
            const URI: &str = "CLOUDNATIVE_PG_URI";
            env.push(from_secret(URI, &secret, &key));
            env.push(EnvVar {
                name: "DATABASE_URL".into(),
                value: Some(super::tls_clients::cloudnative_pg_url(URI)),
                ..Default::default()
            });
        } else {
            env.push(from_secret("DATABASE_URL", &secret, &key));
        }
    }
    if service.uses_broker() {
        match spec.kafka() {
            Some(kafka) => {
                if let Some((secret, user, password)) = kafka_credentials(names, &kafka) {
                    env.push(from_secret("KAFKA_SASL_USERNAME", &secret, &user));
                    env.push(from_secret("KAFKA_SASL_PASSWORD", &secret, &password));
                }
                // The Secret Strimzi writes for the services' KafkaUser.
                if let Some(user) = super::kafka_users::services_user(names, &kafka) {
                    let key = super::kafka_users::PASSWORD_KEY;
                    env.push(from_secret("KAFKA_SASL_PASSWORD", &user, key));
                }
            }
            None => {
                let (secret, key) = match &spec.rabbitmq.external {
                    Some(external) => (external.secret_name.clone(), external.key.clone()),
                    // A RabbitmqCluster's URL Secret has the scheme TLS asks for.
                    None if spec.rabbitmq_cluster().is_some() => {
                        (names.broker_secret(), "url".to_owned())
                    }
                    None => (names.broker_secret(), url_key()),
                };
                env.push(from_secret("AMQP_URL", &secret, &key));
            }
        }
    }
    if service.uses_redis() {
        let (secret, key) = match &spec.redis.external {
            Some(SecretKeyRef { secret_name, key }) => (secret_name.clone(), key.clone()),
            None => (names.cache_secret(), url_key()),
        };
        env.push(from_secret("REDIS_URL", &secret, &key));
    }
    let identity = identity_secret_name(names, spec);
    for (variable, key) in identity_variables(service) {
        env.push(from_secret(variable, &identity, &key));
    }
    if service == AppService::Customer && spec.auth.admin.enabled {
        let (secret, key) = match &spec.auth.admin.password_secret {
            Some(r) => (r.secret_name.clone(), r.key.clone()),
            None => (names.auth_secret(), ADMIN_PASSWORD_KEY.to_owned()),
        };
        env.push(from_secret("ADMIN_PASSWORD", &secret, &key));
    }
    env
}

/// Port of the managed Kafka's client listener (SASL/PLAIN; over TLS under
/// `spec.tls`).
pub const KAFKA_CLIENT_PORT: i32 = 9092;

/// Where the services find Kafka: `host:port,...`; `tls`: `spec.tls` is on.
pub fn kafka_bootstrap(names: &Names, kafka: &KafkaSpec, tls: bool) -> String {
    match kafka.choice() {
        KafkaChoice::Managed(_) => format!(
            "{}.{}.svc:{KAFKA_CLIENT_PORT}",
            names.of(Component::Kafka),
            names.namespace
        ),
        KafkaChoice::Strimzi(s) => s.bootstrap(&names.namespace, tls),
        KafkaChoice::External(e) => e.bootstrap_servers,
    }
}

/// The security protocol the services speak to Kafka with; `tls`: `spec.tls` is on
/// (an external Kafka's protocol is its own).
pub fn kafka_protocol(kafka: &KafkaSpec, tls: bool) -> KafkaSecurityProtocol {
    let login = match kafka.choice() {
        KafkaChoice::Managed(_) => true,
        KafkaChoice::Strimzi(s) => s.authentication == StrimziAuthentication::ScramSha512,
        KafkaChoice::External(e) => return e.security_protocol,
    };
    match (login, tls) {
        (false, false) => KafkaSecurityProtocol::Plaintext,
        (false, true) => KafkaSecurityProtocol::Ssl,
        (true, false) => KafkaSecurityProtocol::SaslPlaintext,
        (true, true) => KafkaSecurityProtocol::SaslSsl,
    }
}

/// The plain Kafka settings of a service (`KafkaArgs` in the platform library).
fn kafka_settings(names: &Names, kafka: &KafkaSpec, tls: bool) -> Vec<(&'static str, String)> {
    let protocol = kafka_protocol(kafka, tls);
    let mut out = vec![
        ("MESSAGING_KIND", "kafka".to_owned()),
        (
            "KAFKA_BOOTSTRAP_SERVERS",
            kafka_bootstrap(names, kafka, tls),
        ),
        ("KAFKA_TOPIC_PREFIX", kafka.topic_prefix.clone()),
        ("KAFKA_TOPIC_PARTITIONS", kafka.partitions.to_string()),
        ("KAFKA_SECURITY_PROTOCOL", protocol.as_str().to_owned()),
        // Strimzi's Topic Operator owns the topics there, through KafkaTopics.
        (
            "KAFKA_CREATE_TOPICS",
            (!matches!(kafka.choice(), KafkaChoice::Strimzi(_))).to_string(),
        ),
    ];
    // -1: the brokers' `default.replication.factor`.
    let replication = kafka.replication().unwrap_or(-1);
    out.push(("KAFKA_REPLICATION_FACTOR", replication.to_string()));
    // A Strimzi user logs in with SCRAM as the KafkaUser's name; the others with PLAIN
    // as their Secret says.
    match super::kafka_users::services_user(names, kafka) {
        Some(user) => {
            let mechanism = super::kafka_users::SCRAM_MECHANISM.to_owned();
            out.push(("KAFKA_SASL_MECHANISM", mechanism));
            out.push(("KAFKA_SASL_USERNAME", user));
        }
        None if protocol.sasl() => {
            out.push(("KAFKA_SASL_MECHANISM", "PLAIN".to_owned()));
        }
        None => {}
    }
    out
}

/// `(Secret, user key, password key)` of the services' Kafka account, if they log in.
pub fn kafka_credentials(names: &Names, kafka: &KafkaSpec) -> Option<(String, String, String)> {
    match kafka.choice() {
        KafkaChoice::Managed(_) => Some((
            names.kafka_secret(),
            "username".to_owned(),
            "password".to_owned(),
        )),
        KafkaChoice::Strimzi(_) => None,
        KafkaChoice::External(e) => e
            .credentials_secret
            .map(|c| (c.secret_name, c.username_key, c.password_key)),
    }
}

/// Every variable name `service` is started with (plain and secret), sorted.
pub fn variable_names(names: &Names, spec: &SalesSystemSpec, service: AppService) -> Vec<String> {
    let mut all: Vec<String> = plain_settings(names, spec, service)
        .into_keys()
        .chain(secret_env(names, spec, service).into_iter().map(|e| e.name))
        .collect();
    all.sort();
    all
}

pub fn from_secret(variable: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: variable.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Secrets the user references: each must exist with its key before pods can start.
pub fn referenced_secrets(spec: &SalesSystemSpec) -> Vec<(String, String)> {
    let mut refs = Vec::new();
    for service in AppService::with_database() {
        match spec.postgres.choice(service) {
            Some(DatabaseChoice::External(r)) => refs.push((r.secret_name, r.key)),
            // A Cluster the user named exists with its Secret; a created one's Secret
            // comes once CloudNativePG has bootstrapped it (the pods wait for it).
            Some(DatabaseChoice::CloudNativePg(cnpg)) => {
                refs.extend(super::cloudnative_pg::referenced_secret(&cnpg));
            }
            _ => {}
        }
    }
    if let Some(r) = spec.rabbitmq().and_then(|r| r.external.as_ref()) {
        refs.push((r.secret_name.clone(), r.key.clone()));
    }
    if let Some(KafkaChoice::External(e)) = spec.kafka().map(|k| k.choice())
        && let Some(c) = e.credentials_secret
    {
        refs.push((c.secret_name.clone(), c.username_key));
        refs.push((c.secret_name, c.password_key));
    }
    if let Some(r) = &spec.redis.external {
        refs.push((r.secret_name.clone(), r.key.clone()));
    }
    if let Some(own) = &spec.auth.identity_secret {
        for key in identity_secret_keys() {
            refs.push((own.secret_name.clone(), key));
        }
    }
    if spec.auth.admin.enabled
        && let Some(r) = &spec.auth.admin.password_secret
    {
        refs.push((r.secret_name.clone(), r.key.clone()));
    }
    refs.extend(super::backups::referenced_secrets(spec));
    refs.sort();
    refs.dedup();
    refs
}

/// Which component's pods a service's variables make it talk to (for NetworkPolicies).
pub fn managed_dependencies(spec: &SalesSystemSpec, service: AppService) -> Vec<Component> {
    let mut deps = Vec::new();
    if let Some(DatabaseChoice::Managed(_)) = spec.postgres.choice(service) {
        deps.push(Component::Database(service));
    }
    if service.uses_broker() && spec.managed_rabbitmq().is_some() {
        deps.push(Component::Broker);
    }
    if service.uses_broker() && spec.managed_kafka().is_some() {
        deps.push(Component::Kafka);
    }
    if service.uses_redis() && spec.redis.managed().is_some() {
        deps.push(Component::Cache);
    }
    deps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_share_a_managed_database_among_the_pods_at_their_most() {
        let mut spec = SalesSystemSpec::default();
        // One pod, and one more while it rolls out: the default pool.
        assert_eq!(database_pool(&spec, AppService::Order), Some(10));
        assert_eq!(database_pool(&spec, AppService::Gateway), None);
        // 3 API pods and up to 10 consumers: 4 + 11 pods share 90 connections.
        spec.services.inventory.replicas = 3;
        spec.autoscaling.inventory.enabled = true;
        spec.autoscaling.inventory.max_replicas = 10;
        assert_eq!(most_pods(&spec, AppService::Inventory), 15);
        assert_eq!(database_pool(&spec, AppService::Inventory), Some(6));
        // The default autoscaling bounds keep the default pool: 2 + 6 pods.
        spec.services.inventory.replicas = 1;
        spec.autoscaling.inventory.max_replicas = 5;
        assert_eq!(database_pool(&spec, AppService::Inventory), Some(10));
        // Never below the floor; a pool given is taken as it is.
        spec.autoscaling.inventory.max_replicas = 60;
        assert_eq!(database_pool(&spec, AppService::Inventory), Some(5));
        spec.services.inventory.database_pool = Some(25);
        assert_eq!(database_pool(&spec, AppService::Inventory), Some(25));
    }

    #[test]
    fn an_external_database_gets_the_default_pool() {
        let mut spec = SalesSystemSpec::default();
        spec.postgres.external = Some(crate::crd::ExternalDatabases {
            secret_name: "databases".into(),
        });
        spec.services.order.replicas = 30;
        assert_eq!(database_pool(&spec, AppService::Order), Some(10));
    }
}
