//! `cargo xtask up` restarts a service that dies, as Kubernetes restarts a pod: one
//! crash takes one service down for a moment, not the whole system.
//!
//! The delay doubles with each exit in a row (1 s, 2 s, 4 s ... at most 30 s), like a
//! pod's `CrashLoopBackOff`, and starts again from 1 s once the service has run for a
//! minute.

use std::fs::OpenOptions;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use sales_testkit::launch::{Process, Service, Wiring};

use crate::local_services;

const FIRST_DELAY: Duration = Duration::from_secs(1);
const LONGEST_DELAY: Duration = Duration::from_secs(30);
/// A service that ran this long before it exited is restarted after [`FIRST_DELAY`].
const STABLE_AFTER: Duration = Duration::from_secs(60);

/// How long to wait before starting a process again.
#[derive(Debug, Default)]
pub struct Backoff {
    exits_in_a_row: u32,
}

impl Backoff {
    /// The delay after an exit of a process that had run for `ran_for`.
    pub fn after_exit(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= STABLE_AFTER {
            self.exits_in_a_row = 0;
        }
        let delay = FIRST_DELAY
            .saturating_mul(1 << self.exits_in_a_row.min(16))
            .min(LONGEST_DELAY);
        self.exits_in_a_row = self.exits_in_a_row.saturating_add(1);
        delay
    }
}

/// One service under watch: its process, when it started, and when to start it again.
pub struct Watched {
    pub process: Process,
    started: Instant,
    backoff: Backoff,
    restart_at: Option<Instant>,
    restarts: u32,
}

impl Watched {
    pub fn new(process: Process) -> Watched {
        Watched {
            process,
            started: Instant::now(),
            backoff: Backoff::default(),
            restart_at: None,
            restarts: 0,
        }
    }

    /// How many times the service was started again.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }
}

/// Look at every service once: one that exited is scheduled for a restart (saying
/// so), one whose delay is over is started again, its output appended to its log.
pub fn check(watched: &mut [Watched], bin_dir: &Path, wiring: &Wiring, logs: &Path) {
    let now = Instant::now();
    for w in watched.iter_mut() {
        let service = w.process.service;
        match w.restart_at {
            None => {
                let Ok(Some(status)) = w.process.child.try_wait() else {
                    continue;
                };
                let delay = w.backoff.after_exit(now - w.started);
                eprintln!(
                    "xtask: the {} service exited ({status}); starting it again in {delay:?} (its log: {})",
                    service.name(),
                    local_services::log_file(logs, service).display()
                );
                w.restart_at = Some(now + delay);
            }
            Some(at) if at <= now => match respawn(service, bin_dir, wiring, logs) {
                Ok(process) => {
                    w.process = process;
                    w.started = now;
                    w.restart_at = None;
                    w.restarts += 1;
                    eprintln!(
                        "xtask: started the {} service again (restart {})",
                        service.name(),
                        w.restarts
                    );
                }
                Err(err) => {
                    let delay = w.backoff.after_exit(Duration::ZERO);
                    eprintln!(
                        "xtask: could not start the {} service again ({err:#}); trying in {delay:?}",
                        service.name()
                    );
                    w.restart_at = Some(now + delay);
                }
            },
            Some(_) => {}
        }
    }
}

fn respawn(service: Service, bin_dir: &Path, wiring: &Wiring, logs: &Path) -> Result<Process> {
    let path = local_services::log_file(logs, service);
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    Process::spawn(
        service,
        bin_dir,
        wiring,
        Stdio::from(log.try_clone()?),
        Stdio::from(log),
    )
    .with_context(|| format!("cannot start {}", service.binary()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_doubles_up_to_thirty_seconds_and_starts_over_after_a_stable_run() {
        let mut backoff = Backoff::default();
        let quick = Duration::from_millis(200);
        let delays: Vec<u64> = (0..7)
            .map(|_| backoff.after_exit(quick).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(backoff.after_exit(STABLE_AFTER), FIRST_DELAY);
        assert_eq!(backoff.after_exit(quick), Duration::from_secs(2));
    }
}
