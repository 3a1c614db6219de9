//! PostgreSQL, RabbitMQ and Redis servers of one test's own, with TLS from a
//! [`TestCa`] or without: for tests that change a server's settings, which the shared
//! infrastructure must not see. Each runs in a scratch directory under the system's
//! temporary directory, in a process group of its own, and is stopped and its
//! directory removed when dropped. As root, PostgreSQL and RabbitMQ run as their
//! Debian users (`postgres`, `rabbitmq`), as `cargo xtask` runs them.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::run_as::{self, is_root};
use crate::test_ca::TestCa;

/// The names every server certificate here is for.
pub const SERVER_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// A running server: killed (with its process group) and its directory removed on drop.
pub(crate) struct ServerProcess {
    pub(crate) child: Child,
    pub(crate) dir: PathBuf,
    log: PathBuf,
    stop: Signal,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let group = Pid::from_raw(self.child.id() as i32);
        let _ = killpg(group, self.stop);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Whatever is left of the group (the server's own children) goes too.
        let _ = killpg(group, Signal::SIGKILL);
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl ServerProcess {
    /// Spawns `command` in a process group of its own, its output to `dir/name.log`.
    pub(crate) fn spawn(
        mut command: Command,
        dir: &Path,
        name: &str,
        stop: Signal,
    ) -> ServerProcess {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let err = out
            .try_clone()
            .unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        ServerProcess {
            child,
            dir: dir.to_owned(),
            log,
            stop,
        }
    }

    /// Waits until `port` on 127.0.0.1 accepts connections: true, or the server exited
    /// (its port was taken): false. Panics with the server's log after `timeout`.
    pub(crate) fn wait_for_port(&mut self, port: u16, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return true;
            }
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            assert!(
                Instant::now() < deadline,
                "server not listening on {port} after {timeout:?}:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

/// `program` with `env`, run as `user` when root (else as ourselves).
fn command_as(user: &str, program: &Path, env: &[(String, String)]) -> Command {
    run_as::command_as(is_root().then_some(user), program, env)
}

/// A new scratch directory, and the server's certificate, key (mode 0600) and CA there
/// when `tls` is given; owned by `user` when root.
pub(crate) fn scratch_dir(label: &str, user: Option<&str>, tls: Option<&TestCa>) -> PathBuf {
    let id = &uuid::Uuid::new_v4().simple().to_string()[..12];
    let dir = std::env::temp_dir().join(format!("sales-{label}-{id}"));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    if let Some(ca) = tls {
        let server = ca.server_certificate(&SERVER_NAMES);
        ca.write_pem(&dir, "ca.crt");
        std::fs::write(dir.join("server.crt"), server.cert_pem).unwrap_or_else(|e| panic!("{e}"));
        let key = dir.join("server.key");
        std::fs::write(&key, server.key_pem).unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    if let Some(user) = user.filter(|_| is_root()) {
        run_as::give_tree_to(user, &dir).unwrap_or_else(|e| panic!("{e}"));
    }
    dir
}

/// A PostgreSQL server of one test's own; TLS (`ssl=on`) when started with a CA.
pub struct PrivatePostgres {
    _process: ServerProcess,
    pub port: u16,
    /// The CA file the server's certificate chains to (with TLS).
    pub ca_file: Option<PathBuf>,
}

impl PrivatePostgres {
    /// initdb and start, listening on 127.0.0.1 and 127.0.0.2 (a name its certificate
    /// does not carry). User `postgres`, no password.
    pub fn start(tls: Option<&TestCa>) -> PrivatePostgres {
        let bin = postgres_bin();
        let dir = scratch_dir("pg", Some("postgres"), tls);
        let data = dir.join("data");
        let initdb = command_as("postgres", &bin.join("initdb"), &[])
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C"])
            .output()
            .unwrap_or_else(|e| panic!("initdb: {e}"));
        assert!(
            initdb.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        let mut settings = vec![
            "listen_addresses=127.0.0.1,127.0.0.2".to_owned(),
            format!("unix_socket_directories={}", dir.display()),
            "fsync=off".to_owned(),
        ];
        if tls.is_some() {
            settings.push("ssl=on".to_owned());
            settings.push(format!(
                "ssl_cert_file={}",
                dir.join("server.crt").display()
            ));
            settings.push(format!("ssl_key_file={}", dir.join("server.key").display()));
        }
        for _ in 0..5 {
            let port = crate::free_port();
            let mut command = command_as("postgres", &bin.join("postgres"), &[]);
            command.arg("-D").arg(&data).args(["-p", &port.to_string()]);
            for setting in &settings {
                command.args(["-c", setting]);
            }
            // SIGINT: PostgreSQL's fast shutdown.
            let mut process = ServerProcess::spawn(command, &dir, "postgres", Signal::SIGINT);
            if process.wait_for_port(port, Duration::from_secs(60)) {
                return PrivatePostgres {
                    _process: process,
                    port,
                    ca_file: tls.map(|_| dir.join("ca.crt")),
                };
            }
            // Its port was taken: it exited; keep the directory for the next try.
            process.dir = PathBuf::new();
        }
        panic!(
            "private PostgreSQL exited at start five times: {}",
            dir.display()
        )
    }

    /// `postgres://postgres@host:port/postgres` and `query` (`?sslmode=...`).
    pub fn url(&self, host: &str, query: &str) -> String {
        format!("postgres://postgres@{host}:{}/postgres{query}", self.port)
    }
}

/// The newest `/usr/lib/postgresql/*/bin` (Debian), else the directory of `initdb` on
/// the PATH.
fn postgres_bin() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    if let Some((_, bin)) = found.pop() {
        return bin;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .find(|dir| dir.join("initdb").exists() && dir.join("postgres").exists())
        .unwrap_or_else(|| panic!("PostgreSQL's initdb and postgres not found"))
}

/// A RabbitMQ node of one test's own, listening for `amqps://` only when started
/// with a CA (clients are not asked for certificates), else `amqp://` only. User
/// `guest`, password `guest`, from 127.0.0.1.
pub struct PrivateRabbitMq {
    _process: ServerProcess,
    pub port: u16,
    pub ca_file: Option<PathBuf>,
    /// The management API's port, on a node started by [`PrivateRabbitMq::start_configured`].
    pub management_port: Option<u16>,
}

impl PrivateRabbitMq {
    /// Start the node and wait (up to 3 minutes) until its listener accepts.
    pub fn start(tls: Option<&TestCa>) -> PrivateRabbitMq {
        Self::launch(tls, false, &|dir: &Path, port: u16, _| {
            let p = |name: &str| dir.join(name).display().to_string();
            if tls.is_some() {
                format!(
                    "listeners.tcp = none\nlisteners.ssl.default = 127.0.0.1:{port}\n\
                     ssl_options.cacertfile = {}\nssl_options.certfile = {}\n\
                     ssl_options.keyfile = {}\nssl_options.verify = verify_none\n\
                     ssl_options.fail_if_no_peer_cert = false\n",
                    p("ca.crt"),
                    p("server.crt"),
                    p("server.key")
                )
            } else {
                format!("listeners.tcp.default = 127.0.0.1:{port}\n")
            }
        })
    }

    /// A node with the management plugin whose `rabbitmq.conf` is
    /// `config(dir, amqp_port, management_port)`: `dir` holds `ca.crt`, `server.crt`
    /// and `server.key` of `tls` (the function may add files there), the AMQP listener
    /// must be on `amqp_port` (the start waits for it) and the management API on
    /// `management_port`.
    pub fn start_configured(
        tls: &TestCa,
        config: &dyn Fn(&Path, u16, u16) -> String,
    ) -> PrivateRabbitMq {
        Self::launch(Some(tls), true, config)
    }

    fn launch(
        tls: Option<&TestCa>,
        management: bool,
        config: &dyn Fn(&Path, u16, u16) -> String,
    ) -> PrivateRabbitMq {
        let server = [
            "/usr/lib/rabbitmq/bin/rabbitmq-server",
            "/usr/sbin/rabbitmq-server",
        ]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("rabbitmq-server not found"));
        let mut log = String::new();
        for _ in 0..3 {
            let dir = scratch_dir("rabbitmq", None, tls);
            let port = crate::free_port();
            let management_port = crate::free_port();
            let plugins = match management {
                true => "[rabbitmq_management].\n",
                false => "[].\n",
            };
            for (name, content) in [
                ("rabbitmq.conf", config(&dir, port, management_port)),
                ("enabled_plugins", plugins.to_owned()),
                ("rabbitmq-env.conf", String::new()),
            ] {
                std::fs::write(dir.join(name), content).unwrap_or_else(|e| panic!("{e}"));
            }
            std::fs::create_dir_all(dir.join("mnesia")).unwrap_or_else(|e| panic!("{e}"));
            std::fs::create_dir_all(dir.join("log")).unwrap_or_else(|e| panic!("{e}"));
            if is_root() {
                run_as::give_tree_to("rabbitmq", &dir).unwrap_or_else(|e| panic!("{e}"));
            }
            // The directory's name is unique: the node's name too.
            let node = dir
                .file_name()
                .map(|n| format!("{}@localhost", n.to_string_lossy()))
                .unwrap_or_default();
            let env = run_as::rabbitmq_node_env(&dir, &node, crate::free_port());
            let command = command_as("rabbitmq", &server, &env);
            let mut process = ServerProcess::spawn(command, &dir, "rabbitmq", Signal::SIGTERM);
            let up = process.wait_for_port(port, Duration::from_secs(180))
                && (!management || process.wait_for_port(management_port, Duration::from_secs(60)));
            if up {
                return PrivateRabbitMq {
                    _process: process,
                    port,
                    ca_file: tls.map(|_| dir.join("ca.crt")),
                    management_port: management.then_some(management_port),
                };
            }
            log = process.log_tail();
        }
        panic!("private RabbitMQ exited at start three times; the last log:\n{log}")
    }

    /// The node's URL for `host`: `amqps://` with TLS, `amqp://` without.
    pub fn url(&self, host: &str) -> String {
        let scheme = if self.ca_file.is_some() {
            "amqps"
        } else {
            "amqp"
        };
        format!("{scheme}://guest:guest@{host}:{}/%2f", self.port)
    }
}

/// A Redis server of one test's own: TLS only (`--port 0`) when started with a CA,
/// clients not asked for certificates; else plain TCP.
pub struct PrivateRedis {
    _process: ServerProcess,
    pub port: u16,
    pub ca_file: Option<PathBuf>,
}

impl PrivateRedis {
    pub fn start(tls: Option<&TestCa>) -> PrivateRedis {
        for _ in 0..5 {
            let dir = scratch_dir("redis", None, tls);
            let port = crate::free_port().to_string();
            let mut command = Command::new("redis-server");
            command.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
            command.arg("--dir").arg(&dir);
            if tls.is_some() {
                command.args([
                    "--port",
                    "0",
                    "--tls-port",
                    &port,
                    "--tls-auth-clients",
                    "no",
                ]);
                command.arg("--tls-cert-file").arg(dir.join("server.crt"));
                command.arg("--tls-key-file").arg(dir.join("server.key"));
                command.arg("--tls-ca-cert-file").arg(dir.join("ca.crt"));
            } else {
                command.args(["--port", &port]);
            }
            let mut process = ServerProcess::spawn(command, &dir, "redis", Signal::SIGTERM);
            let port = port.parse().unwrap_or_default();
            if process.wait_for_port(port, Duration::from_secs(30)) {
                return PrivateRedis {
                    _process: process,
                    port,
                    ca_file: tls.map(|_| dir.join("ca.crt")),
                };
            }
        }
        panic!("private redis-server exited at start five times")
    }

    /// `rediss://host:port` with TLS, `redis://host:port` without.
    pub fn url(&self, host: &str) -> String {
        let scheme = if self.ca_file.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://{host}:{}", self.port)
    }
}
