//! Local infrastructure for development and tests: PostgreSQL, RabbitMQ and Redis.
//!
//! For each component, a URL in the environment (`SALES_POSTGRES_URL`, `SALES_AMQP_URL` with
//! the optional `SALES_RABBITMQ_MANAGEMENT_URL`, `SALES_REDIS_URL`) wins and is only checked
//! for reachability. Without one, a private instance is started (or reused) from the
//! machine's own binaries, with its data under `/var/tmp/sales-system-infra/<component>` (`SALES_INFRA_DIR`)
//! (or `$SALES_INFRA_DIR/<component>`) and on non-standard ports, so it coexists with
//! system-wide servers. Missing binaries are installed with `apt-get` when running as root.

use std::{
    fmt::Write as _,
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Command as StdCommand, Output, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail};
use sales_testkit::run_as::command_as;
use sqlx::{Connection as _, PgConnection};
use tokio::process::Command;

/// Port of the private PostgreSQL server.
pub const POSTGRES_PORT: u16 = 55432;
/// AMQP port of the private RabbitMQ node.
pub const AMQP_PORT: u16 = 55672;
/// Management (HTTP API and UI) port of the private RabbitMQ node.
pub const RABBITMQ_MANAGEMENT_PORT: u16 = 55673;
/// Erlang distribution port of the private RabbitMQ node.
pub const RABBITMQ_DIST_PORT: u16 = 25679;
/// Erlang node name of the private RabbitMQ node.
pub const RABBITMQ_NODE: &str = "salesdev@localhost";
/// Port of the private Redis server.
pub const REDIS_PORT: u16 = 56379;

pub const ENV_POSTGRES_URL: &str = "SALES_POSTGRES_URL";
pub const ENV_AMQP_URL: &str = "SALES_AMQP_URL";
pub const ENV_RABBITMQ_MANAGEMENT_URL: &str = "SALES_RABBITMQ_MANAGEMENT_URL";
pub const ENV_REDIS_URL: &str = "SALES_REDIS_URL";
/// Overrides where the private instances live (default [`DEFAULT_INFRA_DIR`]).
pub const ENV_INFRA_DIR: &str = "SALES_INFRA_DIR";
/// Where the private instances live: per machine, outside any checkout, readable by
/// the `postgres` and `rabbitmq` users.
pub const DEFAULT_INFRA_DIR: &str = "/var/tmp/sales-system-infra";

const POSTGRES_USER: &str = "postgres";
const RABBITMQ_USER: &str = "rabbitmq";
const REDIS_USER: &str = "redis";
/// A node boots in seconds; one with many durable queues to recover takes longer.
const RABBITMQ_READY_TIMEOUT: Duration = Duration::from_secs(300);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the infrastructure is: URLs for the services and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Infra {
    /// Admin URL of a PostgreSQL server, e.g. `postgres://postgres@127.0.0.1:55432/postgres`.
    pub postgres_url: String,
    /// e.g. `amqp://guest:guest@127.0.0.1:55672/%2f`.
    pub amqp_url: String,
    /// e.g. `http://guest:guest@127.0.0.1:55673` (`None` if unknown).
    pub rabbitmq_management_url: Option<String>,
    /// e.g. `redis://127.0.0.1:56379`.
    pub redis_url: String,
    /// Where the private instances live, when any is private (for `rabbitmqctl`).
    pub infra_dir: Option<PathBuf>,
}

impl Infra {
    /// The environment variables that describe this infrastructure.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            (ENV_POSTGRES_URL, self.postgres_url.clone()),
            (ENV_AMQP_URL, self.amqp_url.clone()),
        ];
        if let Some(url) = &self.rabbitmq_management_url {
            env.push((ENV_RABBITMQ_MANAGEMENT_URL, url.clone()));
        }
        env.push((ENV_REDIS_URL, self.redis_url.clone()));
        if let Some(dir) = &self.infra_dir {
            env.push((ENV_INFRA_DIR, dir.display().to_string()));
        }
        env
    }
}

/// Makes PostgreSQL, RabbitMQ and Redis available: the ones given in the environment are
/// checked, the others are started (or reused) as private instances under
/// `/var/tmp/sales-system-infra` (`SALES_INFRA_DIR`). Prints one line per component on stderr.
pub async fn ensure_infra(workspace_root: &Path) -> Result<Infra> {
    let dirs = Dirs::new(workspace_root);
    let pg_env = env_url(ENV_POSTGRES_URL);
    let amqp_env = env_url(ENV_AMQP_URL);
    let mgmt_env = env_url(ENV_RABBITMQ_MANAGEMENT_URL);
    let redis_env = env_url(ENV_REDIS_URL);

    let root = crate::debian::is_root();
    let tools = Tools::locate_or_install(
        pg_env.is_none(),
        amqp_env.is_none(),
        redis_env.is_none(),
        root,
        dirs.postgres.join("data").as_path(),
    )
    .await?;
    // One xtask at a time starts or stops the private instances (held until we return).
    let _lock = if pg_env.is_none() || amqp_env.is_none() || redis_env.is_none() {
        let dirs_base = dirs.base.clone();
        Some(
            tokio::task::spawn_blocking(move || lock_infra_dir(&dirs_base))
                .await
                .context("waiting for the infrastructure lock")??,
        )
    } else {
        None
    };

    let postgres = async {
        let started = Instant::now();
        match (&pg_env, &tools.postgres) {
            (Some(url), _) => {
                check_postgres(url).await.with_context(|| {
                    format!("{ENV_POSTGRES_URL}={} is not reachable", redact(url))
                })?;
                report(
                    "postgres",
                    &format!("using {ENV_POSTGRES_URL} ({})", redact(url)),
                    started,
                );
                Ok(url.clone())
            }
            (None, Some(bin)) => {
                let (url, what) = private_postgres(&dirs, bin, root).await?;
                report("postgres", &what, started);
                Ok(url)
            }
            (None, None) => Err(anyhow!(
                "internal error: PostgreSQL binaries were not located"
            )),
        }
    };
    let rabbitmq = async {
        let started = Instant::now();
        match (&amqp_env, &tools.rabbitmq) {
            (Some(url), _) => {
                check_amqp(url)
                    .await
                    .with_context(|| format!("{ENV_AMQP_URL}={} is not reachable", redact(url)))?;
                if let Some(mgmt) = &mgmt_env {
                    check_management(mgmt, None).await.with_context(|| {
                        format!(
                            "{ENV_RABBITMQ_MANAGEMENT_URL}={} is not reachable",
                            redact(mgmt)
                        )
                    })?;
                }
                let what = match &mgmt_env {
                    Some(m) => format!(
                        "using {ENV_AMQP_URL} ({}) and {ENV_RABBITMQ_MANAGEMENT_URL} ({})",
                        redact(url),
                        redact(m)
                    ),
                    None => format!(
                        "using {ENV_AMQP_URL} ({}); no {ENV_RABBITMQ_MANAGEMENT_URL}",
                        redact(url)
                    ),
                };
                report("rabbitmq", &what, started);
                Ok((url.clone(), mgmt_env.clone()))
            }
            (None, Some(bin)) => {
                let (amqp, mgmt, what) = private_rabbitmq(&dirs, bin, root).await?;
                report("rabbitmq", &what, started);
                Ok((amqp, Some(mgmt)))
            }
            (None, None) => Err(anyhow!(
                "internal error: RabbitMQ binaries were not located"
            )),
        }
    };
    let redis = async {
        let started = Instant::now();
        match (&redis_env, &tools.redis) {
            (Some(url), _) => {
                check_redis(url)
                    .await
                    .with_context(|| format!("{ENV_REDIS_URL}={} is not reachable", redact(url)))?;
                report(
                    "redis",
                    &format!("using {ENV_REDIS_URL} ({})", redact(url)),
                    started,
                );
                Ok(url.clone())
            }
            (None, Some(bin)) => {
                let (url, what) = private_redis(&dirs, bin, root).await?;
                report("redis", &what, started);
                Ok(url)
            }
            (None, None) => Err(anyhow!("internal error: redis-server was not located")),
        }
    };

    // All three run to the end, so that every problem is reported at once.
    match tokio::join!(postgres, rabbitmq, redis) {
        (Ok(postgres_url), Ok((amqp_url, rabbitmq_management_url)), Ok(redis_url)) => Ok(Infra {
            postgres_url,
            amqp_url,
            rabbitmq_management_url,
            redis_url,
            infra_dir: (pg_env.is_none() || amqp_env.is_none() || redis_env.is_none())
                .then(|| dirs.base.clone()),
        }),
        (pg, rabbit, redis) => {
            let errors: Vec<String> = [
                pg.err().map(|e| format!("postgres: {e:#}")),
                rabbit.err().map(|e| format!("rabbitmq: {e:#}")),
                redis.err().map(|e| format!("redis: {e:#}")),
            ]
            .into_iter()
            .flatten()
            .collect();
            bail!(
                "local infrastructure is not available:\n{}",
                errors.join("\n")
            )
        }
    }
}

/// Where the private instances live: `$SALES_INFRA_DIR`, else [`DEFAULT_INFRA_DIR`].
pub fn private_dir(workspace_root: &Path) -> PathBuf {
    Dirs::new(workspace_root).base
}

/// Stops the private instances under `/var/tmp/sales-system-infra` (never servers
/// given by URL or system-wide ones). Instances that are not running are fine.
pub fn stop_private_infra(workspace_root: &Path) -> Result<()> {
    let dirs = Dirs::new(workspace_root);
    if !dirs.base.exists() {
        eprintln!(
            "infra: no private instances ({} does not exist)",
            dirs.base.display()
        );
        return Ok(());
    }
    let _lock = lock_infra_dir(&dirs.base)?;
    let root = crate::debian::is_root();
    let mut errors = Vec::new();
    for (name, result) in [
        ("postgres", stop_postgres(&dirs, root)),
        ("rabbitmq", stop_rabbitmq(&dirs, root)),
        ("redis", stop_redis(&dirs)),
        ("kafka", crate::kafka::stop_kafka(&dirs.base)),
    ] {
        match result {
            Ok(what) => eprintln!("infra: {name:<8} {what}"),
            Err(e) => {
                eprintln!("infra: {name:<8} FAILED to stop: {e:#}");
                errors.push(format!("{name}: {e:#}"));
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        bail!(
            "could not stop every private instance:\n{}",
            errors.join("\n")
        )
    }
}

/// Creates `base` and takes an exclusive lock on `base/.lock`, waiting (with a note) while
/// another xtask holds it. The lock goes with the returned file.
fn lock_infra_dir(base: &Path) -> Result<fs::File> {
    fs::create_dir_all(base).with_context(|| format!("creating {}", base.display()))?;
    let path = base.join(".lock");
    let file = fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => return Ok(file),
        Err(fs::TryLockError::WouldBlock) => {
            eprintln!(
                "infra: waiting for another xtask holding {}",
                path.display()
            );
        }
        Err(fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", path.display()));
        }
    }
    file.lock()
        .with_context(|| format!("locking {}", path.display()))?;
    Ok(file)
}

// ---------------------------------------------------------------------------------------
// Layout, binaries, installation
// ---------------------------------------------------------------------------------------

struct Dirs {
    base: PathBuf,
    postgres: PathBuf,
    rabbitmq: PathBuf,
    redis: PathBuf,
}

impl Dirs {
    /// `$SALES_INFRA_DIR` if set, else [`DEFAULT_INFRA_DIR`]: one place per machine,
    /// like the fixed ports, so every checkout (CI's clean clone included) finds and
    /// shares the same private instances.
    fn new(_workspace_root: &Path) -> Self {
        let base =
            env_url(ENV_INFRA_DIR).map_or_else(|| PathBuf::from(DEFAULT_INFRA_DIR), PathBuf::from);
        Self {
            postgres: base.join("postgres"),
            rabbitmq: base.join("rabbitmq"),
            redis: base.join("redis"),
            base,
        }
    }

    /// Where the output of a daemon-starting command is captured (outside the component
    /// directory, which may belong to another user).
    fn capture(&self, name: &str) -> PathBuf {
        self.base.join(format!("{name}-start.out"))
    }
}

struct PgBin {
    dir: PathBuf,
    version: String,
}

impl PgBin {
    fn initdb(&self) -> PathBuf {
        self.dir.join("initdb")
    }
    fn pg_ctl(&self) -> PathBuf {
        self.dir.join("pg_ctl")
    }
}

struct RabbitBin {
    server: PathBuf,
    ctl: PathBuf,
}

struct RedisBin {
    server: PathBuf,
}

#[derive(Default)]
struct Tools {
    postgres: Option<PgBin>,
    rabbitmq: Option<RabbitBin>,
    redis: Option<RedisBin>,
}

impl Tools {
    fn locate(need_pg: bool, need_rabbit: bool, need_redis: bool, pg_data: &Path) -> Self {
        Self {
            postgres: need_pg.then(|| find_postgres(pg_data)).flatten(),
            rabbitmq: need_rabbit.then(find_rabbitmq).flatten(),
            redis: need_redis.then(find_redis).flatten(),
        }
    }

    /// `(package, what it is for, env var to set instead)` for every needed missing binary.
    fn missing(
        &self,
        need_pg: bool,
        need_rabbit: bool,
        need_redis: bool,
    ) -> Vec<(&'static str, &'static str, &'static str)> {
        let mut missing = Vec::new();
        if need_pg && self.postgres.is_none() {
            missing.push((
                "postgresql",
                "PostgreSQL server (initdb, pg_ctl)",
                ENV_POSTGRES_URL,
            ));
        }
        if need_rabbit && self.rabbitmq.is_none() {
            missing.push((
                "rabbitmq-server",
                "RabbitMQ (rabbitmq-server, rabbitmqctl)",
                ENV_AMQP_URL,
            ));
        }
        if need_redis && self.redis.is_none() {
            missing.push(("redis-server", "Redis (redis-server)", ENV_REDIS_URL));
        }
        missing
    }

    async fn locate_or_install(
        need_pg: bool,
        need_rabbit: bool,
        need_redis: bool,
        root: bool,
        pg_data: &Path,
    ) -> Result<Self> {
        let tools = Self::locate(need_pg, need_rabbit, need_redis, pg_data);
        let missing = tools.missing(need_pg, need_rabbit, need_redis);
        if missing.is_empty() {
            return Ok(tools);
        }
        let packages: Vec<&str> = missing.iter().map(|m| m.0).collect();
        if !root {
            let mut msg = String::from("local infrastructure is missing:\n");
            for (pkg, what, var) in &missing {
                let _ = writeln!(
                    msg,
                    "  - {what}: install the `{pkg}` package, or set {var} to a running server"
                );
            }
            let _ = write!(
                msg,
                "e.g. `sudo apt-get install -y --no-install-recommends {}`",
                packages.join(" ")
            );
            bail!(msg);
        }
        let started = Instant::now();
        eprintln!(
            "infra: installing {} with apt-get (missing binaries)...",
            packages.join(" ")
        );
        crate::debian::apt_install(&packages).await?;
        let tools = Self::locate(need_pg, need_rabbit, need_redis, pg_data);
        let still = tools.missing(need_pg, need_rabbit, need_redis);
        if !still.is_empty() {
            let names: Vec<&str> = still.iter().map(|m| m.1).collect();
            bail!(
                "after `apt-get install {}`, still not found: {}",
                packages.join(" "),
                names.join(", ")
            );
        }
        eprintln!(
            "infra: installed {} in {}",
            packages.join(" "),
            elapsed(started)
        );
        Ok(tools)
    }
}

/// Newest `/usr/lib/postgresql/*/bin`, preferring the version that created `data` if any;
/// else `pg_ctl` on the PATH.
fn find_postgres(data: &Path) -> Option<PgBin> {
    let wanted = fs::read_to_string(data.join("PG_VERSION"))
        .ok()
        .map(|v| v.trim().to_owned());
    let mut found: Vec<(Vec<u32>, PgBin)> = Vec::new();
    if let Ok(entries) = fs::read_dir("/usr/lib/postgresql") {
        for entry in entries.flatten() {
            let version = entry.file_name().to_string_lossy().into_owned();
            let dir = entry.path().join("bin");
            if is_executable(&dir.join("initdb")) && is_executable(&dir.join("pg_ctl")) {
                let key = version.split('.').map(|p| p.parse().unwrap_or(0)).collect();
                found.push((key, PgBin { dir, version }));
            }
        }
    }
    if let Some(wanted) = &wanted
        && let Some(i) = found.iter().position(|(_, b)| &b.version == wanted)
    {
        return Some(found.swap_remove(i).1);
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some((_, bin)) = found.pop() {
        return Some(bin);
    }
    let pg_ctl = which("pg_ctl")?;
    let dir = fs::canonicalize(&pg_ctl).ok()?.parent()?.to_path_buf();
    is_executable(&dir.join("initdb")).then(|| PgBin {
        version: dir
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "?".into()),
        dir,
    })
}

fn find_rabbitmq() -> Option<RabbitBin> {
    // Debian's /usr/sbin entries are wrappers that `su` to the rabbitmq user and `cd` to its
    // home; the real scripts are in /usr/lib/rabbitmq/bin.
    let debian = Path::new("/usr/lib/rabbitmq/bin");
    if is_executable(&debian.join("rabbitmq-server")) && is_executable(&debian.join("rabbitmqctl"))
    {
        return Some(RabbitBin {
            server: debian.join("rabbitmq-server"),
            ctl: debian.join("rabbitmqctl"),
        });
    }
    Some(RabbitBin {
        server: which("rabbitmq-server")?,
        ctl: which("rabbitmqctl")?,
    })
}

fn find_redis() -> Option<RedisBin> {
    Some(RedisBin {
        server: which("redis-server")?,
    })
}

/// Looks a program up on the PATH and in the sbin directories (not on a user's PATH).
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            [
                "/usr/local/sbin",
                "/usr/local/bin",
                "/usr/sbin",
                "/usr/bin",
                "/sbin",
                "/bin",
            ]
            .map(PathBuf::from),
        )
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The value of an environment variable, if set and not blank.
fn env_url(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

// ---------------------------------------------------------------------------------------
// Running commands
// ---------------------------------------------------------------------------------------

fn describe(cmd: &StdCommand) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

/// Last `n` lines of `text`, trimmed.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.trim().lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn tail_file(path: &Path, n: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => format!(
            "--- last lines of {} ---\n{}",
            path.display(),
            tail(&String::from_utf8_lossy(&bytes), n)
        ),
        Err(e) => format!("({} unreadable: {e})", path.display()),
    }
}

fn output_error(what: &str, output: &Output) -> anyhow::Error {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut msg = format!("`{what}` failed ({})", output.status);
    if !stderr.trim().is_empty() {
        let _ = write!(msg, "\nstderr:\n{}", tail(&stderr, 40));
    }
    if !stdout.trim().is_empty() {
        let _ = write!(msg, "\nstdout:\n{}", tail(&stdout, 20));
    }
    anyhow!(msg)
}

/// Runs a command to completion; its failure is an error with its stderr.
async fn run(cmd: StdCommand, timeout: Duration) -> Result<Output> {
    let output = run_unchecked(cmd, timeout).await?;
    if output.0.status.success() {
        Ok(output.0)
    } else {
        Err(output_error(&output.1, &output.0))
    }
}

/// Runs a command to completion and returns its output whatever its status.
async fn run_unchecked(cmd: StdCommand, timeout: Duration) -> Result<(Output, String)> {
    let what = describe(&cmd);
    let mut cmd = Command::from(cmd);
    cmd.stdin(Stdio::null()).kill_on_drop(true);
    let output = tokio::time::timeout(timeout, cmd.output())
        .await
        .map_err(|_| anyhow!("`{what}` did not finish within {timeout:?}"))?
        .with_context(|| format!("could not run `{what}`"))?;
    Ok((output, what))
}

/// Runs a command that starts a daemon. Its output goes to `capture` (a pipe could be held
/// open by the daemon forever); on failure the error includes that output.
async fn run_daemon_start(cmd: StdCommand, capture: &Path, timeout: Duration) -> Result<()> {
    let what = describe(&cmd);
    let out =
        fs::File::create(capture).with_context(|| format!("creating {}", capture.display()))?;
    let err = out.try_clone()?;
    let mut cmd = Command::from(cmd);
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true);
    let status = tokio::time::timeout(timeout, cmd.status())
        .await
        .map_err(|_| {
            anyhow!(
                "`{what}` did not finish within {timeout:?}\n{}",
                tail_file(capture, 40)
            )
        })?
        .with_context(|| format!("could not run `{what}`"))?;
    if status.success() {
        Ok(())
    } else {
        bail!("`{what}` failed ({status})\n{}", tail_file(capture, 40))
    }
}

/// Blocking variant of [`run_unchecked`] for the synchronous stop path.
fn run_sync(mut cmd: StdCommand) -> Result<(Output, String)> {
    let what = describe(&cmd);
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("could not run `{what}`"))?;
    Ok((output, what))
}

/// Gives `dir` (recursively) to `user` when we are root, and checks that the user can
/// write there (a private parent directory such as `/root` would prevent it).
async fn hand_over(dir: &Path, user: Option<&str>) -> Result<()> {
    let Some(user) = user else { return Ok(()) };
    let mut chown = StdCommand::new("chown");
    chown.arg("-R").arg(format!("{user}:")).arg(dir);
    run(chown, Duration::from_secs(60)).await?;
    let mut test = command_as(Some(user), Path::new("test"), &[]);
    test.arg("-w").arg(dir);
    let (out, _) = run_unchecked(test, Duration::from_secs(10)).await?;
    if !out.status.success() {
        bail!(
            "{} is not writable by the `{user}` user (is a parent directory private, like /root?); \
             make its parents searchable (chmod o+x), set {ENV_INFRA_DIR} to another \
             directory, or set the component's SALES_*_URL",
            dir.display()
        );
    }
    Ok(())
}

fn user_exists(user: &str) -> bool {
    nix::unistd::User::from_name(user).is_ok_and(|found| found.is_some())
}

/// The user to run a private server as: `user` when we are root, else ourselves.
fn service_user(root: bool, user: &'static str) -> Result<Option<&'static str>> {
    if !root {
        return Ok(None);
    }
    if !user_exists(user) {
        bail!("running as root, but the `{user}` user to run the server as does not exist");
    }
    Ok(Some(user))
}

// ---------------------------------------------------------------------------------------
// Processes and pid files
// ---------------------------------------------------------------------------------------

/// The pid in the first line of a pid file.
fn read_pid(path: &Path) -> Option<u32> {
    fs::read_to_string(path)
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// How to recognise one of our daemons in /proc: its command name starts with one of
/// `comm`, and its command line contains `marker` (our data directory or port), so that a
/// recycled pid is not taken for it.
struct Daemon {
    comm: &'static [&'static str],
    marker: String,
}

impl Daemon {
    fn postgres(data: &Path) -> Self {
        Self {
            comm: &["postgres", "postmaster"],
            marker: data.display().to_string(),
        }
    }
    fn rabbitmq(dir: &Path) -> Self {
        // beam.smp runs with `-home DIR` (our HOME).
        Self {
            comm: &["beam"],
            marker: dir.display().to_string(),
        }
    }
    fn redis() -> Self {
        // redis-server rewrites its command line to `redis-server 127.0.0.1:PORT`.
        Self {
            comm: &["redis-server"],
            marker: format!(":{REDIS_PORT}"),
        }
    }
}

/// Whether `pid` is alive and is `daemon`. Without /proc, any pid counts as alive (pid
/// files are then left alone).
fn process_alive(pid: u32, daemon: &Daemon) -> bool {
    if !Path::new("/proc/self").exists() {
        return true;
    }
    let Ok(comm) = fs::read_to_string(format!("/proc/{pid}/comm")) else {
        return false;
    };
    let comm = comm.trim();
    if !daemon.comm.iter().any(|n| comm.starts_with(n)) {
        return false;
    }
    match fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmdline) => {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline.contains(&daemon.marker)
        }
        // Unreadable (e.g. /proc mounted with hidepid): trust the command name.
        Err(_) => true,
    }
}

/// Whether `pid_file` names a live `daemon`.
fn pid_file_alive(pid_file: &Path, daemon: &Daemon) -> bool {
    read_pid(pid_file).is_some_and(|pid| process_alive(pid, daemon))
}

/// Removes `pid_file` if the process it names is gone (or is something else now).
fn remove_stale_pid_file(pid_file: &Path, daemon: &Daemon) -> Result<bool> {
    match read_pid(pid_file) {
        Some(pid) if process_alive(pid, daemon) => Ok(false),
        _ if pid_file.exists() => {
            fs::remove_file(pid_file)
                .with_context(|| format!("removing stale {}", pid_file.display()))?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Waits until `pid` (which was one of our daemons when read) has exited; `false` on timeout.
fn wait_for_exit(pid: Option<u32>, timeout: Duration) -> bool {
    let Some(pid) = pid else { return true };
    // Not `process_alive`: an exiting process loses its command line before its sockets.
    let running = |pid: u32| match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
            !state.is_some_and(|s| s.starts_with(['Z', 'X']))
        }
        // Gone (or no /proc to tell: assume so).
        Err(_) => false,
    };
    let deadline = Instant::now() + timeout;
    while running(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

// ---------------------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------------------

async fn check_postgres(url: &str) -> Result<()> {
    let mut conn = tokio::time::timeout(Duration::from_secs(10), PgConnection::connect(url))
        .await
        .map_err(|_| anyhow!("connecting timed out after 10s"))??;
    let one: i32 = sqlx::query_scalar("select 1").fetch_one(&mut conn).await?;
    if one != 1 {
        bail!("`select 1` returned {one}");
    }
    conn.close().await?;
    Ok(())
}

fn postgres_url() -> String {
    format!("postgres://postgres@127.0.0.1:{POSTGRES_PORT}/postgres")
}

async fn private_postgres(dirs: &Dirs, bin: &PgBin, root: bool) -> Result<(String, String)> {
    let dir = &dirs.postgres;
    let data = dir.join("data");
    let log = dir.join("postgres.log");
    let url = postgres_url();
    let user = service_user(root, POSTGRES_USER)?;

    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let pg = |program: PathBuf| {
        let mut cmd = command_as(user, &program, &[]);
        cmd.current_dir(dir);
        cmd
    };

    // Already running (from an earlier run)? Checked through postmaster.pid ourselves:
    // `pg_ctl status` takes any live process of the same user for the server.
    let postmaster_pid = data.join("postmaster.pid");
    if pid_file_alive(&postmaster_pid, &Daemon::postgres(&data)) {
        wait_for_postgres(&url, &log, Duration::from_secs(30)).await?;
        return Ok((
            url.clone(),
            format!("reusing running private server at {url}"),
        ));
    }

    // A server of ours already answers on the port (another checkout's private one):
    // share it rather than fail to bind a second.
    if check_postgres(&url).await.is_ok() {
        return Ok((
            url.clone(),
            format!("reusing the server already answering at {url}"),
        ));
    }

    hand_over(dir, user).await?;

    let mut initialized = false;
    if !data.exists() {
        // initdb into a scratch directory renamed at the end: an interrupted initdb never
        // leaves a half-made `data` behind.
        let scratch = dir.join("data.initdb");
        if scratch.exists() {
            fs::remove_dir_all(&scratch)
                .with_context(|| format!("removing incomplete {}", scratch.display()))?;
        }
        let mut initdb = pg(bin.initdb());
        initdb.arg("-D").arg(&scratch).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
        ]);
        run(initdb, Duration::from_secs(120)).await?;
        fs::rename(&scratch, &data)
            .with_context(|| format!("renaming {} to {}", scratch.display(), data.display()))?;
        initialized = true;
    } else if !data.join("PG_VERSION").exists() {
        bail!(
            "{} is not a PostgreSQL data directory (no PG_VERSION); remove it to start afresh",
            data.display()
        );
    }

    // A server that was killed leaves postmaster.pid and the socket lock behind.
    remove_stale_pid_file(&postmaster_pid, &Daemon::postgres(&data))?;
    let socket_lock = dir.join(format!(".s.PGSQL.{POSTGRES_PORT}.lock"));
    remove_stale_pid_file(&socket_lock, &Daemon::postgres(&data))?;

    // Unix socket paths are limited to about 107 bytes; without one, TCP only.
    let socket_dir = if dir.as_os_str().len() + 20 < 100 {
        dir.display().to_string()
    } else {
        String::new()
    };
    let options = format!(
        "-p {POSTGRES_PORT} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} \
         -c max_connections=200 -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
         -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all",
        shell_quote(&socket_dir)
    );
    let mut start = pg(bin.pg_ctl());
    start
        .arg("-D")
        .arg(&data)
        .arg("-l")
        .arg(&log)
        .args(["-w", "-t", "60", "-o", &options, "start"]);
    let capture = dirs.capture("postgres");
    run_daemon_start(start, &capture, Duration::from_secs(90))
        .await
        .map_err(|e| anyhow!("{e:#}\n{}", tail_file(&log, 30)))?;
    wait_for_postgres(&url, &log, Duration::from_secs(30)).await?;
    let how = if initialized {
        "initialized and started"
    } else {
        "started"
    };
    Ok((
        url.clone(),
        format!(
            "{how} private PostgreSQL {} at {url} (data {})",
            bin.version,
            data.display()
        ),
    ))
}

async fn wait_for_postgres(url: &str, log: &Path, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        match check_postgres(url).await {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                bail!(
                    "private PostgreSQL at {url} is not answering `select 1`: {e:#}\n{}",
                    tail_file(log, 30)
                )
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

fn stop_postgres(dirs: &Dirs, root: bool) -> Result<String> {
    let dir = &dirs.postgres;
    let data = dir.join("data");
    if !data.join("PG_VERSION").exists() {
        return Ok("no private server".into());
    }
    let Some(bin) = find_postgres(&data) else {
        bail!("PostgreSQL binaries (pg_ctl) not found");
    };
    let user = service_user(root, POSTGRES_USER)?;
    let pg = |args: &[&str]| {
        let mut cmd = command_as(user, &bin.pg_ctl(), &[]);
        cmd.current_dir(dir).arg("-D").arg(&data).args(args);
        cmd
    };
    // Not `pg_ctl status`: with a stale postmaster.pid naming a live process of the same
    // user, it reports "running", and `pg_ctl stop` would signal that process.
    let postmaster_pid = data.join("postmaster.pid");
    if remove_stale_pid_file(&postmaster_pid, &Daemon::postgres(&data))? || !postmaster_pid.exists()
    {
        return Ok("not running".into());
    }
    let (out, what) = run_sync(pg(&["-m", "fast", "-w", "-t", "60", "stop"]))?;
    if !out.status.success() {
        return Err(output_error(&what, &out));
    }
    Ok("stopped".into())
}

/// Single-quotes a value for the shell that `pg_ctl -o` goes through.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

// ---------------------------------------------------------------------------------------
// RabbitMQ
// ---------------------------------------------------------------------------------------

fn rabbitmq_env(dir: &Path) -> Vec<(String, String)> {
    let mut env = sales_testkit::run_as::rabbitmq_node_env(dir, RABBITMQ_NODE, RABBITMQ_DIST_PORT);
    env.extend([
        (
            "RABBITMQ_NODE_IP_ADDRESS".to_owned(),
            "127.0.0.1".to_owned(),
        ),
        ("RABBITMQ_NODE_PORT".to_owned(), AMQP_PORT.to_string()),
    ]);
    env
}

fn amqp_url() -> String {
    format!("amqp://guest:guest@127.0.0.1:{AMQP_PORT}/%2f")
}

fn management_url() -> String {
    format!("http://guest:guest@127.0.0.1:{RABBITMQ_MANAGEMENT_PORT}")
}

async fn private_rabbitmq(
    dirs: &Dirs,
    bin: &RabbitBin,
    root: bool,
) -> Result<(String, String, String)> {
    let dir = &dirs.rabbitmq;
    let amqp = amqp_url();
    let mgmt = management_url();
    let user = service_user(root, RABBITMQ_USER)?;
    let env = rabbitmq_env(dir);
    let pid_file = dir.join("pid");

    if rabbitmq_answers(&amqp, &mgmt).await {
        return Ok((
            amqp.clone(),
            mgmt,
            format!("reusing running private node {RABBITMQ_NODE} at {amqp}"),
        ));
    }

    let booting = pid_file_alive(&pid_file, &Daemon::rabbitmq(dir));
    let what = if booting {
        format!("waited for booting private node {RABBITMQ_NODE} at {amqp}")
    } else {
        fs::create_dir_all(dir.join("log"))
            .with_context(|| format!("creating {}", dir.display()))?;
        fs::create_dir_all(dir.join("mnesia"))
            .with_context(|| format!("creating {}", dir.display()))?;
        let files = [
            ("enabled_plugins", "[rabbitmq_management].\n".to_owned()),
            (
                "rabbitmq.conf",
                format!(
                    "# written by cargo xtask; private development node\n\
                     listeners.tcp.default = 127.0.0.1:{AMQP_PORT}\n\
                     management.tcp.ip = 127.0.0.1\n\
                     management.tcp.port = {RABBITMQ_MANAGEMENT_PORT}\n\
                     collect_statistics_interval = 1000\n"
                ),
            ),
            (
                "rabbitmq-env.conf",
                "# written by cargo xtask; settings come from the environment\n".to_owned(),
            ),
        ];
        for (name, content) in files {
            let path = dir.join(name);
            fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
        }
        remove_stale_pid_file(&pid_file, &Daemon::rabbitmq(dir))?;
        hand_over(dir, user).await?;
        raise_open_files_limit();

        // `runuser` sets the soft limit on open files back to 1024 (PAM), and a RabbitMQ
        // 3.x node at 1024 stops answering new connections once a few hundred quorum
        // queues hold file handles (it waits for one to free): the shell raises it to
        // the hard limit first.
        let mut start = command_as(user, Path::new("/bin/sh"), &env);
        start
            .current_dir(dir)
            .args([
                "-c",
                r#"ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$0" "$@""#,
            ])
            .arg(&bin.server)
            .arg("-detached");
        run_daemon_start(start, &dirs.capture("rabbitmq"), Duration::from_secs(60)).await?;
        format!("started private node {RABBITMQ_NODE} at {amqp}, management {mgmt}")
    };

    wait_for_rabbitmq(dir, bin, user, &env, &amqp, &mgmt).await?;
    Ok((amqp, mgmt, what))
}

/// Raises this process's soft limit on open files to its hard limit, for the node that
/// inherits it (when not started through `runuser`): RabbitMQ wants a file handle per
/// queue it recovers.
fn raise_open_files_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// Whether the private node answers on AMQP and on its management API as itself.
async fn rabbitmq_answers(amqp: &str, mgmt: &str) -> bool {
    check_amqp(amqp).await.is_ok() && check_management(mgmt, Some(RABBITMQ_NODE)).await.is_ok()
}

async fn wait_for_rabbitmq(
    dir: &Path,
    bin: &RabbitBin,
    user: Option<&str>,
    env: &[(String, String)],
    amqp: &str,
    mgmt: &str,
) -> Result<()> {
    let deadline = Instant::now() + RABBITMQ_READY_TIMEOUT;
    let log = dir.join("log").join(format!("{RABBITMQ_NODE}.log"));
    let pid_file = dir.join("pid");
    let mut seen_alive = false;
    loop {
        // Cheap checks first: rabbitmqctl starts an Erlang VM each time, which slows the
        // node's own boot on small machines.
        let last_error = if rabbitmq_answers(amqp, mgmt).await {
            let mut status = command_as(user, &bin.ctl, env);
            status
                .current_dir(dir)
                .args(["-n", RABBITMQ_NODE, "status"]);
            let (out, what) = run_unchecked(status, Duration::from_secs(60)).await?;
            if out.status.success() {
                return Ok(());
            }
            output_error(&what, &out).to_string()
        } else {
            format!("AMQP {amqp} or management {mgmt} not answering yet")
        };
        let alive = pid_file_alive(&pid_file, &Daemon::rabbitmq(dir));
        if seen_alive && !alive {
            bail!(
                "private RabbitMQ node {RABBITMQ_NODE} died while booting\n{}",
                tail_file(&log, 40)
            );
        }
        seen_alive |= alive;
        if Instant::now() > deadline {
            bail!(
                "private RabbitMQ node {RABBITMQ_NODE} not ready after {RABBITMQ_READY_TIMEOUT:?}: \
                 {last_error}\n{}",
                tail_file(&log, 40)
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn stop_rabbitmq(dirs: &Dirs, root: bool) -> Result<String> {
    let dir = &dirs.rabbitmq;
    let pid_file = dir.join("pid");
    if !dir.join("mnesia").exists() {
        return Ok("no private node".into());
    }
    let pid = read_pid(&pid_file);
    let alive = pid.is_some_and(|pid| process_alive(pid, &Daemon::rabbitmq(dir)));
    if !alive {
        remove_stale_pid_file(&pid_file, &Daemon::rabbitmq(dir))?;
        return Ok("not running".into());
    }
    let Some(bin) = find_rabbitmq() else {
        bail!("rabbitmqctl not found");
    };
    let user = service_user(root, RABBITMQ_USER)?;
    let mut stop = command_as(user, &bin.ctl, &rabbitmq_env(dir));
    // With the pid file, `stop` waits until the process has exited.
    stop.current_dir(dir)
        .args(["-n", RABBITMQ_NODE, "stop"])
        .arg(&pid_file);
    let (out, what) = run_sync(stop)?;
    if !out.status.success() {
        if !pid.is_some_and(|pid| process_alive(pid, &Daemon::rabbitmq(dir))) {
            return Ok("stopped".into());
        }
        return Err(output_error(&what, &out));
    }
    if !wait_for_exit(pid, Duration::from_secs(30)) {
        bail!("node {RABBITMQ_NODE} acknowledged `stop` but its process is still alive");
    }
    Ok("stopped".into())
}

/// Opens an AMQP connection (with lapin: handshake, login, vhost) and closes it.
async fn check_amqp(url: &str) -> Result<()> {
    let uri: lapin::uri::AMQPUri = url.parse().map_err(|e: String| {
        // lapin's message may quote the URL, password included.
        let reason = if e.contains(url) { "unparsable" } else { &e };
        anyhow!("not an amqp:// or amqps:// URL: {reason}")
    })?;
    let address = format!("{}:{}", uri.authority.host, uri.authority.port);
    if uri.scheme == lapin::uri::AMQPScheme::AMQPS {
        sales_platform::tls::install_crypto_provider();
    }
    let connect = lapin::Connection::connect(url, lapin::ConnectionProperties::default());
    let connection = tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| anyhow!("no AMQP answer from {address} within {CONNECT_TIMEOUT:?}"))?
        .with_context(|| format!("AMQP connection to {address}"))?;
    // The broker answered and let us in; a failed goodbye changes nothing.
    let _ = tokio::time::timeout(CONNECT_TIMEOUT, connection.close(200, "probe done".into())).await;
    Ok(())
}

/// GET `/api/overview`; when `node` is given, the answering node must be that one.
async fn check_management(url: &str, node: Option<&str>) -> Result<()> {
    let mut parsed = reqwest::Url::parse(url).context("not a URL")?;
    let user = parsed.username().to_owned();
    let password = parsed.password().map(str::to_owned);
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    let endpoint = parsed.join("api/overview")?;
    let client = sales_platform::tls::http_client_builder()
        .timeout(CONNECT_TIMEOUT)
        .build()?;
    let mut request = client.get(endpoint);
    if !user.is_empty() {
        request = request.basic_auth(user, password);
    }
    let response = request.send().await?.error_for_status()?;
    let overview: serde_json::Value = response.json().await?;
    if let Some(node) = node {
        let actual = overview.get("node").and_then(|n| n.as_str()).unwrap_or("");
        if actual != node {
            bail!("management API is for node `{actual}`, not `{node}`");
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Redis
// ---------------------------------------------------------------------------------------

fn redis_url() -> String {
    format!("redis://127.0.0.1:{REDIS_PORT}")
}

async fn private_redis(dirs: &Dirs, bin: &RedisBin, root: bool) -> Result<(String, String)> {
    let dir = &dirs.redis;
    let url = redis_url();
    if check_redis(&url).await.is_ok() {
        return Ok((
            url.clone(),
            format!("reusing running private server at {url}"),
        ));
    }
    // As root, Redis runs as Debian's `redis` user, like PostgreSQL and RabbitMQ as theirs.
    let user = service_user(root, REDIS_USER)?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let pid_file = dir.join("redis.pid");
    let log = dir.join("redis.log");
    remove_stale_pid_file(&pid_file, &Daemon::redis())?;
    hand_over(dir, user).await?;
    let mut start = command_as(user, &bin.server, &[]);
    start
        .current_dir(dir)
        .args(["--daemonize", "yes", "--bind", "127.0.0.1", "--port"])
        .arg(REDIS_PORT.to_string())
        .args(["--save", "", "--appendonly", "no", "--dir"])
        .arg(dir)
        .arg("--pidfile")
        .arg(&pid_file)
        .arg("--logfile")
        .arg(&log);
    run_daemon_start(start, &dirs.capture("redis"), Duration::from_secs(30)).await?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match check_redis(&url).await {
            Ok(()) => break,
            Err(e) if Instant::now() > deadline => bail!(
                "private Redis at {url} is not answering PING: {e:#}\n{}",
                tail_file(&log, 30)
            ),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    Ok((url.clone(), format!("started private server at {url}")))
}

/// Connects with the `redis` crate (which sends `AUTH` when the URL has a password)
/// and sends `PING`; expects `PONG`.
async fn check_redis(url: &str) -> Result<()> {
    let client = redis::Client::open(url).map_err(|e| anyhow!("not a Redis URL: {e}"))?;
    let address = client.get_connection_info().addr().to_string();
    if matches!(
        client.get_connection_info().addr(),
        redis::ConnectionAddr::TcpTls { .. }
    ) {
        sales_platform::tls::install_crypto_provider();
    }
    let exchange = async {
        let mut connection = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
    };
    let reply = tokio::time::timeout(CONNECT_TIMEOUT, exchange)
        .await
        .map_err(|_| anyhow!("no Redis answer from {address} within {CONNECT_TIMEOUT:?}"))?
        .with_context(|| format!("PING to Redis at {address}"))?;
    if reply != "PONG" {
        bail!("{address} answered `{reply}` instead of PONG");
    }
    Ok(())
}

fn stop_redis(dirs: &Dirs) -> Result<String> {
    let dir = &dirs.redis;
    let pid_file = dir.join("redis.pid");
    let pid = read_pid(&pid_file);
    let client = redis::Client::open(redis_url()).map_err(|e| anyhow!("{}: {e}", redis_url()))?;
    let Ok(mut connection) = client.get_connection_with_timeout(CONNECT_TIMEOUT) else {
        remove_stale_pid_file(&pid_file, &Daemon::redis())?;
        return Ok("not running".into());
    };
    connection.set_read_timeout(Some(CONNECT_TIMEOUT))?;
    // What `redis-cli -p PORT shutdown nosave` sends: the server answers by closing the
    // connection, or with an error when it refuses.
    match redis::cmd("SHUTDOWN")
        .arg("NOSAVE")
        .query::<redis::Value>(&mut connection)
    {
        Err(e) if e.is_io_error() || e.is_connection_dropped() => {}
        Err(e) => bail!("Redis refused SHUTDOWN NOSAVE: {e}"),
        Ok(reply) => bail!("Redis answered SHUTDOWN NOSAVE with {reply:?} and kept running"),
    }
    if !wait_for_exit(pid, Duration::from_secs(15)) {
        bail!("Redis accepted SHUTDOWN NOSAVE but its process is still alive");
    }
    let _ = fs::remove_file(&pid_file);
    Ok("stopped".into())
}

// ---------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------

/// The URL with its password replaced by `***`, for messages.
pub fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

fn elapsed(started: Instant) -> String {
    format!("{:.1}s", started.elapsed().as_secs_f64())
}

fn report(component: &str, what: &str, started: Instant) {
    eprintln!("infra: {component:<8} {what} ({})", elapsed(started));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_lists_management_only_when_known() {
        let mut infra = Infra {
            postgres_url: "postgres://p".into(),
            amqp_url: "amqp://a".into(),
            rabbitmq_management_url: None,
            redis_url: "redis://r".into(),
            infra_dir: None,
        };
        let names: Vec<_> = infra.env().into_iter().map(|(k, _)| k).collect();
        assert_eq!(names, [ENV_POSTGRES_URL, ENV_AMQP_URL, ENV_REDIS_URL]);
        infra.rabbitmq_management_url = Some("http://m".into());
        assert_eq!(infra.env().len(), 4);
        infra.infra_dir = Some(DEFAULT_INFRA_DIR.into());
        assert_eq!(infra.env().len(), 5);
    }

    #[test]
    fn redact_hides_passwords() {
        assert_eq!(
            redact("amqp://guest:secret@host:5672/%2f"),
            "amqp://guest:***@host:5672/%2f"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }

    // The probes against the real servers of the test environment (`SALES_AMQP_URL`,
    // `SALES_REDIS_URL`), and against a port nothing listens on.

    #[tokio::test]
    async fn amqp_probe_logs_in_to_the_real_broker() {
        check_amqp(&sales_testkit::amqp_url()).await.unwrap();
    }

    #[tokio::test]
    async fn amqp_probe_refuses_wrong_credentials() {
        let mut url = reqwest::Url::parse(&sales_testkit::amqp_url()).unwrap();
        url.set_username("nobody").unwrap();
        url.set_password(Some("wrong-password")).unwrap();
        let err = check_amqp(url.as_str()).await.unwrap_err();
        assert!(!format!("{err:#}").contains("wrong-password"), "{err:#}");
    }

    #[tokio::test]
    async fn amqp_probe_of_a_closed_port_says_where_it_failed() {
        let port = sales_testkit::free_port();
        let err = check_amqp(&format!("amqp://guest:secret@127.0.0.1:{port}/%2f"))
            .await
            .unwrap_err();
        let message = format!("{err:#}");
        assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
        assert!(message.contains("refused"), "{message}");
        assert!(!message.contains("secret"), "{message}");
    }

    #[tokio::test]
    async fn amqp_probe_refuses_other_schemes_without_echoing_the_url() {
        let err = check_amqp("http://guest:secret@127.0.0.1:1/")
            .await
            .unwrap_err();
        let message = format!("{err:#}");
        assert!(
            message.contains("not an amqp:// or amqps:// URL"),
            "{message}"
        );
        assert!(!message.contains("secret"), "{message}");
    }

    #[tokio::test]
    async fn redis_probe_pings_the_real_server() {
        check_redis(&sales_testkit::redis_url()).await.unwrap();
    }

    #[tokio::test]
    async fn redis_probe_of_a_closed_port_says_where_it_failed() {
        let port = sales_testkit::free_port();
        let err = check_redis(&format!("redis://127.0.0.1:{port}"))
            .await
            .unwrap_err();
        let message = format!("{err:#}");
        assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
        assert!(message.to_lowercase().contains("refused"), "{message}");
    }

    #[tokio::test]
    async fn redis_probe_refuses_other_schemes() {
        let err = check_redis("http://127.0.0.1:1").await.unwrap_err();
        assert!(format!("{err:#}").contains("not a Redis URL"), "{err:#}");
    }
}
