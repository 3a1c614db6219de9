//! Where RabbitMQ is and how to reach it: `AMQP_URL`, over TLS with `amqps://` and,
//! for a broker whose certificate a private CA signed, `AMQP_TLS_CA_FILE`.

use std::path::PathBuf;

use lapin::tcp::OwnedTLSConfig;
use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{Connect, Connection, ConnectionProperties};
use secrecy::{ExposeSecret, SecretString};

use crate::tls;

/// A checked `AMQP_URL` and its TLS settings; cheap to clone.
#[derive(Clone, Debug)]
pub struct AmqpEndpoint {
    url: SecretString,
    tls: bool,
    ca_file: Option<PathBuf>,
}

impl AmqpEndpoint {
    /// Checks the settings: the URL parses, and a CA file is only given with
    /// `amqps://` and holds at least one CA certificate.
    pub fn new(url: SecretString, ca_file: Option<PathBuf>) -> anyhow::Result<AmqpEndpoint> {
        let uri: AMQPUri = url.expose_secret().parse().map_err(|e: String| {
            // lapin's message may quote the URL, password included.
            let reason = if e.contains(url.expose_secret()) {
                "unparsable".to_owned()
            } else {
                e
            };
            anyhow::anyhow!("AMQP_URL is not a valid amqp:// or amqps:// URL: {reason}")
        })?;
        let tls = uri.scheme == AMQPScheme::AMQPS;
        if let Some(path) = &ca_file {
            if !tls {
                anyhow::bail!(
                    "AMQP_TLS_CA_FILE is set but AMQP_URL is amqp:// (plaintext); use amqps:// \
                     (RabbitMQ's TLS port, 5671 by default)"
                );
            }
            tls::read_ca_bundle("AMQP_TLS_CA_FILE", path)?;
        }
        if tls {
            tls::install_crypto_provider();
        }
        Ok(AmqpEndpoint { url, tls, ca_file })
    }

    /// Whether connections are TLS (`amqps://`).
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Open a connection. Over `amqps://` the broker's certificate must chain to the
    /// system's roots or `AMQP_TLS_CA_FILE`'s, and name the URL's host. The CA file is
    /// read again for each connection, so a bundle replaced in place is picked up.
    pub async fn connect(&self, properties: ConnectionProperties) -> anyhow::Result<Connection> {
        let mut config = OwnedTLSConfig::default();
        if let Some(path) = &self.ca_file {
            let pem = tls::read_ca_bundle("AMQP_TLS_CA_FILE", path)?;
            config.cert_chain = Some(String::from_utf8(pem).map_err(|_| {
                anyhow::anyhow!("AMQP_TLS_CA_FILE: {} is not ASCII PEM", path.display())
            })?);
        }
        let runtime = lapin::runtime::default_runtime()?;
        Ok(self
            .url
            .expose_secret()
            .connect_with_config(properties, config, runtime)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn url(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn a_ca_file_with_a_plaintext_url_is_refused_at_start() {
        let ca = rcgen::generate_simple_self_signed(vec!["ca".to_owned()]).unwrap();
        let dir = std::env::temp_dir().join(format!("sales-amqp-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("ca.crt");
        std::fs::write(&file, ca.cert.pem()).unwrap();

        let err = AmqpEndpoint::new(url("amqp://u:p@mq:5672/%2f"), Some(file.clone()))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("AMQP_TLS_CA_FILE is set but AMQP_URL is amqp://"),
            "{err}"
        );
        let tls = AmqpEndpoint::new(url("amqps://u:p@mq/%2f"), Some(file)).unwrap();
        assert!(tls.is_tls());
        // amqps:// alone trusts the system's roots.
        assert!(
            AmqpEndpoint::new(url("amqps://u:p@mq/%2f"), None)
                .unwrap()
                .is_tls()
        );
        assert!(
            !AmqpEndpoint::new(url("amqp://u:p@mq/%2f"), None)
                .unwrap()
                .is_tls()
        );

        let missing = AmqpEndpoint::new(url("amqps://u:p@mq/%2f"), Some(dir.join("none.crt")))
            .unwrap_err()
            .to_string();
        assert!(
            missing.starts_with("AMQP_TLS_CA_FILE: cannot read"),
            "{missing}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_unparsable_url_is_refused_without_echoing_its_password() {
        let err = AmqpEndpoint::new(url("http://u:secret-pw@mq/"), None)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("AMQP_URL is not a valid"), "{err}");
        assert!(!err.contains("secret-pw"), "{err}");
    }
}
