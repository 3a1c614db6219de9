//! `cargo xtask`: developer tasks for the sales system.

mod autoscaling_chart;
mod bench;
mod chaos;
mod chart_docs;
mod chart_png;
mod debian;
mod infra;
mod kafka;
mod local_services;
mod restarts;
mod storefront;
mod supply_chain;
mod test;
mod test_vhost;
mod tools;
mod up;

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "xtask",
    bin_name = "cargo xtask",
    about = "Developer tasks for the sales system"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

/// The broker the services' events go through.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BrokerChoice {
    Rabbitmq,
    Kafka,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build everything, start the infrastructure and every service locally.
    Up {
        /// Keep the seeds' unauthenticated routes closed, as the charts and the
        /// operator do by default (the local run opens them for trying the seeds'
        /// clients).
        #[arg(long)]
        seed_routes_closed: bool,
        /// The broker that carries the events: `rabbitmq`, or `kafka` (a local
        /// Kafka-protocol broker, tansu, built once per machine).
        #[arg(long, value_enum, default_value = "rabbitmq")]
        broker: BrokerChoice,
        /// The gateway's rate limit: requests per client per minute; 0 turns it off
        /// (load tests).
        #[arg(long, default_value_t = up::DEFAULT_RATE_LIMIT)]
        rate_limit: u64,
    },
    /// Local PostgreSQL, RabbitMQ and Redis (private instances under /var/tmp/sales-system-infra,
    /// unless SALES_POSTGRES_URL / SALES_AMQP_URL / SALES_REDIS_URL are set).
    Infra {
        #[command(subcommand)]
        action: InfraCmd,
    },
    /// Measure throughput, latency, CPU and memory under an order load through the
    /// gateway (release build); prints numbers.
    Bench(bench::BenchArgs),
    /// A fault run under load: kill, restart and freeze the broker, the database and
    /// the services while customers order through the gateway, then check that every
    /// order, unit of stock and cent is accounted for (report in target/chaos/).
    Chaos(chaos::ChaosArgs),
    /// Replay a load profile through the operator's autoscaling decision, print every
    /// change of replicas and draw the run as a PNG (by default the builtin profile
    /// into docs/operator/autoscaling.png).
    AutoscalingChart(autoscaling_chart::ChartArgs),
    /// Write the value table of every chart's README (charts/*/README.md) from its
    /// values.schema.json (descriptions) and values.yaml (defaults).
    ChartDocs {
        /// Change nothing; fail when a README's table is not current.
        #[arg(long)]
        check: bool,
    },
    /// Ensure the infrastructure, build all binaries, run every test (nextest if installed).
    Test {
        /// Passed to `cargo nextest run` / `cargo test` (after `--`).
        #[arg(last = true)]
        args: Vec<String>,
    },
}

#[derive(Subcommand)]
enum InfraCmd {
    /// Start (or reuse) the infrastructure and the Python tools venv, and print
    /// `export SALES_...=...` lines.
    Up,
    /// Stop the private instances (never servers given by URL).
    Down,
    /// Start (or reuse) the infrastructure only, printing nothing on stdout (what
    /// `chaos` runs to start a private instance again after killing it).
    #[command(hide = true)]
    Ensure,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            // Not anyhow's Debug output: a backtrace (RUST_BACKTRACE) would bury the message.
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let root = workspace_root()?;
    match cli.command {
        Cmd::Up {
            seed_routes_closed,
            broker,
            rate_limit,
        } => {
            let options = up::UpOptions {
                seed_routes_open: !seed_routes_closed,
                on_kafka: broker == BrokerChoice::Kafka,
                rate_limit,
            };
            up::run(&root, &options).await
        }
        Cmd::Infra {
            action: InfraCmd::Up,
        } => {
            let infra = infra::ensure_infra(&root).await?;
            for (name, value) in infra.env() {
                println!("export {name}={}", shell_quote(&value));
            }
            let kafka = kafka::ensure_kafka(&infra::private_dir(&root)).await?;
            println!(
                "export {}={}",
                kafka::ENV_KAFKA_BOOTSTRAP,
                shell_quote(&kafka)
            );
            let venv = tools::ensure_tools_venv(&root).await?;
            println!(
                "export {}={}",
                tools::ENV_TOOLS_VENV,
                shell_quote(&venv.display().to_string())
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Infra {
            action: InfraCmd::Down,
        } => {
            infra::stop_private_infra(&root)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Infra {
            action: InfraCmd::Ensure,
        } => {
            infra::ensure_infra(&root).await?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Chaos(args) => chaos::run(&root, &args).await,
        Cmd::ChartDocs { check } => {
            chart_docs::run(&root, check)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::AutoscalingChart(args) => {
            autoscaling_chart::run(&root, &args)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Test { args } => test::run(&root, &args).await,
        Cmd::Bench(args) => {
            bench::run(&root, &args).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `cargo` in the workspace root, without the variables `cargo run` set for xtask
/// itself ([`sales_testkit::cargo_command`] says why).
fn cargo_command(workspace_root: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::from(sales_testkit::cargo_command());
    cmd.current_dir(workspace_root);
    cmd
}

/// The workspace root: the parent of this crate's directory.
fn workspace_root() -> Result<PathBuf> {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .context("xtask's manifest directory has no parent")
}

fn shell_quote(s: &str) -> String {
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"@%+=:,./_-".contains(&b))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}
