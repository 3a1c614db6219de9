//! A Kafka-protocol broker of one test's own (tansu, the binary `SALES_TANSU_BIN`
//! that `cargo xtask test` exports): the broker of every [`crate::TestKafka`] when
//! that is set, and the one a test freezes (SIGSTOP, SIGCONT) without disturbing the
//! others. Killed when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// A private tansu with its data in memory.
pub struct PrivateKafka {
    child: Child,
    pub bootstrap: String,
}

/// The command that runs tansu at `binary` as a broker on `bootstrap` (`host:port`),
/// its data in memory, warnings only, no input (its output is the caller's to set).
pub fn tansu_broker(binary: &Path, bootstrap: &str) -> Command {
    tansu_broker_advertising(binary, bootstrap, bootstrap)
}

/// [`tansu_broker`] listening on `listen` and telling clients to connect to
/// `advertised` (a front of it).
pub fn tansu_broker_advertising(binary: &Path, listen: &str, advertised: &str) -> Command {
    let mut command = Command::new(binary);
    command
        .args([
            "broker",
            "--listener-url",
            &format!("tcp://{listen}"),
            "--advertised-listener-url",
            &format!("tcp://{advertised}"),
        ])
        .args(["--storage-engine", "memory://tansu/"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    command
}

impl PrivateKafka {
    /// Start it on a free port and wait until it answers. Panics, saying why, when
    /// `SALES_TANSU_BIN` is not set.
    pub fn start() -> PrivateKafka {
        Self::start_binary(&Self::binary(), None)
    }

    /// [`PrivateKafka::start`], advertising `advertised` (`host:port` of a front such
    /// as [`crate::tls_front::TlsFront`]) instead of its own address.
    pub fn start_advertising(advertised: &str) -> PrivateKafka {
        Self::start_binary(&Self::binary(), Some(advertised))
    }

    fn binary() -> String {
        std::env::var("SALES_TANSU_BIN").unwrap_or_else(|_| {
            panic!(
                "SALES_TANSU_BIN is not set: this test starts a Kafka-protocol broker of its \
                 own; run it through `cargo xtask test`, which builds tansu and exports it"
            )
        })
    }

    /// [`PrivateKafka::start`] with the tansu at `binary`. A broker that exits at once
    /// lost its port to another test, and one that has not opened its port within
    /// 30 s is taken for the same (seen once in a full run under load, cause not
    /// found: its output, kept in a file, is printed then): it starts again on
    /// another port, five times at most.
    pub fn start_binary(binary: &str, advertised: Option<&str>) -> PrivateKafka {
        for _ in 0..5 {
            let port = crate::free_port();
            let bootstrap = format!("127.0.0.1:{port}");
            let advertised = advertised.unwrap_or(&bootstrap);
            let log = std::env::temp_dir().join(format!("sales-tansu-{port}.log"));
            let output = std::fs::File::create(&log)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", log.display()));
            let errors = output
                .try_clone()
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", log.display()));
            let child = tansu_broker_advertising(Path::new(binary), &bootstrap, advertised)
                .stdout(output)
                .stderr(errors)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
            let mut kafka = PrivateKafka { child, bootstrap };
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if kafka.answers() {
                    let _ = std::fs::remove_file(&log);
                    return kafka;
                }
                if let Ok(Some(_)) = kafka.child.try_wait() {
                    break;
                }
                if Instant::now() > deadline {
                    eprintln!(
                        "tansu at {} did not open its port within 30 s; its output:\n{}",
                        kafka.bootstrap,
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            // Dropping it kills it.
            drop(kafka);
            let _ = std::fs::remove_file(&log);
        }
        panic!("tansu ({binary}) did not start in five tries; is the binary broken?")
    }

    /// The broker answers a metadata request.
    pub fn answers(&self) -> bool {
        std::net::TcpStream::connect(&self.bootstrap).is_ok()
            && ClientConfig::new()
                .set("bootstrap.servers", &self.bootstrap)
                .create::<BaseConsumer>()
                .is_ok_and(|c| c.fetch_metadata(None, Duration::from_secs(2)).is_ok())
    }

    fn signal(&self, signal: Signal) {
        let pid = i32::try_from(self.child.id()).unwrap_or(i32::MAX);
        kill(Pid::from_raw(pid), signal).unwrap_or_else(|e| panic!("{signal} tansu: {e}"));
    }

    /// Freeze the broker: its connections stay open and nothing answers.
    pub fn freeze(&self) {
        self.signal(Signal::SIGSTOP);
    }

    /// Let it run again.
    pub fn thaw(&self) {
        self.signal(Signal::SIGCONT);
    }
}

impl Drop for PrivateKafka {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
