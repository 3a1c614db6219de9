//! The load of one step, from tokio tasks sharing one keep-alive HTTP client.
//!
//! - Closed loop: `clients` clients, each placing its next order as soon as the last
//!   one is answered, until the step ends; latency from send to answer.
//! - Open loop: orders sent at a constant rate from fixed send times, whatever the
//!   answers; latency from the *intended* send time, so a system that falls behind
//!   cannot hide its queue (no coordinated omission). At most [`MAX_OUTSTANDING`]
//!   orders wait for an answer; a send beyond that is not made and counts as `late`.
//!
//! Latencies go into HDR histograms (microseconds); a progress line shows the step.

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::Instant;

use super::scenarios::{Calls, Failure, Flow};

/// Open loop: orders that may wait for an answer at once.
pub const MAX_OUTSTANDING: usize = 1024;

/// How the load is offered.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Shape {
    Closed { clients: usize },
    Open { rate: f64 },
}

impl Shape {
    pub fn label(self) -> String {
        match self {
            Shape::Closed { clients } => format!("{clients} clients"),
            Shape::Open { rate } => format!("{rate} orders/s offered"),
        }
    }
}

/// What one step's orders gave.
pub struct Tally {
    /// Whole orders that succeeded, microseconds.
    pub orders: Histogram<u64>,
    /// Each request of the successful orders, by name.
    pub calls: BTreeMap<&'static str, Histogram<u64>>,
    /// Orders that failed, by why.
    pub errors: BTreeMap<String, u64>,
}

/// An empty histogram of microseconds, 1 µs to 10 min at 3 significant digits.
#[allow(clippy::expect_used)] // constant bounds: it fails only for low < 1, high < 2 low or > 5 digits
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid constant bounds")
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

impl Tally {
    fn new() -> Tally {
        Tally {
            orders: histogram(),
            calls: BTreeMap::new(),
            errors: BTreeMap::new(),
        }
    }

    fn record(&mut self, took: Duration, outcome: Result<Calls, Failure>) {
        match outcome {
            Ok(calls) => {
                self.orders.saturating_record(micros(took));
                for (name, d) in calls {
                    self.calls
                        .entry(name)
                        .or_insert_with(histogram)
                        .saturating_record(micros(d));
                }
            }
            Err(Failure(why)) => *self.errors.entry(why).or_default() += 1,
        }
    }

    fn merge(&mut self, other: Tally) {
        let _ = self.orders.add(&other.orders);
        for (name, h) in other.calls {
            let _ = self.calls.entry(name).or_insert_with(histogram).add(&h);
        }
        for (why, n) in other.errors {
            *self.errors.entry(why).or_default() += n;
        }
    }
}

/// A step's load: what its orders gave, and how long it ran (until the last answer).
pub struct Loaded {
    pub tally: Tally,
    pub took: Duration,
}

/// Run `flow` for `seconds` in `shape`, showing progress as `label`.
pub async fn run(
    flow: Arc<Flow>,
    http: &reqwest::Client,
    shape: Shape,
    seconds: u64,
    label: String,
) -> Loaded {
    let counts = Arc::new(Counts::default());
    let ticker = tokio::spawn(progress(counts.clone(), label, seconds));
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let tally = match shape {
        Shape::Closed { clients } => closed(flow, http, clients, until, &counts).await,
        Shape::Open { rate } => open(flow, http, rate, until, &counts).await,
    };
    let took = started.elapsed();
    ticker.abort();
    let _ = ticker.await;
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
    Loaded { tally, took }
}

async fn closed(
    flow: Arc<Flow>,
    http: &reqwest::Client,
    clients: usize,
    until: Instant,
    counts: &Arc<Counts>,
) -> Tally {
    let mut workers = tokio::task::JoinSet::new();
    for client in 0..clients {
        let (flow, http, counts) = (flow.clone(), http.clone(), counts.clone());
        workers.spawn(async move {
            let mut tally = Tally::new();
            let mut seq = 0;
            while Instant::now() < until {
                let sent = Instant::now();
                let outcome = flow.order(&http, client, seq).await;
                seq += 1;
                counts.count(&outcome);
                tally.record(sent.elapsed(), outcome);
            }
            tally
        });
    }
    let mut all = Tally::new();
    while let Some(done) = workers.join_next().await {
        if let Ok(tally) = done {
            all.merge(tally);
        }
    }
    all
}

async fn open(
    flow: Arc<Flow>,
    http: &reqwest::Client,
    rate: f64,
    until: Instant,
    counts: &Arc<Counts>,
) -> Tally {
    let tally = Arc::new(Mutex::new(Tally::new()));
    let outstanding = Arc::new(tokio::sync::Semaphore::new(MAX_OUTSTANDING));
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let start = Instant::now();
    let mut orders = tokio::task::JoinSet::new();
    let mut late = 0u64;
    for seq in 0u64.. {
        let intended = start + interval.mul_f64(seq as f64);
        if intended >= until {
            break;
        }
        tokio::time::sleep_until(intended).await;
        let Ok(permit) = outstanding.clone().try_acquire_owned() else {
            late += 1;
            counts.errors.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let (flow, http, counts, tally) =
            (flow.clone(), http.clone(), counts.clone(), tally.clone());
        orders.spawn(async move {
            let outcome = flow.order(&http, seq as usize, seq).await;
            counts.count(&outcome);
            if let Ok(mut tally) = tally.lock() {
                tally.record(intended.elapsed(), outcome);
            }
            drop(permit);
        });
        // Reap the finished ones as we go, so the set stays small.
        while orders.try_join_next().is_some() {}
    }
    while orders.join_next().await.is_some() {}
    let mut all = Tally::new();
    if let Ok(mut tally) = tally.lock() {
        all.merge(std::mem::replace(&mut *tally, Tally::new()));
    }
    if late > 0 {
        *all.errors.entry("late".into()).or_default() += late;
    }
    all
}

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    errors: AtomicU64,
}

impl Counts {
    fn count(&self, outcome: &Result<Calls, Failure>) {
        let counter = if outcome.is_ok() {
            &self.ok
        } else {
            &self.errors
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A line on stderr: redrawn every second on a terminal, every five seconds otherwise.
async fn progress(counts: Arc<Counts>, label: String, seconds: u64) {
    let terminal = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tick.tick().await;
        let elapsed = started.elapsed().as_secs();
        if !terminal && !elapsed.is_multiple_of(5) {
            continue;
        }
        let ok = counts.ok.load(Ordering::Relaxed);
        let line = format!(
            "bench: {label}: {elapsed}/{seconds} s, {ok} orders ({:.0}/s), {} errors",
            ok as f64 / started.elapsed().as_secs_f64(),
            counts.errors.load(Ordering::Relaxed)
        );
        if terminal {
            eprint!("\r{line}\x1b[K");
        } else {
            eprintln!("{line}");
        }
    }
}
