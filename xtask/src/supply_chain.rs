//! The supply-chain checks of `cargo xtask test`: unused dependencies (`cargo
//! machete`, issue 16), and (issue 11) `cargo deny check` with
//! `deny.toml` — advisories (known vulnerabilities, unmaintained crates), licenses,
//! bans (wildcard versions) and sources (crates.io only) — without the network.
//!
//! cargo-machete and cargo-deny are pinned ([`CARGO_MACHETE_VERSION`],
//! [`CARGO_DENY_VERSION`]) and installed with `cargo install --locked` when
//! `cargo machete --version` / `cargo deny --version` does not answer with the pin.
//!
//! The advisories come from a snapshot of the RustSec database, a plain directory:
//! `SALES_ADVISORY_DB`, else `../shared/advisory-db` next to the workspace. cargo-deny
//! reads a database only from `<db-path>/<name>-<hash of its URL>` ([`DB_DIR`]), and
//! takes it for a git checkout: with `--offline` it asks git for the time of its last
//! commit, without it it runs `git fetch` and `git reset --hard` there (which, in a
//! directory that is not a repository of its own, would reach the workspace's). So
//! every run copies the snapshot into `target/advisory-dbs/` as a one-commit repository
//! whose `origin` is RustSec's (a `cargo deny check` by hand, online, updates the copy)
//! and runs `cargo deny --offline`. Without a snapshot the advisories are skipped,
//! saying so, and the other three checks still run.

use std::{
    path::{Path, PathBuf},
    process::ExitStatus,
    time::Instant,
};

use anyhow::{Context as _, Result, bail, ensure};
use tokio::process::Command;

/// The cargo-deny release the project is checked with.
pub const CARGO_DENY_VERSION: &str = "0.20.2";

/// The cargo-machete release that looks for unused dependencies.
pub const CARGO_MACHETE_VERSION: &str = "0.9.2";

/// Overrides where the advisory database snapshot is.
pub const ENV_ADVISORY_DB: &str = "SALES_ADVISORY_DB";

/// The database's URL (`db-urls` in deny.toml) and the directory cargo-deny
/// [`CARGO_DENY_VERSION`] opens for it under `db-path`: the URL's last segment and
/// the XxHash64 of the lowercased URL (its `url_to_db_path`). With another version,
/// check that cargo-deny still opens this directory (`cargo deny -L debug ...` names it).
const DB_URL: &str = "https://github.com/rustsec/advisory-db";
const DB_DIR: &str = "advisory-db-3157b0e258782691";

/// Runs `cargo deny check` from the workspace root, installing cargo-deny first if
/// needed and putting the advisory snapshot (if any) where cargo-deny looks.
pub async fn check(workspace_root: &Path) -> Result<ExitStatus> {
    ensure_cargo_deny(workspace_root).await?;
    let host = host_triple().await?;
    let mut cmd = crate::cargo_command(workspace_root);
    // `--target`: offline, cargo can describe only the crates it has downloaded (the
    // host's, for clippy just before); cargo-deny passes it on as `--filter-platform`.
    cmd.args(["deny", "--offline", "--target", &host, "check"])
        .arg("--hide-inclusion-graph");

    let snapshot = snapshot_dir(workspace_root);
    if snapshot.is_dir() {
        let which = std::fs::read_to_string(snapshot.join("SNAPSHOT"))
            .map_or_else(|_| "no SNAPSHOT file".to_owned(), |s| s.trim().to_owned());
        eprintln!("xtask: advisories: {} ({which})", snapshot.display());
        let db_root = workspace_root.join("target/advisory-dbs");
        install_snapshot(&snapshot, &db_root, &which).await?;
    } else {
        eprintln!(
            "xtask: advisories: skipped, no advisory database snapshot at {} (set {ENV_ADVISORY_DB})",
            snapshot.display()
        );
        cmd.args(["licenses", "bans", "sources"]);
    }

    let status = crate::test::step(cmd, "cargo deny").await?;
    if !status.success() {
        eprintln!(
            "xtask: to see which crates pull each finding in: cargo deny --offline --target {host} check"
        );
    }
    Ok(status)
}

/// `SALES_ADVISORY_DB` if set, else `shared/advisory-db` beside the workspace.
fn snapshot_dir(workspace_root: &Path) -> PathBuf {
    match std::env::var_os(ENV_ADVISORY_DB).filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root
            .parent()
            .unwrap_or(workspace_root)
            .join("shared/advisory-db"),
    }
}

/// Installs the pinned cargo-deny into ~/.cargo/bin unless `cargo deny` is already it.
async fn ensure_cargo_deny(workspace_root: &Path) -> Result<()> {
    ensure_cargo_tool(workspace_root, "deny", CARGO_DENY_VERSION).await
}

/// Runs `cargo machete` (a pinned [`CARGO_MACHETE_VERSION`], installed first when
/// missing): fails when a crate declares a dependency its code never names. A
/// dependency used only in a way it cannot see goes in the crate's
/// `[package.metadata.cargo-machete] ignored`, with a comment saying why.
pub async fn unused_dependencies(workspace_root: &Path) -> Result<ExitStatus> {
    ensure_cargo_tool(workspace_root, "machete", CARGO_MACHETE_VERSION).await?;
    let mut cmd = crate::cargo_command(workspace_root);
    cmd.arg("machete");
    crate::test::step(cmd, "cargo machete").await
}

/// Installs `cargo-<tool>` `version` into ~/.cargo/bin (`cargo install --locked`)
/// unless `cargo <tool> --version` already answers with that version.
async fn ensure_cargo_tool(workspace_root: &Path, tool: &str, version: &str) -> Result<()> {
    let package = format!("cargo-{tool}");
    let wanted = format!("{package} {version}");
    let found = cargo_tool_version(workspace_root, tool).await;
    if found
        .as_deref()
        .is_some_and(|f| is_version(f, &package, version))
    {
        return Ok(());
    }
    eprintln!(
        "xtask: {} found; installing {wanted} (cargo install --locked, once per machine, a few minutes)",
        found.as_deref().unwrap_or(&format!("no {package}"))
    );
    let started = Instant::now();
    let status = crate::cargo_command(workspace_root)
        .args(["install", &package, "--locked", "--version", version])
        .status()
        .await
        .context("cannot run cargo install")?;
    ensure!(
        status.success(),
        "cargo install {package} --locked --version {version} failed ({status})"
    );
    let found = cargo_tool_version(workspace_root, tool).await;
    ensure!(
        found
            .as_deref()
            .is_some_and(|f| is_version(f, &package, version)),
        "installed {wanted}, but `cargo {tool} --version` answers {found:?} (another {package} earlier on PATH?)"
    );
    eprintln!(
        "xtask: installed {wanted} ({:.0}s)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Whether `answer` to `--version` names `version`: cargo-deny answers
/// "cargo-deny 0.20.2", cargo-machete "0.9.2".
fn is_version(answer: &str, package: &str, version: &str) -> bool {
    let answer = answer.trim();
    answer == version || answer == format!("{package} {version}")
}

/// What `cargo <tool> --version` answers, if it runs.
async fn cargo_tool_version(workspace_root: &Path, tool: &str) -> Option<String> {
    let out = crate::cargo_command(workspace_root)
        .args([tool, "--version"])
        .output()
        .await
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The host's target triple, from `rustc -vV`.
async fn host_triple() -> Result<String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(rustc)
        .arg("-vV")
        .output()
        .await
        .context("cannot run rustc -vV")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_owned)
        .context("rustc -vV names no host")
}

/// Replaces `<db_root>/DB_DIR` with a copy of `snapshot`, committed (as `message`)
/// into a fresh git repository. The snapshot itself is only read.
async fn install_snapshot(snapshot: &Path, db_root: &Path, message: &str) -> Result<()> {
    ensure!(
        snapshot.join("crates").is_dir(),
        "{} is not a RustSec advisory database (no crates/ directory)",
        snapshot.display()
    );
    let db = db_root.join(DB_DIR);
    match std::fs::remove_dir_all(&db) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("cannot remove {}", db.display()));
        }
        _ => {}
    }
    copy_tree(snapshot, &db)
        .with_context(|| format!("cannot copy {} to {}", snapshot.display(), db.display()))?;
    let steps: [&[&str]; 4] = [
        &["init", "--quiet", "--initial-branch=main"],
        &["remote", "add", "origin", DB_URL],
        &["add", "--all"],
        &[
            "-c",
            "user.name=xtask",
            "-c",
            "user.email=xtask@localhost",
            "-c",
            "commit.gpgsign=false",
            "commit",
            "--quiet",
            "--no-verify",
            "--message",
            message,
        ],
    ];
    for args in steps {
        let out = Command::new("git")
            .arg("-C")
            .arg(&db)
            .args(args)
            // Set by git hooks; they would point every command at another repository.
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .env_remove("GIT_INDEX_FILE")
            .env_remove("GIT_OBJECT_DIRECTORY")
            .env_remove("GIT_ALTERNATE_OBJECT_DIRECTORIES")
            .output()
            .await
            .context("cannot run git (needed for the advisory database copy)")?;
        if !out.status.success() {
            bail!(
                "git {} in {} failed: {}",
                args.join(" "),
                db.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    Ok(())
}

/// Copies the directories and files under `from` to `to`, leaving out `.git`
/// directories (`SALES_ADVISORY_DB` may name a clone).
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type()?.is_dir() {
            if entry.file_name() != ".git" {
                copy_tree(&source, &target)?;
            }
        } else {
            std::fs::copy(&source, &target)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_answers_of_both_tools_are_recognised() {
        assert!(is_version("cargo-deny 0.20.2\n", "cargo-deny", "0.20.2"));
        assert!(is_version("0.9.2\n", "cargo-machete", "0.9.2"));
        assert!(!is_version("cargo-deny 0.20.1", "cargo-deny", "0.20.2"));
        assert!(!is_version("0.9.20", "cargo-machete", "0.9.2"));
    }
}
