//! `sales-operator simulate` on the builtin profile: the replicas stay within bounds,
//! go up at once, come down only a whole window after more were needed, never while
//! blind or while the backlog grows; the changes are the pinned ones. (That the PNG in
//! the docs is what the run draws today is tested beside the drawing, in
//! `xtask/src/autoscaling_chart.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use sales_operator::autoscaling::decide::Reason;
use sales_operator::autoscaling::simulate::{self, BUILTIN_PROFILE, Simulation};

fn builtin() -> Simulation {
    simulate::run(&simulate::parse_profile(BUILTIN_PROFILE).unwrap()).unwrap()
}

#[test]
fn replicas_stay_within_min_and_max() {
    let sim = builtin();
    let p = &sim.policy;
    assert_eq!((p.min_replicas, p.max_replicas), (0, 10));
    assert!(sim.seconds.iter().all(|s| s.replicas <= p.max_replicas));
    // Pods consume only once started, and stop at once when removed.
    assert!(sim.seconds.iter().all(|s| s.consuming <= s.replicas));
    assert!(sim.ticks.iter().all(|t| t.replicas >= p.min_replicas));
    // The burst reaches the maximum, the idle stretch reaches zero.
    assert!(sim.seconds.iter().any(|s| s.replicas == p.max_replicas));
    assert!(sim.seconds.iter().any(|s| s.replicas == 0));
}

#[test]
fn up_at_once() {
    let sim = builtin();
    for t in &sim.ticks {
        if let Some(r) = t.recommended
            && r > t.before
        {
            assert_eq!(t.replicas, r, "at {} s the formula asked for {r}", t.t);
        }
    }
}

#[test]
fn down_only_after_the_window_and_never_blind_or_growing() {
    let sim = builtin();
    let window = sim.policy.stabilization.as_secs();
    let outages: Vec<(u64, u64)> = sim
        .spans
        .iter()
        .filter(|s| s.broker_down)
        .map(|s| (s.start, s.end))
        .collect();
    assert!(!outages.is_empty());
    let downs: Vec<_> = sim.ticks.iter().filter(|t| t.replicas < t.before).collect();
    assert!(downs.len() >= 3, "{downs:?}");
    for down in downs {
        assert_eq!(down.reason, Reason::ScaledDown);
        assert!(!down.growing, "scaled down at {} s while growing", down.t);
        // No tick of the last window asked for more than it went down to.
        for earlier in sim
            .ticks
            .iter()
            .filter(|e| e.t + window > down.t && e.t <= down.t)
        {
            assert!(
                earlier.recommended.is_none_or(|r| r <= down.replicas),
                "down to {} at {} s, but {} s asked for {:?}",
                down.replicas,
                down.t,
                earlier.t,
                earlier.recommended
            );
        }
        // Not while blind, nor within a window after.
        for (start, end) in &outages {
            assert!(
                down.t < *start || down.t >= end + window - sim.tick.as_secs(),
                "down at {} s, outage {start}..{end} s",
                down.t
            );
        }
    }
    // While blind, nothing changes.
    for t in sim.ticks.iter().filter(|t| t.recommended.is_none()) {
        assert_eq!((t.replicas, t.reason), (t.before, Reason::Unavailable));
    }
}

#[test]
fn the_builtin_profile_scales_as_pinned() {
    let sim = builtin();
    let minutes = |t: u64| format!("{}:{:02}", t / 60, t % 60);
    let changes: Vec<(String, u32, u32)> = sim
        .changes()
        .into_iter()
        .map(|(t, from, to)| (minutes(t), from, to))
        .collect();
    let expected: Vec<(String, u32, u32)> = [
        ("4:00", 1, 2),   // the burst starts: depth 155
        ("4:15", 2, 10),  // depth 2480: up to the max at once
        ("10:30", 10, 9), // a window after the last deep queue: to what keeps up with 180/s
        ("23:45", 9, 1),  // the burst ended at 12:00, but the broker was unreadable 16:00-19:00
        ("25:30", 1, 2),  // the ramp
        ("25:45", 2, 6),
        ("26:00", 6, 8),
        ("31:00", 8, 6), // on/off every minute: the peaks hold 6
        ("40:45", 6, 5),
        ("41:00", 5, 0), // idle: to zero
        ("47:00", 0, 1), // a trickle: back from zero
    ]
    .into_iter()
    .map(|(t, a, b)| (t.to_owned(), a, b))
    .collect();
    assert_eq!(changes, expected, "\n{}", simulate::summary(&sim));
}

#[test]
fn the_command_prints_the_changes() {
    let out = common::operator(&["simulate", "--profile", "builtin"]);
    assert!(out.contains("profile \"builtin\""), "{out}");
    assert!(out.contains(" 2 -> 10 "), "{out}");
    assert!(out.contains("ScaledDown"), "{out}");
}

#[test]
fn a_profile_file_is_read() {
    let dir = common::scratch_dir("simulate");
    let file = dir.join("profile.yaml");
    std::fs::write(
        &file,
        "name: tiny\nautoscaling: {minReplicas: 1, maxReplicas: 3, targetMessagesPerReplica: 10, scaleDownStabilization: 1m}\n\
         consumer: {messagesPerSecond: 5}\nphases:\n  - {duration: 2m, rate: 12}\n  - {duration: 3m, rate: 0}\n",
    )
    .unwrap();
    let out = common::operator(&["simulate", "--profile", file.to_str().unwrap()]);
    assert!(out.contains("profile \"tiny\""), "{out}");
    assert!(out.contains("1 -> 3"), "{out}");
}
