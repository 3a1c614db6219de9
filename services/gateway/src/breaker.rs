//! A circuit breaker for one upstream, as a pure state machine: it never reads a
//! clock, every call is given `now`, so tests drive it through time without sleeping.
//!
//! - **Closed**: requests go through; outcomes are counted in a rolling window of
//!   `buckets` buckets spanning `window`. When at least `min_requests` were seen in
//!   the window and at least `error_percent` % of them failed, it opens.
//! - **Open** for `open_for`: every request is refused at once.
//! - **Half-open**: one trial request goes through (others are refused); success
//!   closes the breaker with a fresh window, failure opens it again.

use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    pub window: Duration,
    pub buckets: u32,
    pub error_percent: u8,
    pub min_requests: u32,
    pub open_for: Duration,
}

impl Default for BreakerConfig {
    /// Seed 002's numbers: 10 s in 10 buckets, 50 %, at least 10 requests; open 10 s.
    fn default() -> Self {
        BreakerConfig {
            window: Duration::from_secs(10),
            buckets: 10,
            error_percent: 50,
            min_requests: 10,
            open_for: Duration::from_secs(10),
        }
    }
}

/// Where the breaker stands, as the `gateway_breaker_state` gauge reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Closed,
    HalfOpen,
    Open,
}

impl State {
    /// 0 closed, 1 half-open, 2 open.
    pub fn gauge(self) -> i64 {
        match self {
            State::Closed => 0,
            State::HalfOpen => 1,
            State::Open => 2,
        }
    }
}

/// Permission to send one request; hand it back with the outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct Permit {
    /// The half-open trial request.
    trial: bool,
    /// Which opening of the breaker the trial belongs to.
    generation: u64,
}

#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    /// Index of the bucket-length slice of time this bucket counts.
    slot: u64,
    ok: u32,
    failed: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Closed,
    Open { until: Instant },
    HalfOpen { trial_out: bool },
}

#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    epoch: Instant,
    bucket_len: Duration,
    buckets: Vec<Bucket>,
    phase: Phase,
    /// Bumped on every opening, so a late answer to an old trial changes nothing.
    generation: u64,
}

impl Breaker {
    pub fn new(config: BreakerConfig, now: Instant) -> Breaker {
        let buckets = config.buckets.max(1);
        let bucket_len = (config.window / buckets).max(Duration::from_millis(1));
        Breaker {
            config,
            epoch: now,
            bucket_len,
            buckets: vec![Bucket::default(); buckets as usize],
            phase: Phase::Closed,
            generation: 0,
        }
    }

    /// The state at `now` (an open breaker whose time is up reads as half-open).
    pub fn state(&self, now: Instant) -> State {
        match self.phase {
            Phase::Closed => State::Closed,
            Phase::Open { until } if now < until => State::Open,
            Phase::Open { .. } | Phase::HalfOpen { .. } => State::HalfOpen,
        }
    }

    /// May a request go out now? `Err` carries how long until it is worth asking again.
    pub fn try_acquire(&mut self, now: Instant) -> Result<Permit, Duration> {
        match self.phase {
            Phase::Closed => Ok(Permit {
                trial: false,
                generation: self.generation,
            }),
            Phase::Open { until } if now < until => Err(until - now),
            Phase::Open { .. } | Phase::HalfOpen { trial_out: false } => {
                self.phase = Phase::HalfOpen { trial_out: true };
                Ok(Permit {
                    trial: true,
                    generation: self.generation,
                })
            }
            // The trial is under way; its answer decides.
            Phase::HalfOpen { trial_out: true } => Err(Duration::from_secs(1)),
        }
    }

    /// The outcome of the request `permit` let through.
    pub fn record(&mut self, permit: Permit, success: bool, now: Instant) {
        if permit.trial {
            if permit.generation != self.generation
                || self.phase != (Phase::HalfOpen { trial_out: true })
            {
                return;
            }
            if success {
                self.close();
            } else {
                self.open(now);
            }
            return;
        }
        if self.phase != Phase::Closed || permit.generation != self.generation {
            // An answer to a request sent before the breaker opened: too late to matter.
            return;
        }
        let bucket = self.bucket_at(now);
        if success {
            bucket.ok += 1;
        } else {
            bucket.failed += 1;
            let (ok, failed) = self.totals(now);
            let total = u64::from(ok) + u64::from(failed);
            if total >= u64::from(self.config.min_requests)
                && u64::from(failed) * 100 >= u64::from(self.config.error_percent) * total
            {
                self.open(now);
            }
        }
    }

    /// The request `permit` let through ended without an outcome (the client went
    /// away): a trial frees its place for the next request.
    pub fn abandon(&mut self, permit: Permit) {
        if permit.trial
            && permit.generation == self.generation
            && self.phase == (Phase::HalfOpen { trial_out: true })
        {
            self.phase = Phase::HalfOpen { trial_out: false };
        }
    }

    /// Successes and failures in the window ending at `now`.
    pub fn totals(&self, now: Instant) -> (u32, u32) {
        let current = self.slot(now);
        let oldest = current.saturating_sub(self.buckets.len() as u64 - 1);
        self.buckets
            .iter()
            .filter(|b| b.slot >= oldest && b.slot <= current)
            .fold((0, 0), |(ok, failed), b| (ok + b.ok, failed + b.failed))
    }

    fn slot(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.epoch);
        // Slot 0 is never used, so a zeroed bucket never looks current.
        (elapsed.as_nanos() / self.bucket_len.as_nanos()) as u64 + 1
    }

    fn bucket_at(&mut self, now: Instant) -> &mut Bucket {
        let slot = self.slot(now);
        let n = self.buckets.len();
        let bucket = &mut self.buckets[(slot % n as u64) as usize];
        if bucket.slot != slot {
            *bucket = Bucket {
                slot,
                ok: 0,
                failed: 0,
            };
        }
        bucket
    }

    fn open(&mut self, now: Instant) {
        self.generation += 1;
        self.phase = Phase::Open {
            until: now + self.config.open_for,
        };
    }

    fn close(&mut self) {
        self.phase = Phase::Closed;
        self.buckets.fill(Bucket::default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);
    const MS: Duration = Duration::from_millis(1);

    fn breaker(t0: Instant) -> Breaker {
        Breaker::new(BreakerConfig::default(), t0)
    }

    fn send(b: &mut Breaker, now: Instant, success: bool) -> bool {
        match b.try_acquire(now) {
            Ok(p) => {
                b.record(p, success, now);
                true
            }
            Err(_) => false,
        }
    }

    #[test]
    fn stays_closed_below_the_minimum_number_of_requests() {
        let t0 = Instant::now();
        let mut b = breaker(t0);
        for i in 0..9 {
            assert!(send(&mut b, t0 + i * 10 * MS, false));
        }
        assert_eq!(b.state(t0 + S), State::Closed);
        assert_eq!(b.totals(t0 + S), (0, 9));
    }

    #[test]
    fn opens_at_the_error_threshold_once_enough_requests_were_seen() {
        let t0 = Instant::now();
        let mut b = breaker(t0);
        for _ in 0..5 {
            send(&mut b, t0, true);
        }
        for _ in 0..4 {
            send(&mut b, t0, false);
        }
        assert_eq!(b.state(t0), State::Closed, "9 requests: too few");
        send(&mut b, t0, false); // 5 of 10 failed: 50 %
        assert_eq!(b.state(t0), State::Open);
        let wait = b.try_acquire(t0 + 3 * S).unwrap_err();
        assert_eq!(wait, 7 * S);
    }

    #[test]
    fn stays_closed_below_the_error_threshold() {
        let t0 = Instant::now();
        let mut b = breaker(t0);
        for i in 0..100 {
            send(&mut b, t0, i % 3 != 0); // 34 % failures
        }
        assert_eq!(b.state(t0), State::Closed);
    }

    #[test]
    fn old_buckets_leave_the_window() {
        let t0 = Instant::now();
        let mut b = breaker(t0);
        for _ in 0..9 {
            send(&mut b, t0, false);
        }
        // 10.5 s later the nine failures are out of the 10 s window.
        let later = t0 + 10 * S + 500 * MS;
        assert_eq!(b.totals(later), (0, 0));
        send(&mut b, later, false);
        assert_eq!(b.state(later), State::Closed);
        // Within the window they still count.
        let t1 = later + 20 * S;
        for i in 0..9 {
            send(&mut b, t1 + i * 900 * MS, false);
        }
        assert_eq!(b.totals(t1 + 8 * 900 * MS), (0, 9));
        send(&mut b, t1 + 9 * S, false);
        assert_eq!(b.state(t1 + 9 * S), State::Open);
    }

    #[test]
    fn half_open_lets_one_trial_through_and_closes_on_success() {
        let t0 = Instant::now();
        let mut b = breaker(t0);
        for _ in 0..10 {
            send(&mut b, t0, false);
        }
        assert_eq!(b.state(t0 + 9 * S), State::Open);
        assert!(b.try_acquire(t0 + 9 * S).is_err());
        let t = t0 + 10 * S;
        assert_eq!(b.state(t), State::HalfOpen);
        let trial = b.try_acquire(t).unwrap();
        assert!(b.try_acquire(t).is_err(), "only one trial at a time");
        b.record(trial, true, t + MS);
        assert_eq!(b.state(t + MS), State::Closed);
        assert_eq!(b.totals(t + MS), (0, 0), "a fresh window");
        assert!(send(&mut b, t + 2 * MS, false));
        assert_eq!(b.state(t + 2 * MS), State::Closed);
    }

    #[test]
    fn a_failed_trial_opens_again() {
        let t0 = Instant::now();
        let mut b = breaker(t0);
        for _ in 0..10 {
            send(&mut b, t0, false);
        }
        let t = t0 + 10 * S;
        let trial = b.try_acquire(t).unwrap();
        b.record(trial, false, t);
        assert_eq!(b.state(t), State::Open);
        assert_eq!(b.try_acquire(t + S).unwrap_err(), 9 * S);
        assert_eq!(b.state(t + 10 * S), State::HalfOpen);
    }

    #[test]
    fn an_abandoned_trial_frees_its_place() {
        let t0 = Instant::now();
        let mut b = breaker(t0);
        for _ in 0..10 {
            send(&mut b, t0, false);
        }
        let t = t0 + 10 * S;
        let trial = b.try_acquire(t).unwrap();
        b.abandon(trial);
        let again = b.try_acquire(t).unwrap();
        b.record(again, true, t);
        assert_eq!(b.state(t), State::Closed);
    }

    #[test]
    fn late_answers_from_before_the_opening_change_nothing() {
        let t0 = Instant::now();
        let mut b = breaker(t0);
        let early = b.try_acquire(t0).unwrap();
        for _ in 0..10 {
            send(&mut b, t0, false);
        }
        let t = t0 + 10 * S;
        let trial = b.try_acquire(t).unwrap();
        b.record(early, true, t);
        b.abandon(early);
        assert_eq!(b.state(t), State::HalfOpen);
        assert!(b.try_acquire(t).is_err());
        b.record(trial, true, t);
        assert_eq!(b.state(t), State::Closed);
        // An old trial's answer after a new opening is ignored too.
        for _ in 0..10 {
            send(&mut b, t, false);
        }
        b.record(trial, true, t);
        assert_eq!(b.state(t), State::Open);
    }

    #[test]
    fn gauge_values() {
        assert_eq!(State::Closed.gauge(), 0);
        assert_eq!(State::HalfOpen.gauge(), 1);
        assert_eq!(State::Open.gauge(), 2);
    }
}
