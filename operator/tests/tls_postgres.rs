//! A real PostgreSQL (15, Debian's) serving the operator's TLS: the server Secret the
//! reconcile makes (`tls.mode: operatorCA`), the `pg_hba.conf` of its ConfigMap and
//! the `-c` settings of its StatefulSet, written to files laid out as the pod has them
//! (the key root-owned, mode 0440, group postgres: the pod's `fsGroup`). Over a
//! non-loopback address, sqlx connects with `sslmode=verify-ca` against the
//! generated CA (verify-full cannot match the cluster's DNS names here; the SANs are
//! checked in `tests/tls.rs`), and a plaintext connection, or one that trusts another
//! CA, is refused. Needs `initdb`/`pg_ctl` in /usr/lib/postgresql/15/bin, root, and
//! the `postgres` user (what `cargo xtask infra up` installs).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod fake_api;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fake_api::FakeApi;
use kube::api::Api;
use sales_operator::children::{tls, tls_servers};
use sales_operator::crd::{FINALIZER, SalesSystem};
use sales_operator::metrics::Metrics;
use sales_operator::reconcile::{Context, reconcile};
use serde_json::{Value, json};
use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgSslMode};

const BIN: &str = "/usr/lib/postgresql/15/bin";
const NS: &str = "sales";
const PASSWORD: &str = "tls-test-password";

/// What the reconcile made: the order database's server Secret, the arguments of
/// its container, and the ConfigMap's `pg_hba.conf`.
async fn reconciled() -> (tls::Values, Vec<String>, String) {
    let api = FakeApi::new();
    let text = json!({
        "apiVersion": "sales-system.io/v1alpha1", "kind": "SalesSystem",
        "metadata": {"name": "shop", "namespace": NS},
        "spec": {"tls": {"mode": "operatorCA"}},
    })
    .to_string();
    let mut system = sales_operator::render::parse(&text).unwrap();
    system.metadata.finalizers = Some(vec![FINALIZER.into()]);
    api.seed("salessystems", serde_json::to_value(&system).unwrap());
    let client = api.client();
    let ctx = Context::new(
        client.clone(),
        common::recorder(&client),
        Arc::new(Metrics::new()),
    );
    let system = Api::<SalesSystem>::namespaced(client.clone(), NS)
        .get("shop")
        .await
        .unwrap();
    reconcile(Arc::new(system), Arc::new(ctx)).await.unwrap();
    let find = |plural: &str, name: &str| -> Value {
        api.objects(plural, NS)
            .into_iter()
            .find(|o| o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{plural} {name}"))
    };
    let secret: k8s_openapi::api::core::v1::Secret =
        serde_json::from_value(find("secrets", "shop-order-db-tls")).unwrap();
    let values = secret
        .data
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8(v.0).unwrap()))
        .collect();
    let sts = find("statefulsets", "shop-order-db");
    let args =
        serde_json::from_value(sts["spec"]["template"]["spec"]["containers"][0]["args"].clone())
            .unwrap();
    let hba = find("configmaps", "shop-tls")["data"][tls_servers::PG_HBA_KEY]
        .as_str()
        .unwrap()
        .to_owned();
    (values, args, hba)
}

fn run(command: &mut Command) {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn id(flag: &str) -> u32 {
    let out = Command::new("id")
        .args([flag, "postgres"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// This machine's first non-loopback IPv4 address (where `hostssl` applies).
fn outside_address() -> String {
    let out = Command::new("hostname").arg("-I").output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|a| a.contains('.') && !a.starts_with("127."))
        .expect("a non-loopback IPv4 address: the hostssl rule applies only to other hosts")
        .to_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The server; stopped when dropped.
struct Server {
    data: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(Path::new(BIN).join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

fn write(path: &Path, text: &str, mode: u32, group: Option<u32>) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    std::os::unix::fs::chown(path, Some(0), group).unwrap();
}

#[tokio::test]
async fn postgres_serves_tls_with_the_operators_certificate_and_refuses_plaintext() {
    // Both of rustls' providers are in the build: pick the operator's.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (secret, args, hba) = reconciled().await;
    let dir = PathBuf::from(format!("/tmp/sales-operator-tls-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let server_dir = dir.join("server-tls");
    std::fs::create_dir_all(&server_dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&server_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    // As the kubelet mounts the Secret: root-owned, mode 0440, group fsGroup.
    let group = Some(id("-g"));
    for key in [tls::CERT_KEY, tls::KEY_KEY, tls::CA_CERT_KEY] {
        write(&server_dir.join(key), &secret[key], 0o440, group);
    }
    write(&dir.join("pg_hba.conf"), &hba, 0o444, group);
    write(&dir.join("pwfile"), PASSWORD, 0o440, group);
    // The data, the socket and the log: the postgres user's.
    let data = dir.join("data");
    let run_dir = dir.join("run");
    for owned in [&data, &run_dir] {
        std::fs::create_dir(owned).unwrap();
        std::os::unix::fs::chown(owned, Some(id("-u")), group).unwrap();
    }
    run(Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(Path::new(BIN).join("initdb"))
        .arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "--auth=scram-sha-256", "--pwfile"])
        .arg(dir.join("pwfile")));

    // The StatefulSet's settings, with the pod's paths made this directory's.
    assert_eq!(args.first().map(String::as_str), Some("postgres"));
    let settings: Vec<String> = args[1..]
        .iter()
        .map(|a| {
            a.replace(tls::SERVER_DIR, &server_dir.display().to_string())
                .replace(
                    tls_servers::PG_HBA_PATH,
                    &dir.join("pg_hba.conf").display().to_string(),
                )
        })
        .map(|a| if a == "-c" { a } else { format!("'{a}'") })
        .collect();
    let port = free_port();
    let options = format!(
        "-p {port} -c listen_addresses='*' -c unix_socket_directories='{}' {}",
        run_dir.display(),
        settings.join(" ")
    );
    let server = Server { data: data.clone() };
    run(Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(Path::new(BIN).join("pg_ctl"))
        .arg("-D")
        .arg(&data)
        .arg("-l")
        .arg(run_dir.join("log"))
        .args(["-w", "-t", "60", "-o", &options, "start"]));

    let host = outside_address();
    let options = |ssl: PgSslMode, ca: &Path| {
        PgConnectOptions::new()
            .host(&host)
            .port(port)
            .username("postgres")
            .password(PASSWORD)
            .database("postgres")
            .ssl_mode(ssl)
            .ssl_root_cert(ca)
    };
    // sqlx over TLS, verify-ca: the chain to the generated CA is checked, not the
    // name (the address is not in the SANs; since sqlx 0.9, verify-ca with rustls
    // skips the name as libpq does); the hostssl rule lets it in.
    let ca_file = dir.join("ca.crt");
    write(&ca_file, &secret[tls::CA_CERT_KEY], 0o444, None);
    let mut conn = options(PgSslMode::VerifyCa, &ca_file)
        .connect()
        .await
        .unwrap_or_else(|e| panic!("TLS connection: {e}\n{}", log(&run_dir)));
    let (ssl, version): (bool, String) =
        sqlx::query_as("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(ssl);
    assert!(version == "TLSv1.3" || version == "TLSv1.2", "{version}");
    // Plaintext: no pg_hba.conf entry.
    let plain = options(PgSslMode::Disable, &ca_file).connect().await;
    let err = plain
        .expect_err("a plaintext connection is refused")
        .to_string();
    assert!(
        err.contains("no encryption") || err.contains("pg_hba.conf"),
        "{err}"
    );

    // The server's certificate verifies against the generated CA for the name the
    // services use (verify-full), and not against another CA nor for another name.
    let ca = &secret[tls::CA_CERT_KEY];
    handshake(&host, port, ca, "shop-order-db.sales.svc").expect("verified");
    handshake(&host, port, ca, "shop-order-db").expect("verified");
    let wrong_name = handshake(&host, port, ca, "shop-payment-db").unwrap_err();
    assert!(wrong_name.contains("not valid for name"), "{wrong_name}");
    let other = tls::new_ca("other", SystemTime::now()).unwrap();
    let untrusted = handshake(&host, port, &other[tls::CA_CERT_KEY], "shop-order-db").unwrap_err();
    assert!(untrusted.contains("UnknownIssuer"), "{untrusted}");
    // And sqlx's verify-ca refuses the server when it trusts another CA.
    let other_file = dir.join("other-ca.crt");
    write(&other_file, &other[tls::CA_CERT_KEY], 0o444, None);
    let refused = options(PgSslMode::VerifyCa, &other_file)
        .connect()
        .await
        .expect_err("verify-ca with another CA is refused")
        .to_string();
    assert!(refused.contains("UnknownIssuer"), "{refused}");
    drop(conn);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// A TLS handshake with PostgreSQL (its `SSLRequest`, then TLS) that trusts `ca`
/// only and expects the certificate to name `name`: the protocol version, or why not.
fn handshake(host: &str, port: u16, ca: &str, name: &str) -> Result<String, String> {
    use rustls::pki_types::pem::PemObject;
    use std::io::{Read, Write};
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut tcp = std::net::TcpStream::connect((host, port)).unwrap();
    // SSLRequest: length 8, code 80877103.
    tcp.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
        .unwrap();
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"S", "the server offers TLS");
    let server_name = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
    let mut tls = rustls::ClientConnection::new(Arc::new(config), server_name).unwrap();
    while tls.is_handshaking() {
        tls.complete_io(&mut tcp).map_err(|e| e.to_string())?;
    }
    Ok(format!("{:?}", tls.protocol_version()))
}

fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("log")).unwrap_or_default()
}
