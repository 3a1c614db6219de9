//! Reading queues from RabbitMQ's management API: `GET /api/queues/{vhost}/{name}`
//! gives `messages_ready`, `messages_unacknowledged` and `message_stats` with the
//! publish and ack rates (averages over the broker's last sample interval, 5 s by
//! default).
//!
//! Where and as whom: the AMQP URL the services use (the managed broker's generated
//! Secret, the one written for a RabbitmqCluster's services user, or the external
//! broker's Secret) gives the user, password and vhost; only that vhost is read (a
//! user tagged `management` lists the queues of the vhosts it has permissions on, and
//! its own channels); the management API is the managed broker's Service on 15672,
//! the RabbitmqCluster's, or the external broker's `managementUrl`, or by default the
//! AMQP host on 15672 (15671 with TLS for `amqps`). Under `spec.tls` the managed
//! broker and a RabbitmqCluster answer on 15671 only (HTTPS), verified against the
//! broker's CA ([`Management::trusting`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::{StatusCode, Url};
use sales_platform::error::error_chain;
use serde::Deserialize;

use super::decide::QueueLoad;

/// How long one request to the management API may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The reason of a reading in which the broker did not report a queue's message counts
/// (RabbitMQ's statistics not collected yet or disabled; on Kafka a committed offset
/// or a topic's partitions it would not give). Never read as 0: the scaler holds.
pub const COUNTS_UNREPORTED: &str = "CountsUnreported";

/// Why queues could not be read; the condition's reason and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadError {
    /// `BrokerUnreachable`, `ManagementUnauthorized`, `ManagementError`,
    /// `BrokerCredentialsMissing`, `BrokerCaMissing`, `BrokerCaInvalid`,
    /// `BrokerUrlInvalid`, `QueuesMissing` or
    /// [`COUNTS_UNREPORTED`] (Kafka: `KafkaUnreachable`, `KafkaSettingsInvalid`).
    pub reason: &'static str,
    pub message: String,
}

impl ReadError {
    pub fn new(reason: &'static str, message: impl Into<String>) -> Self {
        ReadError {
            reason,
            message: message.into(),
        }
    }
}

/// The clients of [`Management::trusting`], by the PEM of the CA they trust.
static CA_CLIENTS: std::sync::LazyLock<Mutex<HashMap<Vec<u8>, reqwest::Client>>> =
    std::sync::LazyLock::new(|| Mutex::new(HashMap::new()));

/// At most this many CAs' clients are kept (one per system under TLS, plus renewals).
const MAX_CA_CLIENTS: usize = 256;

/// The management API of one broker, and the vhost the system's queues live in.
#[derive(Clone)]
pub struct Management {
    base: Url,
    user: String,
    password: String,
    vhost: String,
    /// A client that trusts only the broker's CA (see [`Management::trusting`]);
    /// `None`: the scaler's own, which trusts the platform's roots.
    client: Option<reqwest::Client>,
}

impl std::fmt::Debug for Management {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Management")
            .field("base", &self.base.as_str())
            .field("user", &self.user)
            .field("vhost", &self.vhost)
            .finish_non_exhaustive()
    }
}

impl Management {
    /// From the AMQP URL the services use, and the management API's base URL (`None`:
    /// derived from the AMQP URL's host).
    pub fn new(amqp_url: &str, management_url: Option<&str>) -> Result<Self, ReadError> {
        let amqp = Url::parse(amqp_url.trim())
            .map_err(|e| ReadError::new("BrokerUrlInvalid", format!("the AMQP URL: {e}")))?;
        let tls = match amqp.scheme() {
            "amqp" => false,
            "amqps" => true,
            other => {
                return Err(ReadError::new(
                    "BrokerUrlInvalid",
                    format!("the AMQP URL's scheme is {other:?}, not amqp or amqps"),
                ));
            }
        };
        let host = amqp
            .host_str()
            .ok_or_else(|| ReadError::new("BrokerUrlInvalid", "the AMQP URL has no host"))?;
        let base = match management_url {
            Some(url) => url.to_owned(),
            None if tls => format!("https://{host}:15671"),
            None => format!("http://{host}:15672"),
        };
        let mut base = Url::parse(&base)
            .map_err(|e| ReadError::new("BrokerUrlInvalid", format!("the management URL: {e}")))?;
        // Credentials come from the AMQP URL only.
        let _ = base.set_username("");
        let _ = base.set_password(None);
        let user = match amqp.username() {
            "" => "guest".to_owned(),
            user => percent_decode(user),
        };
        let password = amqp
            .password()
            .map_or_else(|| "guest".to_owned(), percent_decode);
        // amqp://host/ and amqp://host name the default vhost "/"; amqp://host/%2f too.
        let vhost = match amqp.path().strip_prefix('/').unwrap_or_default() {
            "" => "/".to_owned(),
            path => percent_decode(path),
        };
        Ok(Management {
            base,
            user,
            password,
            vhost,
            client: None,
        })
    }

    /// Verify the management API's certificate against `ca_pem` (PEM, one or more
    /// certificates) only, as the services verify the broker's AMQP listener; `source`
    /// names where the CA came from, for the error.
    pub fn trusting(mut self, ca_pem: &[u8], source: &str) -> Result<Self, ReadError> {
        // One client per CA for the process: the scaler reads every system each tick,
        // and a client of its own keeps its TLS connections open between ticks.
        let mut clients = CA_CLIENTS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = clients.get(ca_pem) {
            self.client = Some(client.clone());
            return Ok(self);
        }
        let invalid = |detail: String| {
            ReadError::new(
                "BrokerCaInvalid",
                format!("the broker's CA in {source} {detail}"),
            )
        };
        let certs = reqwest::Certificate::from_pem_bundle(ca_pem)
            .map_err(|e| invalid(format!("is not PEM: {}", error_chain(&e))))?;
        if certs.is_empty() {
            return Err(invalid("holds no certificate".into()));
        }
        let client = sales_platform::tls::http_client_builder()
            .tls_certs_only(certs)
            .build()
            .map_err(|e| invalid(format!("cannot be used: {}", error_chain(&e))))?;
        if clients.len() >= MAX_CA_CLIENTS {
            // CAs renewed or systems gone: start afresh rather than grow.
            clients.clear();
        }
        clients.insert(ca_pem.to_vec(), client.clone());
        self.client = Some(client);
        Ok(self)
    }

    /// The base URL of the management API (no credentials).
    pub fn base(&self) -> &str {
        self.base.as_str()
    }

    pub fn vhost(&self) -> &str {
        &self.vhost
    }

    fn queue_url(&self, name: &str) -> Result<Url, ReadError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| ReadError::new("BrokerUrlInvalid", "the management URL has no path"))?
            .pop_if_empty()
            .extend(["api", "queues", self.vhost.as_str(), name]);
        Ok(url)
    }

    /// GET `url` from the management API, with the broker's account.
    async fn get(
        &self,
        http: &reqwest::Client,
        url: reqwest::Url,
    ) -> Result<reqwest::Response, ReadError> {
        self.client
            .as_ref()
            .unwrap_or(http)
            .get(url)
            .basic_auth(&self.user, Some(&self.password))
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|e| {
                ReadError::new(
                    "BrokerUnreachable",
                    format!(
                        "cannot reach the management API at {}: {}",
                        self.base,
                        error_chain(&e)
                    ),
                )
            })
    }

    /// One queue; `None` when the broker has no queue of that name. A queue whose
    /// answer has no message counts is a [`COUNTS_UNREPORTED`] error, never empty.
    pub async fn queue(
        &self,
        http: &reqwest::Client,
        name: &str,
    ) -> Result<Option<QueueLoad>, ReadError> {
        let url = self.queue_url(name)?;
        let response = self.get(http, url).await?;
        match response.status() {
            StatusCode::NOT_FOUND => return Ok(None),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(ReadError::new(
                    "ManagementUnauthorized",
                    format!(
                        "the management API at {} refused user {:?} ({}): it needs the \
                         monitoring or management tag and access to vhost {:?}",
                        self.base,
                        self.user,
                        response.status(),
                        self.vhost
                    ),
                ));
            }
            status if !status.is_success() => {
                return Err(ReadError::new(
                    "ManagementError",
                    format!("the management API at {} answered {status}", self.base),
                ));
            }
            _ => {}
        }
        let body: QueueInfo = response.json().await.map_err(|e| {
            ReadError::new(
                "ManagementError",
                format!("unexpected answer for queue {name}: {}", error_chain(&e)),
            )
        })?;
        body.into_load(name).map(Some).ok_or_else(|| {
            ReadError::new(
                COUNTS_UNREPORTED,
                format!(
                    "the management API at {} reports no message counts for queue {name} \
                     (statistics not collected yet, or disabled)",
                    self.base
                ),
            )
        })
    }

    /// Every queue of `names`, read at once. Queues the broker does not have count as
    /// empty; if none of them exists, the service's queues are not declared yet (or
    /// the prefix or vhost is wrong), which is no reading either. If any queue's
    /// counts are not reported, the reading is a [`COUNTS_UNREPORTED`] error naming
    /// every such queue: a sum without them would be a guess.
    pub async fn queues(
        &self,
        http: &reqwest::Client,
        names: &[String],
    ) -> Result<Vec<QueueLoad>, ReadError> {
        let reads =
            futures::future::join_all(names.iter().map(|name| self.queue(http, name))).await;
        let mut out = Vec::with_capacity(names.len());
        let mut missing = Vec::new();
        let mut uncounted = Vec::new();
        for (name, read) in names.iter().zip(reads) {
            match read {
                Err(err) if err.reason == COUNTS_UNREPORTED => uncounted.push(name.as_str()),
                Err(err) => return Err(err),
                Ok(Some(load)) => out.push(load),
                Ok(None) => {
                    missing.push(name.as_str());
                    out.push(QueueLoad {
                        name: name.clone(),
                        ..QueueLoad::default()
                    });
                }
            }
        }
        if !uncounted.is_empty() {
            return Err(ReadError::new(
                COUNTS_UNREPORTED,
                format!(
                    "the management API at {} reports no message counts for {} {} \
                     (statistics not collected yet, or disabled: \
                     management_agent.disable_metrics_collector); the depth is unknown, \
                     not 0",
                    self.base,
                    if uncounted.len() == 1 {
                        "queue"
                    } else {
                        "queues"
                    },
                    uncounted.join(", ")
                ),
            ));
        }
        if !names.is_empty() && missing.len() == names.len() {
            return Err(ReadError::new(
                "QueuesMissing",
                format!(
                    "vhost {:?} has none of the queues {} (not declared yet, or a wrong prefix or vhost)",
                    self.vhost,
                    missing.join(", ")
                ),
            ));
        }
        Ok(out)
    }
}

impl Management {
    /// The messages each client address holds unacknowledged, summed over its channels
    /// in the vhost (`GET /api/vhosts/{vhost}/channels`): a consumer pod's work in hand,
    /// by the pod's IP (`connection_details.peer_host`). A channel whose count is not
    /// reported makes its address's work unknown; no count at all, or a channel
    /// without its address, makes the whole answer [`COUNTS_UNREPORTED`]: no guess.
    pub async fn work_by_peer(&self, http: &reqwest::Client) -> Result<PeerWork, ReadError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| ReadError::new("BrokerUrlInvalid", "the management URL has no path"))?
            .pop_if_empty()
            .extend(["api", "vhosts", self.vhost.as_str(), "channels"]);
        url.query_pairs_mut().append_pair(
            "columns",
            "connection_details.peer_host,messages_unacknowledged",
        );
        let response = self.get(http, url).await?;
        if !response.status().is_success() {
            return Err(ReadError::new(
                "ManagementError",
                format!(
                    "the management API at {} answered {} for the channels of vhost {:?}",
                    self.base,
                    response.status(),
                    self.vhost
                ),
            ));
        }
        let channels: Vec<ChannelInfo> = response.json().await.map_err(|e| {
            ReadError::new(
                "ManagementError",
                format!("unexpected answer for the channels: {}", error_chain(&e)),
            )
        })?;
        PeerWork::of(&channels).ok_or_else(|| {
            ReadError::new(
                COUNTS_UNREPORTED,
                format!(
                    "the management API at {} reports channels without their unacknowledged \
                     messages or client address",
                    self.base
                ),
            )
        })
    }
}

/// Messages held unacknowledged, by client address (one consumer pod: its IP);
/// `None` for an address with a channel whose count RabbitMQ did not report (yet).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerWork(pub std::collections::HashMap<std::net::IpAddr, Option<u64>>);

impl PeerWork {
    /// Sums `channels` by address. A channel without its count (one just opened)
    /// makes only its address's work unknown; but when no channel has one (channel
    /// statistics off), or one has no address (its messages could be any pod's), the
    /// whole answer is `None`.
    fn of(channels: &[ChannelInfo]) -> Option<PeerWork> {
        if !channels.is_empty() && channels.iter().all(|c| c.messages_unacknowledged.is_none()) {
            return None;
        }
        let mut work = std::collections::HashMap::new();
        for channel in channels {
            let host = channel.connection_details.as_ref()?.peer_host.as_deref()?;
            // A client address RabbitMQ cannot give (a channel of a direct, in-node
            // connection: "undefined") is no pod's.
            let Ok(ip) = host.parse::<std::net::IpAddr>() else {
                continue;
            };
            let entry = work.entry(ip.to_canonical()).or_insert(Some(0u64));
            *entry = entry
                .zip(channel.messages_unacknowledged)
                .map(|(a, b)| a.saturating_add(b));
        }
        Some(PeerWork(work))
    }

    /// The messages `ip` holds (0: none, or no channel from there; `None`: unknown).
    pub fn of_ip(&self, ip: std::net::IpAddr) -> Option<u64> {
        self.0.get(&ip.to_canonical()).copied().unwrap_or(Some(0))
    }
}

#[derive(Deserialize)]
struct ChannelInfo {
    connection_details: Option<ConnectionDetails>,
    messages_unacknowledged: Option<u64>,
}

#[derive(Deserialize)]
struct ConnectionDetails {
    peer_host: Option<String>,
}

/// `%XX` escapes (of a URL's user, password or vhost) decoded; invalid UTF-8 replaced.
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// A queue as the management API answers it. The counts are options: an answer
/// without them (statistics not collected for the queue yet, or collection disabled)
/// says nothing of the queue's depth. `message_stats` is absent, normally, from a queue
/// nothing was ever published to or consumed from: no rates is 0.
#[derive(Deserialize, Default)]
struct QueueInfo {
    messages: Option<u64>,
    messages_ready: Option<u64>,
    messages_unacknowledged: Option<u64>,
    #[serde(default)]
    message_stats: MessageStats,
}

#[derive(Deserialize, Default)]
struct MessageStats {
    #[serde(default)]
    publish_details: Rate,
    #[serde(default)]
    ack_details: Rate,
}

#[derive(Deserialize, Default)]
struct Rate {
    #[serde(default)]
    rate: f64,
}

impl QueueInfo {
    /// Ready and unacknowledged messages, as reported (one of them may be derived from
    /// `messages`, their sum); `None` when the answer does not tell both.
    fn counts(&self) -> Option<(u64, u64)> {
        match (
            self.messages_ready,
            self.messages_unacknowledged,
            self.messages,
        ) {
            (Some(ready), Some(unacked), _) => Some((ready, unacked)),
            (Some(ready), None, Some(all)) => Some((ready, all.saturating_sub(ready))),
            (None, Some(unacked), Some(all)) => Some((all.saturating_sub(unacked), unacked)),
            _ => None,
        }
    }

    /// The load of the queue; `None` when its counts are not reported.
    fn into_load(self, name: &str) -> Option<QueueLoad> {
        let (ready, unacknowledged) = self.counts()?;
        Some(QueueLoad {
            name: name.to_owned(),
            ready,
            unacknowledged,
            publish_rate: self.message_stats.publish_details.rate.max(0.0),
            ack_rate: self.message_stats.ack_details.rate.max(0.0),
            ..QueueLoad::default()
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn credentials_and_vhost_come_from_the_amqp_url() {
        let m = Management::new("amqp://sales:p%40ss@shop-rabbitmq:5672/%2f", None).unwrap();
        assert_eq!(m.base(), "http://shop-rabbitmq:15672/");
        assert_eq!((m.user.as_str(), m.password.as_str()), ("sales", "p@ss"));
        assert_eq!(m.vhost(), "/");
        assert_eq!(
            m.queue_url("t1.inventory.update-stock").unwrap().as_str(),
            "http://shop-rabbitmq:15672/api/queues/%2F/t1.inventory.update-stock"
        );
    }

    #[test]
    fn tls_and_named_vhosts() {
        let m = Management::new("amqps://u:p@mq.example.com/sales", None).unwrap();
        assert_eq!(m.base(), "https://mq.example.com:15671/");
        assert_eq!(m.vhost(), "sales");
        let m = Management::new("amqp://u:p@mq.example.com", None).unwrap();
        assert_eq!(m.vhost(), "/");
    }

    #[test]
    fn a_given_management_url_wins_and_keeps_its_path() {
        let m = Management::new(
            "amqp://u:p@10.0.0.5:5672/%2f",
            Some("https://mq.example.com/rabbit/"),
        )
        .unwrap();
        assert_eq!(
            m.queue_url("q").unwrap().as_str(),
            "https://mq.example.com/rabbit/api/queues/%2F/q"
        );
    }

    #[test]
    fn nonsense_is_refused_without_echoing_secrets() {
        let err = Management::new("postgres://u:secret@h/db", None).unwrap_err();
        assert_eq!(err.reason, "BrokerUrlInvalid");
        assert!(!err.message.contains("secret"));
        let debug = format!("{:?}", Management::new("amqp://u:secret@h", None).unwrap());
        assert!(!debug.contains("secret"), "{debug}");
    }

    #[test]
    fn the_queue_document_is_read() {
        let info: QueueInfo = serde_json::from_value(serde_json::json!({
            "name": "q", "messages": 130, "messages_ready": 100,
            "messages_unacknowledged": 30,
            "message_stats": {"publish": 500, "publish_details": {"rate": 12.5},
                              "ack": 370, "ack_details": {"rate": 9.0}}
        }))
        .unwrap();
        let load = info.into_load("q").unwrap();
        assert_eq!(
            (load.ready, load.unacknowledged, load.depth()),
            (100, 30, 130)
        );
        assert_eq!((load.publish_rate, load.ack_rate), (12.5, 9.0));
        // A queue nothing was published to yet has counts and no message_stats.
        let idle: QueueInfo = serde_json::from_value(serde_json::json!({
            "name": "q", "messages": 0, "messages_ready": 0, "messages_unacknowledged": 0
        }))
        .unwrap();
        let idle = idle.into_load("q").unwrap();
        assert_eq!(
            (idle.depth(), idle.publish_rate, idle.ack_rate),
            (0, 0.0, 0.0)
        );
    }

    #[test]
    fn work_in_hand_is_summed_by_client_address() {
        let channels: Vec<ChannelInfo> = serde_json::from_value(serde_json::json!([
            {"connection_details": {"peer_host": "10.0.0.1", "peer_port": 41000},
             "messages_unacknowledged": 5},
            {"connection_details": {"peer_host": "10.0.0.1", "peer_port": 41000},
             "messages_unacknowledged": 2},
            {"connection_details": {"peer_host": "::ffff:10.0.0.2"},
             "messages_unacknowledged": 4},
            {"connection_details": {"peer_host": "10.0.0.3"}, "messages_unacknowledged": 0},
            {"connection_details": {"peer_host": "undefined"}, "messages_unacknowledged": 9},
        ]))
        .unwrap();
        let work = PeerWork::of(&channels).unwrap();
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert_eq!(work.of_ip(ip("10.0.0.1")), Some(7));
        assert_eq!(
            work.of_ip(ip("10.0.0.2")),
            Some(4),
            "an IPv4-mapped address is the IPv4 one"
        );
        assert_eq!(work.of_ip(ip("10.0.0.3")), Some(0));
        assert_eq!(work.of_ip(ip("10.0.0.4")), Some(0), "no channel: no work");
        // A channel without its count (a channel just opened, say): that address's
        // work is unknown, not 0, and only that address's.
        let unknown: Vec<ChannelInfo> = serde_json::from_value(serde_json::json!([
            {"connection_details": {"peer_host": "10.0.0.1"}, "messages_unacknowledged": 5},
            {"connection_details": {"peer_host": "10.0.0.2"}, "messages_unacknowledged": 3},
            {"connection_details": {"peer_host": "10.0.0.2"}},
        ]))
        .unwrap();
        let work = PeerWork::of(&unknown).unwrap();
        assert_eq!(work.of_ip(ip("10.0.0.1")), Some(5));
        assert_eq!(work.of_ip(ip("10.0.0.2")), None);
        // No channel with its count: statistics are off; no guess.
        let uncounted: Vec<ChannelInfo> = serde_json::from_value(serde_json::json!([
            {"connection_details": {"peer_host": "10.0.0.1"}},
            {"connection_details": {"peer_host": "10.0.0.2"}},
        ]))
        .unwrap();
        assert_eq!(PeerWork::of(&uncounted), None);
        // A channel without its address: its work is no one's known pod; no guess.
        let nameless: Vec<ChannelInfo> = serde_json::from_value(serde_json::json!([
            {"connection_details": {"peer_host": "10.0.0.1"}, "messages_unacknowledged": 5},
            {"messages_unacknowledged": 2},
        ]))
        .unwrap();
        assert_eq!(PeerWork::of(&nameless), None);
    }

    #[test]
    fn a_queue_without_counts_is_unknown_not_empty() {
        let read = |doc: serde_json::Value| {
            serde_json::from_value::<QueueInfo>(doc)
                .unwrap()
                .into_load("q")
                .map(|l| (l.ready, l.unacknowledged))
        };
        // The statistics have not reached the queue, or are disabled (kedacore/keda#7180).
        assert_eq!(
            read(serde_json::json!({"name": "q", "state": "running"})),
            None
        );
        // Rates without counts are no counts either.
        assert_eq!(
            read(serde_json::json!({"name": "q",
                "message_stats": {"publish_details": {"rate": 50.0}}})),
            None
        );
        assert_eq!(
            read(serde_json::json!({"name": "q", "messages_ready": null,
                "messages_unacknowledged": null, "messages": null})),
            None
        );
        // One of ready / unacknowledged alone says nothing of the other...
        assert_eq!(read(serde_json::json!({"messages_ready": 7})), None);
        assert_eq!(read(serde_json::json!({"messages": 7})), None);
        // ...unless the total is there too.
        assert_eq!(
            read(serde_json::json!({"messages_ready": 7, "messages": 10})),
            Some((7, 3))
        );
        assert_eq!(
            read(serde_json::json!({"messages_unacknowledged": 2, "messages": 10})),
            Some((8, 2))
        );
    }
}
