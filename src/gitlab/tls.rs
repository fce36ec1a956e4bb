//! The certificates trusted for GitLab's TLS: the system's roots (as OpenSSL would find them,
//! `SSL_CERT_FILE` and `SSL_CERT_DIR` included), plus those of `--gitlab.ca-file`.

use std::path::Path;

use tracing::{debug, warn};
use ureq::tls::{Certificate, PemItem, RootCerts};

/// Reads a PEM file of CA certificates; an error when it cannot be read or holds none.
pub fn read_ca_file(path: &Path) -> Result<Vec<Certificate<'static>>, String> {
    let pem =
        web_config::files::read(path, web_config::files::MAX_PEM).map_err(|e| e.to_string())?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(cert)) => certs.push(cert),
            Ok(_) => {}
            Err(e) => return Err(format!("{} is not valid PEM: {e}", path.display())),
        }
    }
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

/// The roots to trust: the system's, plus `extra`. Without system roots (a minimal container
/// image) and without `extra`, the Mozilla roots built into ureq.
pub fn root_certs(extra: Vec<Certificate<'static>>) -> RootCerts {
    let system = rustls_native_certs::load_native_certs();
    for error in &system.errors {
        debug!(%error, "skipped a system certificate");
    }
    if system.certs.is_empty() {
        if extra.is_empty() {
            return RootCerts::WebPki;
        }
        warn!(
            "no system CA certificates found: only --gitlab.ca-file's are trusted for GitLab's TLS"
        );
    }
    let mut roots: Vec<Certificate<'static>> = system
        .certs
        .iter()
        .map(|der| Certificate::from_der(der.as_ref()).to_owned())
        .collect();
    roots.extend(extra);
    RootCerts::from(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_file_errors_name_the_file() {
        let dir = std::env::temp_dir().join(format!("gae-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = read_ca_file(&empty).unwrap_err();
        assert!(err.contains("empty.pem") && err.contains("no PEM"), "{err}");
        let missing = read_ca_file(&dir.join("missing.pem")).unwrap_err();
        assert!(missing.contains("missing.pem"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
