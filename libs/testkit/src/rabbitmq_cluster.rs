//! A RabbitMQ cluster of one test's own: N real nodes on this machine, formed the way
//! the operator forms its managed broker (`classic_config` peer discovery listing
//! every node, `pause_minority`, one Erlang cookie), a node that can be killed
//! (SIGKILL, as a pod that dies), and [`AmqpFront`], a TCP front that plays the
//! Kubernetes Service the services' `AMQP_URL` names.
//!
//! Each node runs in a scratch directory of its own (database, logs, configuration,
//! cookie), on free ports, as the `rabbitmq` user when we are root (see
//! [`crate::run_as`]); the nodes find each other through an `epmd` of the cluster's
//! own on a free port, so neither the machine's RabbitMQ nor `cargo xtask infra`'s
//! private node sees them. Everything is killed, and the directories removed, when the
//! cluster is dropped.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::private_servers::{ServerProcess, scratch_dir};
use crate::run_as::{self, is_root};

mod front;
mod trace;

pub use front::AmqpFront;
pub use trace::ClusterTrace;

/// How long one node may take to boot on a busy machine.
const NODE_BOOT_TIMEOUT: Duration = Duration::from_secs(180);
/// How long `rabbitmqctl` may take for one command.
const CTL_TIMEOUT: Duration = Duration::from_secs(60);

/// A running cluster; every node and the `epmd` are killed on drop.
pub struct RabbitMqCluster {
    // Dropped in this order: the nodes, then the port mapper they registered with.
    nodes: Vec<ClusterNode>,
    _epmd: ServerProcess,
    epmd_port: u16,
    ctl: PathBuf,
}

/// One node of a [`RabbitMqCluster`].
pub struct ClusterNode {
    /// The Erlang node name, `sales-rmq-<letter>-<id>@localhost`.
    pub name: String,
    /// Its AMQP port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
    env: Vec<(String, String)>,
    process: ServerProcess,
    killed: bool,
}

impl ClusterNode {
    /// `amqp://guest:guest@127.0.0.1:<port>/%2f`: this node alone.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Whether [`RabbitMqCluster::kill`] killed it.
    pub fn is_killed(&self) -> bool {
        self.killed
    }
}

/// What `rabbitmqctl list_queues` says about one queue.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct QueueReplicas {
    pub name: String,
    /// `quorum` or `classic`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The node leading a quorum queue; empty for a classic queue.
    #[serde(default, deserialize_with = "lenient_string")]
    pub leader: String,
    /// The nodes holding a replica of a quorum queue.
    #[serde(default, deserialize_with = "lenient_list")]
    pub members: Vec<String>,
    /// Those of them that are up.
    #[serde(default, deserialize_with = "lenient_list")]
    pub online: Vec<String>,
    /// The `x-queue-type` argument it was declared with, if any.
    #[serde(
        default,
        rename = "arguments",
        deserialize_with = "queue_type_argument"
    )]
    pub queue_type_argument: Option<String>,
}

impl RabbitMqCluster {
    /// Start `size` nodes and wait until every one is running in one cluster. The
    /// first boots alone (it waits for its peers about 5 s, then forms the cluster),
    /// the others then join it: started all at once, RabbitMQ 3.x nodes can each give
    /// up on the others and form clusters of one. Blocking: call it from
    /// `spawn_blocking` in an async test.
    pub fn start(size: usize) -> RabbitMqCluster {
        assert!(size >= 1, "a cluster has at least one node");
        let server = rabbitmq_program("rabbitmq-server");
        let ctl = rabbitmq_program("rabbitmqctl");
        let (epmd, epmd_port) = start_epmd();
        // Shared by the nodes (and presented by `rabbitmqctl`), new for each cluster.
        let cookie = uuid::Uuid::new_v4().simple().to_string().to_uppercase();
        let (dirs, names): (Vec<PathBuf>, Vec<String>) = (0..size)
            .map(|i| {
                let letter = char::from(b'a' + (i % 26) as u8);
                let dir = scratch_dir(&format!("rmq-{letter}"), None, None);
                for sub in ["mnesia", "log"] {
                    std::fs::create_dir_all(dir.join(sub)).unwrap_or_else(|e| panic!("{e}"));
                }
                // The directory's name is unique: the node's name too.
                let name = dir
                    .file_name()
                    .map(|n| format!("{}@localhost", n.to_string_lossy()))
                    .unwrap_or_default();
                (dir, name)
            })
            .unzip();
        let shared = Shared {
            server: &server,
            peers: &names,
            epmd_port,
            cookie: &cookie,
        };
        let mut nodes = vec![spawn_node(&shared, &dirs[0], &names[0])];
        wait_listening(&mut nodes[0], &shared);
        let mut rest: Vec<ClusterNode> = (1..size)
            .map(|i| spawn_node(&shared, &dirs[i], &names[i]))
            .collect();
        for node in &mut rest {
            wait_listening(node, &shared);
        }
        nodes.extend(rest);
        let cluster = RabbitMqCluster {
            nodes,
            _epmd: epmd,
            epmd_port,
            ctl,
        };
        cluster.wait_clustered(Duration::from_secs(60));
        cluster
    }

    pub fn nodes(&self) -> &[ClusterNode] {
        &self.nodes
    }

    /// The index of the node named `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// The first node that was not killed.
    pub fn first_running(&self) -> usize {
        self.nodes.iter().position(|n| !n.killed).unwrap_or(0)
    }

    /// What identifies the cluster's processes, to check after the drop that none
    /// is left.
    pub fn trace(&self) -> ClusterTrace {
        let mut groups: Vec<i32> = self
            .nodes
            .iter()
            .map(|n| n.process.child.id() as i32)
            .collect();
        groups.push(self._epmd.child.id() as i32);
        ClusterTrace {
            groups,
            markers: self
                .nodes
                .iter()
                .map(|n| n.dir.display().to_string())
                .chain([format!("-port {}", self.epmd_port)])
                .collect(),
        }
    }

    /// SIGKILL node `index`'s Erlang VM (its OS pid from the pid file RabbitMQ
    /// writes), then whatever is left of its process group, and wait until its AMQP
    /// port refuses connections. Returns the VM's pid.
    pub fn kill(&mut self, index: usize) -> i32 {
        let node = &mut self.nodes[index];
        let pid_file = node.dir.join("pid");
        let vm = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .unwrap_or_else(|| panic!("{}: no pid in {}", node.name, pid_file.display()));
        kill(Pid::from_raw(vm), Signal::SIGKILL)
            .unwrap_or_else(|e| panic!("cannot SIGKILL {} (pid {vm}): {e}", node.name));
        let _ = nix::sys::signal::killpg(
            Pid::from_raw(node.process.child.id() as i32),
            Signal::SIGKILL,
        );
        let _ = node.process.child.wait();
        node.killed = true;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", node.port)).is_ok() {
            assert!(
                Instant::now() < deadline,
                "{} still accepts connections after SIGKILL",
                node.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        vm
    }

    /// `rabbitmqctl -n <node> <args>` (node `via`): its standard output, or what
    /// went wrong.
    pub async fn ctl(&self, via: usize, args: &[&str]) -> Result<String, String> {
        let command = self.ctl_command(via, args);
        let shown = format!("rabbitmqctl -n {} {}", self.nodes[via].name, args.join(" "));
        let mut command = tokio::process::Command::from(command);
        command.kill_on_drop(true);
        match tokio::time::timeout(CTL_TIMEOUT, command.output()).await {
            Ok(Ok(out)) => ctl_result(&shown, out),
            Ok(Err(e)) => Err(format!("{shown}: cannot run it: {e}")),
            Err(_) => Err(format!("{shown}: no answer within {CTL_TIMEOUT:?}")),
        }
    }

    /// Every queue of the default vhost with its type, leader and replicas, as node
    /// `via` sees them.
    pub async fn queues(&self, via: usize) -> Result<Vec<QueueReplicas>, String> {
        let json = self
            .ctl(
                via,
                &[
                    "list_queues",
                    "--quiet",
                    "--formatter",
                    "json",
                    "name",
                    "type",
                    "leader",
                    "members",
                    "online",
                    "arguments",
                ],
            )
            .await?;
        serde_json::from_str(&json).map_err(|e| format!("list_queues answered {json:?}: {e}"))
    }

    /// The names of the nodes node `via` sees running in its cluster.
    pub async fn running_nodes(&self, via: usize) -> Result<Vec<String>, String> {
        let json = self
            .ctl(via, &["cluster_status", "--quiet", "--formatter", "json"])
            .await?;
        parse_running_nodes(&json)
    }

    fn ctl_command(&self, via: usize, args: &[&str]) -> Command {
        let node = &self.nodes[via];
        let mut env = node.env.clone();
        env.push(("ERL_EPMD_PORT".into(), self.epmd_port.to_string()));
        let mut command = run_as::command_as(is_root().then_some("rabbitmq"), &self.ctl, &env);
        command.current_dir(&node.dir).arg("-n").arg(&node.name);
        command.args(args);
        command
    }

    /// Wait until the first node sees every node running (blocking).
    fn wait_clustered(&self, timeout: Duration) {
        let names: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
        let deadline = Instant::now() + timeout;
        loop {
            let command =
                self.ctl_command(0, &["cluster_status", "--quiet", "--formatter", "json"]);
            let seen = run_blocking(command)
                .and_then(|out| ctl_result("rabbitmqctl cluster_status", out))
                .and_then(|json| parse_running_nodes(&json));
            match seen {
                Ok(running) if names.iter().all(|n| running.iter().any(|r| r == n)) => return,
                seen if Instant::now() > deadline => panic!(
                    "the nodes {names:?} did not form one cluster within {timeout:?}; \
                     {} sees: {seen:?}\n{}",
                    names[0],
                    self.nodes[0].process.log_tail()
                ),
                _ => std::thread::sleep(Duration::from_millis(500)),
            }
        }
    }
}

/// The running nodes in `rabbitmqctl cluster_status --formatter json`.
fn parse_running_nodes(json: &str) -> Result<Vec<String>, String> {
    let status: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("cluster_status answered {json:?}: {e}"))?;
    Ok(status["running_nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect())
}

fn run_blocking(mut command: Command) -> Result<Output, String> {
    command
        .output()
        .map_err(|e| format!("cannot run rabbitmqctl: {e}"))
}

fn ctl_result(shown: &str, out: Output) -> Result<String, String> {
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{shown} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        ))
    }
}

/// The cluster's own `epmd`, on a free loopback port; retried on another port if
/// the one chosen was taken meanwhile.
fn start_epmd() -> (ServerProcess, u16) {
    let epmd = ["/usr/bin/epmd", "/usr/lib/erlang/bin/epmd"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("epmd"));
    for _ in 0..5 {
        let dir = scratch_dir("epmd", None, None);
        let port = crate::free_port();
        let mut command = Command::new(&epmd);
        command.args(["-port", &port.to_string(), "-address", "127.0.0.1"]);
        let mut process = ServerProcess::spawn(command, &dir, "epmd", Signal::SIGKILL);
        if process.wait_for_port(port, Duration::from_secs(20)) {
            return (process, port);
        }
    }
    panic!("epmd exited at start five times")
}

/// What every node of one cluster shares.
struct Shared<'a> {
    /// `rabbitmq-server`.
    server: &'a Path,
    /// Every node's name, in the order of `classic_config`'s list.
    peers: &'a [String],
    epmd_port: u16,
    cookie: &'a str,
}

/// Write node `name`'s configuration (listener on a fresh free port, the cluster's
/// peers, cookie) into `dir` and start it. The distribution port is fresh too.
fn spawn_node(shared: &Shared<'_>, dir: &Path, name: &str) -> ClusterNode {
    let port = crate::free_port();
    let mut config = format!(
        "listeners.tcp.default = 127.0.0.1:{port}\n\
         cluster_formation.peer_discovery_backend = classic_config\n"
    );
    for (i, peer) in shared.peers.iter().enumerate() {
        config.push_str(&format!(
            "cluster_formation.classic_config.nodes.{} = {peer}\n",
            i + 1
        ));
    }
    config.push_str("cluster_partition_handling = pause_minority\n");
    for (file, content) in [
        ("rabbitmq.conf", config.as_str()),
        ("enabled_plugins", "[].\n"),
        ("rabbitmq-env.conf", ""),
        (".erlang.cookie", shared.cookie),
    ] {
        std::fs::write(dir.join(file), content).unwrap_or_else(|e| panic!("{e}"));
    }
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(
        dir.join(".erlang.cookie"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    if is_root() {
        run_as::give_tree_to("rabbitmq", dir).unwrap_or_else(|e| panic!("{e}"));
    }
    let mut env = run_as::rabbitmq_node_env(dir, name, crate::free_port());
    env.push(("ERL_EPMD_PORT".into(), shared.epmd_port.to_string()));
    // `runuser` puts the soft limit on open files back to 1024; quorum queues want
    // more (as `cargo xtask infra` does for its node).
    let mut command =
        run_as::command_as(is_root().then_some("rabbitmq"), Path::new("/bin/sh"), &env);
    command
        .current_dir(dir)
        .args([
            "-c",
            r#"ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$0" "$@""#,
        ])
        .arg(shared.server);
    // SIGKILL on drop too: the data is thrown away, a clean stop only takes longer.
    let process = ServerProcess::spawn(command, dir, "rabbitmq-server", Signal::SIGKILL);
    ClusterNode {
        name: name.to_owned(),
        port,
        dir: dir.to_owned(),
        env,
        process,
        killed: false,
    }
}

/// Wait until `node` listens; if it exited first (a port taken meanwhile), start it
/// again on other ports, up to three times.
fn wait_listening(node: &mut ClusterNode, shared: &Shared<'_>) {
    for attempt in 1..=3 {
        if node.process.wait_for_port(node.port, NODE_BOOT_TIMEOUT) {
            return;
        }
        let log = node.process.log_tail();
        if attempt == 3 {
            panic!("{} exited at start three times:\n{log}", node.name);
        }
        eprintln!("{} exited at start; starting it again:\n{log}", node.name);
        // Keep the directory (the old process's drop would remove it).
        let dir = std::mem::take(&mut node.process.dir);
        *node = spawn_node(shared, &dir, &node.name.clone());
    }
}

/// `/usr/lib/rabbitmq/bin/<name>` (Debian: the real scripts; /usr/sbin has wrappers
/// that switch user and directory), else `<name>` on the PATH.
fn rabbitmq_program(name: &str) -> PathBuf {
    let debian = Path::new("/usr/lib/rabbitmq/bin").join(name);
    if debian.exists() {
        return debian;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{name} not found (Debian package rabbitmq-server)"))
}

fn lenient_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let value: serde_json::Value = serde::Deserialize::deserialize(d)?;
    Ok(value.as_str().unwrap_or_default().to_owned())
}

fn lenient_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let value: serde_json::Value = serde::Deserialize::deserialize(d)?;
    Ok(value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect())
}

/// `x-queue-type` in `list_queues`' arguments: `[["x-queue-type","longstr","quorum"], ...]`.
fn queue_type_argument<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let value: serde_json::Value = serde::Deserialize::deserialize(d)?;
    Ok(value.as_array().into_iter().flatten().find_map(|arg| {
        (arg.get(0)?.as_str()? == "x-queue-type")
            .then(|| arg.get(2)?.as_str().map(str::to_owned))?
    }))
}
