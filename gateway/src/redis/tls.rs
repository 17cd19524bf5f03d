//! TLS to Redis (`rediss://`, `rediss-cluster://`, `rediss-sentinel://`):
//! rustls on the `ring` provider (no OpenSSL, so the image stays static),
//! verifying the server against a private CA (`redis.tls_ca_file`) or the
//! system's roots.

use fred::types::config::{TlsConfig, TlsConnector};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::path::Path;

/// The TLS settings of every connection: the server's certificate must
/// chain to `ca_file`'s certificates (all of them are trusted), or to the
/// system's roots without one, and name the host the URL gives.
pub fn config(ca_file: Option<&Path>) -> anyhow::Result<TlsConfig> {
    let connector = match ca_file {
        None => TlsConnector::default_rustls()
            .map_err(|e| anyhow::anyhow!("redis TLS: cannot load the system's CA roots: {e}"))?,
        Some(path) => {
            let what = || {
                format!(
                    "redis.tls_ca_file (CHAT__REDIS__TLS_CA_FILE) {}",
                    path.display()
                )
            };
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| anyhow::anyhow!("{}: {e}", what()))?;
            for cert in certs {
                let cert = cert.map_err(|e| anyhow::anyhow!("{}: {e}", what()))?;
                roots
                    .add(cert)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", what()))?;
            }
            if roots.is_empty() {
                anyhow::bail!("{}: no PEM certificate in it", what());
            }
            rustls::ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth()
                .into()
        }
    };
    Ok(connector.into())
}

/// The URL fred parses: its `rediss` scheme would make fred load the
/// system's roots itself (and fail where there are none), so the TLS half
/// is taken off here and [`config`] set instead.
pub fn without_tls_scheme(url: &str) -> String {
    match url.strip_prefix("rediss") {
        Some(rest) => format!("redis{rest}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tls_scheme_is_taken_off_and_nothing_else() {
        for (url, parsed) in [
            ("rediss://u:p@h:6380/2", "redis://u:p@h:6380/2"),
            (
                "rediss-cluster://h:7000?node=h:7001",
                "redis-cluster://h:7000?node=h:7001",
            ),
            (
                "rediss-sentinel://h:26379?sentinelServiceName=m",
                "redis-sentinel://h:26379?sentinelServiceName=m",
            ),
            ("redis://h:6379", "redis://h:6379"),
        ] {
            assert_eq!(without_tls_scheme(url), parsed);
        }
    }

    #[test]
    fn a_ca_file_that_is_missing_or_holds_no_certificate_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = config(Some(&missing)).unwrap_err().to_string();
        assert!(
            err.contains("CHAT__REDIS__TLS_CA_FILE") && err.contains("missing.pem"),
            "{err}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = config(Some(&empty)).unwrap_err().to_string();
        assert!(err.contains("no PEM certificate"), "{err}");
    }
}
