//! Installing Debian packages (as root) for what the developer commands need.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use anyhow::{Result, bail};
use tokio::process::Command;

/// Whether we run as root (effective uid 0): then missing packages are installed,
/// and the private servers run as their Debian users.
pub use sales_testkit::run_as::is_root;

/// `apt-get install` some Debian packages, without letting them start services (a
/// `policy-rc.d` that refuses, for the length of the install): the private instances
/// run on their own ports, and nobody asked for system-wide servers.
pub async fn apt_install(packages: &[&str]) -> Result<()> {
    let started = std::time::Instant::now();
    eprintln!("xtask: installing Debian packages: {}", packages.join(" "));
    let policy = Path::new("/usr/sbin/policy-rc.d");
    let placed_policy = !policy.exists();
    if placed_policy {
        std::fs::write(policy, "#!/bin/sh\nexit 101\n")?;
        std::fs::set_permissions(policy, std::fs::Permissions::from_mode(0o755))?;
    }
    let install = async {
        let update = Command::new("apt-get")
            .args(["update", "-qq"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .await?;
        if !update.success() {
            bail!("apt-get update failed");
        }
        let status = Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .await?;
        if !status.success() {
            bail!("apt-get install {} failed", packages.join(" "));
        }
        Ok(())
    }
    .await;
    if placed_policy {
        let _ = std::fs::remove_file(policy);
    }
    install?;
    eprintln!(
        "xtask: installed {} ({:.1}s)",
        packages.join(" "),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
