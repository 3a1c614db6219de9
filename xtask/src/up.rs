//! `cargo xtask up`: the whole system locally, with demo data.
//!
//! Infrastructure (private or from `SALES_*_URL`), a database per service
//! (`sales_products`, `sales_orders`, ...), every service binary on the ports of
//! seed 002's table, demo products with stock, the URLs printed; a service that dies is
//! started again (`restarts`); Ctrl-C stops the services gracefully (the infrastructure keeps running: `cargo xtask infra down`).

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use sales_testkit::launch::{IdentityMaterial, Service, Wiring, random_secret};
use serde_json::{Value, json};

use crate::infra::{self, Infra};
use crate::local_services::{self, Existing};
use crate::restarts::{self, Watched};

/// Products loaded into an empty catalogue: (sku, name, description, price in cents, stock).
const DEMO_PRODUCTS: &[(&str, &str, &str, i64, i32)] = &[
    (
        "ESPRESSO-1KG",
        "Espresso beans, 1 kg",
        "Dark roast, whole beans",
        2490,
        50,
    ),
    (
        "MUG-CERAMIC",
        "Ceramic mug",
        "350 ml, dishwasher safe",
        1200,
        30,
    ),
    (
        "GRINDER-HAND",
        "Hand grinder",
        "Conical burrs, 40 g hopper",
        5900,
        10,
    ),
    ("FILTER-100", "Paper filters (100)", "Size 02", 450, 200),
    (
        "KETTLE-GOOSENECK",
        "Gooseneck kettle",
        "1 l, stovetop",
        7900,
        5,
    ),
];

/// The gateway's limit of the local run unless `--rate-limit` says otherwise:
/// requests per client per minute, generous (production keeps seed 002's 100 per 15
/// minutes).
pub const DEFAULT_RATE_LIMIT: u64 = 600;

/// What `cargo xtask up`'s flags ask for.
pub struct UpOptions {
    /// The seeds' unauthenticated routes open (`SEED_COMPAT_OPEN`).
    pub seed_routes_open: bool,
    /// Events on Kafka (tansu) instead of RabbitMQ.
    pub on_kafka: bool,
    /// Requests per client per minute at the gateway; 0: no limit.
    pub rate_limit: u64,
}

pub async fn run(root: &Path, options: &UpOptions) -> Result<ExitCode> {
    let infra = infra::ensure_infra(root).await?;
    let kafka = if options.on_kafka {
        Some(crate::kafka::ensure_kafka(&infra::private_dir(root)).await?)
    } else {
        None
    };

    eprintln!("xtask: building the services");
    let bin_dir = local_services::build(root, false).await?;

    let secrets = LocalSecrets::load_or_make(&root.join("target/sales-up"))?;
    let mut wiring = wiring(&infra, &secrets, options).await?;
    if let Some(bootstrap) = &kafka {
        wiring.env.extend([
            ("MESSAGING_KIND".into(), "kafka".into()),
            ("KAFKA_BOOTSTRAP_SERVERS".into(), bootstrap.clone()),
            // tansu cannot fetch from inside a batch (docs/messaging.md).
            ("KAFKA_BATCH_MESSAGES".into(), "1".into()),
        ]);
    }
    let logs = root.join("target/sales-up/logs");
    for service in Service::ALL {
        let (http, admin) = wiring.ports[&service];
        for port in [http, admin] {
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
                bail!(
                    "port {port} (for the {} service) is in use; stop what uses it (an earlier `cargo xtask up`?) and try again",
                    service.name()
                );
            }
        }
    }

    let mut processes = local_services::start(&bin_dir, &wiring, &logs).await?;
    if let Err(err) = load_demo_data(&wiring, &secrets).await {
        local_services::stop(&mut processes);
        return Err(err);
    }

    print_welcome(
        &wiring,
        &infra,
        kafka.as_deref(),
        &logs,
        &secrets,
        options.rate_limit,
    );

    // Run until Ctrl-C; a service that dies is started again (restarts.rs), as
    // Kubernetes restarts a pod.
    let mut watched: Vec<Watched> = processes.into_iter().map(Watched::new).collect();
    loop {
        tokio::select! {
            _ = sales_platform::shutdown::signal() => break,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                restarts::check(&mut watched, &bin_dir, &wiring, &logs);
            }
        }
    }
    eprintln!(
        "\nxtask: stopping the services (the infrastructure keeps running; `cargo xtask infra down` stops it)"
    );
    let mut processes: Vec<_> = watched.into_iter().map(|w| w.process).collect();
    local_services::stop(&mut processes);
    Ok(ExitCode::SUCCESS)
}

/// The local run's keys, client secrets and admin password: made once, kept in
/// `target/sales-up/` so tokens and the admin login survive restarts.
struct LocalSecrets {
    identity: IdentityMaterial,
    admin_email: String,
    admin_password: String,
}

impl LocalSecrets {
    fn load_or_make(dir: &Path) -> Result<LocalSecrets> {
        std::fs::create_dir_all(dir)?;
        let read_or_make = |name: &str, make: &dyn Fn() -> Result<String>| -> Result<String> {
            let path = dir.join(name);
            if let Ok(existing) = std::fs::read_to_string(&path)
                && !existing.trim().is_empty()
            {
                return Ok(existing.trim().to_owned());
            }
            let made = make()?;
            std::fs::write(&path, &made)
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(made)
        };
        let fresh = IdentityMaterial::generate()?;
        let secrets = read_or_make("service-clients", &|| Ok(fresh.service_clients()))?;
        let mut client_secrets = HashMap::new();
        for pair in secrets.split(',') {
            if let Some((name, secret)) = pair.split_once('=')
                && let Some(service) = Service::ALL.into_iter().find(|s| s.name() == name)
            {
                client_secrets.insert(service, secret.to_owned());
            }
        }
        let identity = IdentityMaterial {
            customer_signing_keys: read_or_make("customer-signing-key.pem", &|| {
                Ok(fresh.customer_signing_keys.clone())
            })?,
            gateway_signing_keys: read_or_make("gateway-signing-key.pem", &|| {
                Ok(fresh.gateway_signing_keys.clone())
            })?,
            client_secrets,
        };
        Ok(LocalSecrets {
            identity,
            admin_email: "admin@sales.local".into(),
            admin_password: read_or_make("admin-password", &|| {
                Ok(random_secret()[..24].to_owned())
            })?,
        })
    }
}

/// Ports, one database per service (created when missing), the broker.
async fn wiring(infra: &Infra, secrets: &LocalSecrets, options: &UpOptions) -> Result<Wiring> {
    let database_urls =
        local_services::databases(&infra.postgres_url, "sales_", Existing::Keep).await?;
    Ok(Wiring {
        ports: Service::ALL
            .iter()
            .map(|s| (*s, (s.local_port(), s.local_port() + 1000)))
            .collect(),
        database_urls,
        amqp_url: infra.amqp_url.clone(),
        amqp_prefix: String::new(),
        log_format: "text".into(),
        log_filter: std::env::var("RUST_LOG").unwrap_or_else(|_| "info,sqlx=warn".into()),
        // The local run opens the seeds' routes (unless asked not to); the rate
        // limit is `--rate-limit` a minute (0: off, which the gateway takes as is).
        env: vec![
            (
                "SEED_COMPAT_OPEN".into(),
                options.seed_routes_open.to_string(),
            ),
            ("RATE_LIMIT_REQUESTS".into(), options.rate_limit.to_string()),
            ("RATE_LIMIT_WINDOW".into(), "1m".into()),
        ],
        service_env: HashMap::new(),
        redis_url: infra.redis_url.clone(),
        redis_prefix: "sales:".into(),
        identity: secrets.identity.clone(),
        admin: Some((secrets.admin_email.clone(), secrets.admin_password.clone())),
    })
}

/// Demo products, when the catalogue is empty, added through the gateway as the
/// admin; waits until the inventory has their stock.
async fn load_demo_data(wiring: &Wiring, secrets: &LocalSecrets) -> Result<()> {
    let client = sales_testkit::http_client();
    let gateway = wiring.base_url(Service::Gateway);
    let token = admin_token(&client, &gateway, secrets).await?;
    let existing: Vec<Value> = client
        .get(format!("{gateway}/api/v1/products?limit=1"))
        .send()
        .await?
        .json()
        .await?;
    if !existing.is_empty() {
        eprintln!("xtask: the catalogue already has products; no demo data loaded");
        return Ok(());
    }
    for (sku, name, description, cents, stock) in DEMO_PRODUCTS {
        let r = client
            .post(format!("{gateway}/api/v1/products"))
            .bearer_auth(&token)
            .json(&json!({
                "sku": sku, "name": name, "description": description,
                "price": {"amount": cents, "currency": "USD"}, "initial_stock": stock
            }))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("loading demo product {sku} failed: {}", r.text().await?);
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let items: Vec<Value> = client
            .get(format!("{gateway}/api/v1/inventory/items"))
            .bearer_auth(&token)
            .send()
            .await?
            .json()
            .await?;
        if items.len() >= DEMO_PRODUCTS.len() {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the inventory did not receive the demo products' stock in 30 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "xtask: loaded {} demo products with stock",
        DEMO_PRODUCTS.len()
    );
    Ok(())
}

/// The admin's access token (the account may take a moment to appear).
async fn admin_token(
    client: &reqwest::Client,
    gateway: &str,
    secrets: &LocalSecrets,
) -> Result<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = client
            .post(format!("{gateway}/api/v1/customers/login"))
            .json(&json!({"email": secrets.admin_email, "password": secrets.admin_password}))
            .send()
            .await?;
        if r.status().is_success() {
            let body: Value = r.json().await?;
            if let Some(token) = body["token"].as_str() {
                return Ok(token.to_owned());
            }
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the admin could not log in within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn print_welcome(
    wiring: &Wiring,
    infra: &Infra,
    kafka: Option<&str>,
    logs: &Path,
    secrets: &LocalSecrets,
    rate_limit: u64,
) {
    let gateway = wiring.base_url(Service::Gateway);
    println!("\nsales-system is up. Everything is reached through the gateway:\n");
    println!("  API           {gateway}");
    println!("  Swagger UI    {gateway}/docs   (every service's API; \"Authorize\" takes a token)");
    println!(
        "  admin login   {} / {}",
        secrets.admin_email, secrets.admin_password
    );
    match rate_limit {
        0 => println!("  rate limit    off (--rate-limit 0)"),
        n => {
            println!("  rate limit    {n} requests per client per minute (--rate-limit N; 0: off)")
        }
    }
    println!("\nEach service also listens on its own port (for debugging):\n");
    println!("  {:<13} {:<23} metrics", "service", "API");
    for service in Service::ALL {
        println!(
            "  {:<13} {:<23} {}/metrics",
            service.name(),
            wiring.base_url(service),
            wiring.admin_url(service)
        );
    }
    match kafka {
        Some(bootstrap) => println!("\n  Events on Kafka (tansu) at {bootstrap}"),
        None => {
            if let Some(management) = &infra.rabbitmq_management_url {
                println!("\n  RabbitMQ management: {}", infra::redact(management));
            }
        }
    }
    println!("\nTry it (README.md has more):");
    println!(
        "  curl -s -X POST {gateway}/api/v1/customers/register -H 'content-type: application/json' \\\n      -d '{{\"email\": \"ann@example.com\", \"password\": \"secret-pass\", \"name\": \"Ann\"}}'"
    );
    println!(
        "  TOKEN=$(curl -s -X POST {gateway}/api/v1/customers/login -H 'content-type: application/json' \\\n      -d '{{\"email\": \"ann@example.com\", \"password\": \"secret-pass\"}}' | sed 's/.*\"token\":\"\\([^\"]*\\)\".*/\\1/')"
    );
    println!("  curl -s {gateway}/products");
    println!(
        "  curl -s -X POST {gateway}/orders/order -H \"authorization: Bearer $TOKEN\" -H 'content-type: application/json' \\\n      -d '{{\"items\": [{{\"product_id\": 1, \"quantity\": 2}}]}}'"
    );
    println!(
        "\nLogs: {}/*.log. Ctrl-C stops the services.",
        logs.display()
    );
}
