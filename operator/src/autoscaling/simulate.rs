//! `sales-operator simulate`: a load profile replayed through the decision function,
//! second by second, with a simple model of the consumers, so the behaviour of a
//! policy can be seen (and tested) without a cluster.
//!
//! The model: messages arrive at the profile's rate; every consuming replica works
//! through `messagesPerSecond` of them and holds up to `prefetch` unacknowledged; a
//! replica added starts consuming `startup` later; a replica removed stops at once
//! (a real one finishes what it holds first, which the depth counts anyway). Every
//! `tick` the scaler reads the queue as RabbitMQ's management API would (rates
//! averaged over the last 5 seconds) — or cannot, during a `brokerDown` phase — and
//! [`decide`] picks the replicas, on a simulated clock.

use std::collections::VecDeque;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use serde::Deserialize;

use super::decide::{Policy, QueueLoad, Reading, Reason, Window, decide};
use crate::crd::ConsumerAutoscaling;

/// The builtin profile (`--profile builtin`), also the documented example.
pub const BUILTIN_PROFILE: &str = include_str!("builtin-profile.yaml");

/// How a load profile is written (YAML).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Profile {
    #[serde(default)]
    pub name: String,
    /// How often the scaler decides.
    #[serde(default = "default_tick")]
    pub tick: String,
    pub autoscaling: ConsumerAutoscaling,
    pub consumer: ConsumerModel,
    #[serde(default = "one")]
    pub initial_replicas: u32,
    pub phases: Vec<Phase>,
}

fn default_tick() -> String {
    "15s".into()
}

fn one() -> u32 {
    1
}

/// How the consumers work.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsumerModel {
    /// Messages one replica finishes per second.
    pub messages_per_second: f64,
    /// From being added to consuming.
    #[serde(default = "default_startup")]
    pub startup: String,
    /// Unacknowledged messages one replica holds.
    #[serde(default = "default_prefetch")]
    pub prefetch: u64,
}

fn default_startup() -> String {
    "20s".into()
}

fn default_prefetch() -> u64 {
    16
}

/// A stretch of the profile.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Phase {
    pub duration: String,
    /// Messages published per second (at the start, when ramping).
    pub rate: f64,
    /// Ramp linearly to this rate by the end of the phase.
    #[serde(default)]
    pub to: Option<f64>,
    /// Alternate between `rate` and `alternate` every `every`.
    #[serde(default)]
    pub every: Option<String>,
    #[serde(default)]
    pub alternate: Option<f64>,
    /// The scaler cannot reach the broker during this phase.
    #[serde(default)]
    pub broker_down: bool,
    /// Shown on the plot.
    #[serde(default)]
    pub label: Option<String>,
}

/// One simulated second.
#[derive(Clone, Debug, PartialEq)]
pub struct Second {
    /// Seconds since the start.
    pub t: u64,
    pub publish_rate: f64,
    /// Ready + unacknowledged at the end of the second.
    pub depth: f64,
    /// The replicas the scaler has set.
    pub replicas: u32,
    /// Replicas consuming (started).
    pub consuming: u32,
    pub broker_down: bool,
}

/// One decision of the scaler.
#[derive(Clone, Debug, PartialEq)]
pub struct Tick {
    pub t: u64,
    /// What the scaler read (`None` while the broker is down).
    pub depth: Option<u64>,
    pub publish_rate: f64,
    pub ack_rate: f64,
    pub growing: bool,
    pub recommended: Option<u32>,
    /// Replicas before and after the decision.
    pub before: u32,
    pub replicas: u32,
    pub reason: Reason,
}

/// A phase as placed on the timeline.
#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    pub start: u64,
    pub end: u64,
    pub label: Option<String>,
    pub broker_down: bool,
}

/// The outcome of a simulation.
#[derive(Clone, Debug)]
pub struct Simulation {
    pub name: String,
    pub policy: Policy,
    pub tick: Duration,
    pub seconds: Vec<Second>,
    pub ticks: Vec<Tick>,
    pub spans: Vec<Span>,
}

impl Simulation {
    /// Every change of replicas: (time, from, to).
    pub fn changes(&self) -> Vec<(u64, u32, u32)> {
        self.ticks
            .iter()
            .filter(|t| t.replicas != t.before)
            .map(|t| (t.t, t.before, t.replicas))
            .collect()
    }

    /// The last second.
    pub fn duration(&self) -> u64 {
        self.seconds.last().map_or(0, |s| s.t + 1)
    }
}

/// The profile `which` names: `builtin`, or the path of a YAML file.
pub fn load_profile(which: &str) -> anyhow::Result<Profile> {
    if which == "builtin" {
        return parse_profile(BUILTIN_PROFILE);
    }
    let text =
        std::fs::read_to_string(which).map_err(|e| anyhow::anyhow!("cannot read {which}: {e}"))?;
    parse_profile(&text)
}

/// Read a profile from a YAML text.
pub fn parse_profile(text: &str) -> anyhow::Result<Profile> {
    let profile: Profile = serde_yaml_ng::from_str(text)?;
    if profile.phases.is_empty() {
        anyhow::bail!("the profile has no phases");
    }
    if profile.consumer.messages_per_second <= 0.0 {
        anyhow::bail!("consumer.messagesPerSecond must be positive");
    }
    Ok(profile)
}

fn duration(what: &str, text: &str) -> anyhow::Result<Duration> {
    humantime::parse_duration(text).map_err(|e| anyhow::anyhow!("{what} {text:?}: {e}"))
}

/// The publish rate of `phase`, `offset` seconds into it.
fn rate_at(phase: &Phase, offset: f64, length: f64, every: Option<f64>) -> f64 {
    if let (Some(every), Some(alternate)) = (every, phase.alternate)
        && every > 0.0
        && (offset / every).floor() as u64 % 2 == 1
    {
        return alternate;
    }
    match phase.to {
        Some(to) if length > 0.0 => phase.rate + (to - phase.rate) * offset / length,
        _ => phase.rate,
    }
    .max(0.0)
}

/// Replay `profile` through [`decide`], one simulated second at a time.
pub fn run(profile: &Profile) -> anyhow::Result<Simulation> {
    let policy = Policy::from_spec(&profile.autoscaling).map_err(anyhow::Error::msg)?;
    let tick = duration("tick", &profile.tick)?;
    let tick_secs = tick.as_secs().max(1);
    let startup = duration("consumer.startup", &profile.consumer.startup)?.as_secs();
    let start = Timestamp::UNIX_EPOCH;

    let mut spans = Vec::new();
    let mut at = 0;
    for phase in &profile.phases {
        let length = duration("phase duration", &phase.duration)?.as_secs();
        spans.push(Span {
            start: at,
            end: at + length,
            label: phase.label.clone(),
            broker_down: phase.broker_down,
        });
        at += length;
    }

    let mut replicas = profile.initial_replicas;
    // When each replica starts consuming (0: from the start).
    let mut pods: Vec<u64> = vec![0; replicas as usize];
    let mut window = Window::starting(replicas, start);
    let mut backlog = 0.0_f64;
    // The last 5 seconds of (published, acked), for management-style rates.
    let mut recent: VecDeque<(f64, f64)> = VecDeque::new();
    let mut seconds = Vec::new();
    let mut ticks = Vec::new();

    for (phase, span) in profile.phases.iter().zip(&spans) {
        let length = (span.end - span.start) as f64;
        let every = match &phase.every {
            Some(e) => Some(duration("every", e)?.as_secs_f64()),
            None => None,
        };
        for t in span.start..span.end {
            let rate = rate_at(phase, (t - span.start) as f64, length, every);
            let consuming = pods.iter().filter(|ready_at| **ready_at <= t).count() as u32;
            backlog += rate;
            let acked = backlog.min(f64::from(consuming) * profile.consumer.messages_per_second);
            backlog -= acked;
            recent.push_back((rate, acked));
            if recent.len() > 5 {
                recent.pop_front();
            }

            if t % tick_secs == 0 {
                let samples = recent.len().max(1) as f64;
                let publish_rate = recent.iter().map(|(p, _)| p).sum::<f64>() / samples;
                let ack_rate = recent.iter().map(|(_, a)| a).sum::<f64>() / samples;
                let held = (u64::from(consuming) * profile.consumer.prefetch) as f64;
                let unacknowledged = backlog.min(held).round() as u64;
                let ready = (backlog.round() as u64).saturating_sub(unacknowledged);
                let queue = [QueueLoad {
                    name: "queue".into(),
                    ready,
                    unacknowledged,
                    publish_rate,
                    ack_rate,
                    ..QueueLoad::default()
                }];
                let reading = if phase.broker_down {
                    Reading::Unavailable
                } else {
                    Reading::queues(&queue, consuming)
                };
                let now = start
                    .checked_add(Duration::from_secs(t))
                    .map_err(|e| anyhow::anyhow!("simulated clock: {e}"))?;
                let decision = decide(&policy, replicas, reading, &window, now);
                ticks.push(Tick {
                    t,
                    depth: decision.depth,
                    publish_rate,
                    ack_rate,
                    growing: decision.growing,
                    recommended: decision.recommended,
                    before: replicas,
                    replicas: decision.replicas,
                    reason: decision.reason,
                });
                window = decision.window;
                if decision.replicas > replicas {
                    let added = decision.replicas - replicas;
                    pods.extend(std::iter::repeat_n(t + startup, added as usize));
                } else if decision.replicas < replicas {
                    // Pods not consuming yet go first, then the newest.
                    pods.sort_unstable();
                    pods.truncate(decision.replicas as usize);
                }
                replicas = decision.replicas;
            }
            seconds.push(Second {
                t,
                publish_rate: rate,
                depth: backlog,
                replicas,
                consuming: pods.iter().filter(|ready_at| **ready_at <= t).count() as u32,
                broker_down: phase.broker_down,
            });
        }
    }
    Ok(Simulation {
        name: profile.name.clone(),
        policy,
        tick,
        seconds,
        ticks,
        spans,
    })
}

/// A short text account of a simulation: the policy and every change.
pub fn summary(sim: &Simulation) -> String {
    let p = &sim.policy;
    let mut out = format!(
        "profile {:?}: {} s, tick {} s; min {}, max {}, target {} per replica, stabilization {} s\n",
        sim.name,
        sim.duration(),
        sim.tick.as_secs(),
        p.min_replicas,
        p.max_replicas,
        p.target_per_replica,
        p.stabilization.as_secs()
    );
    let peak = sim.seconds.iter().map(|s| s.depth).fold(0.0_f64, f64::max);
    out.push_str(&format!("peak depth {peak:.0} messages\n"));
    out.push_str("  time  replicas  depth  reason\n");
    for t in sim.ticks.iter().filter(|t| t.replicas != t.before) {
        out.push_str(&format!(
            "{:>3}:{:02}  {:>2} -> {:<2}  {:>5}  {}\n",
            t.t / 60,
            t.t % 60,
            t.before,
            t.replicas,
            t.depth.map_or_else(|| "-".to_owned(), |d| d.to_string()),
            t.reason.as_str()
        ));
    }
    out
}
