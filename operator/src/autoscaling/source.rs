//! Where the scaler reads a service's backlog: RabbitMQ's management API (queue
//! depth) or Kafka (consumer-group lag), with the credentials the services use.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::{Api, Client};
use sales_contracts::topology::{Topology, subscriptions_of};

use super::broker::{Management, PeerWork, ReadError};
use super::decide::QueueLoad;
use super::kafka_lag::{self, GroupOffsets, KafkaReader};
use crate::catalogue::AppService;
use crate::children::env::{kafka_bootstrap, kafka_credentials, kafka_protocol};
use crate::children::infrastructure::rabbitmq_management;
use crate::children::names::{Component, Names};
use crate::children::{rabbitmq_cluster, tls_clients};
use crate::crd::SalesSystemSpec;

/// The broker of one system, ready to be read.
#[derive(Debug)]
pub enum QueueSource {
    RabbitMq(Management),
    Kafka(KafkaReader),
}

/// One service's backlog as read, and on Kafka the offsets to compute the next
/// reading's rates from.
pub struct Backlog {
    pub queues: Vec<QueueLoad>,
    pub offsets: Option<(Timestamp, Vec<GroupOffsets>)>,
}

impl QueueSource {
    /// The broker of `spec`, and the credentials to read it with.
    pub async fn of(
        client: &Client,
        spec: &SalesSystemSpec,
        names: &Names,
    ) -> Result<QueueSource, ReadError> {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &names.namespace);
        if let Some(kafka) = spec.kafka() {
            let login = match crate::children::kafka_users::services_user(names, &kafka) {
                // The Strimzi user's password, in the Secret its User Operator writes.
                Some(user) => {
                    let found = read_secret(&secrets, &user).await?;
                    let password = secret_value(&found, "password").ok_or_else(|| {
                        ReadError::new(
                            "BrokerCredentialsMissing",
                            format!("Secret {user} has no key password"),
                        )
                    })?;
                    Some(("SCRAM-SHA-512", user, password))
                }
                None => match kafka_credentials(names, &kafka) {
                    Some((secret, user_key, password_key)) => {
                        let found = read_secret(&secrets, &secret).await?;
                        let value = |key: &str| {
                            secret_value(&found, key).ok_or_else(|| {
                                ReadError::new(
                                    "BrokerCredentialsMissing",
                                    format!("Secret {secret} has no key {key}"),
                                )
                            })
                        };
                        Some(("PLAIN", value(&user_key)?, value(&password_key)?))
                    }
                    None => None,
                },
            };
            let ca = match tls_clients::kafka_ca(names, spec) {
                Some((secret, key)) => {
                    let pem = read_ca(&secrets, &secret, &key).await?;
                    check_kafka_ca(&pem, &secret, &key)?;
                    Some(pem)
                }
                None => None,
            };
            let tls = spec.tls.enabled();
            let reader = KafkaReader::new(
                &kafka_bootstrap(names, &kafka, tls),
                kafka_protocol(&kafka, tls).as_str(),
                login,
                ca.as_deref(),
            )?;
            return Ok(QueueSource::Kafka(reader));
        }
        let (secret, key, management_url) = match &spec.rabbitmq.external {
            Some(external) => (
                external.secret_name.clone(),
                external.key.clone(),
                external.management_url.clone(),
            ),
            None => (
                names.broker_secret(),
                "url".to_owned(),
                // The managed broker's generated account, or on a RabbitmqCluster the
                // URL Secret written from the services' own account: the scaler reads
                // as the services do, in their vhost only (the URL names it), which
                // the `management` tag of that user lets it list.
                // Under TLS both answer on HTTPS only.
                Some(match spec.rabbitmq_cluster() {
                    Some(provider) => {
                        rabbitmq_cluster::management_url(names, provider, spec.tls.enabled())
                    }
                    None => {
                        let (scheme, port) = rabbitmq_management(spec.tls.enabled());
                        format!(
                            "{scheme}://{}.{}.svc:{port}",
                            names.of(Component::Broker),
                            names.namespace
                        )
                    }
                }),
            ),
        };
        let found = read_secret(&secrets, &secret).await?;
        let url = secret_value(&found, &key).ok_or_else(|| {
            ReadError::new(
                "BrokerCredentialsMissing",
                format!("Secret {secret} has no key {key} (the AMQP URL)"),
            )
        })?;
        let management = Management::new(&url, management_url.as_deref())?;
        let Some((ca_secret, ca_key)) = tls_clients::broker_ca(names, spec) else {
            return Ok(QueueSource::RabbitMq(management));
        };
        let ca = read_ca(&secrets, &ca_secret, &ca_key).await?;
        management
            .trusting(ca.as_bytes(), &format!("Secret {ca_secret}, key {ca_key},"))
            .map(QueueSource::RabbitMq)
    }

    /// Every queue (RabbitMQ) or every group and topic (Kafka) of `service`;
    /// `previous`: the offsets of the last Kafka reading, for the rates.
    pub async fn read(
        &self,
        http: &reqwest::Client,
        service: AppService,
        topology: &Topology,
        previous: Option<&(Timestamp, Vec<GroupOffsets>)>,
        now: Timestamp,
    ) -> Result<Backlog, ReadError> {
        match self {
            QueueSource::RabbitMq(management) => {
                let names: Vec<String> = subscriptions_of(service.name())
                    .map(|s| topology.queue(s))
                    .collect();
                Ok(Backlog {
                    queues: management.queues(http, &names).await?,
                    offsets: None,
                })
            }
            QueueSource::Kafka(reader) => {
                // The event topics only, as the main queues on RabbitMQ: a retry waits
                // on purpose until it is due, and is no work a new pod could take.
                let groups = subscriptions_of(service.name())
                    .map(|s| {
                        let topic = topology.event_topic(s.message_type.as_str());
                        (topology.consumer_group(s), vec![topic])
                    })
                    .collect();
                let offsets = reader.read(groups).await?;
                let queues = kafka_lag::loads(
                    &offsets,
                    previous.map(|(then, read)| (*then, read.as_slice())),
                    now,
                );
                Ok(Backlog {
                    queues,
                    offsets: Some((now, offsets)),
                })
            }
        }
    }
}

impl QueueSource {
    /// The messages each consumer pod holds, by its IP, where the broker tells it
    /// (RabbitMQ's channels); `Ok(None)` on Kafka, where work is a partition's lag and
    /// no pod's (see [`super::deletion_cost`]).
    pub async fn work_by_pod(&self, http: &reqwest::Client) -> Result<Option<PeerWork>, ReadError> {
        match self {
            QueueSource::RabbitMq(management) => management.work_by_peer(http).await.map(Some),
            QueueSource::Kafka(_) => Ok(None),
        }
    }
}

/// The topology names of `spec`'s broker (the prefix of queues or topics).
pub fn topology_of(spec: &SalesSystemSpec) -> Topology {
    match spec.kafka() {
        Some(kafka) => Topology::new(kafka.topic_prefix),
        None => Topology::new(spec.rabbitmq.prefix.clone()),
    }
}

/// The most consumers that can work at once: on Kafka, the partitions of the busiest
/// topic the service reads (a group gives each partition to one member).
pub fn partition_cap(queues: &[QueueLoad]) -> Option<u32> {
    queues.iter().filter_map(|q| q.partitions).max()
}

/// The broker's CA (PEM) from `key` of Secret `name`: `BrokerCaMissing` when it is
/// not there.
async fn read_ca(api: &Api<Secret>, name: &str, key: &str) -> Result<String, ReadError> {
    let found = read_secret(api, name)
        .await
        .map_err(|e| ReadError::new("BrokerCaMissing", e.message))?;
    secret_value(&found, key).ok_or_else(|| {
        ReadError::new(
            "BrokerCaMissing",
            format!("Secret {name} has no key {key} (the broker's CA)"),
        )
    })
}

/// `pem` holds at least one certificate (librdkafka would otherwise fail with a less
/// telling error, or trust nothing).
fn check_kafka_ca(pem: &str, secret: &str, key: &str) -> Result<(), ReadError> {
    let invalid = |detail: &str| {
        ReadError::new(
            "BrokerCaInvalid",
            format!("the broker's CA in Secret {secret}, key {key}, {detail}"),
        )
    };
    match reqwest::Certificate::from_pem_bundle(pem.as_bytes()) {
        Ok(certs) if certs.is_empty() => Err(invalid("holds no certificate")),
        Ok(_) => Ok(()),
        Err(_) => Err(invalid("is not PEM")),
    }
}

async fn read_secret(api: &Api<Secret>, name: &str) -> Result<Secret, ReadError> {
    api.get_opt(name)
        .await
        .map_err(|e| {
            ReadError::new(
                "BrokerCredentialsMissing",
                format!("cannot read Secret {name}: {e}"),
            )
        })?
        .ok_or_else(|| {
            ReadError::new(
                "BrokerCredentialsMissing",
                format!("Secret {name} does not exist"),
            )
        })
}

pub fn secret_value(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(key).cloned())
        })
}
