//! [`TlsFront`]: a TLS listener of a test's own in front of a plaintext server, with
//! a certificate a [`TestCa`] signed, as a TLS-terminating load balancer or a
//! sidecar would be. The tests' Kafka-protocol broker (tansu 0.6.0) has TLS options,
//! but its command line refuses `--cert` and `--key` together (one clap group), so a
//! client's Kafka TLS is tried through this front, the broker advertising the
//! front's address.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::private_servers::SERVER_NAMES;
use crate::test_ca::TestCa;

/// Accepts TLS on a loopback port and forwards each connection's plaintext to the
/// upstream port; stops when dropped.
pub struct TlsFront {
    pub port: u16,
    accept: tokio::task::JoinHandle<()>,
}

impl TlsFront {
    /// Bind the front on a free port of 127.0.0.1, its certificate for
    /// [`SERVER_NAMES`] signed by `ca`; it forwards nothing until [`TlsFront::forward_to`]
    /// (bound first, so a server can be told the front's port before it starts).
    pub async fn bind(ca: &TestCa) -> BoundFront {
        sales_platform::tls::install_crypto_provider();
        let server = ca.server_certificate(&SERVER_NAMES);
        let chain = CertificateDer::pem_slice_iter(server.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap_or_else(|e| panic!("front certificate: {e}"));
        let key = PrivateKeyDer::from_pem_slice(server.key_pem.as_bytes())
            .unwrap_or_else(|e| panic!("front key: {e}"));
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap_or_else(|e| panic!("front TLS settings: {e}"));
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap_or_else(|e| panic!("cannot bind the TLS front: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("TLS front address: {e}"))
            .port();
        BoundFront {
            port,
            listener,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        }
    }
}

/// A front bound and not yet forwarding.
pub struct BoundFront {
    pub port: u16,
    listener: TcpListener,
    acceptor: TlsAcceptor,
}

impl BoundFront {
    /// Forward each connection's plaintext to 127.0.0.1:`upstream`.
    pub fn forward_to(self, upstream: u16) -> TlsFront {
        let BoundFront {
            port,
            listener,
            acceptor,
        } = self;
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A client that fails the handshake (another CA, plaintext) is
                    // simply closed, as a TLS server closes it.
                    let Ok(mut client) = acceptor.accept(client).await else {
                        return;
                    };
                    if let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        TlsFront { port, accept }
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.accept.abort();
    }
}
