//! A throwaway certificate authority for one test, and server certificates it signs
//! (ECDSA P-256 through rcgen with ring): what the operator's CA or cert-manager
//! gives the backing services on Kubernetes.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

/// A CA of its own: certificates it signs are trusted only by who trusts [`TestCa::pem`].
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A CA's certificate in a scratch directory, removed when dropped.
pub struct CaFile {
    pub path: PathBuf,
    dir: PathBuf,
}

impl Drop for CaFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A server's certificate and key, PEM.
pub struct ServerCertificate {
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestCa {
    /// A new CA whose certificate's common name is `name`. Panics if rcgen fails.
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap_or_else(|e| panic!("CA key: {e}"));
        let issuer = CertifiedIssuer::self_signed(params, key)
            .unwrap_or_else(|e| panic!("CA certificate: {e}"));
        TestCa { issuer }
    }

    /// The CA's certificate, PEM: what a client trusts.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// [`TestCa::pem`] in a file of its own, for a client that trusts this CA; the
    /// file goes when the returned value is dropped.
    pub fn trust_file(&self) -> CaFile {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let dir = std::env::temp_dir().join(format!("sales-ca-{}", &id[..12]));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        CaFile {
            path: self.write_pem(&dir, "ca.crt"),
            dir,
        }
    }

    /// Writes [`TestCa::pem`] to `dir/name` and returns the path.
    pub fn write_pem(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, self.pem())
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        path
    }

    /// A server certificate for `names` (DNS names or IP addresses), signed by this CA.
    pub fn server_certificate(&self, names: &[&str]) -> ServerCertificate {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params =
            CertificateParams::new(names.clone()).unwrap_or_else(|e| panic!("SANs {names:?}: {e}"));
        params
            .distinguished_name
            .push(DnType::CommonName, names[0].clone());
        let key = KeyPair::generate().unwrap_or_else(|e| panic!("server key: {e}"));
        let cert = params
            .signed_by(&key, &self.issuer)
            .unwrap_or_else(|e| panic!("server certificate: {e}"));
        ServerCertificate {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}
