//! A TCP relay between a service and a real server (PostgreSQL, RabbitMQ) that a test
//! can break the way networks and servers break: [`Fault::Frozen`] passes nothing on
//! but keeps connections open (a server that hangs), [`Fault::Down`] drops every
//! connection and refuses new ones (a server that is gone). The server itself is not
//! touched, so tests sharing it are not disturbed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

/// What the relay does to the traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Fault {
    /// Bytes pass both ways.
    None = 0,
    /// Nothing passes; connections stay open.
    Frozen = 1,
    /// Connections are dropped and new ones closed at once.
    Down = 2,
}

/// A running relay; it stops with the test's runtime.
#[derive(Clone)]
pub struct FaultProxy {
    port: u16,
    fault: Arc<AtomicU8>,
}

impl FaultProxy {
    /// Relay a local port to `upstream` (`host:port`).
    pub async fn start(upstream: String) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("cannot bind a proxy port: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("proxy address: {e}"))
            .port();
        let fault = Arc::new(AtomicU8::new(Fault::None as u8));
        let shared = fault.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if shared.load(Ordering::SeqCst) == Fault::Down as u8 {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pipe(cr, sw, shared.clone()));
                tokio::spawn(pipe(sr, cw, shared.clone()));
            }
        });
        FaultProxy { port, fault }
    }

    /// Relay to the host and port of `url` (any scheme).
    pub async fn for_url(url: &str) -> FaultProxy {
        let parsed = reqwest::Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        let host = parsed.host_str().unwrap_or("127.0.0.1").to_owned();
        let port = parsed
            .port_or_known_default()
            .or(match parsed.scheme() {
                "postgres" | "postgresql" => Some(5432),
                "amqp" => Some(5672),
                "redis" => Some(6379),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{url}: no port"));
        FaultProxy::start(format!("{host}:{port}")).await
    }

    /// `url` with its host and port replaced by this relay's.
    pub fn url_through(&self, url: &str) -> String {
        let mut parsed = reqwest::Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        let _ = parsed.set_host(Some("127.0.0.1"));
        let _ = parsed.set_port(Some(self.port));
        parsed.to_string()
    }

    pub fn set(&self, fault: Fault) {
        self.fault.store(fault as u8, Ordering::SeqCst);
    }
}

async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, fault: Arc<AtomicU8>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let read = tokio::select! {
            r = from.read(&mut buf) => r,
            _ = until_down(&fault) => return,
        };
        let n = match read {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        loop {
            match fault.load(Ordering::SeqCst) {
                f if f == Fault::Down as u8 => return,
                f if f == Fault::Frozen as u8 => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                _ => break,
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

async fn until_down(fault: &AtomicU8) {
    while fault.load(Ordering::SeqCst) != Fault::Down as u8 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
