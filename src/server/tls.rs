//! HTTPS: the rustls server configuration every worker's TLS listener shares,
//! and `swiftlet dev-cert`, which writes a self-signed pair for local use.
//!
//! Only TLS 1.3 and 1.2 are offered, with rustls's default (modern) cipher
//! suites on the ring provider (the one crypto library in the
//! binary: the S3 client's TLS and the API's token signatures use it too), and ALPN offers only `http/1.1`: a
//! client that asks for h2 alone gets no ALPN match and the handshake fails,
//! rather than a protocol we do not speak. The certificate chain and key are
//! read from PEM files with rustls-pki-types' own PEM parser.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The server configuration for a certificate chain and its key (PEM files).
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| format!("TLS certificate {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("TLS certificate {}: no certificate in the file", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("TLS key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("TLS certificate and key: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Writes a self-signed certificate for `localhost`, `127.0.0.1` and `::1`
/// and its private key (readable by the owner only) as PEM files.
pub fn write_dev_cert(cert: &Path, key: &Path) -> Result<(), String> {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    let certified = rcgen::generate_simple_self_signed(names).map_err(|e| format!("generating a certificate: {e}"))?;
    std::fs::write(cert, certified.cert.pem()).map_err(|e| format!("{}: {e}", cert.display()))?;
    write_private(key, certified.signing_key.serialize_pem().as_bytes())
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    file.write_all(bytes).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dev_cert_loads_as_a_server_config_offering_only_http1() {
        let dir = std::env::temp_dir().join(format!("swiftlet-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        write_dev_cert(&cert, &key).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
        let config = server_config(&cert, &key).unwrap();
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        // A key file is not a certificate.
        assert!(server_config(&key, &key).unwrap_err().contains("no certificate"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
