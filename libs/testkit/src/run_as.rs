//! Running the local servers (PostgreSQL, RabbitMQ) as their own Debian users: the
//! one place that knows whether we are root, how a command becomes another user's,
//! and which variables make a RabbitMQ node private to a directory. Used by the
//! tests' private servers and by `cargo xtask infra`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether this process runs as root (effective user id 0).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Give `dir` and everything below it to `user` (`chown -R <user>:`), so a server run
/// as that user can write there.
pub fn give_tree_to(user: &str, dir: &Path) -> Result<(), String> {
    let status = Command::new("chown")
        .arg("-R")
        .arg(format!("{user}:"))
        .arg(dir)
        .status()
        .map_err(|e| format!("chown: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("chown -R {user}: {} failed", dir.display()))
    }
}

/// `program` with `env`, run as `user` (through `runuser`) when given; `runuser`
/// resets the environment, so the variables are passed through `env`.
pub fn command_as(user: Option<&str>, program: &Path, env: &[(String, String)]) -> Command {
    match user {
        Some(user) => {
            let mut command = Command::new(runuser());
            command.args(["-u", user, "--", "env"]);
            command.args(env.iter().map(|(k, v)| format!("{k}={v}")));
            command.arg(program);
            command
        }
        None => {
            let mut command = Command::new(program);
            command.envs(env.iter().map(|(k, v)| (k, v)));
            command
        }
    }
}

/// `runuser` (util-linux) lives in /usr/sbin, which is not on every PATH.
fn runuser() -> PathBuf {
    let sbin = PathBuf::from("/usr/sbin/runuser");
    if sbin.exists() {
        sbin
    } else {
        PathBuf::from("runuser")
    }
}

/// The variables that keep a RabbitMQ node named `node` in `dir`: its database,
/// logs, configuration (`rabbitmq.conf`, `advanced.config`, `enabled_plugins` and an
/// empty `rabbitmq-env.conf` there, so nothing under /etc/rabbitmq applies), and its
/// distribution port on loopback. The listeners are the caller's.
pub fn rabbitmq_node_env(dir: &Path, node: &str, dist_port: u16) -> Vec<(String, String)> {
    let p = |name: &str| dir.join(name).display().to_string();
    [
        ("HOME", dir.display().to_string()),
        ("RABBITMQ_NODENAME", node.to_owned()),
        ("RABBITMQ_DIST_PORT", dist_port.to_string()),
        ("RABBITMQ_MNESIA_BASE", p("mnesia")),
        ("RABBITMQ_LOG_BASE", p("log")),
        ("RABBITMQ_PID_FILE", p("pid")),
        ("RABBITMQ_ENABLED_PLUGINS_FILE", p("enabled_plugins")),
        ("RABBITMQ_CONFIG_FILE", p("rabbitmq")),
        ("RABBITMQ_ADVANCED_CONFIG_FILE", p("advanced.config")),
        ("RABBITMQ_CONF_ENV_FILE", p("rabbitmq-env.conf")),
        (
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
            "-kernel inet_dist_use_interface {127,0,0,1}".to_owned(),
        ),
        ("ERL_EPMD_ADDRESS", "127.0.0.1".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}
