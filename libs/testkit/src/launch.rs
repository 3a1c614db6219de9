//! Launching the services as processes, for the end-to-end tests and for
//! `cargo xtask up`: which services exist, the ports they use locally, and the
//! environment each one needs to find its database, the broker and its peers.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// A service of the system: its binary and the database it owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    Product,
    Order,
    Customer,
    Payment,
    Inventory,
    Shipping,
    Notification,
    Gateway,
}

impl Service {
    pub const ALL: [Service; 8] = [
        Service::Product,
        Service::Order,
        Service::Customer,
        Service::Payment,
        Service::Inventory,
        Service::Shipping,
        Service::Notification,
        Service::Gateway,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Service::Product => "product",
            Service::Order => "order",
            Service::Customer => "customer",
            Service::Payment => "payment",
            Service::Inventory => "inventory",
            Service::Shipping => "shipping",
            Service::Notification => "notification",
            Service::Gateway => "gateway",
        }
    }

    /// The binary (and cargo package) name.
    pub fn binary(self) -> String {
        format!("{}-service", self.name())
    }

    /// The service's own database (one per service); the gateway has none.
    pub fn database(self) -> Option<&'static str> {
        Some(match self {
            Service::Product => "products",
            Service::Order => "orders",
            Service::Customer => "customers",
            Service::Payment => "payments",
            Service::Inventory => "inventory",
            Service::Shipping => "shipping",
            Service::Notification => "notifications",
            Service::Gateway => return None,
        })
    }

    /// Ports of `cargo xtask up`: seed 002's table (product 8001, order 8002,
    /// customer 8003, payment 8004, inventory 8005, shipping 8006, gateway 8080),
    /// notification 8007; the admin port is 1000 above.
    pub fn local_port(self) -> u16 {
        match self {
            Service::Product => 8001,
            Service::Order => 8002,
            Service::Customer => 8003,
            Service::Payment => 8004,
            Service::Inventory => 8005,
            Service::Shipping => 8006,
            Service::Notification => 8007,
            Service::Gateway => 8080,
        }
    }
}

/// How the services of one system find everything.
#[derive(Clone, Debug)]
pub struct Wiring {
    /// `(http, admin)` port per service.
    pub ports: HashMap<Service, (u16, u16)>,
    pub database_urls: HashMap<Service, String>,
    pub amqp_url: String,
    pub amqp_prefix: String,
    pub log_format: String,
    pub log_filter: String,
    /// Extra variables for every service (later ones win).
    pub env: Vec<(String, String)>,
    /// Extra variables per service.
    pub service_env: HashMap<Service, Vec<(String, String)>>,
    /// Redis, for the caches (and the gateway's rate limits).
    pub redis_url: String,
    /// Prefix of every Redis key of this system.
    pub redis_prefix: String,
    /// The system's signing keys and service client secrets.
    pub identity: IdentityMaterial,
    /// The admin account the customer service creates, if any.
    pub admin: Option<(String, String)>,
}

impl Wiring {
    pub fn base_url(&self, service: Service) -> String {
        format!("http://127.0.0.1:{}", self.ports[&service].0)
    }

    pub fn admin_url(&self, service: Service) -> String {
        format!("http://127.0.0.1:{}", self.ports[&service].1)
    }

    /// The environment `service` is started with.
    pub fn env_for(&self, service: Service) -> Vec<(String, String)> {
        let (http, admin) = self.ports[&service];
        let mut env: Vec<(String, String)> = vec![
            ("HTTP_ADDR".into(), format!("127.0.0.1:{http}")),
            ("ADMIN_ADDR".into(), format!("127.0.0.1:{admin}")),
            (
                "DATABASE_URL".into(),
                self.database_urls
                    .get(&service)
                    .cloned()
                    .unwrap_or_default(),
            ),
            ("AMQP_URL".into(), self.amqp_url.clone()),
            ("AMQP_PREFIX".into(), self.amqp_prefix.clone()),
            ("LOG_FORMAT".into(), self.log_format.clone()),
            ("RUST_LOG".into(), self.log_filter.clone()),
            ("REDIS_URL".into(), self.redis_url.clone()),
            (
                "CACHE_PREFIX".into(),
                format!("{}cache:", self.redis_prefix),
            ),
            (
                "RATE_LIMIT_PREFIX".into(),
                format!("{}ratelimit:", self.redis_prefix),
            ),
            (
                "REVOCATION_PREFIX".into(),
                format!("{}token-version:", self.redis_prefix),
            ),
            // As the image sets it (Dockerfile): large blocks (argon2's 19 MiB a
            // password hash) go back to the system when freed.
            ("GLIBC_TUNABLES".into(), ALLOCATOR_TUNABLES.into()),
            // Nothing balances load over local processes: stop without a drain
            // window (a test that wants one sets it per service).
            ("SHUTDOWN_DRAIN_DELAY".into(), "0s".into()),
        ];
        env.extend(self.identity_env(service));
        if let Some((email, password)) = &self.admin {
            env.push(("ADMIN_EMAIL".into(), email.clone()));
            env.push(("ADMIN_PASSWORD".into(), password.clone()));
        }
        for peer in Service::ALL {
            env.push((
                format!("{}_SERVICE_URL", peer.name().to_uppercase()),
                self.base_url(peer),
            ));
        }
        env.extend(self.env.iter().cloned());
        env.extend(self.service_env.get(&service).cloned().unwrap_or_default());
        env
    }
}

/// glibc's allocator with a fixed threshold for mapping blocks of their own: with the
/// default (a threshold that grows to the largest block freed, up to 32 MiB), every
/// thread's arena kept a password hash's 19 MiB for good, and the customer service
/// stayed at 400-590 MiB after registering a few dozen customers.
pub const ALLOCATOR_TUNABLES: &str = "glibc.malloc.mmap_threshold=262144";

/// The secrets of a system's identity plane: the customer service's and the
/// gateway's signing keys (Ed25519, PKCS#8 PEM) and each service's client secret.
#[derive(Clone, Debug)]
pub struct IdentityMaterial {
    pub customer_signing_keys: String,
    pub gateway_signing_keys: String,
    pub client_secrets: HashMap<Service, String>,
}

impl IdentityMaterial {
    /// New random keys and secrets.
    pub fn generate() -> anyhow::Result<IdentityMaterial> {
        use sales_platform::identity::keys::generate_pem;
        Ok(IdentityMaterial {
            customer_signing_keys: generate_pem()?,
            gateway_signing_keys: generate_pem()?,
            client_secrets: Service::ALL
                .iter()
                .filter(|s| **s != Service::Customer)
                .map(|s| (*s, random_secret()))
                .collect(),
        })
    }

    /// `SERVICE_CLIENTS` for the customer service: `order=<secret>,...`.
    pub fn service_clients(&self) -> String {
        let mut pairs: Vec<String> = self
            .client_secrets
            .iter()
            .map(|(service, secret)| format!("{}={secret}", service.name()))
            .collect();
        pairs.sort();
        pairs.join(",")
    }
}

/// 32 random bytes, hex.
pub fn random_secret() -> String {
    format!("{:032x}{:032x}", rand_u128(), rand_u128())
}

fn rand_u128() -> u128 {
    u128::from_be_bytes(*uuid::Uuid::new_v4().as_bytes())
}

impl Wiring {
    /// The identity settings of `service`: only the secrets it needs.
    fn identity_env(&self, service: Service) -> Vec<(String, String)> {
        let id = &self.identity;
        let gateway_jwks = format!(
            "{}{}",
            self.base_url(Service::Gateway),
            sales_platform::identity::JWKS_PATH
        );
        let own_secret = || {
            (
                "SERVICE_CLIENT_SECRET".to_owned(),
                id.client_secrets.get(&service).cloned().unwrap_or_default(),
            )
        };
        match service {
            Service::Customer => vec![
                (
                    "TOKEN_SIGNING_KEYS".into(),
                    id.customer_signing_keys.clone(),
                ),
                ("SERVICE_CLIENTS".into(), id.service_clients()),
                ("GATEWAY_JWKS_URL".into(), gateway_jwks),
            ],
            Service::Gateway => vec![
                (
                    "GATEWAY_SIGNING_KEYS".into(),
                    id.gateway_signing_keys.clone(),
                ),
                own_secret(),
            ],
            _ => vec![
                ("IDENTITY_URL".into(), self.base_url(Service::Customer)),
                ("GATEWAY_JWKS_URL".into(), gateway_jwks),
                own_secret(),
            ],
        }
    }
}

/// One running service process.
pub struct Process {
    pub service: Service,
    pub child: Child,
}

/// A process nobody stopped (a test that failed before its clean-up) is killed, not
/// left running with its database sessions and broker connections.
impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Process {
    /// Start `service`'s binary from `bin_dir`. Output goes where `stdout`/`stderr` say.
    pub fn spawn(
        service: Service,
        bin_dir: &Path,
        wiring: &Wiring,
        stdout: Stdio,
        stderr: Stdio,
    ) -> std::io::Result<Process> {
        let child = Command::new(bin_dir.join(service.binary()))
            .envs(wiring.env_for(service))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()?;
        Ok(Process { service, child })
    }

    /// Send `signal` to the process (SIGSTOP pauses it, SIGCONT resumes it...).
    pub fn signal(&self, signal: Signal) -> nix::Result<()> {
        let pid = i32::try_from(self.child.id()).map_err(|_| nix::errno::Errno::ESRCH)?;
        nix::sys::signal::kill(Pid::from_raw(pid), signal)
    }

    /// Send SIGTERM and wait (up to `grace`) for the process to exit; then kill it.
    pub fn terminate(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        let _ = self.signal(Signal::SIGTERM);
        let deadline = std::time::Instant::now() + grace;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}
