//! [`AmqpFront`]: the one address the services' `AMQP_URL` names, in front of a
//! test cluster's nodes.

use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

/// A TCP front on a free loopback port, in front of some nodes' AMQP ports, as the
/// Kubernetes Service `<name>-rabbitmq` is in front of the broker's pods (the
/// services' `AMQP_URL` names that Service, one address). Each new connection goes
/// to the first node of `node_ports` that accepts it: a dead node's port refuses at once,
/// so the next is taken, as the Service stops sending to a pod that failed. A
/// connection whose node dies is closed; the client reconnects through the front.
pub struct AmqpFront {
    port: u16,
    accept: tokio::task::JoinHandle<()>,
}

impl AmqpFront {
    /// Start a front preferring the nodes in the order of `node_ports`.
    pub async fn start(node_ports: Vec<u16>) -> AmqpFront {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("cannot bind a port for the AMQP front: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("AMQP front address: {e}"))
            .port();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let ports = node_ports.clone();
                tokio::spawn(async move {
                    for node in ports {
                        let connect = TcpStream::connect(("127.0.0.1", node));
                        if let Ok(Ok(mut server)) =
                            tokio::time::timeout(Duration::from_secs(2), connect).await
                        {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                            return;
                        }
                    }
                });
            }
        });
        AmqpFront { port, accept }
    }

    /// `amqp://guest:guest@127.0.0.1:<front>/%2f`.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }
}

impl Drop for AmqpFront {
    fn drop(&mut self) {
        self.accept.abort();
    }
}
