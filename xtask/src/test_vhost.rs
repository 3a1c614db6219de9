//! A RabbitMQ virtual host of its own for each `cargo xtask test` run.
//!
//! Tests name their exchanges and queues with a unique prefix and delete them when they
//! pass; a failing or killed test leaves them behind. On a machine that runs the suite
//! again and again (CI), thousands of durable queues piled up in the broker, and a node
//! restarting with them spent minutes recovering them. Running the tests in a vhost that
//! the run deletes at its end (and that a later run deletes if this one was killed) keeps
//! the broker empty between runs, whatever the tests leave.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};
use reqwest::{Client, RequestBuilder, Url};

/// Vhosts of this kind are named `sales-test-<unix seconds>-<pid>`.
const PREFIX: &str = "sales-test-";
/// A run's vhost older than this is left over from a killed run (a run takes < 90 min).
const STALE_AFTER: Duration = Duration::from_secs(3 * 3600);
/// Queues that tests left in the default vhost before runs had a vhost of their own:
/// `t` and twelve hexadecimal digits, then a dot (libs/testkit `TestBroker`).
fn is_test_queue(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.len() > 14
        && bytes[0] == b't'
        && bytes[1..13].iter().all(u8::is_ascii_hexdigit)
        && bytes[13] == b'.'
}

/// The run's vhost on a broker with a management API.
pub struct TestVhost {
    management: Url,
    user: String,
    password: Option<String>,
    client: Client,
    name: String,
}

impl TestVhost {
    /// Deletes vhosts left by killed runs and test queues left in the default vhost by
    /// older runs, then creates this run's vhost with every permission for the AMQP user
    /// of `amqp_url`.
    pub async fn create(management_url: &str, amqp_url: &str) -> Result<TestVhost> {
        let mut management = Url::parse(management_url).context("management URL")?;
        let user = management.username().to_owned();
        let password = management.password().map(str::to_owned);
        let _ = management.set_username("");
        let _ = management.set_password(None);
        let client = sales_platform::tls::http_client_builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let name = format!("{PREFIX}{}-{}", now.as_secs(), std::process::id());
        let vhost = TestVhost {
            management,
            user,
            password,
            client,
            name,
        };
        vhost.delete_leftovers(now).await?;

        vhost
            .send(vhost.request(reqwest::Method::PUT, &["vhosts", &vhost.name]))
            .await?;
        let amqp_user = Url::parse(amqp_url)
            .context("AMQP URL")?
            .username()
            .to_owned();
        let amqp_user = if amqp_user.is_empty() {
            "guest".to_owned()
        } else {
            amqp_user
        };
        vhost
            .send(
                vhost
                    .request(
                        reqwest::Method::PUT,
                        &["permissions", &vhost.name, &amqp_user],
                    )
                    .json(&serde_json::json!({"configure": ".*", "write": ".*", "read": ".*"})),
            )
            .await?;
        Ok(vhost)
    }

    /// `amqp_url` pointed at this vhost.
    pub fn amqp_url(&self, amqp_url: &str) -> Result<String> {
        let mut url = Url::parse(amqp_url).context("AMQP URL")?;
        url.set_path(&format!("/{}", self.name));
        Ok(url.to_string())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Deletes the vhost with everything the tests left in it.
    pub async fn delete(self) -> Result<()> {
        self.send(self.request(reqwest::Method::DELETE, &["vhosts", &self.name]))
            .await
    }

    async fn delete_leftovers(&self, now: Duration) -> Result<()> {
        let vhosts = self
            .list(&["vhosts"])
            .await
            .context("listing the broker's vhosts")?;
        for vhost in vhosts {
            let Some(started) = vhost
                .strip_prefix(PREFIX)
                .and_then(|rest| rest.split('-').next())
                .and_then(|secs| secs.parse::<u64>().ok())
            else {
                continue;
            };
            if now.as_secs().saturating_sub(started) > STALE_AFTER.as_secs() {
                eprintln!("xtask: deleting vhost {vhost}, left by a test run that did not finish");
                self.send(self.request(reqwest::Method::DELETE, &["vhosts", &vhost]))
                    .await?;
            }
        }
        let queues = self
            .list(&["queues", "/"])
            .await
            .context("listing the default vhost's queues")?;
        let leftovers: Vec<String> = queues.into_iter().filter(|q| is_test_queue(q)).collect();
        if !leftovers.is_empty() {
            eprintln!(
                "xtask: deleting {} test queues left in the default vhost by earlier runs",
                leftovers.len()
            );
        }
        for queue in leftovers {
            self.send(self.request(reqwest::Method::DELETE, &["queues", "/", &queue]))
                .await?;
        }
        Ok(())
    }

    /// The `name` of every object a management API listing returns.
    async fn list(&self, path: &[&str]) -> Result<Vec<String>> {
        let response = self
            .request(reqwest::Method::GET, path)
            .query(&[("columns", "name")])
            .send()
            .await?
            .error_for_status()?;
        let items: Vec<serde_json::Value> = response.json().await?;
        Ok(items
            .iter()
            .filter_map(|i| i["name"].as_str().map(str::to_owned))
            .collect())
    }

    /// A request to `api/<segments>`, each segment percent-encoded (vhost `/` included).
    fn request(&self, method: reqwest::Method, segments: &[&str]) -> RequestBuilder {
        let mut url = self.management.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().push("api").extend(segments);
        }
        let request = self.client.request(method, url);
        if self.user.is_empty() {
            request
        } else {
            request.basic_auth(&self.user, self.password.as_deref())
        }
    }

    async fn send(&self, request: RequestBuilder) -> Result<()> {
        let response = request.send().await?;
        let status = response.status();
        if !status.is_success() && status != reqwest::StatusCode::NOT_FOUND {
            let body = response.text().await.unwrap_or_default();
            bail!("RabbitMQ management API answered {status}: {body}");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::is_test_queue;

    #[test]
    fn test_queues_are_recognised_by_their_prefix() {
        assert!(is_test_queue("t0123456789ab.order.payment-events"));
        assert!(!is_test_queue("order.payment-events"));
        assert!(!is_test_queue("tz123456789ab.order"));
        assert!(!is_test_queue("t0123456789ab"));
    }
}
