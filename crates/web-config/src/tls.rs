//! `tls_server_config`: the rustls server configuration of the listener (certificate and key,
//! versions, TLS 1.2 cipher suites, curves, client certificates verified against a CA), and
//! what rustls cannot do refused with a message saying so.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls::{
    self, RootCertStore, ServerConfig, SupportedCipherSuite, SupportedProtocolVersion,
    crypto::ring as ring_provider,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::WebPkiClientVerifier,
};

use crate::files::{self, FileError};
use crate::raw::{RawTls, set};

/// A `tls_server_config` section that cannot be used. The message starts with the key within
/// `tls_server_config` (`cert_file`, `min_version`, …); keys are named as written in the file.
/// No message quotes a private key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// Both a PEM document inline (`cert`, `key`, `client_ca`) and the file of the same thing.
    #[error("{inline}: set {inline} (inline PEM) or {file}, not both")]
    InlineAndFile {
        /// The inline key: `cert`, `key` or `client_ca`.
        inline: &'static str,
        /// The file key: `cert_file`, `key_file` or `client_ca_file`.
        file: &'static str,
    },
    /// A file named by the section cannot be read.
    #[error("{key}: {error}")]
    File {
        /// The key naming the file: `cert_file`, `key_file` or `client_ca_file`.
        key: &'static str,
        /// Why it cannot be read.
        error: FileError,
    },
    /// TLS is configured, but there is no server certificate.
    #[error("cert_file: missing (or cert, the certificate inline)")]
    MissingCert,
    /// TLS is configured, but there is no private key.
    #[error("key_file: missing (or key, the private key inline)")]
    MissingKey,
    /// A certificate document is not valid PEM.
    #[error("{key}: {origin} is not valid PEM: {error}")]
    InvalidPem {
        /// The key it was given with: `cert`, `cert_file`, `client_ca` or `client_ca_file`.
        key: &'static str,
        /// Where it is.
        origin: PemOrigin,
        /// What is wrong with it.
        error: rustls::pki_types::pem::Error,
    },
    /// A certificate document holds no certificate.
    #[error("{key}: {origin} holds no PEM certificate")]
    NoCertificate {
        /// The key it was given with: `cert`, `cert_file`, `client_ca` or `client_ca_file`.
        key: &'static str,
        /// Where it is.
        origin: PemOrigin,
    },
    /// The key document holds no private key rustls can read.
    #[error("{key}: {origin} holds no PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC)")]
    NoPrivateKey {
        /// `key` or `key_file`.
        key: &'static str,
        /// Where it is.
        origin: PemOrigin,
    },
    /// `min_version` or `max_version` is TLS 1.0 or 1.1, which rustls does not speak.
    #[error(
        "{key}: {version} is not supported (rustls speaks TLS 1.2 and 1.3 only); use TLS12 or TLS13"
    )]
    UnsupportedVersion {
        /// `min_version` or `max_version`.
        key: &'static str,
        /// The value as written: `TLS10` or `TLS11`.
        version: String,
    },
    /// `min_version` or `max_version` is not a TLS version name.
    #[error("{key}: unknown TLS version '{version}'; expected TLS12 or TLS13")]
    UnknownVersion {
        /// `min_version` or `max_version`.
        key: &'static str,
        /// The value as written.
        version: String,
    },
    /// `min_version` is above `max_version`.
    #[error("min_version: {min} is above max_version {max}")]
    VersionRange {
        /// `min_version`: `TLS13`.
        min: &'static str,
        /// `max_version`: `TLS12`.
        max: &'static str,
    },
    /// `cipher_suites` names a suite rustls does not have (CBC, RSA key exchange), or no suite.
    #[error(
        "cipher_suites: '{name}' is not supported (rustls has no CBC or RSA key exchange \
         suites); the TLS 1.2 suites are {}",
        tls12_suite_names()
    )]
    UnsupportedCipherSuite {
        /// The suite as written.
        name: String,
    },
    /// `cipher_suites` names only TLS 1.3 suites while TLS 1.2 is allowed.
    #[error(
        "cipher_suites: names no TLS 1.2 suite, but TLS 1.2 is allowed; add one or set \
         min_version: TLS13"
    )]
    NoTls12CipherSuite,
    /// `curve_preferences` names a curve that Go has and rustls with ring has not (`CurveP521`).
    #[error(
        "curve_preferences: {name} is not supported by rustls with ring; use X25519, CurveP256 \
         or CurveP384"
    )]
    UnsupportedCurve {
        /// The curve as written.
        name: String,
    },
    /// `curve_preferences` names no curve at all.
    #[error("curve_preferences: unknown curve '{name}'; expected X25519, CurveP256 or CurveP384")]
    UnknownCurve {
        /// The curve as written.
        name: String,
    },
    /// `client_auth_type` is one that accepts client certificates without verifying them.
    #[error(
        "client_auth_type: {value} is not supported: it accepts client certificates without \
         verifying them; use RequireAndVerifyClientCert with client_ca_file"
    )]
    UnverifiedClientAuth {
        /// The value as written.
        value: String,
    },
    /// `client_auth_type` is not one of Go's names.
    #[error(
        "client_auth_type: unknown value '{value}'; expected NoClientCert, \
         VerifyClientCertIfGiven or RequireAndVerifyClientCert"
    )]
    UnknownClientAuth {
        /// The value as written.
        value: String,
    },
    /// `client_allowed_sans` is set: not supported.
    #[error(
        "client_allowed_sans is not supported by gitlab-api-exporter; trust a CA that issues \
         only the scrapers' certificates instead"
    )]
    ClientAllowedSans,
    /// A client CA is set, but `client_auth_type` does not ask for client certificates.
    #[error(
        "client_auth_type: a client CA is set but client_auth_type is NoClientCert; set \
         client_auth_type: RequireAndVerifyClientCert"
    )]
    ClientCaWithoutClientAuth,
    /// `client_auth_type` verifies client certificates, but no client CA is set.
    #[error("client_ca_file: missing; client_auth_type verifies client certificates against it")]
    MissingClientCa,
    /// The client CA document holds a certificate that cannot be a trust anchor.
    #[error("{key}: {origin} holds a certificate that cannot be a CA: {error}")]
    NotCa {
        /// `client_ca` or `client_ca_file`.
        key: &'static str,
        /// Where it is.
        origin: PemOrigin,
        /// What rustls said.
        error: rustls::Error,
    },
    /// The client certificate verifier cannot be made from the client CA.
    #[error("{key}: {origin}: {error}")]
    ClientVerifier {
        /// `client_ca` or `client_ca_file`.
        key: &'static str,
        /// Where the client CA is.
        origin: PemOrigin,
        /// What rustls said.
        error: rustls::server::VerifierBuilderError,
    },
    /// rustls refuses the versions and cipher suites together.
    #[error("min_version/max_version/cipher_suites: {error}")]
    Protocol {
        /// What rustls said.
        error: rustls::Error,
    },
    /// The private key is not the certificate's.
    #[error(
        "{key}: the private key in {key_origin} does not match the certificate in {cert_origin}"
    )]
    KeyMismatch {
        /// `key` or `key_file`.
        key: &'static str,
        /// Where the key is.
        key_origin: PemOrigin,
        /// Where the certificate is.
        cert_origin: PemOrigin,
    },
    /// rustls cannot use the certificate and key for another reason.
    #[error("{cert_key}/{key_key}: cannot use the certificate and key: {error}")]
    CertifiedKey {
        /// `cert` or `cert_file`.
        cert_key: &'static str,
        /// `key` or `key_file`.
        key_key: &'static str,
        /// What rustls said.
        error: rustls::Error,
    },
}

/// Where a PEM document of `tls_server_config` is: inline in the config, or in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PemOrigin {
    /// Inline, as the value of `cert`, `key` or `client_ca`.
    Inline,
    /// In this file (a relative name taken from the config file's directory).
    File(PathBuf),
}

impl fmt::Display for PemOrigin {
    /// "(inline PEM)", or the file's path.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PemOrigin::Inline => f.write_str("(inline PEM)"),
            PemOrigin::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// The TLS side of a web config: the rustls configuration, and what it was made from, for
/// `Debug`.
pub(crate) struct Tls {
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) summary: TlsSummary,
}

/// Read through `Debug` only.
#[derive(Debug)]
#[allow(dead_code)]
pub(crate) struct TlsSummary {
    cert: String,
    client_auth: ClientAuth,
    client_ca: Option<String>,
    min_version: &'static str,
    max_version: &'static str,
    tls12_cipher_suites: Vec<String>,
    curves: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientAuth {
    NoClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

/// A PEM document of the section: the key that set it and where it is, for messages.
struct Pem {
    key: &'static str,
    origin: PemOrigin,
}

impl Pem {
    /// The PEM text of `inline_key` or `file_key`, one of which at most may be set.
    fn pick(
        inline: Option<String>,
        file: Option<String>,
        inline_key: &'static str,
        file_key: &'static str,
        dir: &Path,
    ) -> Result<Option<(Pem, Vec<u8>)>, TlsError> {
        let (key, origin, bytes) = match (inline, file) {
            (Some(_), Some(_)) => {
                return Err(TlsError::InlineAndFile {
                    inline: inline_key,
                    file: file_key,
                });
            }
            (Some(text), None) => (inline_key, PemOrigin::Inline, text.into_bytes()),
            (None, Some(file)) => {
                let path = dir.join(file);
                let bytes = files::read(&path, files::MAX_PEM).map_err(|error| TlsError::File {
                    key: file_key,
                    error,
                })?;
                (file_key, PemOrigin::File(path), bytes)
            }
            (None, None) => return Ok(None),
        };
        Ok(Some((Pem { key, origin }, bytes)))
    }

    /// The certificates in the document; an error when there is none.
    fn certificates(&self, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| TlsError::InvalidPem {
                key: self.key,
                origin: self.origin.clone(),
                error,
            })?;
        if certs.is_empty() {
            return Err(TlsError::NoCertificate {
                key: self.key,
                origin: self.origin.clone(),
            });
        }
        Ok(certs)
    }
}

fn tls_version(
    value: Option<String>,
    key: &'static str,
    default: &'static SupportedProtocolVersion,
) -> Result<&'static SupportedProtocolVersion, TlsError> {
    match set(value) {
        None => Ok(default),
        Some(version) => match version.as_str() {
            "TLS12" => Ok(&rustls::version::TLS12),
            "TLS13" => Ok(&rustls::version::TLS13),
            "TLS10" | "TLS11" => Err(TlsError::UnsupportedVersion { key, version }),
            _ => Err(TlsError::UnknownVersion { key, version }),
        },
    }
}

fn version_name(version: &SupportedProtocolVersion) -> &'static str {
    if version.version == rustls::ProtocolVersion::TLSv1_2 {
        "TLS12"
    } else {
        "TLS13"
    }
}

/// Go's names of the TLS 1.2 suites that rustls (with ring) has.
const TLS12_SUITES: [(&str, SupportedCipherSuite); 6] = {
    use ring_provider::cipher_suite as cs;
    [
        (
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        ),
        (
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        ),
        (
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
        (
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ),
        (
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        ),
        (
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
    ]
};

/// The names of [`TLS12_SUITES`], for messages.
fn tls12_suite_names() -> String {
    let supported: Vec<&str> = TLS12_SUITES.iter().map(|(n, _)| *n).collect();
    supported.join(", ")
}

/// Go's names of the TLS 1.3 suites: accepted and, as in Go, without effect (all three stay).
const TLS13_SUITE_NAMES: [&str; 3] = [
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

/// `TLS12_SUITES` chosen by `cipher_suites`, in the file's order; all of them when unset.
fn tls12_suites(
    names: Option<Vec<String>>,
) -> Result<Vec<(&'static str, SupportedCipherSuite)>, TlsError> {
    let Some(names) = names.filter(|n| !n.is_empty()) else {
        return Ok(TLS12_SUITES.to_vec());
    };
    let mut chosen: Vec<(&'static str, SupportedCipherSuite)> = Vec::new();
    for name in names {
        if TLS13_SUITE_NAMES.contains(&name.as_str()) {
            continue;
        }
        let Some(&(known, suite)) = TLS12_SUITES.iter().find(|(n, _)| *n == name) else {
            return Err(TlsError::UnsupportedCipherSuite { name });
        };
        if !chosen.iter().any(|(n, _)| *n == known) {
            chosen.push((known, suite));
        }
    }
    Ok(chosen)
}

/// The key exchange groups chosen by `curve_preferences`, in order; rustls' defaults when unset.
fn curves(
    names: Option<Vec<String>>,
) -> Result<Vec<&'static dyn rustls::crypto::SupportedKxGroup>, TlsError> {
    use ring_provider::kx_group;
    let Some(names) = names.filter(|n| !n.is_empty()) else {
        return Ok(ring_provider::default_provider().kx_groups);
    };
    let mut chosen: Vec<&'static dyn rustls::crypto::SupportedKxGroup> = Vec::new();
    for name in names {
        let group = match name.as_str() {
            "X25519" => kx_group::X25519,
            "CurveP256" => kx_group::SECP256R1,
            "CurveP384" => kx_group::SECP384R1,
            "CurveP521" => return Err(TlsError::UnsupportedCurve { name }),
            _ => return Err(TlsError::UnknownCurve { name }),
        };
        if !chosen.iter().any(|g| g.name() == group.name()) {
            chosen.push(group);
        }
    }
    Ok(chosen)
}

/// The rustls server configuration, or `None` when the section configures no TLS (Go's
/// `IsEnabled`: no certificate, key, client CA or client auth type). Relative file names are
/// taken from `dir`.
pub(crate) fn build_tls(raw: RawTls, dir: &Path) -> Result<Option<Tls>, TlsError> {
    let client_auth_type = set(raw.client_auth_type);
    let (cert, key, client_ca, client_ca_file) = (
        set(raw.cert),
        set(raw.key),
        set(raw.client_ca),
        set(raw.client_ca_file),
    );
    let (cert_file, key_file) = (set(raw.cert_file), set(raw.key_file));
    let enabled = cert.is_some()
        || key.is_some()
        || cert_file.is_some()
        || key_file.is_some()
        || client_ca.is_some()
        || client_ca_file.is_some()
        || client_auth_type.is_some();
    if !enabled {
        return Ok(None);
    }
    let (cert_source, cert_pem) =
        Pem::pick(cert, cert_file, "cert", "cert_file", dir)?.ok_or(TlsError::MissingCert)?;
    let (key_source, key_pem) =
        Pem::pick(key, key_file, "key", "key_file", dir)?.ok_or(TlsError::MissingKey)?;
    let chain = cert_source.certificates(&cert_pem)?;
    // The message never quotes the key's content.
    let private_key =
        PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::NoPrivateKey {
            key: key_source.key,
            origin: key_source.origin.clone(),
        })?;

    let min = tls_version(raw.min_version, "min_version", &rustls::version::TLS12)?;
    let max = tls_version(raw.max_version, "max_version", &rustls::version::TLS13)?;
    let versions: Vec<&'static SupportedProtocolVersion> =
        [&rustls::version::TLS12, &rustls::version::TLS13]
            .into_iter()
            .filter(|v| {
                let rank = |v: &SupportedProtocolVersion| u16::from(v.version);
                rank(v) >= rank(min) && rank(v) <= rank(max)
            })
            .collect();
    if versions.is_empty() {
        return Err(TlsError::VersionRange {
            min: version_name(min),
            max: version_name(max),
        });
    }

    let suites12 = tls12_suites(raw.cipher_suites)?;
    if suites12.is_empty()
        && versions
            .iter()
            .any(|v| v.version == rustls::ProtocolVersion::TLSv1_2)
    {
        return Err(TlsError::NoTls12CipherSuite);
    }
    let kx_groups = curves(raw.curve_preferences)?;
    let mut provider = ring_provider::default_provider();
    provider.cipher_suites = provider
        .cipher_suites
        .iter()
        .filter(|s| s.version().version == rustls::ProtocolVersion::TLSv1_3)
        .copied()
        .chain(suites12.iter().map(|(_, s)| *s))
        .collect();
    let curve_names = kx_groups
        .iter()
        .map(|g| format!("{:?}", g.name()))
        .collect();
    provider.kx_groups = kx_groups;
    let provider = Arc::new(provider);

    let client_auth = match client_auth_type {
        None => ClientAuth::NoClientCert,
        Some(value) => match value.as_str() {
            "NoClientCert" => ClientAuth::NoClientCert,
            "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerifyClientCert,
            "VerifyClientCertIfGiven" => ClientAuth::VerifyClientCertIfGiven,
            "RequestClientCert" | "RequireAnyClientCert" | "RequireClientCert" => {
                return Err(TlsError::UnverifiedClientAuth { value });
            }
            _ => return Err(TlsError::UnknownClientAuth { value }),
        },
    };
    let ca = Pem::pick(
        client_ca,
        client_ca_file,
        "client_ca",
        "client_ca_file",
        dir,
    )?;
    if raw.client_allowed_sans.is_some() {
        return Err(TlsError::ClientAllowedSans);
    }
    let (verifier, ca_description) = match (client_auth, ca) {
        (ClientAuth::NoClientCert, None) => (WebPkiClientVerifier::no_client_auth(), None),
        (ClientAuth::NoClientCert, Some(_)) => return Err(TlsError::ClientCaWithoutClientAuth),
        (_, None) => return Err(TlsError::MissingClientCa),
        (auth, Some((source, pem))) => {
            let mut roots = RootCertStore::empty();
            for cert in source.certificates(&pem)? {
                roots.add(cert).map_err(|error| TlsError::NotCa {
                    key: source.key,
                    origin: source.origin.clone(),
                    error,
                })?;
            }
            let builder =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider));
            let builder = if auth == ClientAuth::VerifyClientCertIfGiven {
                builder.allow_unauthenticated()
            } else {
                builder
            };
            let verifier = builder.build().map_err(|error| TlsError::ClientVerifier {
                key: source.key,
                origin: source.origin.clone(),
                error,
            })?;
            (verifier, Some(source.origin.to_string()))
        }
    };

    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|error| TlsError::Protocol { error })?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, private_key)
        .map_err(|error| match error {
            rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
                key: key_source.key,
                key_origin: key_source.origin.clone(),
                cert_origin: cert_source.origin.clone(),
            },
            error => TlsError::CertifiedKey {
                cert_key: cert_source.key,
                key_key: key_source.key,
                error,
            },
        })?;
    config.ignore_client_order = raw.prefer_server_cipher_suites.unwrap_or(true);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Tls {
        config: Arc::new(config),
        summary: TlsSummary {
            cert: cert_source.origin.to_string(),
            client_auth,
            client_ca: ca_description,
            min_version: version_name(min),
            max_version: version_name(max),
            tls12_cipher_suites: suites12.iter().map(|(n, _)| (*n).to_owned()).collect(),
            curves: curve_names,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::convert::Infallible;
    use std::net::IpAddr;

    use bytes::Bytes;
    use http_body_util::Full;
    use hyper::body::Incoming;
    use hyper::header::{self, HeaderValue};
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper::{Request, Response};
    use hyper_util::rt::TokioIo;
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::mpsc;
    use tokio_rustls::rustls::ProtocolVersion;
    use tokio_rustls::rustls::pki_types::ServerName;

    use crate::denied::WWW_AUTHENTICATE;
    use crate::test_support::{Fixture, basic, hash};
    use crate::{ConfigError, LoadError, WebConfig};

    /// The [`TlsError`] in `err`.
    fn tls_error(err: &LoadError) -> &TlsError {
        match err {
            LoadError::Invalid { error, .. } => match &**error {
                ConfigError::Tls(tls) => tls,
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn file_errors_name_the_key_and_the_file() {
        let fixture = Fixture::new("files");
        let tls = |pem: &str| {
            fixture
                .load(&format!("tls_server_config:\n{pem}"))
                .unwrap_err()
        };
        let message = |pem: &str| tls(pem).to_string();
        let err = tls("  cert_file: server.pem\n  key_file: nokey.pem\n");
        assert!(
            matches!(
                tls_error(&err),
                TlsError::File {
                    key: "key_file",
                    error: FileError::Io { path, .. },
                } if path.ends_with("nokey.pem")
            ),
            "{err:?}"
        );
        let err = err.to_string();
        assert!(
            err.contains("key_file") && err.contains("nokey.pem"),
            "{err}"
        );
        let err = message("  cert_file: server.pem\n");
        assert!(err.contains("key_file: missing"), "{err}");
        let err = message("  key_file: server.key\n");
        assert!(err.contains("cert_file: missing"), "{err}");
        // A certificate where the key should be, and the reverse.
        let err = message("  cert_file: server.pem\n  key_file: server.pem\n");
        assert!(
            err.contains("key_file") && err.contains("no PEM private key"),
            "{err}"
        );
        let err = message("  cert_file: server.key\n  key_file: server.key\n");
        assert!(
            err.contains("cert_file") && err.contains("no PEM certificate"),
            "{err}"
        );
        // Another certificate's key.
        let err = tls("  cert_file: server.pem\n  key_file: client.key\n");
        assert!(
            matches!(
                tls_error(&err),
                TlsError::KeyMismatch {
                    key: "key_file",
                    key_origin: PemOrigin::File(key),
                    cert_origin: PemOrigin::File(cert),
                } if key.ends_with("client.key") && cert.ends_with("server.pem")
            ),
            "{err:?}"
        );
        let err = err.to_string();
        assert!(err.contains("does not match"), "{err}");
        assert!(
            !err.contains(&String::from_utf8_lossy(&fixture.read("client.key"))[40..80]),
            "{err}"
        );
        let err = message("  cert_file: server.pem\n  key_file: server.key\n  cert: x\n");
        assert!(err.contains("not both"), "{err}");
    }

    #[test]
    fn certificate_and_key_may_be_inline_and_keys_in_any_pem_form() {
        let fixture = Fixture::new("inline");
        let indent = |pem: Vec<u8>| {
            String::from_utf8(pem)
                .unwrap()
                .lines()
                .map(|l| format!("    {l}\n"))
                .collect::<String>()
        };
        let yaml = format!(
            "tls_server_config:\n  cert: |\n{}  key: |\n{}",
            indent(fixture.read("server.pem")),
            indent(fixture.read("server.key"))
        );
        assert!(fixture.load(&yaml).unwrap().tls_acceptor().is_some());
        // SEC1 ("EC PRIVATE KEY") as well as PKCS#8.
        fixture.openssl(&["ec", "-in", "server.key", "-out", "server-sec1.key"]);
        assert!(
            String::from_utf8(fixture.read("server-sec1.key"))
                .unwrap()
                .contains("BEGIN EC PRIVATE KEY")
        );
        let config = fixture
            .load("tls_server_config:\n  cert_file: server.pem\n  key_file: server-sec1.key\n")
            .unwrap();
        assert!(config.tls_acceptor().is_some());
    }

    #[test]
    fn tls_versions_suites_and_curves_are_checked() {
        let fixture = Fixture::new("versions");
        let with = |extra: &str| {
            fixture.load(&format!(
                "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n{extra}"
            ))
        };
        assert!(with("  min_version: TLS13\n").is_ok());
        assert!(with("  max_version: TLS12\n").is_ok());
        assert!(with("  min_version: TLS12\n  max_version: TLS12\n").is_ok());
        for (extra, expected) in [
            (
                "  min_version: TLS10\n",
                "min_version: TLS10 is not supported",
            ),
            (
                "  min_version: TLS11\n",
                "min_version: TLS11 is not supported",
            ),
            (
                "  max_version: TLS14\n",
                "max_version: unknown TLS version 'TLS14'",
            ),
            ("  min_version: tls12\n", "min_version: unknown"),
            (
                "  min_version: TLS13\n  max_version: TLS12\n",
                "min_version: TLS13 is above max_version TLS12",
            ),
            (
                "  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA]\n",
                "cipher_suites: 'TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA' is not supported",
            ),
            (
                "  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
                "names no TLS 1.2 suite",
            ),
            (
                "  curve_preferences: [CurveP521]\n",
                "CurveP521 is not supported",
            ),
            ("  curve_preferences: [P256]\n", "unknown curve 'P256'"),
            (
                "  client_allowed_sans: [prometheus]\n",
                "client_allowed_sans",
            ),
            (
                "  prefer_server_cipher_suites: maybe\n",
                "prefer_server_cipher_suites",
            ),
        ] {
            let err = with(extra).unwrap_err().to_string();
            assert!(err.contains(expected), "{extra:?}: {err}");
            assert!(err.contains("web.yml"), "{err}");
        }
        // TLS 1.3 only: a list of TLS 1.3 suites is fine.
        assert!(with("  min_version: TLS13\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n").is_ok());
    }

    #[test]
    fn client_auth_types() {
        let fixture = Fixture::new("clientauth");
        let with = |extra: &str| {
            fixture.load(&format!(
                "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n{extra}"
            ))
        };
        assert!(with("  client_auth_type: NoClientCert\n").is_ok());
        assert!(
            with("  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n")
                .is_ok()
        );
        assert!(
            with("  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.pem\n").is_ok()
        );
        for (extra, expected) in [
            (
                "  client_auth_type: RequireAnyClientCert\n  client_ca_file: ca.pem\n",
                "client_auth_type: RequireAnyClientCert is not supported",
            ),
            (
                "  client_auth_type: RequestClientCert\n",
                "client_auth_type: RequestClientCert is not supported",
            ),
            (
                "  client_auth_type: RequireAndVerifyClientCert\n",
                "client_ca_file: missing",
            ),
            ("  client_ca_file: ca.pem\n", "NoClientCert"),
            ("  client_auth_type: Always\n", "unknown value 'Always'"),
            (
                "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: server.key\n",
                "client_ca_file: ",
            ),
            (
                "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: none.pem\n",
                "none.pem",
            ),
        ] {
            let err = with(extra).unwrap_err().to_string();
            assert!(err.contains(expected), "{extra:?}: {err}");
        }
    }

    // -----------------------------------------------------------------------------------------
    // Real handshakes.

    type Handshakes = mpsc::UnboundedReceiver<Result<ProtocolVersion, String>>;

    /// Serves HTTP/1.1 over `config`'s TLS on a loopback port, with its basic auth and headers;
    /// reports each handshake's outcome.
    async fn serve(config: WebConfig) -> (u16, Handshakes) {
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let acceptor = config.tls_acceptor().expect("TLS is configured");
        let (sender, handshakes) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, config, sender) =
                    (acceptor.clone(), Arc::clone(&config), sender.clone());
                tokio::spawn(async move {
                    let tls = match acceptor.accept(stream).await {
                        Ok(tls) => tls,
                        Err(e) => {
                            let _ = sender.send(Err(e.to_string()));
                            return;
                        }
                    };
                    let _ = sender.send(Ok(tls.get_ref().1.protocol_version().unwrap()));
                    let service = service_fn(move |request: Request<Incoming>| {
                        let config = Arc::clone(&config);
                        async move {
                            let authorization = request.headers().get(header::AUTHORIZATION);
                            let client = IpAddr::from([127, 0, 0, 1]);
                            let mut response = match config.authorize(authorization, client).await {
                                Some(denied) => denied.response(|text| {
                                    Full::new(Bytes::from_static(text.as_bytes()))
                                }),
                                None => Response::new(Full::new(Bytes::from(format!(
                                    "hello over TLS, {}\n",
                                    request.uri().path()
                                )))),
                            };
                            config.apply_headers(response.headers_mut());
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        (port, handshakes)
    }

    struct Answer {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    }

    /// GET over HTTPS with ureq (blocking, so on the blocking pool), trusting `ca`.
    async fn get(
        port: u16,
        ca: Vec<u8>,
        client: Option<(Vec<u8>, Vec<u8>)>,
        authorization: Option<HeaderValue>,
    ) -> Result<Answer, String> {
        tokio::task::spawn_blocking(move || {
            use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};
            let mut tls = TlsConfig::builder().root_certs(RootCerts::new_with_certs(&[
                Certificate::from_pem(&ca).unwrap(),
            ]));
            if let Some((cert, key)) = client {
                tls = tls.client_cert(Some(ClientCert::new_with_certs(
                    &[Certificate::from_pem(&cert).unwrap()],
                    PrivateKey::from_pem(&key).unwrap(),
                )));
            }
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .tls_config(tls.build())
                .http_status_as_error(false)
                .proxy(None)
                .timeout_global(Some(std::time::Duration::from_secs(10)))
                .build()
                .into();
            let mut request = agent.get(format!("https://127.0.0.1:{port}/metrics"));
            if let Some(value) = authorization {
                request = request.header(header::AUTHORIZATION, value);
            }
            let mut response = request.call().map_err(|e| e.to_string())?;
            let headers = response
                .headers()
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_owned()))
                .collect();
            Ok(Answer {
                status: response.status().as_u16(),
                headers,
                body: response
                    .body_mut()
                    .read_to_string()
                    .map_err(|e| e.to_string())?,
            })
        })
        .await
        .unwrap()
    }

    fn header_of<'a>(answer: &'a Answer, name: &str) -> Option<&'a str> {
        answer
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    #[tokio::test]
    async fn https_with_basic_auth_and_headers() {
        let fixture = Fixture::new("https");
        let config = fixture
            .load(&format!(
                "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n\
                 http_server_config:\n  headers:\n    X-Frame-Options: sameorigin\n\
                 basic_auth_users:\n  prometheus: {}\n",
                hash("scrape-me")
            ))
            .unwrap();
        let (port, mut handshakes) = serve(config).await;
        let ca = fixture.read("ca.pem");

        let ok = get(
            port,
            ca.clone(),
            None,
            Some(basic("prometheus", "scrape-me")),
        )
        .await
        .unwrap();
        assert_eq!(ok.status, 200);
        assert_eq!(ok.body, "hello over TLS, /metrics\n");
        assert_eq!(header_of(&ok, "x-frame-options"), Some("sameorigin"));
        assert_eq!(
            handshakes.recv().await.unwrap(),
            Ok(ProtocolVersion::TLSv1_3)
        );

        let denied = get(port, ca.clone(), None, Some(basic("prometheus", "guess")))
            .await
            .unwrap();
        assert_eq!(denied.status, 401);
        assert_eq!(denied.body, "Unauthorized\n");
        assert_eq!(
            header_of(&denied, "www-authenticate"),
            Some(WWW_AUTHENTICATE)
        );
        assert_eq!(header_of(&denied, "x-frame-options"), Some("sameorigin"));
        let anonymous = get(port, ca, None, None).await.unwrap();
        assert_eq!(anonymous.status, 401);

        // A client that does not trust the CA gets no answer.
        let other = fixture.read("other-ca.pem");
        let err = get(port, other, None, Some(basic("prometheus", "scrape-me")))
            .await
            .err()
            .expect("an untrusted certificate is refused");
        assert!(err.to_lowercase().contains("certificate"), "{err}");
    }

    #[tokio::test]
    async fn client_certificates_are_required_when_configured() {
        let fixture = Fixture::new("mtls");
        let config = fixture
            .load(
                "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n\
                 \x20 client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n",
            )
            .unwrap();
        let (port, mut handshakes) = serve(config).await;
        let ca = fixture.read("ca.pem");

        let client = (fixture.read("client.pem"), fixture.read("client.key"));
        let ok = get(port, ca.clone(), Some(client), None).await.unwrap();
        assert_eq!(
            (ok.status, ok.body.as_str()),
            (200, "hello over TLS, /metrics\n")
        );
        assert!(handshakes.recv().await.unwrap().is_ok());

        assert!(get(port, ca.clone(), None, None).await.is_err());
        let err = handshakes.recv().await.unwrap().unwrap_err();
        assert!(err.to_lowercase().contains("certificate"), "{err}");

        let stranger = (fixture.read("stranger.pem"), fixture.read("stranger.key"));
        assert!(get(port, ca, Some(stranger), None).await.is_err());
        let err = handshakes.recv().await.unwrap().unwrap_err();
        assert!(err.to_lowercase().contains("certificate"), "{err}");
    }

    /// A bare rustls handshake offering only `versions`.
    async fn handshake(
        port: u16,
        ca: &[u8],
        versions: &[&'static SupportedProtocolVersion],
    ) -> Result<ProtocolVersion, String> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca) {
            roots.add(cert.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            ring_provider::default_provider(),
        ))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let tls = connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .map_err(|e| e.to_string())?;
        Ok(tls.get_ref().1.protocol_version().unwrap())
    }

    #[tokio::test]
    async fn tls_versions_are_enforced() {
        let fixture = Fixture::new("enforce");
        let ca = fixture.read("ca.pem");
        let both = [&rustls::version::TLS12, &rustls::version::TLS13];

        let config = fixture
            .load("tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  max_version: TLS12\n")
            .unwrap();
        let (port, _handshakes) = serve(config).await;
        assert_eq!(
            handshake(port, &ca, &both).await,
            Ok(ProtocolVersion::TLSv1_2)
        );

        let config = fixture
            .load("tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  min_version: TLS13\n")
            .unwrap();
        let (port, _handshakes) = serve(config).await;
        assert_eq!(
            handshake(port, &ca, &both).await,
            Ok(ProtocolVersion::TLSv1_3)
        );
        let err = handshake(port, &ca, &[&rustls::version::TLS12])
            .await
            .unwrap_err();
        assert!(err.to_lowercase().contains("version"), "{err}");

        // The defaults allow both.
        let config = fixture
            .load("tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n")
            .unwrap();
        let (port, _handshakes) = serve(config).await;
        assert_eq!(
            handshake(port, &ca, &[&rustls::version::TLS12]).await,
            Ok(ProtocolVersion::TLSv1_2)
        );
    }
}
