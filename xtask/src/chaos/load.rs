//! The shop's customers during a chaos run: closed-loop clients that place an order
//! through the gateway, then pay it, cancel it or leave it unpaid, and retry like a
//! careful client: on a connection error, a 429, a 5xx or a 409 "key in use", the
//! same request again with the SAME Idempotency-Key, backing off, within a budget.
//! Some customers pay and cancel at once. What each client was told is kept in a
//! [`Ledger`]: the checker holds the system to it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{RequestBuilder, StatusCode};
use serde_json::{Value, json};

use super::timeline::Timeline;

/// What a client was told about an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Told {
    /// It exists (placed; nothing more learned).
    Placed,
    Paid,
    Declined,
    Cancelled,
    /// Both the payment and the cancellation were answered 200: a contradiction.
    PaidAndCancelled,
}

/// Everything the clients were told.
#[derive(Debug, Default)]
pub struct Ledger {
    pub told: BTreeMap<i64, Told>,
    /// Every order id each idempotency key was answered with.
    pub keys: BTreeMap<String, BTreeSet<i64>>,
}

/// The load's figures.
#[derive(Debug, Default)]
pub struct Stats {
    /// Latency of each successful attempt, in microseconds, per step.
    pub attempt_us: BTreeMap<&'static str, Vec<u64>>,
    /// Latency of each step from its first attempt to its answer, retries included.
    pub step_us: BTreeMap<&'static str, Vec<u64>>,
    /// Failed attempts and refusals by kind (`place order: 503`, `pay order: connection`).
    pub errors: BTreeMap<String, u64>,
    pub placed: u64,
    pub paid: u64,
    pub declined: u64,
    pub cancelled: u64,
    pub left_unpaid: u64,
    /// Paid and cancelled at once.
    pub raced: u64,
    pub refused: u64,
    pub gave_up: u64,
}

/// Shared by every client.
pub struct Shop {
    pub http: reqwest::Client,
    pub gateway: String,
    /// The catalogue's product ids.
    pub products: Vec<i64>,
    /// Prefix of every idempotency key of the run.
    pub run_id: String,
    /// How long one request is retried before the client gives up on it.
    pub retry_budget: Duration,
    pub stop: AtomicBool,
    pub ledger: Mutex<Ledger>,
    pub stats: Mutex<Stats>,
    pub timeline: Arc<Timeline>,
}

enum Answer {
    Ok(Value),
    /// A final answer other than 2xx.
    Refused(StatusCode),
    GaveUp,
}

impl Shop {
    fn stats(&self, change: impl FnOnce(&mut Stats)) {
        if let Ok(mut s) = self.stats.lock() {
            change(&mut s);
        }
    }

    fn tell(&self, order_id: i64, told: Told) {
        if let Ok(mut l) = self.ledger.lock() {
            l.told.insert(order_id, told);
        }
    }

    /// Send `make()` until it gets a final answer or the budget is spent.
    async fn call(&self, step: &'static str, make: impl Fn() -> RequestBuilder) -> (Answer, u32) {
        let first = Instant::now();
        let mut backoff = Duration::from_millis(250);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let sent = Instant::now();
            let kind = match make().send().await {
                Ok(r) => {
                    let status = r.status();
                    let body = r.json::<Value>().await.unwrap_or(Value::Null);
                    let in_use = body["error"]["code"] == "idempotency_key_in_use";
                    if status.is_success() {
                        let us =
                            |t: Instant| u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
                        self.stats(|s| {
                            s.attempt_us.entry(step).or_default().push(us(sent));
                            s.step_us.entry(step).or_default().push(us(first));
                        });
                        return (Answer::Ok(body), attempts);
                    }
                    let retry = status == StatusCode::TOO_MANY_REQUESTS
                        || status.is_server_error()
                        || (status == StatusCode::CONFLICT && in_use);
                    if !retry {
                        self.stats(|s| {
                            *s.errors
                                .entry(format!("{step}: {} (final)", status.as_u16()))
                                .or_default() += 1
                        });
                        return (Answer::Refused(status), attempts);
                    }
                    if in_use {
                        "409 key in use".to_owned()
                    } else {
                        status.as_u16().to_string()
                    }
                }
                Err(e) if e.is_timeout() => "timeout".to_owned(),
                Err(_) => "connection".to_owned(),
            };
            self.stats(|s| *s.errors.entry(format!("{step}: {kind}")).or_default() += 1);
            self.timeline.at_now(|s| s.errors += 1);
            if first.elapsed() > self.retry_budget {
                self.stats(|s| s.gave_up += 1);
                return (Answer::GaveUp, attempts);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(4));
        }
    }

    /// The order's status as the API shows it (after a retried pay or cancel was
    /// refused: an earlier attempt may have gone through).
    async fn learn(&self, token: &str, order_id: i64) -> Option<Told> {
        let url = format!("{}/api/v1/orders/{order_id}", self.gateway);
        let (answer, _) = self
            .call("read order", || self.http.get(&url).bearer_auth(token))
            .await;
        let Answer::Ok(order) = answer else {
            return None;
        };
        match order["status"].as_str()? {
            "CONFIRMED" | "SHIPPED" | "DELIVERED" => Some(Told::Paid),
            "FAILED" => Some(Told::Declined),
            "CANCELLED" => Some(Told::Cancelled),
            _ => None,
        }
    }
}

/// One customer: orders in a loop until the shop says stop, finishing the order at hand.
pub async fn customer(shop: Arc<Shop>, client: usize, token: String) {
    let mut rng =
        XorShift(0x9E37_79B9_7F4A_7C15 ^ (client as u64 + 1).wrapping_mul(0x2545_F491_4F6C_DD1D));
    let mut round = 0u64;
    while !shop.stop.load(Ordering::Relaxed) {
        round += 1;
        let product = shop.products[(rng.next() % shop.products.len() as u64) as usize];
        let quantity = 1 + rng.next() % 3;
        let key = format!("{}-c{client}-o{round}", shop.run_id);
        let body = json!({"items": [{"product_id": product, "quantity": quantity}]});
        let url = format!("{}/api/v1/orders", shop.gateway);
        let place = || {
            shop.http
                .post(&url)
                .bearer_auth(&token)
                .header("idempotency-key", &key)
                .json(&body)
        };
        let order_id = match shop.call("place order", place).await.0 {
            Answer::Ok(order) => match order["order_id"].as_i64() {
                Some(id) => id,
                None => continue,
            },
            Answer::Refused(_) => {
                shop.stats(|s| s.refused += 1);
                continue;
            }
            Answer::GaveUp => continue,
        };
        if let Ok(mut l) = shop.ledger.lock() {
            l.keys.entry(key.clone()).or_default().insert(order_id);
            l.told.entry(order_id).or_insert(Told::Placed);
        }
        shop.stats(|s| s.placed += 1);
        shop.timeline.at_now(|s| s.placed += 1);

        // About seven in ten are paid, one in six cancelled, one in twenty paid and
        // cancelled at once (an impatient customer with two tabs: at most one may
        // succeed, and money taken for a cancelled order goes back), the rest left
        // unpaid for the unpaid-order timeout.
        let told = match rng.next() % 100 {
            0..72 => settle(&shop, &token, order_id, "pay").await,
            72..88 => settle(&shop, &token, order_id, "cancel").await,
            88..93 => race(&shop, &token, order_id).await,
            _ => {
                shop.stats(|s| s.left_unpaid += 1);
                continue;
            }
        };
        if let Some(told) = told {
            shop.tell(order_id, told);
            shop.stats(|s| match told {
                Told::Paid => s.paid += 1,
                Told::Declined => s.declined += 1,
                Told::Cancelled => s.cancelled += 1,
                Told::Placed | Told::PaidAndCancelled => {}
            });
        }
    }
}

/// Pay or cancel (`action`) and learn the outcome.
async fn settle(shop: &Shop, token: &str, order_id: i64, action: &str) -> Option<Told> {
    let url = format!("{}/api/v1/orders/{order_id}/{action}", shop.gateway);
    let step = if action == "pay" {
        "pay order"
    } else {
        "cancel order"
    };
    let (answer, attempts) = shop
        .call(step, || shop.http.post(&url).bearer_auth(token))
        .await;
    outcome(shop, token, order_id, action, answer, attempts).await
}

async fn outcome(
    shop: &Shop,
    token: &str,
    order_id: i64,
    action: &str,
    answer: Answer,
    attempts: u32,
) -> Option<Told> {
    match (answer, action) {
        (Answer::Ok(_), "pay") => Some(Told::Paid),
        (Answer::Ok(_), _) => Some(Told::Cancelled),
        (Answer::Refused(StatusCode::PAYMENT_REQUIRED), "pay") => Some(Told::Declined),
        // Not PENDING any more: after a retry, an earlier attempt went through.
        (Answer::Refused(StatusCode::CONFLICT), _) if attempts > 1 => {
            shop.learn(token, order_id).await
        }
        _ => None,
    }
}

/// Pay and cancel at once: what each answer said, or what the order shows.
async fn race(shop: &Shop, token: &str, order_id: i64) -> Option<Told> {
    shop.stats(|s| s.raced += 1);
    let pay_url = format!("{}/api/v1/orders/{order_id}/pay", shop.gateway);
    let cancel_url = format!("{}/api/v1/orders/{order_id}/cancel", shop.gateway);
    let ((pay, _), (cancel, _)) = tokio::join!(
        shop.call("pay (racing a cancel)", || shop
            .http
            .post(&pay_url)
            .bearer_auth(token)),
        shop.call("cancel (racing a pay)", || shop
            .http
            .post(&cancel_url)
            .bearer_auth(token)),
    );
    match (pay, cancel) {
        (Answer::Ok(_), Answer::Ok(_)) => Some(Told::PaidAndCancelled),
        (Answer::Ok(_), _) => Some(Told::Paid),
        (_, Answer::Ok(_)) => Some(Told::Cancelled),
        (Answer::Refused(StatusCode::PAYMENT_REQUIRED), _) => Some(Told::Declined),
        _ => shop.learn(token, order_id).await,
    }
}

/// A small deterministic generator: each client's choices are the same run to run.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// The chaos catalogue: (sku, name, price in cents). With 1 to 3 units of one
/// product an order, 3 of the 15 equally likely orders reach the payment service's
/// decline limit (1000.00): about one payment in five is declined.
pub const CATALOGUE: [(&str, &str, i64); 5] = [
    ("CHAOS-GRINDER", "Burr grinder", 24_900),
    ("CHAOS-ESPRESSO", "Espresso machine", 39_900),
    ("CHAOS-KETTLE", "Pour-over kettle", 8_900),
    ("CHAOS-ROASTER", "Home roaster", 59_900),
    ("CHAOS-SCALE", "Brewing scale", 14_900),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The decline limit of the payment service, in cents (`DECLINE_AT`, 1000.00).
    const DECLINE_AT_CENTS: i64 = 100_000;

    #[test]
    fn about_one_order_in_five_reaches_the_decline_limit() {
        let combos: Vec<i64> = CATALOGUE
            .iter()
            .flat_map(|(_, _, price)| (1..=3).map(move |q| price * q))
            .collect();
        let declined = combos.iter().filter(|t| **t >= DECLINE_AT_CENTS).count();
        assert_eq!((declined, combos.len()), (3, 15));
    }

    #[test]
    fn the_generator_spreads_its_choices() {
        let mut rng = XorShift(7);
        let mut seen = [0u32; 5];
        for _ in 0..1000 {
            seen[(rng.next() % 5) as usize] += 1;
        }
        assert!(seen.iter().all(|n| (150..250).contains(n)), "{seen:?}");
    }
}
