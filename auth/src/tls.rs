//! rustls configurations from PEM files: a broker's (certificate chain and key), a client's
//! (trusted roots: a CA file or the system's; optionally a certificate of its own).

use anyhow::{anyhow, bail, Context};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    // Named, not process-wide: several crypto backends may be linked in.
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading certificates from {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing certificates in {}", path.display()))?;
    if certs.is_empty() {
        bail!("{}: no PEM certificate in it", path.display());
    }
    Ok(certs)
}

fn key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| anyhow!("reading a PEM private key from {}: {e}", path.display()))
}

/// A broker's TLS: its certificate chain (leaf first) and private key, PEM.
pub fn server_config(cert: &Path, key_file: &Path) -> anyhow::Result<Arc<ServerConfig>> {
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs(cert)?, key(key_file)?)
        .with_context(|| {
            format!(
                "{} and {} do not make a usable certificate and key",
                cert.display(),
                key_file.display()
            )
        })?;
    Ok(Arc::new(config))
}

/// A client's TLS settings.
#[derive(Clone, Debug, Default)]
pub struct ClientTls {
    /// Trusted CA certificates (PEM); the system's roots when `None`.
    pub ca_file: Option<PathBuf>,
    /// A client certificate chain and its key (PEM), for clusters that ask for one.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

impl ClientTls {
    pub fn config(&self) -> anyhow::Result<Arc<ClientConfig>> {
        let mut roots = RootCertStore::empty();
        match &self.ca_file {
            Some(path) => {
                for c in certs(path)? {
                    roots
                        .add(c)
                        .with_context(|| format!("a CA certificate of {}", path.display()))?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                for c in found.certs {
                    // A system store may hold certificates rustls cannot use; skip those.
                    let _ = roots.add(c);
                }
                if roots.is_empty() {
                    bail!(
                        "no system CA certificates found ({} errors); give --ca-file",
                        found.errors.len()
                    );
                }
            }
        }
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
        let config = match &self.client_cert {
            None => builder.with_no_client_auth(),
            Some((cert, key_file)) => builder
                .with_client_auth_cert(certs(cert)?, key(key_file)?)
                .context("the client certificate and key")?,
        };
        Ok(Arc::new(config))
    }
}
