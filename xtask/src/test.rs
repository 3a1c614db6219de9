//! `cargo xtask test`: infrastructure, build, then every test of the workspace.

use std::{
    path::Path,
    process::{ExitCode, ExitStatus, Stdio},
};

use anyhow::{Context as _, Result};
use tokio::process::Command;

use crate::{infra, kafka, test_vhost::TestVhost, tools};

// A step of this command; the file sits beside the others in xtask/src.
/// Ensures the infrastructure, checks formatting and clippy lints, checks the
/// dependencies with cargo-deny ([`supply_chain`]), builds every binary (system tests
/// start them), then runs
/// `cargo nextest run` (or `cargo test` without nextest) with the infrastructure's
/// `SALES_*` variables, and (without `extra`) a two-second smoke run of the benchmark and
/// the short chaos run.
/// `extra` goes to the test runner. Returns the failing step's status.
pub async fn run(workspace_root: &Path, extra: &[String]) -> Result<ExitCode> {
    let infra = infra::ensure_infra(workspace_root).await?;
    let venv = tools::ensure_tools_venv(workspace_root).await?;
    tools::ensure_prometheus().await?;
    let mut env: Vec<(&'static str, String)> = infra.env();
    env.push((tools::ENV_TOOLS_VENV, venv.display().to_string()));
    // The messaging tests run on Kafka too, each on a tansu of its own (one shared
    // tansu stalled under the whole suite); a cluster named in SALES_KAFKA_BOOTSTRAP
    // is checked here and shared by the tests instead.
    if std::env::var(kafka::ENV_KAFKA_BOOTSTRAP).is_ok_and(|b| !b.trim().is_empty()) {
        let kafka = kafka::ensure_kafka(&infra::private_dir(workspace_root)).await?;
        env.push((kafka::ENV_KAFKA_BOOTSTRAP, kafka));
    }
    let tansu = kafka::ensure_tansu().await?;
    env.push((kafka::ENV_TANSU_BIN, tansu.display().to_string()));
    // The tests run in a vhost of their own, deleted at the end with whatever they left.
    let vhost = match &infra.rabbitmq_management_url {
        Some(management) => Some(TestVhost::create(management, &infra.amqp_url).await?),
        None => None,
    };
    if let Some(vhost) = &vhost {
        eprintln!("xtask: tests use RabbitMQ vhost {}", vhost.name());
        let url = vhost.amqp_url(&infra.amqp_url)?;
        env.retain(|(k, _)| *k != infra::ENV_AMQP_URL);
        env.push((infra::ENV_AMQP_URL, url));
    }
    let result = run_steps(workspace_root, extra, &env).await;
    if let Some(vhost) = vhost
        && let Err(e) = vhost.delete().await
    {
        eprintln!("xtask: could not delete the tests' RabbitMQ vhost: {e:#}");
    }
    result
}

/// The steps of [`run`], with the infrastructure's environment `env`.
async fn run_steps(
    workspace_root: &Path,
    extra: &[String],
    env: &[(&'static str, String)],
) -> Result<ExitCode> {
    let cargo_cmd = |args: &[&str]| {
        let mut cmd = crate::cargo_command(workspace_root);
        cmd.args(args).envs(env.iter().map(|(k, v)| (k, v)));
        cmd
    };

    // Style and lints first: they are the cheapest to fail.
    let lints: [(&[&str], &str); 2] = [
        (&["fmt", "--all", "--check"], "cargo fmt"),
        (
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
            "cargo clippy",
        ),
    ];
    for (args, what) in lints {
        let status = step(cargo_cmd(args), what).await?;
        if !status.success() {
            return Ok(exit_code(status));
        }
    }
    // The charts' READMEs list every value as the schema and values.yaml say.
    eprintln!("xtask: cargo xtask chart-docs --check");
    if let Err(e) = crate::chart_docs::run(workspace_root, true) {
        eprintln!("xtask: chart-docs failed: {e:#}");
        return Ok(ExitCode::FAILURE);
    }
    // The dependencies: none declared and unused; advisories, licenses, bans,
    // sources (offline).
    let status = crate::supply_chain::unused_dependencies(workspace_root).await?;
    if !status.success() {
        return Ok(exit_code(status));
    }
    let status = crate::supply_chain::check(workspace_root).await?;
    if !status.success() {
        return Ok(exit_code(status));
    }

    let status = step(
        cargo_cmd(&["build", "--workspace", "--bins"]),
        "cargo build",
    )
    .await?;
    if !status.success() {
        return Ok(exit_code(status));
    }

    let nextest = cargo_cmd(&["nextest", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success());
    let mut tests = if nextest {
        let mut cmd = cargo_cmd(&["nextest", "run", "--workspace", "--no-fail-fast"]);
        // A workspace (or filter) without tests is not a failure unless asked for.
        if !extra.iter().any(|a| a.starts_with("--no-tests")) {
            cmd.arg("--no-tests=warn");
        }
        cmd
    } else {
        eprintln!("xtask: cargo-nextest not installed; using cargo test");
        cargo_cmd(&["test", "--workspace", "--no-fail-fast"])
    };
    // The end-to-end tests start the binaries just built; they need not build them again.
    tests.env("SALES_BINARIES_BUILT", "1").args(extra);
    let status = step(
        tests,
        if nextest {
            "cargo nextest"
        } else {
            "cargo test"
        },
    )
    .await?;
    if !status.success() || !extra.is_empty() {
        return Ok(exit_code(status));
    }

    // The benchmark's own flow, briefly, so `cargo xtask bench` keeps working (its
    // numbers mean nothing here; it fails only if a request or an event does).
    eprintln!(
        "xtask: cargo xtask bench --debug --scenario one-call,saga --clients 2 --seconds 2 --skus 100 (smoke run)"
    );
    crate::bench::run(workspace_root, &crate::bench::BenchArgs::smoke())
        .await
        .context("the benchmark's smoke run failed")?;

    // A short fault run under load (about two minutes): the faults are real, so it
    // runs after every test, when nothing else uses the private infrastructure.
    eprintln!("xtask: cargo xtask chaos --short (a fault run under load; report in target/chaos/)");
    let code = crate::chaos::run(workspace_root, &crate::chaos::ChaosArgs::short_run())
        .await
        .context("the short chaos run failed")?;
    Ok(code)
}

/// Runs `cmd`, showing it first, and says so when it fails.
pub async fn step(mut cmd: Command, what: &str) -> Result<ExitStatus> {
    let shown = {
        let std = cmd.as_std();
        std::iter::once(std.get_program())
            .chain(std.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    };
    eprintln!("xtask: {shown}");
    let status = cmd
        .status()
        .await
        .with_context(|| format!("could not run {what}"))?;
    if !status.success() {
        eprintln!("xtask: {what} failed ({status})");
    }
    Ok(status)
}

/// The child's exit code (128 + signal when killed), clamped to what a process can return.
fn exit_code(status: ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt as _;
    if status.success() {
        return ExitCode::SUCCESS;
    }
    let code = status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1);
    ExitCode::from(u8::try_from(code).ok().filter(|c| *c != 0).unwrap_or(1))
}
