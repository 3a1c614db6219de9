//! The faults: real signals to real processes. RabbitMQ and PostgreSQL are the private
//! instances of `infra.rs` (pids from their pid files under the infrastructure
//! directory), never servers given by URL; they are started again the way
//! `cargo xtask infra` starts them. Services are signalled through the fleet, whose
//! supervisor starts a killed one again.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use chrono::Utc;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sales_testkit::launch::Service;

use super::system::Fleet;
use super::timeline::{Timeline, Window};
use crate::infra::{self, Infra};

/// The fault scenarios.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scenario {
    /// SIGKILL the RabbitMQ node and start it again at once.
    RabbitmqKill,
    /// Stop PostgreSQL with `pg_ctl -m fast`, start it again after 5 s.
    PostgresFast,
    /// Stop PostgreSQL with `pg_ctl -m immediate` (a crash), start it after 5 s.
    PostgresImmediate,
    /// SIGKILL each service in turn (the short run: order and payment).
    ServiceKills,
    /// SIGSTOP the inventory service past its callers' timeouts, then SIGCONT.
    ConsumerFreeze,
    /// RabbitMQ stopped for longer than any retry budget (`--outage-seconds`).
    BrokerOutage,
    /// Several at once: RabbitMQ killed, shipping frozen, PostgreSQL crashed, services killed.
    Mixed,
}

impl Scenario {
    pub const ALL: [Scenario; 7] = [
        Scenario::RabbitmqKill,
        Scenario::PostgresFast,
        Scenario::PostgresImmediate,
        Scenario::ServiceKills,
        Scenario::ConsumerFreeze,
        Scenario::BrokerOutage,
        Scenario::Mixed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::RabbitmqKill => "rabbitmq-kill",
            Scenario::PostgresFast => "postgres-fast",
            Scenario::PostgresImmediate => "postgres-immediate",
            Scenario::ServiceKills => "service-kills",
            Scenario::ConsumerFreeze => "consumer-freeze",
            Scenario::BrokerOutage => "broker-outage",
            Scenario::Mixed => "mixed",
        }
    }

    pub fn touches_postgres(self) -> bool {
        matches!(
            self,
            Scenario::PostgresFast | Scenario::PostgresImmediate | Scenario::Mixed
        )
    }

    pub fn touches_rabbitmq(self) -> bool {
        matches!(
            self,
            Scenario::RabbitmqKill | Scenario::BrokerOutage | Scenario::Mixed
        )
    }
}

#[derive(Clone, Copy, Debug)]
enum Action {
    Wait(u64),
    KillRabbitmq,
    StopRabbitmq,
    StopPostgres(&'static str),
    StartInfra,
    Kill(Service),
    Freeze(Service),
    Thaw(Service),
}

/// A scenario's actions: each track runs in order, the tracks at once.
pub struct Phase {
    pub scenario: Scenario,
    tracks: Vec<Vec<Action>>,
}

/// The phases of a run, one per scenario, in the order given.
pub fn plan(scenarios: &[Scenario], short: bool, outage_seconds: u64) -> Vec<Phase> {
    use Action::*;
    scenarios
        .iter()
        .map(|&scenario| {
            let tracks = match scenario {
                Scenario::RabbitmqKill => vec![vec![KillRabbitmq, StartInfra]],
                Scenario::PostgresFast => vec![vec![StopPostgres("fast"), Wait(5), StartInfra]],
                Scenario::PostgresImmediate => {
                    vec![vec![StopPostgres("immediate"), Wait(5), StartInfra]]
                }
                Scenario::ServiceKills => {
                    let services: &[Service] = if short {
                        &[Service::Order, Service::Payment]
                    } else {
                        &Service::ALL
                    };
                    let mut kills: Vec<Action> =
                        services.iter().flat_map(|s| [Kill(*s), Wait(5)]).collect();
                    if !short {
                        // Then the order service three times while it charges
                        // payments: a crash between a capture and its record.
                        kills.extend([Kill(Service::Order), Wait(4)].repeat(3));
                    }
                    vec![kills]
                }
                Scenario::ConsumerFreeze => {
                    vec![vec![
                        Freeze(Service::Inventory),
                        Wait(if short { 15 } else { 40 }),
                        Thaw(Service::Inventory),
                    ]]
                }
                Scenario::BrokerOutage => {
                    vec![vec![StopRabbitmq, Wait(outage_seconds), StartInfra]]
                }
                Scenario::Mixed => vec![
                    vec![KillRabbitmq, StartInfra],
                    vec![
                        Wait(3),
                        Freeze(Service::Shipping),
                        Wait(25),
                        Thaw(Service::Shipping),
                    ],
                    vec![Wait(6), StopPostgres("immediate"), Wait(3), StartInfra],
                    vec![
                        Wait(10),
                        Kill(Service::Order),
                        Wait(6),
                        Kill(Service::Payment),
                        Wait(6),
                        Kill(Service::Inventory),
                    ],
                ],
            };
            Phase { scenario, tracks }
        })
        .collect()
}

/// Does the faults, and says what it did.
pub struct Saboteur {
    infra_dir: PathBuf,
    /// This program, as it was when it started (the build replaces the file).
    exe: PathBuf,
    fleet: Arc<Fleet>,
    started: Mutex<Instant>,
    pub log: Mutex<Vec<String>>,
}

impl Saboteur {
    pub fn new(infra_dir: PathBuf, exe: PathBuf, fleet: Arc<Fleet>) -> Saboteur {
        Saboteur {
            infra_dir,
            exe,
            fleet,
            started: Mutex::new(Instant::now()),
            log: Mutex::default(),
        }
    }

    /// Times in the log count from now (the load's start).
    pub fn start_clock(&self) {
        if let Ok(mut s) = self.started.lock() {
            *s = Instant::now();
        }
    }

    pub fn say(&self, what: String) {
        let since = self
            .started
            .lock()
            .map(|s| s.elapsed().as_secs_f64())
            .unwrap_or(0.0);
        let line = format!("{since:7.1} s  {what}");
        eprintln!("chaos: {line}");
        if let Ok(mut log) = self.log.lock() {
            log.push(line);
        }
    }

    /// Run one phase: its tracks at once; its window goes on the timeline.
    pub async fn run(self: &Arc<Self>, phase: &Phase, timeline: &Timeline) -> Result<()> {
        self.say(format!("--- {} ---", phase.scenario.name()));
        let start = Utc::now();
        let mut handles = Vec::new();
        for track in &phase.tracks {
            let (me, track) = (self.clone(), track.clone());
            handles.push(tokio::spawn(async move {
                for action in track {
                    me.act(action).await?;
                }
                Ok::<_, anyhow::Error>(())
            }));
        }
        let mut result = Ok(());
        for h in handles {
            if let Err(e) = h.await.map_err(anyhow::Error::from).and_then(|r| r) {
                result = Err(e);
            }
        }
        timeline.add_window(Window {
            scenario: phase.scenario.name().to_owned(),
            start,
            end: Utc::now(),
        });
        result
    }

    async fn act(&self, action: Action) -> Result<()> {
        match action {
            Action::Wait(s) => tokio::time::sleep(Duration::from_secs(s)).await,
            Action::KillRabbitmq => {
                let pid = self.rabbitmq_pid()?;
                signal_and_wait(pid, Signal::SIGKILL, Duration::from_secs(30)).await?;
                self.say(format!("SIGKILL rabbitmq (pid {pid})"));
            }
            Action::StopRabbitmq => {
                let pid = self.rabbitmq_pid()?;
                self.say(format!(
                    "SIGTERM rabbitmq (pid {pid}): the broker goes away"
                ));
                if signal_and_wait(pid, Signal::SIGTERM, Duration::from_secs(60))
                    .await
                    .is_err()
                {
                    signal_and_wait(pid, Signal::SIGKILL, Duration::from_secs(30)).await?;
                }
            }
            Action::StopPostgres(mode) => {
                self.say(format!("pg_ctl stop -m {mode}"));
                self.pg_ctl_stop(mode).await?;
            }
            Action::StartInfra => {
                self.say(
                    "starting the private infrastructure again (cargo xtask infra ensure)".into(),
                );
                self.start_infra().await?;
                self.say("the private infrastructure answers again".into());
            }
            Action::Kill(s) => {
                // A service killed a moment ago may not be back yet.
                self.fleet.wait_ready(s, Duration::from_secs(90)).await?;
                let pid = self.fleet.signal(s, Signal::SIGKILL)?;
                self.say(format!("SIGKILL the {} service (pid {pid})", s.name()));
            }
            Action::Freeze(s) => {
                let pid = self.fleet.signal(s, Signal::SIGSTOP)?;
                self.say(format!("SIGSTOP the {} service (pid {pid})", s.name()));
            }
            Action::Thaw(s) => {
                let pid = self.fleet.signal(s, Signal::SIGCONT)?;
                self.say(format!("SIGCONT the {} service (pid {pid})", s.name()));
            }
        }
        Ok(())
    }

    fn rabbitmq_pid(&self) -> Result<u32> {
        let dir = self.infra_dir.join("rabbitmq");
        daemon_pid(&dir.join("pid"), "beam", &dir)
            .context("the private RabbitMQ node is not running")
    }

    async fn pg_ctl_stop(&self, mode: &str) -> Result<()> {
        let data = self.infra_dir.join("postgres/data");
        let version = std::fs::read_to_string(data.join("PG_VERSION")).context("PG_VERSION")?;
        let pg_ctl = PathBuf::from(format!("/usr/lib/postgresql/{}/bin/pg_ctl", version.trim()));
        let pg_ctl = if pg_ctl.exists() {
            pg_ctl
        } else {
            PathBuf::from("pg_ctl")
        };
        // As root, as infra.rs runs the server: as the postgres user.
        let mut cmd = if crate::debian::is_root() {
            let mut c = tokio::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&pg_ctl);
            c
        } else {
            tokio::process::Command::new(&pg_ctl)
        };
        cmd.arg("-D")
            .arg(&data)
            .args(["-m", mode, "-w", "-t", "60", "stop"]);
        let out = cmd.output().await.context("running pg_ctl")?;
        if !out.status.success() {
            bail!(
                "pg_ctl stop -m {mode} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// `cargo xtask infra ensure` without the `SALES_*_URL` variables: it starts every
    /// private instance that is not running, as `infra up` does.
    pub async fn start_infra(&self) -> Result<()> {
        // A RabbitMQ node started again right after a SIGKILL sometimes finds its AMQP
        // port still taken and dies booting (`could_not_start_listener`); like a pod's
        // restart policy, try again a few times.
        const ATTEMPTS: u32 = 4;
        for attempt in 1..=ATTEMPTS {
            let status = tokio::process::Command::new(&self.exe)
                .args(["infra", "ensure"])
                .env_remove(infra::ENV_POSTGRES_URL)
                .env_remove(infra::ENV_AMQP_URL)
                .env_remove(infra::ENV_RABBITMQ_MANAGEMENT_URL)
                .env_remove(infra::ENV_REDIS_URL)
                .env(infra::ENV_INFRA_DIR, &self.infra_dir)
                .status()
                .await?;
            if status.success() {
                return Ok(());
            }
            if attempt == ATTEMPTS {
                bail!(
                    "starting the private infrastructure again failed {ATTEMPTS} times ({status})"
                );
            }
            self.say(format!(
                "starting the private infrastructure again failed ({status}; attempt {attempt}); trying again in 5 s"
            ));
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        Ok(())
    }
}

/// The pid in `pid_file`, if it is alive, its command starts with `comm` and its
/// command line names `marker` (so a recycled pid is never signalled).
fn daemon_pid(pid_file: &Path, comm: &str, marker: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pid_file)
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()?;
    let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    (name.trim().starts_with(comm) && cmdline.contains(&marker.display().to_string()))
        .then_some(pid)
}

/// Send `signal` to `pid` and wait until it is gone.
async fn signal_and_wait(pid: u32, signal: Signal, timeout: Duration) -> Result<()> {
    let raw = i32::try_from(pid).context("pid")?;
    kill(Pid::from_raw(raw), signal).with_context(|| format!("{signal} to {pid}"))?;
    let deadline = Instant::now() + timeout;
    while Path::new(&format!("/proc/{pid}")).exists() {
        if Instant::now() > deadline {
            bail!("pid {pid} still runs {timeout:?} after {signal}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// The infrastructure directory, when the servers the scenarios kill are its private
/// ones; an error naming the server otherwise (one given by URL is never killed).
pub fn private_infra(infra: &Infra, scenarios: &[Scenario]) -> Result<PathBuf> {
    let dir = std::env::var(infra::ENV_INFRA_DIR)
        .ok()
        .filter(|d| !d.trim().is_empty())
        .map_or_else(|| PathBuf::from(infra::DEFAULT_INFRA_DIR), PathBuf::from);
    let local = |url: &str, port: u16| {
        reqwest::Url::parse(url).is_ok_and(|u| {
            matches!(u.host_str(), Some("127.0.0.1" | "localhost")) && u.port() == Some(port)
        })
    };
    if scenarios.iter().any(|s| s.touches_postgres()) {
        let data = dir.join("postgres/data");
        if !local(&infra.postgres_url, infra::POSTGRES_PORT)
            || daemon_pid(&data.join("postmaster.pid"), "postgres", &data).is_none()
        {
            bail!(
                "refusing to stop PostgreSQL at {}: it is not the private server of {} (chaos stops only that one; unset {} or pick scenarios without postgres)",
                infra::redact(&infra.postgres_url),
                dir.display(),
                infra::ENV_POSTGRES_URL
            );
        }
    }
    if scenarios.iter().any(|s| s.touches_rabbitmq()) {
        let rabbit = dir.join("rabbitmq");
        if !local(&infra.amqp_url, infra::AMQP_PORT)
            || daemon_pid(&rabbit.join("pid"), "beam", &rabbit).is_none()
        {
            bail!(
                "refusing to kill RabbitMQ at {}: it is not the private node of {} (unset {} or pick scenarios without rabbitmq)",
                infra::redact(&infra.amqp_url),
                dir.display(),
                infra::ENV_AMQP_URL
            );
        }
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn infra(postgres_url: &str, amqp_url: &str) -> Infra {
        Infra {
            postgres_url: postgres_url.into(),
            amqp_url: amqp_url.into(),
            rabbitmq_management_url: None,
            redis_url: "redis://127.0.0.1:56379".into(),
            infra_dir: None,
        }
    }

    #[test]
    fn servers_given_by_url_elsewhere_are_never_killed() {
        let elsewhere = infra(
            "postgres://postgres@db.example:5432/postgres",
            "amqp://guest:guest@mq.example:5672/%2f",
        );
        let err = private_infra(&elsewhere, &[Scenario::PostgresFast]).unwrap_err();
        assert!(
            err.to_string().contains("refusing to stop PostgreSQL"),
            "{err}"
        );
        let err = private_infra(&elsewhere, &[Scenario::RabbitmqKill]).unwrap_err();
        assert!(
            err.to_string().contains("refusing to kill RabbitMQ"),
            "{err}"
        );
        // Killing services touches neither server.
        assert!(private_infra(&elsewhere, &[Scenario::ServiceKills]).is_ok());
    }

    #[test]
    fn the_short_run_kills_order_and_payment_and_the_long_one_every_service() {
        let kills = |short| -> usize {
            plan(&[Scenario::ServiceKills], short, 0)[0].tracks[0]
                .iter()
                .filter(|a| matches!(a, Action::Kill(_)))
                .count()
        };
        assert_eq!(kills(true), 2);
        assert_eq!(kills(false), Service::ALL.len() + 3);
    }
}
