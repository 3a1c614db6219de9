//! RabbitMQ's management API, as chaos uses it: a vhost of the run's own, the depth of
//! its queues every second, who else is connected, and the dead letters.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use reqwest::{Client, Method, RequestBuilder, Url};
use serde_json::{Value, json};

pub struct BrokerApi {
    base: Url,
    user: String,
    password: Option<String>,
    client: Client,
}

/// Messages in one queue.
#[derive(Clone, Debug)]
pub struct QueueDepth {
    pub name: String,
    /// Ready plus unacknowledged; `None` while the broker has no figures for the
    /// queue (for a while after it restarts): unknown, not empty.
    pub messages: Option<u64>,
}

/// A message parked in a `*.dead` queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    pub queue: String,
    pub message_type: String,
    pub order_id: Option<i64>,
    /// `x-death-reason`: why the consumer gave up on it.
    pub reason: Option<String>,
}

impl BrokerApi {
    pub fn new(management_url: &str) -> Result<BrokerApi> {
        let mut base = Url::parse(management_url).context("management URL")?;
        let user = base.username().to_owned();
        let password = base.password().map(str::to_owned);
        let _ = base.set_username("");
        let _ = base.set_password(None);
        let client = sales_platform::tls::http_client_builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        Ok(BrokerApi {
            base,
            user,
            password,
            client,
        })
    }

    fn request(&self, method: Method, segments: &[&str]) -> Result<RequestBuilder> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| anyhow::anyhow!("the management URL cannot take a path"))?
            .pop_if_empty()
            .push("api")
            .extend(segments);
        let mut r = self.client.request(method, url);
        if !self.user.is_empty() {
            r = r.basic_auth(&self.user, self.password.as_deref());
        }
        Ok(r)
    }

    async fn send(&self, r: RequestBuilder) -> Result<reqwest::Response> {
        let r = r.send().await?;
        if !r.status().is_success() {
            bail!(
                "RabbitMQ management API: {} {}",
                r.status(),
                r.text().await?
            );
        }
        Ok(r)
    }

    /// A fresh vhost `name` (an earlier one and all in it deleted) with every right
    /// for `amqp_user`.
    pub async fn fresh_vhost(&self, name: &str, amqp_user: &str) -> Result<()> {
        let old = self
            .request(Method::DELETE, &["vhosts", name])?
            .send()
            .await?;
        if !(old.status().is_success() || old.status() == reqwest::StatusCode::NOT_FOUND) {
            bail!("deleting vhost {name}: {}", old.status());
        }
        self.send(self.request(Method::PUT, &["vhosts", name])?)
            .await?;
        let rights = json!({"configure": ".*", "write": ".*", "read": ".*"});
        self.send(
            self.request(Method::PUT, &["permissions", name, amqp_user])?
                .json(&rights),
        )
        .await?;
        Ok(())
    }

    /// Every queue of `vhost` with its depth.
    pub async fn queues(&self, vhost: &str) -> Result<Vec<QueueDepth>> {
        let r = self
            .send(
                self.request(Method::GET, &["queues", vhost])?
                    .query(&[("columns", "name,messages_ready,messages_unacknowledged")]),
            )
            .await?;
        let queues: Vec<Value> = r.json().await?;
        Ok(queues
            .iter()
            .map(|q| QueueDepth {
                name: q["name"].as_str().unwrap_or_default().to_owned(),
                messages: depth_of(q),
            })
            .collect())
    }

    /// The vhosts of every open connection (one entry per connection).
    pub async fn connection_vhosts(&self) -> Result<Vec<String>> {
        let r = self
            .send(
                self.request(Method::GET, &["connections"])?
                    .query(&[("columns", "vhost")]),
            )
            .await?;
        let connections: Vec<Value> = r.json().await?;
        Ok(connections
            .iter()
            .map(|c| c["vhost"].as_str().unwrap_or_default().to_owned())
            .collect())
    }

    /// Up to `count` messages of `queue`, looked at and put back.
    pub async fn dead_letters(
        &self,
        vhost: &str,
        queue: &str,
        count: u64,
    ) -> Result<Vec<DeadLetter>> {
        let r = self
            .send(
                self.request(Method::POST, &["queues", vhost, queue, "get"])?
                    .json(&json!({"count": count, "ackmode": "ack_requeue_true",
                                  "encoding": "auto", "truncate": 100000})),
            )
            .await?;
        let messages: Vec<Value> = r.json().await?;
        Ok(messages
            .iter()
            .map(|m| {
                let props = &m["properties"];
                let payload: Value =
                    serde_json::from_str(m["payload"].as_str().unwrap_or_default())
                        .unwrap_or_default();
                DeadLetter {
                    queue: queue.to_owned(),
                    message_type: props["type"].as_str().unwrap_or("?").to_owned(),
                    order_id: find_order_id(&payload),
                    reason: props["headers"]["x-death-reason"]
                        .as_str()
                        .map(str::to_owned),
                }
            })
            .collect())
    }
}

/// `order_id` in an event's body, or in its envelope's payload.
fn find_order_id(value: &Value) -> Option<i64> {
    match value {
        Value::Object(map) => map
            .get("order_id")
            .and_then(Value::as_i64)
            .or_else(|| map.values().find_map(find_order_id)),
        _ => None,
    }
}

/// A queue's ready plus unacknowledged messages, if the broker gave both figures.
fn depth_of(queue: &Value) -> Option<u64> {
    Some(queue["messages_ready"].as_u64()? + queue["messages_unacknowledged"].as_u64()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_without_figures_is_of_unknown_depth_not_empty() {
        // Just after RabbitMQ restarts, the management API lists the queues before it
        // has their figures: a short chaos run took that for "every queue empty" and
        // checked while hundreds of messages were still being delivered.
        assert_eq!(depth_of(&json!({"name": "inventory.update-stock"})), None);
        assert_eq!(
            depth_of(&json!({"name": "q", "messages_ready": 3})),
            None,
            "half the figures"
        );
        assert_eq!(
            depth_of(&json!({"name": "q", "messages_ready": 3, "messages_unacknowledged": 2})),
            Some(5)
        );
    }

    #[test]
    fn the_order_id_is_found_inside_the_envelope() {
        let body = json!({"message_id": "m", "payload": {"order_id": 42, "items": []}});
        assert_eq!(find_order_id(&body), Some(42));
        assert_eq!(find_order_id(&json!({"sku": "x"})), None);
    }
}
