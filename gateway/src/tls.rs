// SPDX-License-Identifier: Apache-2.0
//! HTTPS: the rustls server configuration from `--tls-cert` and `--tls-key`.
//!
//! Owns: reading the PEM certificate chain and private key, and the rustls
//! settings (ring provider, TLS 1.2 and 1.3, ALPN `http/1.1`, no client
//! certificates).
//! Must never: print key material; fall back to plain HTTP when the files
//! are bad (startup fails instead, saying which file and what is wrong).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

/// Build the TLS configuration from a PEM certificate chain (leaf first) and
/// a PEM private key (PKCS#8, PKCS#1 or SEC1).
pub fn server_config(cert_path: &Path, key_path: &Path) -> Result<Arc<ServerConfig>, String> {
    let cert_name = cert_path.display();
    let key_name = key_path.display();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| format!("cannot read the TLS certificate {cert_name}: {e}"))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("the TLS certificate {cert_name} is not valid PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "no certificate in {cert_name}: --tls-cert needs a PEM file with a \
             `-----BEGIN CERTIFICATE-----` block (the server's certificate first, then its chain)"
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| {
        format!(
            "cannot load a private key from {key_name} ({e}): --tls-key needs a PEM file \
             with a `-----BEGIN PRIVATE KEY-----` (or RSA/EC PRIVATE KEY) block"
        )
    })?;
    // rustls 0.23.48 marks the ring provider deprecated because it has no
    // post-quantum key exchange; it is still rustls' supported ring backend.
    // aws-lc-rs (the alternative) is a large C/cmake build; see README.md.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            format!(
                "the TLS certificate {cert_name} and key {key_name} cannot be used together ({e}): \
                 check that the key belongs to the certificate"
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
