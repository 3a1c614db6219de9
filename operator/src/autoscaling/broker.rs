//! Reading queues from RabbitMQ's management API: `GET /api/queues/{vhost}/{name}`
//! gives `messages_ready`, `messages_unacknowledged` and `message_stats` with the
//! publish and ack rates (averages over the broker's last sample interval, 5 s by
//! default).
//!
//! Where and as whom: the AMQP URL the services use (the managed broker's generated
//! Secret, or the external broker's Secret) gives the user, password and vhost; the
//! management API is the managed broker's Service on 15672, or the external broker's
//! `managementUrl`, or by default the AMQP host on 15672 (15671 with TLS for `amqps`).

use std::time::Duration;

use reqwest::{StatusCode, Url};
use sales_platform::error::error_chain;
use serde::Deserialize;

use super::decide::QueueLoad;

/// How long one request to the management API may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Why queues could not be read; the condition's reason and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadError {
    /// `BrokerUnreachable`, `ManagementUnauthorized`, `ManagementError`,
    /// `BrokerCredentialsMissing`, `BrokerUrlInvalid` or `QueuesMissing`.
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

/// The management API of one broker, and the vhost the system's queues live in.
#[derive(Clone)]
pub struct Management {
    base: Url,
    user: String,
    password: String,
    vhost: String,
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
        })
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

    /// One queue; `None` when the broker has no queue of that name.
    pub async fn queue(
        &self,
        http: &reqwest::Client,
        name: &str,
    ) -> Result<Option<QueueLoad>, ReadError> {
        let url = self.queue_url(name)?;
        let response = http
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
            })?;
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
        Ok(Some(body.into_load(name)))
    }

    /// Every queue of `names`, read at once. Queues the broker does not have count as
    /// empty; if none of them exists, the service's queues are not declared yet (or
    /// the prefix or vhost is wrong), which is no reading either.
    pub async fn queues(
        &self,
        http: &reqwest::Client,
        names: &[String],
    ) -> Result<Vec<QueueLoad>, ReadError> {
        let reads =
            futures::future::join_all(names.iter().map(|name| self.queue(http, name))).await;
        let mut out = Vec::with_capacity(names.len());
        let mut missing = Vec::new();
        for (name, read) in names.iter().zip(reads) {
            match read? {
                Some(load) => out.push(load),
                None => {
                    missing.push(name.as_str());
                    out.push(QueueLoad {
                        name: name.clone(),
                        ..QueueLoad::default()
                    });
                }
            }
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

/// `%XX` escapes (of a URL's user, password or vhost) decoded; invalid UTF-8 replaced.
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[derive(Deserialize, Default)]
struct QueueInfo {
    #[serde(default)]
    messages_ready: u64,
    #[serde(default)]
    messages_unacknowledged: u64,
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
    fn into_load(self, name: &str) -> QueueLoad {
        QueueLoad {
            name: name.to_owned(),
            ready: self.messages_ready,
            unacknowledged: self.messages_unacknowledged,
            publish_rate: self.message_stats.publish_details.rate.max(0.0),
            ack_rate: self.message_stats.ack_details.rate.max(0.0),
            ..QueueLoad::default()
        }
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
        let load = info.into_load("q");
        assert_eq!(
            (load.ready, load.unacknowledged, load.depth()),
            (100, 30, 130)
        );
        assert_eq!((load.publish_rate, load.ack_rate), (12.5, 9.0));
        // A queue the stats have not reached yet.
        let empty: QueueInfo = serde_json::from_value(serde_json::json!({"name": "q"})).unwrap();
        assert_eq!(empty.into_load("q").depth(), 0);
    }
}
