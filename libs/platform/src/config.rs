//! Configuration groups every service flattens into its own `clap` struct, so each
//! setting can be given as a flag or as an environment variable (12-factor).
//! Secrets are [`SecretString`]s: they print as `[REDACTED]` in logs and `--help`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use sales_contracts::topology::QueueType;
use secrecy::SecretString;

/// Where the service listens.
#[derive(Args, Clone, Debug)]
pub struct HttpArgs {
    /// Address of the public API (and `/health`, `/ready`).
    #[arg(long, env = "HTTP_ADDR")]
    pub http_addr: SocketAddr,
    /// Address of the admin endpoints: `/metrics`, `/health`, `/ready`, dead letters.
    #[arg(long, env = "ADMIN_ADDR")]
    pub admin_addr: SocketAddr,
    /// Largest request body accepted, in bytes; larger ones get 413.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,
    /// How long in-flight requests and messages may take to finish after SIGTERM.
    #[arg(long, env = "SHUTDOWN_GRACE", default_value = "20s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,
    /// After SIGTERM, how long the service keeps serving with `/ready` failing before
    /// it stops taking new work, so load balancers can take it out first (on
    /// Kubernetes the pod's `preStop` sleep does this, and the operator sets 0s).
    /// Ctrl-C skips it.
    #[arg(long, env = "SHUTDOWN_DRAIN_DELAY", default_value = "5s", value_parser = humantime::parse_duration)]
    pub shutdown_drain_delay: Duration,
    /// What this process does: `all` (API and queue consumers, the default), `api`
    /// (no consumers: on Kubernetes the API pods), or `consumer` (on Kubernetes the
    /// consumer pods, scaled on queue depth; their API port gets no traffic).
    #[arg(long, env = "SERVICE_ROLE", default_value = "all")]
    pub role: ServiceRole,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ServiceRole {
    #[default]
    All,
    Api,
    Consumer,
}

/// The service's own PostgreSQL database.
#[derive(Args, Clone, Debug)]
pub struct DatabaseArgs {
    /// `postgres://user:password@host:port/database`; over TLS with
    /// `?sslmode=verify-full&sslrootcert=/path/ca.crt` (docs/security.md).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: SecretString,
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub database_max_connections: u32,
    /// How long a request waits for a free connection before failing.
    #[arg(long, env = "DATABASE_ACQUIRE_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub database_acquire_timeout: Duration,
}

/// The message broker: RabbitMQ or Kafka.
#[derive(Args, Clone, Debug)]
pub struct BrokerArgs {
    /// Which broker carries the events: `rabbitmq` (the default) or `kafka`.
    #[arg(long, env = "MESSAGING_KIND", default_value = "rabbitmq")]
    pub messaging_kind: MessagingKind,
    /// RabbitMQ: `amqp://user:password@host:port/vhost` (vhost `/` is `%2f`), or
    /// `amqps://...` (TLS, port 5671 by default).
    #[arg(long, env = "AMQP_URL", hide_env_values = true)]
    pub amqp_url: Option<SecretString>,
    /// RabbitMQ over `amqps://`: a PEM file of the CA certificate(s) that signed the
    /// broker's certificate, trusted besides the system's roots. Only with `amqps://`.
    #[arg(long, env = "AMQP_TLS_CA_FILE")]
    pub amqp_tls_ca_file: Option<PathBuf>,
    /// RabbitMQ: prefix for the exchange and every queue name, so several systems can
    /// share a broker.
    #[arg(long, env = "AMQP_PREFIX", default_value = "")]
    pub amqp_prefix: String,
    /// RabbitMQ: how many unacknowledged messages each consumer holds at once.
    #[arg(long, env = "AMQP_PREFETCH", default_value_t = 16)]
    pub amqp_prefetch: u16,
    /// RabbitMQ: `classic` queues (the default) or `quorum` queues, replicated over a
    /// cluster's nodes. A queue keeps the type it was made with: changing it needs new
    /// queues (another `AMQP_PREFIX`, or the old ones drained and deleted).
    #[arg(long, env = "AMQP_QUEUE_TYPE", default_value = "classic")]
    pub amqp_queue_type: QueueType,
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

impl BrokerArgs {
    /// RabbitMQ's URL and TLS settings, checked: an error names the setting at fault.
    pub fn amqp_endpoint(&self) -> anyhow::Result<crate::messaging::rabbitmq::AmqpEndpoint> {
        let url = self.amqp_url.clone().ok_or_else(|| {
            anyhow::anyhow!("MESSAGING_KIND=rabbitmq needs AMQP_URL (--amqp-url)")
        })?;
        crate::messaging::rabbitmq::AmqpEndpoint::new(url, self.amqp_tls_ca_file.clone())
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MessagingKind {
    #[default]
    Rabbitmq,
    Kafka,
}

/// Kafka: where it is, how to log in, and how the topics this system creates are laid out.
#[derive(Args, Clone, Debug)]
pub struct KafkaArgs {
    /// `host:port[,host:port...]` of the Kafka brokers.
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS")]
    pub kafka_bootstrap_servers: Option<String>,
    /// Prefix for every topic and consumer group, so several systems can share a cluster.
    #[arg(long, env = "KAFKA_TOPIC_PREFIX", default_value = "")]
    pub kafka_topic_prefix: String,
    /// Partitions of each topic the services create (the most consumers of one
    /// subscription that can work at once).
    #[arg(long, env = "KAFKA_TOPIC_PARTITIONS", default_value_t = 3,
          value_parser = clap::value_parser!(i32).range(1..=10_000))]
    pub kafka_topic_partitions: i32,
    /// Replicas of each topic the services create (3 on a cluster that must survive a
    /// broker; at most the number of brokers), or `-1`: the brokers'
    /// `default.replication.factor`.
    #[arg(long, env = "KAFKA_REPLICATION_FACTOR", default_value_t = 1,
          value_parser = replication_factor)]
    pub kafka_replication_factor: i32,
    /// Create the topics at start (`true`, the default), or only check that they exist
    /// (`false`: something else owns them, e.g. Strimzi's Topic Operator; until every
    /// topic is there the service counts as not connected to the broker: events wait
    /// in the outbox, consumers wait, `/ready` lists the broker as degraded).
    #[arg(long, env = "KAFKA_CREATE_TOPICS", default_value_t = true,
          action = clap::ArgAction::Set)]
    pub kafka_create_topics: bool,
    /// At most this many records in one batch the producer sends (librdkafka's
    /// `batch.num.messages`; unset: its default, 10000). The local broker, tansu
    /// 0.6.0, returns nothing for a fetch that starts inside a batch, so a consumer
    /// resuming mid-batch would stall: `cargo xtask` and the tests set 1 against it.
    #[arg(long, env = "KAFKA_BATCH_MESSAGES",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub kafka_batch_messages: Option<u32>,
    /// `plaintext`, `ssl` (TLS), `sasl_plaintext` or `sasl_ssl` (SASL over TLS).
    #[arg(long, env = "KAFKA_SECURITY_PROTOCOL", default_value = "plaintext")]
    pub kafka_security_protocol: String,
    /// With `ssl` or `sasl_ssl`: a PEM file of the CA certificate(s) that signed the
    /// brokers' certificates (librdkafka's `ssl.ca.location`); unset: the system's.
    #[arg(long, env = "KAFKA_SSL_CA_LOCATION")]
    pub kafka_ssl_ca_location: Option<PathBuf>,
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`, with the two below.
    #[arg(long, env = "KAFKA_SASL_MECHANISM")]
    pub kafka_sasl_mechanism: Option<String>,
    #[arg(long, env = "KAFKA_SASL_USERNAME")]
    pub kafka_sasl_username: Option<String>,
    #[arg(long, env = "KAFKA_SASL_PASSWORD", hide_env_values = true)]
    pub kafka_sasl_password: Option<SecretString>,
}

/// `-1` (the brokers' default) or 1 to 16.
fn replication_factor(value: &str) -> Result<i32, String> {
    match value.trim().parse::<i32>() {
        Ok(n) if n == -1 || (1..=16).contains(&n) => Ok(n),
        _ => Err(format!(
            "{value:?} is not a replication factor: 1 to 16, or -1 for the brokers' default"
        )),
    }
}

impl Default for KafkaArgs {
    /// The command line's defaults.
    fn default() -> Self {
        KafkaArgs {
            kafka_bootstrap_servers: None,
            kafka_topic_prefix: String::new(),
            kafka_topic_partitions: 3,
            kafka_replication_factor: 1,
            kafka_create_topics: true,
            kafka_batch_messages: None,
            kafka_security_protocol: "plaintext".into(),
            kafka_ssl_ca_location: None,
            kafka_sasl_mechanism: None,
            kafka_sasl_username: None,
            kafka_sasl_password: None,
        }
    }
}

/// Logs and traces: the standard OpenTelemetry variables (docs/observability.md), and
/// the log format and filters. The SDK reads the other `OTEL_*` variables it knows
/// itself (`OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_BSP_*`).
#[derive(Args, Clone, Debug)]
pub struct TelemetryArgs {
    /// OTLP/HTTP URL traces are sent to, as given, e.g.
    /// `http://otel-collector:4318/v1/traces`. Wins over `OTEL_EXPORTER_OTLP_ENDPOINT`.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")]
    pub otlp_traces_endpoint: Option<String>,
    /// OTLP/HTTP base URL, e.g. `http://otel-collector:4318` (`/v1/traces` is
    /// appended). Neither set: traces are still made (ids in logs, context
    /// propagated) but not exported.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// `otlp` (the default) or `none` (traces not exported, whatever the endpoint).
    #[arg(long, env = "OTEL_TRACES_EXPORTER")]
    pub traces_exporter: Option<String>,
    /// The traces' `service.name`; unset: the service's own name (`order`, ...).
    #[arg(long, env = "OTEL_SERVICE_NAME")]
    pub service_name: Option<String>,
    /// More resource attributes, `key=value,key=value` (e.g.
    /// `k8s.namespace.name=shop`); read by the SDK.
    #[arg(long, env = "OTEL_RESOURCE_ATTRIBUTES")]
    pub resource_attributes: Option<String>,
    /// Which traces are kept: `parentbased_always_on` (the default), `always_on`,
    /// `always_off`, `traceidratio`, `parentbased_always_off`, `parentbased_traceidratio`.
    #[arg(long, env = "OTEL_TRACES_SAMPLER")]
    pub traces_sampler: Option<String>,
    /// The ratio of the `traceidratio` samplers, 0 to 1 (default 1).
    #[arg(long, env = "OTEL_TRACES_SAMPLER_ARG")]
    pub traces_sampler_arg: Option<String>,
    /// `json` (one JSON object per line, for log collectors) or `text` (for people).
    #[arg(long, env = "LOG_FORMAT", default_value = "json")]
    pub log_format: LogFormat,
    /// Filter in `tracing` syntax, e.g. `info,sqlx=warn`.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log_filter: String,
    /// Which spans become trace spans, in the same syntax; separate from `RUST_LOG` so
    /// quieter logs do not cut traces.
    #[arg(
        long,
        env = "TRACE_FILTER",
        default_value = "info,h2=warn,hyper=warn,reqwest=warn,lapin=warn,sqlx=warn"
    )]
    pub trace_filter: String,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// The Redis cache (optional: without `REDIS_URL` every read goes to the database).
#[derive(Args, Clone, Debug)]
pub struct CacheArgs {
    /// `redis://host:port`, or `rediss://host:port` (TLS); unset disables the cache.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<SecretString>,
    /// Redis over `rediss://`: a PEM file of the CA certificate(s) that signed the
    /// server's certificate, trusted instead of the system's roots. Only with `rediss://`.
    #[arg(long, env = "REDIS_TLS_CA_FILE")]
    pub redis_tls_ca_file: Option<PathBuf>,
    /// How long a cached entry lives (seed 003: 10 minutes).
    #[arg(long, env = "CACHE_TTL", default_value = "10m", value_parser = humantime::parse_duration)]
    pub cache_ttl: Duration,
    /// Prefix of every cache key, so systems (or tests) can share a Redis.
    #[arg(long, env = "CACHE_PREFIX", default_value = "sales:")]
    pub cache_prefix: String,
}

impl CacheArgs {
    /// The cache these settings describe (disabled without a URL).
    pub fn cache(&self, metrics: &crate::metrics::Metrics) -> anyhow::Result<crate::cache::Cache> {
        use secrecy::ExposeSecret;
        match self
            .redis_url
            .as_ref()
            .map(|u| u.expose_secret().to_owned())
        {
            Some(url) if !url.trim().is_empty() => {
                let client = crate::cache::redis_client(&url, self.redis_tls_ca_file.as_deref())?;
                Ok(crate::cache::Cache::new(
                    client,
                    &self.cache_prefix,
                    self.cache_ttl,
                    metrics,
                ))
            }
            _ if self.redis_tls_ca_file.is_some() => {
                anyhow::bail!("REDIS_TLS_CA_FILE is set but REDIS_URL is not")
            }
            _ => Ok(crate::cache::Cache::disabled()),
        }
    }
}

/// How a service checks who is calling and proves who it is (docs/security.md).
#[derive(Args, Clone, Debug)]
pub struct IdentityArgs {
    /// Base URL of the customer service, the identity provider: its public keys
    /// (`/.well-known/jwks.json`), service tokens (`/oauth/token`) and token
    /// introspection (`/oauth/introspect`).
    #[arg(long, env = "IDENTITY_URL")]
    pub identity_url: String,
    /// The gateway's public keys, which sign the token of every request it forwards,
    /// e.g. `http://gateway:8080/.well-known/jwks.json`.
    #[arg(long, env = "GATEWAY_JWKS_URL")]
    pub gateway_jwks_url: String,
    /// This service's OAuth client secret (its client id is its name): for its own
    /// service token and for introspecting administrators' tokens.
    #[arg(long, env = "SERVICE_CLIENT_SECRET", hide_env_values = true)]
    pub service_client_secret: SecretString,
}
