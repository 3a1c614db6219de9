//! What one order is in each scenario.
//!
//! - one-call: seed 004's `POST /api/v1/orders/` (reserve and charge in one request)
//!   for one unit of a random SKU out of the stocked ones, 1.00 USD, a fresh
//!   idempotency key, no account; at the order service itself (as seed 004's order
//!   service is hit; with `--replicas`, client i at replica i mod N), through the
//!   gateway, or at a peer system.
//! - saga: a signed-in customer through the gateway reads a product, orders one unit
//!   and pays it; shipped (a shipment opened) and notified afterwards, by events.
//! - hot-sku: the one-call order, every one of them on the same SKU (row-lock
//!   contention on one stock row).

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use sales_testkit::identity::{Minter, Who};
use sales_testkit::launch::{Service, Wiring};
use serde_json::{Value, json};

/// The SKU every hot-sku order is for.
pub const HOT_SKU: &str = "SKU-HOT";

/// The SKUs of the one-call scenario, `SKU-0` to `SKU-<n-1>` (the peer is seeded with
/// the same names).
pub fn sku(n: usize) -> String {
    format!("SKU-{n}")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scenario {
    OneCall,
    Saga,
    HotSku,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::OneCall => "one-call",
            Scenario::Saga => "saga",
            Scenario::HotSku => "hot-sku",
        }
    }
}

/// Where the orders go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The order service itself.
    Direct,
    Gateway,
    /// The `--peer-url` system.
    Peer,
}

/// A scenario at a target: one line of the report's charts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Series {
    pub scenario: Scenario,
    pub target: Target,
}

impl Series {
    pub fn label(self) -> String {
        match (self.scenario, self.target) {
            (Scenario::Saga, _) => "saga".into(),
            (s, Target::Direct) => s.name().into(),
            (s, Target::Gateway) => format!("{} via gateway", s.name()),
            (s, Target::Peer) => format!("{} (peer)", s.name()),
        }
    }
}

/// Why an order did not succeed: an HTTP status, `no answer`, `late` (open loop: not
/// sent, too many outstanding), `200 FAILED` (a declined payment).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure(pub String);

/// How long each request of one order took, by name (the saga's three calls).
pub type Calls = Vec<(&'static str, Duration)>;

/// A gateway token for callers without an account, minted by the bench for orders
/// sent straight to the order service (which refuses requests without a token; the
/// gateway would mint the same for a client that sends none). Renewed well before
/// its ten minutes run out.
pub struct AnonymousToken {
    minter: Minter,
    current: RwLock<(String, Instant)>,
}

impl AnonymousToken {
    pub fn new(wiring: &Wiring) -> Arc<AnonymousToken> {
        let minter = Minter::new(
            &wiring.identity.gateway_signing_keys,
            &wiring.identity.customer_signing_keys,
        );
        let token = Self::mint(&minter);
        Arc::new(AnonymousToken {
            minter,
            current: RwLock::new((token, Instant::now())),
        })
    }

    fn mint(minter: &Minter) -> String {
        let who = Who::Anonymous { seed_compat: true };
        minter.token(Service::Order.name(), who).unwrap_or_default()
    }

    pub fn header(&self) -> String {
        if let Ok(current) = self.current.read()
            && current.1.elapsed() < Duration::from_secs(300)
        {
            return format!("Bearer {}", current.0);
        }
        let token = Self::mint(&self.minter);
        if let Ok(mut current) = self.current.write() {
            *current = (token.clone(), Instant::now());
        }
        format!("Bearer {token}")
    }
}

/// Which SKU each one-call order is for.
#[derive(Clone)]
pub enum Skus {
    /// One of `SKU-0`..`SKU-<n-1>`, spread evenly.
    Spread(usize),
    One(&'static str),
}

/// One order of a scenario, as each client sends it.
pub enum Flow {
    OneCall {
        /// Where the orders go: one URL, or one per order replica (see [`replica_of`]).
        urls: Vec<String>,
        auth: Option<Arc<AnonymousToken>>,
        skus: Skus,
        /// Prefix of the idempotency keys: unique per run and step.
        keys: String,
    },
    Saga {
        gateway: String,
        /// `Authorization` header of each customer.
        customers: Arc<Vec<String>>,
        products: Arc<Vec<i64>>,
        keys: String,
    },
}

impl Flow {
    /// Place one order as `client`'s `seq`-th: how long each request took, or why it failed.
    pub async fn order(
        &self,
        http: &reqwest::Client,
        client: usize,
        seq: u64,
    ) -> Result<Calls, Failure> {
        match self {
            Flow::OneCall {
                urls,
                auth,
                skus,
                keys,
            } => {
                let sku = match skus {
                    Skus::Spread(n) => sku((spread(client, seq) % *n as u64) as usize),
                    Skus::One(sku) => (*sku).to_owned(),
                };
                let Some(url) = urls.get(replica_of(client, urls.len())) else {
                    return Err(Failure("no URL".into()));
                };
                let mut request = http.post(url).json(&json!({
                    "item_sku": sku, "quantity": 1, "amount": "1.00", "currency": "USD",
                    "idempotency_key": format!("{keys}-{client}-{seq}"),
                }));
                if let Some(auth) = auth {
                    request = request.header("authorization", auth.header());
                }
                let sent = Instant::now();
                let answer = send(request).await?;
                if answer["status"] == "FAILED" {
                    return Err(Failure("200 FAILED".into()));
                }
                Ok(vec![("order", sent.elapsed())])
            }
            Flow::Saga {
                gateway,
                customers,
                products,
                keys,
            } => {
                let auth = &customers[client % customers.len()];
                let product = products[(spread(client, seq) % products.len() as u64) as usize];
                let mut calls = Vec::with_capacity(3);
                let t = Instant::now();
                let browse = http.get(format!("{gateway}/api/v1/products/{product}"));
                send(browse.header("authorization", auth)).await?;
                calls.push(("browse", t.elapsed()));
                let t = Instant::now();
                let place = http
                    .post(format!("{gateway}/api/v1/orders"))
                    .header("authorization", auth)
                    .header("idempotency-key", format!("{keys}-{client}-{seq}"))
                    .json(&json!({"items": [{"product_id": product, "quantity": 1}]}));
                let order = send(place).await?;
                calls.push(("place", t.elapsed()));
                let id = order["order_id"]
                    .as_i64()
                    .ok_or_else(|| Failure("no order_id".into()))?;
                let t = Instant::now();
                let pay = http.post(format!("{gateway}/api/v1/orders/{id}/pay"));
                let paid = send(pay.header("authorization", auth)).await?;
                if paid["status"] == "FAILED" {
                    return Err(Failure("200 FAILED".into()));
                }
                calls.push(("pay", t.elapsed()));
                Ok(calls)
            }
        }
    }
}

/// Which of `replicas` places `client`'s orders: client i at replica i mod N, so each
/// replica has the same number of clients (one more for the first ones when N does
/// not divide them). The open loop's order `seq` counts as its client.
pub fn replica_of(client: usize, replicas: usize) -> usize {
    client % replicas.max(1)
}

/// A well-spread number from a client and its order count (SplitMix64).
fn spread(client: usize, seq: u64) -> u64 {
    let mut z = ((client as u64) << 40 ^ seq).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Send; the JSON answer of a 2xx (`Null` if it is not JSON), else the failure.
async fn send(request: reqwest::RequestBuilder) -> Result<Value, Failure> {
    let answer = request
        .send()
        .await
        .map_err(|_| Failure("no answer".into()))?;
    let status = answer.status();
    // The body is read either way, so the connection is kept for the next order.
    let body = answer.bytes().await.unwrap_or_default();
    if !status.is_success() {
        return Err(Failure(status.as_u16().to_string()));
    }
    Ok(serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_dealt_to_the_replicas_in_turn() {
        let dealt: Vec<usize> = (0..7).map(|client| replica_of(client, 3)).collect();
        assert_eq!(dealt, [0, 1, 2, 0, 1, 2, 0]);
        let mut per_replica = [0; 3];
        for client in 0..32 {
            per_replica[replica_of(client, 3)] += 1;
        }
        assert_eq!(per_replica, [11, 11, 10]);
        assert!((0..8).all(|client| replica_of(client, 1) == 0));
    }
}
