//! Mutual TLS between the binaries of this workspace (rustls with the `ring` provider).
//!
//! Every binary holds an [`Identity`]: the CA it trusts, its own certificate chain and
//! its private key, read from PEM files named by `TLS_CA_FILE`, `TLS_CERT_FILE` and
//! `TLS_KEY_FILE`. A server refuses every client without a certificate issued by that
//! CA; a client presents its certificate and trusts no server outside that CA.
//! `cargo run -p dev-certs` issues a development CA and certificates into `certs/`.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{self, ConfigError};

/// Variable naming the PEM file of the CA that issues every certificate.
pub const CA_FILE_VAR: &str = "TLS_CA_FILE";
/// Variable naming the PEM file of this binary's certificate (chain).
pub const CERT_FILE_VAR: &str = "TLS_CERT_FILE";
/// Variable naming the PEM file of this binary's private key.
pub const KEY_FILE_VAR: &str = "TLS_KEY_FILE";

/// ALPN protocols a server offers: gRPC needs HTTP/2, WebSocket upgrades HTTP/1.1.
const SERVER_ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The certificates and key of one binary, as ready-made rustls configurations.
#[derive(Debug, Clone)]
pub struct Identity {
    server: Arc<ServerConfig>,
    client: ClientConfig,
}

impl Identity {
    /// Reads the files named by [`CA_FILE_VAR`], [`CERT_FILE_VAR`] and [`KEY_FILE_VAR`]
    /// (defaults `certs/ca.pem`, `certs/<name>.pem` and `certs/<name>-key.pem`).
    pub fn from_env(name: &str) -> Result<Self, ConfigError> {
        let (ca_path, ca) = read(CA_FILE_VAR, "certs/ca.pem".to_owned())?;
        let (cert_path, cert) = read(CERT_FILE_VAR, format!("certs/{name}.pem"))?;
        let (key_path, key) = read(KEY_FILE_VAR, format!("certs/{name}-key.pem"))?;
        Self::from_pem(&ca, &cert, &key).map_err(|error| match error {
            ConfigError::Invalid { name, reason, .. } => {
                let path = match name {
                    CA_FILE_VAR => &ca_path,
                    CERT_FILE_VAR => &cert_path,
                    _ => &key_path,
                };
                ConfigError::Invalid {
                    name,
                    value: path.display().to_string(),
                    reason,
                }
            }
            other => other,
        })
    }

    /// The identity for PEM-encoded CA certificates, certificate chain and private key.
    /// An error names the variable whose file held the unusable PEM.
    pub fn from_pem(ca: &[u8], cert: &[u8], key: &[u8]) -> Result<Self, ConfigError> {
        let ca = certificates(CA_FILE_VAR, ca)?;
        let chain = certificates(CERT_FILE_VAR, cert)?;
        let key = PrivateKeyDer::from_pem_slice(key)
            .map_err(|error| invalid(KEY_FILE_VAR, format!("no private key ({error})")))?;
        let mut roots = RootCertStore::empty();
        for certificate in ca {
            roots
                .add(certificate)
                .map_err(|error| invalid(CA_FILE_VAR, error.to_string()))?;
        }
        let roots = Arc::new(roots);
        let provider = provider();
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|error| invalid(CA_FILE_VAR, error.to_string()))?;
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|error| invalid(CA_FILE_VAR, error.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|error| invalid(KEY_FILE_VAR, error.to_string()))?;
        server.alpn_protocols = SERVER_ALPN.iter().map(|p| p.to_vec()).collect();
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| invalid(CA_FILE_VAR, error.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|error| invalid(KEY_FILE_VAR, error.to_string()))?;
        Ok(Self {
            server: Arc::new(server),
            client,
        })
    }

    /// A server configuration that requires a client certificate issued by the CA.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.server.clone()
    }

    /// A client configuration that presents this binary's certificate and trusts only
    /// the CA. Its ALPN list is empty: the HTTP client sets it.
    pub fn client_config(&self) -> ClientConfig {
        self.client.clone()
    }
}

/// A client configuration that trusts no server: for clients that speak plain HTTP
/// only, such as health checks and trace export.
pub fn trust_nothing() -> ClientConfig {
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth()
}

/// rustls' `ring` provider: no C toolchain needed, unlike `aws-lc-rs`.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The path in the variable `name` (or `default`) and the content of that file.
fn read(name: &'static str, default: String) -> Result<(PathBuf, Vec<u8>), ConfigError> {
    let path: PathBuf = config::var_or(name, &default)?;
    match std::fs::read(&path) {
        Ok(content) => Ok((path, content)),
        Err(error) => Err(ConfigError::Invalid {
            name,
            value: path.display().to_string(),
            reason: format!("cannot read it ({error}); `cargo run -p dev-certs` writes certs/"),
        }),
    }
}

fn certificates(
    name: &'static str,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| invalid(name, format!("unreadable PEM ({error})")))?;
    if certificates.is_empty() {
        return Err(invalid(name, "no certificate in the file".to_owned()));
    }
    Ok(certificates)
}

fn invalid(name: &'static str, reason: String) -> ConfigError {
    ConfigError::Invalid {
        name,
        value: "(PEM)".to_owned(),
        reason,
    }
}
