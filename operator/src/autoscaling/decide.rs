//! Where the operator picks a consumer's replica count: [`decide`], one pure function
//! of the policy, the queues as read, the replicas running, what it recommended before
//! (the [`Window`]) and the time it is given. No I/O and no clock of its own: the
//! scaler (`scaler.rs`) calls it every tick with the broker's numbers and the wall
//! clock, the simulation (`simulate.rs`) with a load model and a simulated clock, and
//! the tests with whatever they like.
//!
//! The rules (`docs/operator/autoscaling.md` explains why):
//!
//! 1. depth = ready + unacknowledged messages, summed over the service's queues;
//!    recommended = clamp(ceil(depth / target), min, max), and at least 1 while
//!    messages are still published to any of them.
//! 2. More than running: scale up at once.
//! 3. Fewer than running: scale down only to the largest need seen within the
//!    stabilization window (so only after the window has passed since more were
//!    needed), not at all while the rates say a backlog grows, and never below the
//!    replicas that keep up with the publish rate at the throughput one replica has
//!    shown while messages waited (so a burst the consumers keep up with, queue empty,
//!    does not look like "no work").
//! 4. Queues that cannot be read: keep the replicas, and count the blind time as if the
//!    running replicas had been needed (no scale-down for a window after).

use std::collections::VecDeque;
use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::crd::ConsumerAutoscaling;

/// A backlog grows when messages arrive faster than they are acknowledged by more than
/// this many per second...
pub const GROWTH_MIN_RATE: f64 = 0.1;
/// ...and by more than this share of the publish rate (rates are 5-second averages:
/// a consumer that keeps up shows a little noise either way).
pub const GROWTH_RELATIVE: f64 = 0.05;
/// Room kept above the publish rate when counting the replicas that keep up with it.
pub const THROUGHPUT_HEADROOM: f64 = 1.1;
/// Weight of a new sample in the learned per-replica throughput (moving average).
pub const THROUGHPUT_WEIGHT: f64 = 0.3;

/// One consumer's scaling settings, as the decision reads them.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub min_replicas: u32,
    pub max_replicas: u32,
    /// Ready + unacknowledged messages one replica is expected to keep up with.
    pub target_per_replica: u64,
    /// How long fewer replicas must have been enough before replicas are removed.
    pub stabilization: Duration,
}

impl Policy {
    /// The policy of a SalesSystem's `autoscaling.<service>`.
    pub fn from_spec(spec: &ConsumerAutoscaling) -> Result<Policy, String> {
        let stabilization =
            humantime::parse_duration(&spec.scale_down_stabilization).map_err(|e| {
                format!(
                    "scaleDownStabilization {:?}: {e}",
                    spec.scale_down_stabilization
                )
            })?;
        let min = if spec.scale_to_zero {
            0
        } else {
            spec.min_replicas.max(1)
        };
        let min_replicas = u32::try_from(min).unwrap_or(0);
        let max_replicas = u32::try_from(spec.max_replicas)
            .unwrap_or(0)
            .max(min_replicas);
        Ok(Policy {
            min_replicas,
            max_replicas,
            target_per_replica: u64::try_from(spec.target_messages_per_replica)
                .unwrap_or(1)
                .max(1),
            stabilization,
        })
    }
}

/// One queue as read from the broker.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct QueueLoad {
    pub name: String,
    /// Messages waiting for a consumer.
    pub ready: u64,
    /// Messages delivered to a consumer, not acknowledged yet (work in hand).
    pub unacknowledged: u64,
    /// Messages published to the queue per second.
    pub publish_rate: f64,
    /// Messages acknowledged per second.
    pub ack_rate: f64,
    /// Kafka: the consumer group whose lag this is (the queue is its topic).
    pub consumer_group: Option<String>,
    /// Kafka: the topic's partitions, the most consumers of the group that can work.
    pub partitions: Option<u32>,
}

impl QueueLoad {
    /// Ready plus unacknowledged: every message not finished yet.
    pub fn depth(&self) -> u64 {
        self.ready.saturating_add(self.unacknowledged)
    }

    /// The rates say the backlog grows: there is one, and messages arrive faster than
    /// they are acknowledged (beyond noise).
    pub fn is_growing(&self) -> bool {
        let excess = self.publish_rate - self.ack_rate;
        self.depth() > 0 && excess > GROWTH_MIN_RATE && excess > GROWTH_RELATIVE * self.publish_rate
    }

    /// Messages are still published to the queue.
    pub fn has_traffic(&self) -> bool {
        self.publish_rate > 0.0
    }
}

/// What the scaler could read for one service.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Reading<'a> {
    /// Every queue of the service, and how many replicas were consuming (ready pods).
    Queues {
        queues: &'a [QueueLoad],
        consuming: u32,
    },
    /// The broker (or its management API) could not be read.
    Unavailable,
}

impl<'a> Reading<'a> {
    pub fn queues(queues: &'a [QueueLoad], consuming: u32) -> Self {
        Reading::Queues { queues, consuming }
    }
}

/// What the decision remembers between ticks: the needs of the last stabilization
/// window, as a strictly decreasing run of `(when, replicas)` (an entry is dropped as
/// soon as a later one is as large, so the first is always the largest within the
/// window, and the run never holds more entries than there are distinct replica
/// counts), and the throughput one replica showed while messages waited.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Window {
    entries: VecDeque<(Timestamp, u32)>,
    /// Messages one replica acknowledges per second when it has all it can take
    /// (learned while messages wait in the queue); unknown until then.
    throughput: Option<f64>,
}

impl Window {
    /// A window that acts as if `replicas` had just been recommended: what the scaler
    /// starts from when it first sees a consumer (at start-up, or after a leader
    /// change), so that it never scales down before a window has passed.
    pub fn starting(replicas: u32, now: Timestamp) -> Window {
        let mut window = Window::default();
        window.record(now, replicas);
        window
    }

    fn record(&mut self, now: Timestamp, replicas: u32) {
        while self.entries.back().is_some_and(|(_, r)| *r <= replicas) {
            self.entries.pop_back();
        }
        self.entries.push_back((now, replicas));
    }

    /// Forget recommendations made `stabilization` or longer ago.
    fn expire(&mut self, now: Timestamp, stabilization: Duration) {
        while self
            .entries
            .front()
            .is_some_and(|(at, _)| until(*at, stabilization) <= now)
        {
            self.entries.pop_front();
        }
    }

    /// The largest recommendation within the window.
    pub fn peak(&self) -> Option<u32> {
        self.entries.front().map(|(_, r)| *r)
    }

    /// When no recommendation of `replicas` or more remains in the window.
    fn holds_until(&self, replicas: u32, stabilization: Duration) -> Option<Timestamp> {
        self.entries
            .iter()
            .take_while(|(_, r)| *r >= replicas)
            .last()
            .map(|(at, _)| until(*at, stabilization))
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> impl Iterator<Item = (Timestamp, u32)> + '_ {
        self.entries.iter().copied()
    }

    /// The learned per-replica throughput (messages per second), if any.
    pub fn throughput(&self) -> Option<f64> {
        self.throughput
    }

    /// Learn from a reading: while messages wait (ready > 0), every consuming replica
    /// is as busy as it can be, so acks per replica is what one replica can do.
    fn learn(&mut self, queues: &[QueueLoad], consuming: u32) {
        let waiting: u64 = queues.iter().map(|q| q.ready).sum();
        let acked: f64 = queues.iter().map(|q| q.ack_rate).sum();
        if consuming == 0 || waiting == 0 || acked <= 0.0 {
            return;
        }
        let sample = acked / f64::from(consuming);
        self.throughput = Some(match self.throughput {
            Some(old) => old + THROUGHPUT_WEIGHT * (sample - old),
            None => sample,
        });
    }
}

/// The replicas that keep up with the publish rate at the learned throughput.
fn keeping_up(policy: &Policy, queues: &[QueueLoad], window: &Window) -> Option<u32> {
    let throughput = window.throughput.filter(|t| *t > 0.0)?;
    let published: f64 = queues.iter().map(|q| q.publish_rate).sum();
    let needed = (published * THROUGHPUT_HEADROOM / throughput).ceil();
    let needed = if needed.is_finite() && needed > 0.0 {
        needed.min(f64::from(u32::MAX)) as u32
    } else {
        0
    };
    Some(needed.clamp(
        policy.min_replicas,
        policy.max_replicas.max(policy.min_replicas),
    ))
}

fn until(at: Timestamp, window: Duration) -> Timestamp {
    SignedDuration::try_from(window)
        .ok()
        .and_then(|w| at.checked_add(w).ok())
        .unwrap_or(Timestamp::MAX)
}

/// Why a decision came out as it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// More replicas were needed: added at once.
    ScaledUp,
    /// Fewer have been enough for a whole window: removed.
    ScaledDown,
    /// The running replicas are what the formula asks for.
    Steady,
    /// Fewer would do now, but more were needed within the window.
    Stabilizing,
    /// Fewer would do by depth, but the rates say the backlog grows.
    BacklogGrowing,
    /// Fewer would do by depth, but not keep up with the publish rate.
    KeepingUp,
    /// The queues could not be read: the replicas are kept.
    Unavailable,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::ScaledUp => "ScaledUp",
            Reason::ScaledDown => "ScaledDown",
            Reason::Steady => "Steady",
            Reason::Stabilizing => "Stabilizing",
            Reason::BacklogGrowing => "BacklogGrowing",
            Reason::KeepingUp => "KeepingUp",
            Reason::Unavailable => "Unavailable",
        }
    }
}

/// The outcome of one [`decide`].
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// The replicas to run from now on.
    pub replicas: u32,
    /// What the formula asks for now, before stabilization (`None` when unread).
    pub recommended: Option<u32>,
    /// Ready + unacknowledged over the service's queues (`None` when unread).
    pub depth: Option<u64>,
    /// Whether a queue's backlog grows.
    pub growing: bool,
    /// Replicas that keep up with the publish rate at the learned per-replica
    /// throughput (`None` until learned, or when unread): the floor of a scale-down.
    pub keeping_up: Option<u32>,
    pub reason: Reason,
    /// While stabilizing: the earliest time the replicas may come down.
    pub hold_until: Option<Timestamp>,
    /// The window to pass to the next decision.
    pub window: Window,
}

/// clamp(ceil(depth / target), min, max) over `queues` (depths summed), and at least 1
/// while messages are published to any of them.
pub fn recommend(policy: &Policy, queues: &[QueueLoad]) -> u32 {
    let depth: u64 = queues.iter().map(QueueLoad::depth).sum();
    let mut wanted = depth.div_ceil(policy.target_per_replica.max(1));
    if queues.iter().any(QueueLoad::has_traffic) {
        wanted = wanted.max(1);
    }
    let wanted = u32::try_from(wanted).unwrap_or(u32::MAX);
    wanted.clamp(
        policy.min_replicas,
        policy.max_replicas.max(policy.min_replicas),
    )
}

/// The replicas `current` consumers should become, given what was read at `now`.
pub fn decide(
    policy: &Policy,
    current: u32,
    reading: Reading<'_>,
    window: &Window,
    now: Timestamp,
) -> Decision {
    let mut window = window.clone();
    let (queues, consuming) = match reading {
        Reading::Unavailable => {
            // Blind: hold what runs, but within the bounds the user sets now (a
            // raised minReplicas still starts consumers, a lowered maxReplicas still
            // stops them: neither needs the depth).
            let held = current.clamp(
                policy.min_replicas,
                policy.max_replicas.max(policy.min_replicas),
            );
            window.record(now, held);
            window.expire(now, policy.stabilization);
            return Decision {
                replicas: held,
                recommended: None,
                depth: None,
                growing: false,
                keeping_up: None,
                reason: Reason::Unavailable,
                hold_until: None,
                window,
            };
        }
        Reading::Queues { queues, consuming } => (queues, consuming),
    };
    let depth = queues.iter().map(QueueLoad::depth).sum();
    let growing = queues.iter().any(QueueLoad::is_growing);
    let recommended = recommend(policy, queues);
    window.learn(queues, consuming);
    let keeping_up = keeping_up(policy, queues, &window);
    // What is needed now: the formula, or (never above the running replicas: the floor
    // only holds replicas, it never adds any) what keeps up with the publish rate.
    let need = recommended.max(keeping_up.unwrap_or(0).min(current));
    window.record(now, need);
    window.expire(now, policy.stabilization);
    let decision = |replicas, reason, hold_until, window| Decision {
        replicas,
        recommended: Some(recommended),
        depth: Some(depth),
        growing,
        keeping_up,
        reason,
        hold_until,
        window,
    };
    if recommended > current {
        return decision(recommended, Reason::ScaledUp, None, window);
    }
    if recommended == current {
        return decision(current, Reason::Steady, None, window);
    }
    if growing {
        return decision(current, Reason::BacklogGrowing, None, window);
    }
    if need >= current {
        return decision(current, Reason::KeepingUp, None, window);
    }
    // The window holds this tick's need, so its peak is at least that.
    let peak = window.peak().unwrap_or(need).max(need);
    if peak >= current {
        let hold = window.holds_until(current, policy.stabilization);
        return decision(current, Reason::Stabilizing, hold, window);
    }
    decision(peak, Reason::ScaledDown, None, window)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn policy(min: u32, max: u32, target: u64, window_secs: u64) -> Policy {
        Policy {
            min_replicas: min,
            max_replicas: max,
            target_per_replica: target,
            stabilization: Duration::from_secs(window_secs),
        }
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap()
    }

    fn queue(ready: u64, unacked: u64, publish: f64, ack: f64) -> QueueLoad {
        QueueLoad {
            name: "q".into(),
            ready,
            unacknowledged: unacked,
            publish_rate: publish,
            ack_rate: ack,
            ..QueueLoad::default()
        }
    }

    /// Feeds one queue's readings, one per `step` seconds, starting from `current`
    /// replicas; returns the replicas after each.
    fn run(p: &Policy, mut current: u32, step: i64, readings: &[QueueLoad]) -> Vec<u32> {
        let mut window = Window::starting(current, at(0));
        let mut out = Vec::new();
        for (i, q) in readings.iter().enumerate() {
            let d = decide(
                p,
                current,
                Reading::queues(std::slice::from_ref(q), 0),
                &window,
                at(step * (i as i64 + 1)),
            );
            window = d.window;
            current = d.replicas;
            out.push(current);
        }
        out
    }

    #[test]
    fn thresholds_are_ceil_of_depth_over_target() {
        let p = policy(1, 100, 100, 60);
        for (depth, want) in [
            (0, 1),
            (1, 1),
            (100, 1),
            (101, 2),
            (200, 2),
            (201, 3),
            (999, 10),
        ] {
            assert_eq!(
                recommend(&p, &[queue(depth, 0, 0.0, 0.0)]),
                want,
                "depth {depth}"
            );
        }
    }

    #[test]
    fn depth_counts_unacknowledged_messages() {
        let p = policy(1, 100, 100, 60);
        // 40 waiting and 260 in consumers' hands: 300 messages not finished.
        assert_eq!(recommend(&p, &[queue(40, 260, 0.0, 0.0)]), 3);
        // Ready alone would say 1 (KEDA's view).
        assert_eq!(recommend(&p, &[queue(40, 0, 0.0, 0.0)]), 1);
    }

    #[test]
    fn depths_are_summed_over_the_services_queues() {
        let p = policy(1, 100, 100, 60);
        let queues = [queue(150, 0, 0.0, 0.0), queue(100, 60, 0.0, 0.0)];
        assert_eq!(recommend(&p, &queues), 4); // 310 / 100
    }

    #[test]
    fn clamping_to_min_and_max() {
        let p = policy(2, 5, 100, 60);
        assert_eq!(recommend(&p, &[queue(0, 0, 0.0, 0.0)]), 2);
        assert_eq!(recommend(&p, &[queue(10_000, 0, 0.0, 0.0)]), 5);
        assert_eq!(recommend(&p, &[queue(u64::MAX, 5, 0.0, 0.0)]), 5);
        assert_eq!(recommend(&p, &[]), 2);
    }

    #[test]
    fn zero_only_when_empty_and_idle() {
        let p = policy(0, 5, 100, 60);
        assert_eq!(recommend(&p, &[queue(0, 0, 0.0, 0.0)]), 0);
        // Empty, but messages still arrive (and are taken at once): keep one.
        assert_eq!(recommend(&p, &[queue(0, 0, 0.5, 0.5)]), 1);
        assert_eq!(recommend(&p, &[queue(1, 0, 0.0, 0.0)]), 1);
    }

    #[test]
    fn policy_from_the_spec() {
        let mut spec = ConsumerAutoscaling {
            enabled: true,
            min_replicas: 2,
            max_replicas: 7,
            target_messages_per_replica: 50,
            scale_down_stabilization: "1m30s".into(),
            scale_to_zero: false,
        };
        assert_eq!(
            Policy::from_spec(&spec).unwrap(),
            policy(2, 7, 50, 90),
            "the spec's numbers"
        );
        spec.min_replicas = 0;
        assert_eq!(Policy::from_spec(&spec).unwrap().min_replicas, 1);
        spec.scale_to_zero = true;
        assert_eq!(Policy::from_spec(&spec).unwrap().min_replicas, 0);
        spec.scale_down_stabilization = "soon".into();
        assert!(Policy::from_spec(&spec).is_err());
    }

    #[test]
    fn scales_up_at_once() {
        let p = policy(1, 10, 100, 300);
        let d = decide(
            &p,
            1,
            Reading::queues(&[queue(750, 16, 50.0, 10.0)], 0),
            &Window::starting(1, at(0)),
            at(1),
        );
        assert_eq!((d.replicas, d.reason), (8, Reason::ScaledUp));
        assert_eq!(
            (d.recommended, d.depth, d.growing),
            (Some(8), Some(766), true)
        );
    }

    #[test]
    fn scales_down_only_after_the_window() {
        let p = policy(1, 10, 100, 300);
        let mut window = Window::starting(1, at(0));
        let busy = [queue(500, 0, 0.0, 0.0)];
        let d = decide(&p, 1, Reading::queues(&busy, 0), &window, at(10));
        assert_eq!(d.replicas, 5);
        window = d.window;
        // Drained at t=20. Every tick within 300 s of the last busy one holds 5.
        let idle = [queue(0, 0, 0.0, 0.0)];
        for t in [20, 100, 200, 309] {
            let d = decide(&p, 5, Reading::queues(&idle, 0), &window, at(t));
            assert_eq!((d.replicas, d.reason), (5, Reason::Stabilizing), "t={t}");
            assert_eq!(d.hold_until, Some(at(310)));
            assert_eq!(d.recommended, Some(1));
            window = d.window;
        }
        let d = decide(&p, 5, Reading::queues(&idle, 0), &window, at(310));
        assert_eq!((d.replicas, d.reason), (1, Reason::ScaledDown));
    }

    #[test]
    fn scales_down_in_steps_to_the_largest_recent_need() {
        let p = policy(1, 10, 100, 300);
        let mut window = Window::starting(1, at(0));
        let mut current = 1;
        for (t, depth) in [(0, 800), (100, 300), (200, 0)] {
            let d = decide(
                &p,
                current,
                Reading::queues(&[queue(depth, 0, 0.0, 0.0)], 0),
                &window,
                at(t),
            );
            window = d.window;
            current = d.replicas;
        }
        assert_eq!(current, 8);
        let idle = [queue(0, 0, 0.0, 0.0)];
        // 300 s after the 8: down to the 3 needed at t=100, not to 1.
        let d = decide(&p, current, Reading::queues(&idle, 0), &window, at(300));
        assert_eq!((d.replicas, d.reason), (3, Reason::ScaledDown));
        let d = decide(&p, 3, Reading::queues(&idle, 0), &d.window, at(399));
        assert_eq!((d.replicas, d.reason), (3, Reason::Stabilizing));
        let d = decide(&p, 3, Reading::queues(&idle, 0), &d.window, at(400));
        assert_eq!((d.replicas, d.reason), (1, Reason::ScaledDown));
    }

    #[test]
    fn never_scales_down_while_the_backlog_grows() {
        let p = policy(1, 10, 100, 60);
        let mut window = Window::starting(6, at(0));
        // 150 messages (2 replicas would do) but arriving at 80/s, acked at 40/s.
        let growing = [queue(150, 0, 80.0, 40.0)];
        for t in (100..1000).step_by(100) {
            let d = decide(&p, 6, Reading::queues(&growing, 0), &window, at(t));
            assert_eq!((d.replicas, d.reason), (6, Reason::BacklogGrowing), "t={t}");
            assert!(d.growing);
            window = d.window;
        }
        // The same backlog, draining: down at once (the window passed long ago).
        let draining = [queue(150, 0, 40.0, 80.0)];
        let d = decide(&p, 6, Reading::queues(&draining, 0), &window, at(1000));
        assert_eq!((d.replicas, d.reason), (2, Reason::ScaledDown));
    }

    #[test]
    fn noise_in_the_rates_is_not_growth() {
        // A consumer that keeps up: the 5 s averages differ a little either way.
        assert!(!queue(20, 16, 100.0, 97.0).is_growing());
        assert!(!queue(3, 0, 0.05, 0.0).is_growing());
        assert!(queue(20, 16, 100.0, 90.0).is_growing());
        // No backlog, nothing grows (the rates lag the queue).
        assert!(!queue(0, 0, 100.0, 10.0).is_growing());
    }

    #[test]
    fn flapping_input_scales_up_once_and_holds() {
        let p = policy(1, 10, 100, 300);
        // Depth alternating 900 / 0 every 15 s for 10 minutes.
        let readings: Vec<QueueLoad> = (0..40)
            .map(|i| {
                if i % 2 == 0 {
                    queue(900, 0, 0.0, 0.0)
                } else {
                    queue(0, 0, 0.0, 0.0)
                }
            })
            .collect();
        let replicas = run(&p, 1, 15, &readings);
        assert!(replicas.iter().all(|r| *r == 9), "{replicas:?}");
        // Then quiet: down once, a whole window after the last 900 (585 s): at 885 s.
        let quiet = vec![queue(0, 0, 0.0, 0.0); 30];
        let mut window = Window::starting(1, at(0));
        let mut current = 1;
        let mut changes = Vec::new();
        for (i, q) in readings.iter().chain(quiet.iter()).enumerate() {
            let t = 15 * (i as i64 + 1);
            let d = decide(
                &p,
                current,
                Reading::queues(std::slice::from_ref(q), 0),
                &window,
                at(t),
            );
            if d.replicas != current {
                changes.push((t, current, d.replicas));
            }
            window = d.window;
            current = d.replicas;
        }
        assert_eq!(changes, [(15, 1, 9), (885, 9, 1)]);
    }

    #[test]
    fn a_blind_scaler_keeps_the_replicas_and_waits_a_window_after() {
        let p = policy(0, 10, 100, 120);
        let mut window = Window::starting(4, at(0));
        for t in [200, 300, 400] {
            let d = decide(&p, 4, Reading::Unavailable, &window, at(t));
            assert_eq!((d.replicas, d.reason), (4, Reason::Unavailable));
            assert_eq!((d.recommended, d.depth), (None, None));
            window = d.window;
        }
        // Back, with empty queues: 4 stays until 120 s after the last blind tick.
        let idle = [queue(0, 0, 0.0, 0.0)];
        let d = decide(&p, 4, Reading::queues(&idle, 0), &window, at(519));
        assert_eq!((d.replicas, d.reason), (4, Reason::Stabilizing));
        let d = decide(&p, 4, Reading::queues(&idle, 0), &d.window, at(520));
        assert_eq!((d.replicas, d.reason), (0, Reason::ScaledDown));
    }

    #[test]
    fn a_blind_scaler_still_keeps_within_the_bounds_the_user_sets() {
        // Statistics off (the depth never known): minReplicas raised to 2 must still
        // start consumers, and maxReplicas lowered to 3 must still take them down.
        let window = Window::starting(0, at(0));
        let d = decide(
            &policy(2, 10, 100, 120),
            0,
            Reading::Unavailable,
            &window,
            at(10),
        );
        assert_eq!((d.replicas, d.reason), (2, Reason::Unavailable));
        let d = decide(
            &policy(0, 3, 100, 120),
            5,
            Reading::Unavailable,
            &window,
            at(10),
        );
        assert_eq!((d.replicas, d.reason), (3, Reason::Unavailable));
    }

    #[test]
    fn a_new_scaler_does_not_scale_down_before_a_window() {
        // An operator restart: 6 replicas running, queues empty.
        let p = policy(1, 10, 100, 300);
        let window = Window::starting(6, at(0));
        let idle = [queue(0, 0, 0.0, 0.0)];
        let d = decide(&p, 6, Reading::queues(&idle, 0), &window, at(299));
        assert_eq!(d.replicas, 6);
        let d = decide(&p, 6, Reading::queues(&idle, 0), &d.window, at(300));
        assert_eq!(d.replicas, 1);
    }

    #[test]
    fn the_window_stays_small() {
        let p = policy(1, 100, 1, 3600);
        let mut window = Window::default();
        for t in 0..10_000 {
            let depth = (t * 7919) % 101;
            let d = decide(
                &p,
                50,
                Reading::queues(&[queue(depth, 0, 0.0, 0.0)], 0),
                &window,
                at(t as i64),
            );
            window = d.window;
        }
        assert!(window.entries().count() <= 101);
        let values: Vec<u32> = window.entries().map(|(_, r)| r).collect();
        assert!(
            values.windows(2).all(|w| w[0] > w[1]),
            "strictly decreasing"
        );
    }

    #[test]
    fn the_same_inputs_give_the_same_decision() {
        let p = policy(1, 10, 100, 300);
        let window = Window::starting(3, at(0));
        let q = [queue(120, 30, 12.0, 11.0)];
        let a = decide(&p, 3, Reading::queues(&q, 0), &window, at(42));
        let b = decide(&p, 3, Reading::queues(&q, 0), &window, at(42));
        assert_eq!(a, b);
    }

    #[test]
    fn the_throughput_of_a_replica_is_learned_while_messages_wait() {
        let p = policy(1, 10, 100, 60);
        let mut window = Window::default();
        // Nothing waits: the consumers are not at full speed, nothing is learned.
        let d = decide(
            &p,
            4,
            Reading::queues(&[queue(0, 10, 40.0, 40.0)], 4),
            &window,
            at(0),
        );
        assert_eq!(d.window.throughput(), None);
        window = d.window;
        // 300 wait, 4 replicas ack 100/s: 25 each.
        let d = decide(
            &p,
            4,
            Reading::queues(&[queue(300, 64, 120.0, 100.0)], 4),
            &window,
            at(15),
        );
        assert_eq!(d.window.throughput(), Some(25.0));
        // A moving average after that.
        let d = decide(
            &p,
            4,
            Reading::queues(&[queue(300, 64, 120.0, 140.0)], 4),
            &d.window,
            at(30),
        );
        assert!((d.window.throughput().unwrap() - 28.0).abs() < 1e-9);
    }

    #[test]
    fn never_scales_below_what_keeps_up_with_the_publish_rate() {
        // A burst of 180/s that 10 replicas (25/s each) keep up with: the queue is empty,
        // so by depth 1 replica would do. It must not drop to 1 in the middle of it.
        let p = policy(1, 10, 100, 300);
        let mut window = Window::starting(10, at(0));
        let d = decide(
            &p,
            10,
            Reading::queues(&[queue(2000, 160, 180.0, 250.0)], 10),
            &window,
            at(15),
        );
        assert_eq!(d.replicas, 10);
        window = d.window;
        let keeping_up = [queue(0, 12, 180.0, 180.0)];
        let d = decide(&p, 10, Reading::queues(&keeping_up, 10), &window, at(600));
        // ceil(180 * 1.1 / 25) = 8: down to 8, not 1.
        assert_eq!(
            (d.replicas, d.reason, d.keeping_up),
            (8, Reason::ScaledDown, Some(8))
        );
        assert_eq!(d.recommended, Some(1));
        let d = decide(&p, 8, Reading::queues(&keeping_up, 8), &d.window, at(615));
        assert_eq!((d.replicas, d.reason), (8, Reason::KeepingUp));
        // The burst ends: 8 stays for a window (it was needed), then 1.
        let quiet = [queue(0, 0, 10.0, 10.0)];
        let d = decide(&p, 8, Reading::queues(&quiet, 8), &d.window, at(900));
        assert_eq!((d.replicas, d.reason), (8, Reason::Stabilizing));
        let d = decide(&p, 8, Reading::queues(&quiet, 8), &d.window, at(915));
        assert_eq!((d.replicas, d.reason), (1, Reason::ScaledDown));
    }

    #[test]
    fn the_throughput_floor_never_scales_up() {
        let p = policy(1, 10, 100, 60);
        let mut window = Window::default();
        let d = decide(
            &p,
            2,
            Reading::queues(&[queue(500, 32, 50.0, 20.0)], 2),
            &window,
            at(0),
        );
        window = d.window; // 10 per replica; scaled up to 6 by depth
        assert_eq!(d.replicas, 6);
        // 200/s arriving would need more than the 10 allowed at the learned rate, but
        // the queue holds 50: the formula (1) alone adds replicas, the floor only keeps
        // the 6 running.
        let d = decide(
            &p,
            6,
            Reading::queues(&[queue(40, 10, 200.0, 200.0)], 6),
            &window,
            at(100),
        );
        assert_eq!((d.replicas, d.keeping_up), (6, Some(10)));
    }
}
