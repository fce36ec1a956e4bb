//! The `--web.config.file` of the Prometheus exporter-toolkit: TLS for the listener (certificate,
//! versions, cipher suites, curves, client certificates), basic authentication against bcrypt
//! hashes (successful checks cached, password checks on their own thread with a bounded queue),
//! the `rate_limit` token bucket, and extra response headers; read and validated once, at start.
//!
//! The format is exporter-toolkit's (`docs/web-configuration.md`), and as strict: an unknown key
//! is an error naming it. Relative file names are taken from the config file's directory. What
//! rustls cannot do is refused with a message saying so rather than ignored: TLS 1.0 and 1.1,
//! CBC cipher suites, the P-521 curve, client certificates accepted without verification
//! (`RequestClientCert`, `RequireAnyClientCert`) and `client_allowed_sans`.
//! `http_server_config.http2` is accepted and has no effect: the server speaks HTTP/1.1.
//!
//! Wiring: wrap each accepted connection with [`WebConfig::tls_acceptor`] (in the connection's
//! task, under a timeout), [`WebConfig::apply_headers`] to every response, refusals included,
//! and let a request through only when [`WebConfig::admit`] and then [`WebConfig::authorize`]
//! return `None`.
//!
//! # Password guessing
//!
//! A password not yet accepted costs a bcrypt run (tens of milliseconds at cost 10). Those runs
//! happen one at a time on one thread of their own, never on the runtime's threads or its
//! blocking pool, so a flood of guesses takes at most one core and nothing else waits behind
//! it. At most [`VERIFY_QUEUE`] checks wait for that thread, at most [`VERIFY_PER_CLIENT`] of
//! them from one client address (an IPv4 address or an IPv6 /64); a request beyond either is
//! refused at once with `429 Too Many Requests` and `Retry-After: 1`. A request whose client
//! hangs up before its turn is dropped from the queue without running bcrypt. Credentials
//! already accepted are checked against a keyed hash, without bcrypt and without the queue.

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

pub mod files;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Response, StatusCode};
use ring::hmac;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{
    self, RootCertStore, ServerConfig, SupportedCipherSuite, SupportedProtocolVersion,
    crypto::ring as ring_provider,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::WebPkiClientVerifier,
};

/// `WWW-Authenticate` of a 401.
pub const WWW_AUTHENTICATE: &str = "Basic realm=\"gitlab-api-exporter\", charset=\"UTF-8\"";

/// Accepted passwords remembered (as keyed hashes), so that bcrypt runs once per user rather
/// than on every scrape. Only right passwords go in, at most one per user; the cap is a guard.
const CACHE_CAPACITY: usize = 1024;

/// bcrypt reads at most 72 bytes of a password; a longer one is refused rather than truncated.
const BCRYPT_MAX_PASSWORD: usize = 72;

/// Password checks that may wait for the verification thread besides the one it runs; beyond,
/// requests are refused at once. With bcrypt at cost 10 (about 50 ms), a check waits at most
/// about half a second.
pub const VERIFY_QUEUE: usize = 8;

/// Password checks one client (an IPv4 address, an IPv6 /64) may have waiting or running: a
/// single guesser cannot fill the queue for everybody else.
pub const VERIFY_PER_CLIENT: usize = 2;

/// What [`WebConfig::admit`] and [`WebConfig::authorize`] say: `None` when the request may
/// proceed, otherwise the refusal to answer.
pub type AuthResult = Option<Denied>;

/// A request refused before it is served: answer it with [`Denied::response`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Denied {
    reason: &'static str,
    kind: DeniedKind,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeniedKind {
    /// No, malformed or wrong credentials: 401.
    Unauthorized,
    /// Too many password checks waiting (a flood of guesses): 429, try again in a second.
    Busy,
    /// Over `rate_limit`: 429.
    RateLimited,
}

impl DeniedKind {
    /// The kind as a metric label: `unauthorized`, `auth_busy` or `rate_limited`.
    pub fn label(self) -> &'static str {
        match self {
            DeniedKind::Unauthorized => "unauthorized",
            DeniedKind::Busy => "auth_busy",
            DeniedKind::RateLimited => "rate_limited",
        }
    }
}

impl Denied {
    const NO_CREDENTIALS: Denied = Denied::unauthorized("no basic authentication credentials");
    const MALFORMED: Denied = Denied::unauthorized("malformed Authorization header");
    const WRONG: Denied = Denied::unauthorized("wrong user name or password");
    const BUSY: Denied = Denied {
        reason: "too many password checks waiting",
        kind: DeniedKind::Busy,
    };
    const RATE_LIMITED: Denied = Denied {
        reason: "over the rate_limit of the web config",
        kind: DeniedKind::RateLimited,
    };

    const fn unauthorized(reason: &'static str) -> Denied {
        Denied {
            reason,
            kind: DeniedKind::Unauthorized,
        }
    }

    /// Why, for a log line (never says which of user or password was wrong).
    pub fn reason(&self) -> &'static str {
        self.reason
    }

    /// Which kind of refusal.
    pub fn kind(&self) -> DeniedKind {
        self.kind
    }

    /// The answer: 401 with `WWW-Authenticate: Basic …`, or 429 with `Retry-After: 1`, with
    /// the plain-text body `body` makes of the message. The extra headers are the caller's to
    /// add, as on any response.
    pub fn response<B>(&self, body: impl FnOnce(&'static str) -> B) -> Response<B> {
        let (status, text) = match self.kind {
            DeniedKind::Unauthorized => (StatusCode::UNAUTHORIZED, "Unauthorized\n"),
            DeniedKind::Busy => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too Many Requests: too many password checks are waiting; try again in a second\n",
            ),
            DeniedKind::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "Too Many Requests\n"),
        };
        let mut response = Response::new(body(text));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        if self.kind == DeniedKind::Unauthorized {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(WWW_AUTHENTICATE),
            );
        } else {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response
    }
}

/// A parsed and validated web config file.
pub struct WebConfig {
    path: PathBuf,
    tls: Option<Tls>,
    auth: Option<BasicAuth>,
    headers: Vec<(HeaderName, HeaderValue)>,
    rate_limit: Option<RateLimiter>,
}

/// The TLS side: the rustls configuration, and what it was made from, for `Debug`.
struct Tls {
    config: Arc<ServerConfig>,
    summary: TlsSummary,
}

/// Read through `Debug` only.
#[derive(Debug)]
#[allow(dead_code)]
struct TlsSummary {
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

impl fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebConfig")
            .field("path", &self.path)
            .field("tls", &self.tls.as_ref().map(|tls| &tls.summary))
            .field(
                "basic_auth_users",
                &self.auth.as_ref().map(|auth| {
                    auth.checker
                        .users
                        .iter()
                        .map(|u| String::from_utf8_lossy(&u.name).into_owned())
                        .collect::<Vec<_>>()
                }),
            )
            .field("headers", &self.headers)
            .field("rate_limit", &self.rate_limit)
            .finish()
    }
}

impl WebConfig {
    /// Reads and validates the file, with the certificate and key files it names. An error
    /// names the file and the offending key (and value, unless a secret).
    pub fn load(path: &Path) -> Result<WebConfig, String> {
        let text = crate::files::read_text(path, crate::files::MAX_SMALL)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        WebConfig::parse(&text, dir, path).map_err(|e| format!("{}: {e}", path.display()))
    }

    fn parse(text: &str, dir: &Path, path: &Path) -> Result<WebConfig, String> {
        let raw: RawConfig = if text.trim().is_empty() {
            RawConfig::default()
        } else {
            yaml_serde::from_str::<Option<RawConfig>>(text)
                .map_err(|e| e.to_string())?
                .unwrap_or_default()
        };
        let rate_limit = match raw.rate_limit {
            Some(raw) => RateLimiter::new(raw).map_err(|e| format!("rate_limit.{e}"))?,
            None => None,
        };
        let tls = match raw.tls_server_config {
            Some(tls) => build_tls(tls, dir).map_err(|e| format!("tls_server_config.{e}"))?,
            None => None,
        };
        let http = raw.http_server_config.unwrap_or_default();
        let headers = validate_headers(http.headers.unwrap_or_default())
            .map_err(|e| format!("http_server_config.headers: {e}"))?;
        let users = raw.basic_auth_users.unwrap_or_default();
        let auth = if users.is_empty() {
            None
        } else {
            Some(BasicAuth::new(users).map_err(|e| format!("basic_auth_users: {e}"))?)
        };
        Ok(WebConfig {
            path: path.to_owned(),
            tls,
            auth,
            headers,
            rate_limit,
        })
    }

    /// The TLS acceptor for each accepted connection; `None` for plain HTTP (no
    /// `tls_server_config`, or one without a certificate, key or client CA setting).
    pub fn tls_acceptor(&self) -> Option<TlsAcceptor> {
        self.tls
            .as_ref()
            .map(|tls| TlsAcceptor::from(Arc::clone(&tls.config)))
    }

    /// True when `basic_auth_users` is set: requests need credentials.
    pub fn requires_auth(&self) -> bool {
        self.auth.is_some()
    }

    /// The `rate_limit` token bucket, for every request before anything else (as
    /// exporter-toolkit does): `None` when the request may proceed (no `rate_limit`, or a token
    /// was left), otherwise the 429 to answer.
    #[must_use]
    pub fn admit(&self) -> AuthResult {
        match &self.rate_limit {
            Some(limiter) if !limiter.allow() => Some(Denied::RATE_LIMITED),
            _ => None,
        }
    }

    /// Checks a request's `Authorization` header. `None` when the request may proceed (no
    /// `basic_auth_users`, or a right user and password); otherwise the refusal to answer: 401,
    /// or 429 when too many password checks are waiting, overall or from `client`.
    ///
    /// Fast for a user and password already accepted once; otherwise waits for a bcrypt run on
    /// the verification thread (see the module's docs). Dropping the future before its turn
    /// takes the check out of the queue.
    pub async fn authorize(
        &self,
        authorization: Option<&HeaderValue>,
        client: IpAddr,
    ) -> AuthResult {
        let auth = self.auth.as_ref()?;
        match auth.checker.precheck(authorization) {
            Precheck::Done(result) => result,
            Precheck::Verify(credentials) => auth.verify_queued(credentials, client).await,
        }
    }

    /// Sets the headers of `http_server_config.headers` on a response's headers (replacing any
    /// of the same name); for every response, 401s included.
    pub fn apply_headers(&self, headers: &mut HeaderMap) {
        for (name, value) in &self.headers {
            headers.insert(name.clone(), value.clone());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The file, as written.

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename = "web_config")]
struct RawConfig {
    #[serde(default)]
    tls_server_config: Option<RawTls>,
    #[serde(default)]
    http_server_config: Option<RawHttp>,
    #[serde(default, deserialize_with = "unique_map")]
    basic_auth_users: Option<Vec<(String, String)>>,
    #[serde(default)]
    rate_limit: Option<RawRateLimit>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename = "rate_limit")]
struct RawRateLimit {
    #[serde(default)]
    interval: Option<Scalar>,
    #[serde(default)]
    burst: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename = "tls_server_config")]
struct RawTls {
    cert: Option<String>,
    key: Option<String>,
    client_ca: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<String>,
    client_allowed_sans: Option<Vec<String>>,
    min_version: Option<String>,
    max_version: Option<String>,
    cipher_suites: Option<Vec<String>>,
    prefer_server_cipher_suites: Option<bool>,
    curve_preferences: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename = "http_server_config")]
struct RawHttp {
    /// Accepted for compatibility; the server speaks HTTP/1.1 only.
    #[serde(default)]
    #[allow(dead_code)]
    http2: Option<bool>,
    #[serde(default, deserialize_with = "unique_map")]
    headers: Option<Vec<(String, String)>>,
}

/// A YAML map of scalars to scalars, in file order, refusing a key given twice (as Go's strict
/// YAML does). Numbers and booleans are taken as their text (`X-XSS-Protection: 0`); null is "".
fn unique_map<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<(String, String)>>, D::Error> {
    struct MapVisitor;
    impl<'de> Visitor<'de> for MapVisitor {
        type Value = Option<Vec<(String, String)>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map of names to values")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut entries: Vec<(String, String)> = Vec::new();
            while let Some((Scalar(key), Scalar(value))) = map.next_entry::<Scalar, Scalar>()? {
                if entries.iter().any(|(k, _)| *k == key) {
                    return Err(de::Error::custom(format!("`{key}` is given twice")));
                }
                entries.push((key, value));
            }
            Ok(Some(entries))
        }
    }
    deserializer.deserialize_option(MapVisitor)
}

/// A scalar taken as text.
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Scalar, D::Error> {
        struct ScalarVisitor;
        impl Visitor<'_> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar(String::new()))
            }
            fn visit_none<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar(String::new()))
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

/// Go's YAML leaves an absent and an empty string alike: both mean "not set".
fn set(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

// ---------------------------------------------------------------------------------------------
// TLS.

/// Where a PEM document comes from: the key that set it, and the file (relative to the
/// config's directory) or "(inline PEM)", for messages.
struct Pem {
    key: &'static str,
    source: String,
}

impl Pem {
    /// The PEM text of `inline_key` or `file_key`, one of which at most may be set.
    fn pick(
        inline: Option<String>,
        file: Option<String>,
        inline_key: &'static str,
        file_key: &'static str,
        dir: &Path,
    ) -> Result<Option<(Pem, Vec<u8>)>, String> {
        let (key, source, bytes) = match (inline, file) {
            (Some(_), Some(_)) => {
                return Err(format!(
                    "{inline_key}: set {inline_key} (inline PEM) or {file_key}, not both"
                ));
            }
            (Some(text), None) => (inline_key, "(inline PEM)".to_owned(), text.into_bytes()),
            (None, Some(file)) => {
                let path = dir.join(file);
                let bytes = crate::files::read(&path, crate::files::MAX_PEM)
                    .map_err(|e| format!("{file_key}: {e}"))?;
                (file_key, path.display().to_string(), bytes)
            }
            (None, None) => return Ok(None),
        };
        Ok(Some((Pem { key, source }, bytes)))
    }
}

/// The certificates in a PEM document; an error when there is none.
fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what} is not valid PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{what} holds no PEM certificate"));
    }
    Ok(certs)
}

fn tls_version(
    value: Option<String>,
    key: &str,
    default: &'static SupportedProtocolVersion,
) -> Result<&'static SupportedProtocolVersion, String> {
    match set(value).as_deref() {
        None => Ok(default),
        Some("TLS12") => Ok(&rustls::version::TLS12),
        Some("TLS13") => Ok(&rustls::version::TLS13),
        Some(old @ ("TLS10" | "TLS11")) => Err(format!(
            "{key}: {old} is not supported (rustls speaks TLS 1.2 and 1.3 only); use TLS12 or TLS13"
        )),
        Some(other) => Err(format!(
            "{key}: unknown TLS version '{other}'; expected TLS12 or TLS13"
        )),
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

/// Go's names of the TLS 1.3 suites: accepted and, as in Go, without effect (all three stay).
const TLS13_SUITE_NAMES: [&str; 3] = [
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

/// `TLS12_SUITES` chosen by `cipher_suites`, in the file's order; all of them when unset.
fn tls12_suites(
    names: Option<Vec<String>>,
) -> Result<Vec<(&'static str, SupportedCipherSuite)>, String> {
    let Some(names) = names.filter(|n| !n.is_empty()) else {
        return Ok(TLS12_SUITES.to_vec());
    };
    let mut chosen: Vec<(&'static str, SupportedCipherSuite)> = Vec::new();
    for name in &names {
        if TLS13_SUITE_NAMES.contains(&name.as_str()) {
            continue;
        }
        let Some(&(known, suite)) = TLS12_SUITES.iter().find(|(n, _)| n == name) else {
            let supported: Vec<&str> = TLS12_SUITES.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "cipher_suites: '{name}' is not supported (rustls has no CBC or RSA key exchange \
                 suites); the TLS 1.2 suites are {}",
                supported.join(", ")
            ));
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
) -> Result<Vec<&'static dyn rustls::crypto::SupportedKxGroup>, String> {
    use ring_provider::kx_group;
    let Some(names) = names.filter(|n| !n.is_empty()) else {
        return Ok(ring_provider::default_provider().kx_groups);
    };
    let mut chosen: Vec<&'static dyn rustls::crypto::SupportedKxGroup> = Vec::new();
    for name in &names {
        let group = match name.as_str() {
            "X25519" => kx_group::X25519,
            "CurveP256" => kx_group::SECP256R1,
            "CurveP384" => kx_group::SECP384R1,
            "CurveP521" => {
                return Err(
                    "curve_preferences: CurveP521 is not supported by rustls with ring; use \
                     X25519, CurveP256 or CurveP384"
                        .to_owned(),
                );
            }
            other => {
                return Err(format!(
                    "curve_preferences: unknown curve '{other}'; expected X25519, CurveP256 or \
                     CurveP384"
                ));
            }
        };
        if !chosen.iter().any(|g| g.name() == group.name()) {
            chosen.push(group);
        }
    }
    Ok(chosen)
}

/// The rustls server configuration, or `None` when the section configures no TLS (Go's
/// `IsEnabled`: no certificate, key, client CA or client auth type). Errors start with the
/// key's name within `tls_server_config`.
fn build_tls(raw: RawTls, dir: &Path) -> Result<Option<Tls>, String> {
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
    let (cert_source, cert_pem) = Pem::pick(cert, cert_file, "cert", "cert_file", dir)?
        .ok_or("cert_file: missing (or cert, the certificate inline)")?;
    let (key_source, key_pem) = Pem::pick(key, key_file, "key", "key_file", dir)?
        .ok_or("key_file: missing (or key, the private key inline)")?;
    let (cert_key, key_key) = (cert_source.key, key_source.key);
    let chain =
        certificates(&cert_pem, &cert_source.source).map_err(|e| format!("{cert_key}: {e}"))?;
    // The message never quotes the key's content.
    let private_key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
        format!(
            "{key_key}: {} holds no PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC)",
            key_source.source
        )
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
        return Err(format!(
            "min_version: {} is above max_version {}",
            version_name(min),
            version_name(max)
        ));
    }

    let suites12 = tls12_suites(raw.cipher_suites)?;
    if suites12.is_empty()
        && versions
            .iter()
            .any(|v| v.version == rustls::ProtocolVersion::TLSv1_2)
    {
        return Err(
            "cipher_suites: names no TLS 1.2 suite, but TLS 1.2 is allowed; add one or set \
             min_version: TLS13"
                .to_owned(),
        );
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

    let client_auth = match client_auth_type.as_deref() {
        None | Some("NoClientCert") => ClientAuth::NoClientCert,
        Some("RequireAndVerifyClientCert") => ClientAuth::RequireAndVerifyClientCert,
        Some("VerifyClientCertIfGiven") => ClientAuth::VerifyClientCertIfGiven,
        Some(other @ ("RequestClientCert" | "RequireAnyClientCert" | "RequireClientCert")) => {
            return Err(format!(
                "client_auth_type: {other} is not supported: it accepts client certificates \
                 without verifying them; use RequireAndVerifyClientCert with client_ca_file"
            ));
        }
        Some(other) => {
            return Err(format!(
                "client_auth_type: unknown value '{other}'; expected NoClientCert, \
                 VerifyClientCertIfGiven or RequireAndVerifyClientCert"
            ));
        }
    };
    let ca = Pem::pick(
        client_ca,
        client_ca_file,
        "client_ca",
        "client_ca_file",
        dir,
    )?;
    if raw.client_allowed_sans.is_some() {
        return Err(
            "client_allowed_sans is not supported by gitlab-api-exporter; trust a CA that \
             issues only the scrapers' certificates instead"
                .to_owned(),
        );
    }
    let (verifier, ca_description) = match (client_auth, ca) {
        (ClientAuth::NoClientCert, None) => (WebPkiClientVerifier::no_client_auth(), None),
        (ClientAuth::NoClientCert, Some(_)) => {
            return Err(
                "client_auth_type: a client CA is set but client_auth_type is NoClientCert; \
                 set client_auth_type: RequireAndVerifyClientCert"
                    .to_owned(),
            );
        }
        (_, None) => {
            return Err(
                "client_ca_file: missing; client_auth_type verifies client certificates against \
                 it"
                .to_owned(),
            );
        }
        (auth, Some((source, pem))) => {
            let ca_key = source.key;
            let mut roots = RootCertStore::empty();
            for cert in certificates(&pem, &source.source).map_err(|e| format!("{ca_key}: {e}"))? {
                roots.add(cert).map_err(|e| {
                    format!(
                        "{ca_key}: {} holds a certificate that cannot be a CA: {e}",
                        source.source
                    )
                })?;
            }
            let builder =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider));
            let builder = if auth == ClientAuth::VerifyClientCertIfGiven {
                builder.allow_unauthenticated()
            } else {
                builder
            };
            let verifier = builder
                .build()
                .map_err(|e| format!("{ca_key}: {}: {e}", source.source))?;
            (verifier, Some(source.source))
        }
    };

    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| format!("min_version/max_version/cipher_suites: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, private_key)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => format!(
                "{key_key}: the private key in {} does not match the certificate in {}",
                key_source.source, cert_source.source
            ),
            other => format!("{cert_key}/{key_key}: cannot use the certificate and key: {other}"),
        })?;
    config.ignore_client_order = raw.prefer_server_cipher_suites.unwrap_or(true);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Tls {
        config: Arc::new(config),
        summary: TlsSummary {
            cert: cert_source.source,
            client_auth,
            client_ca: ca_description,
            min_version: version_name(min),
            max_version: version_name(max),
            tls12_cipher_suites: suites12.iter().map(|(n, _)| (*n).to_owned()).collect(),
            curves: curve_names,
        },
    }))
}

// ---------------------------------------------------------------------------------------------
// Headers.

/// exporter-toolkit's list: only these may be set, two of them to fixed values.
const ALLOWED_HEADERS: [(&str, &[&str]); 5] = [
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

fn validate_headers(
    headers: Vec<(String, String)>,
) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let mut out = Vec::new();
    for (name, value) in headers {
        let Some((canonical, allowed)) = ALLOWED_HEADERS
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(&name))
        else {
            let names: Vec<&str> = ALLOWED_HEADERS.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "{name}: this header cannot be configured; the ones that can are {}",
                names.join(", ")
            ));
        };
        if value.is_empty() {
            continue; // "Unset if blank."
        }
        if !allowed.is_empty() && !allowed.iter().any(|a| a.eq_ignore_ascii_case(&value)) {
            return Err(format!(
                "{canonical}: invalid value '{value}'; expected {}",
                allowed.join(" or ")
            ));
        }
        let value = HeaderValue::from_str(&value)
            .map_err(|_| format!("{canonical}: '{value}' cannot be sent in an HTTP header"))?;
        // Lowercased, as HTTP/1.1 header names are sent.
        let name = HeaderName::from_bytes(canonical.as_bytes())
            .map_err(|e| format!("{canonical}: {e}"))?;
        out.push((name, value));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Basic authentication.

struct User {
    name: Vec<u8>,
    hash: String,
}

/// The users and the cache of accepted credentials: what a password check needs, shared with
/// the verification thread.
struct Checker {
    users: Vec<User>,
    /// HMAC-SHA256 (with a key made at start) of each accepted user and password: the
    /// passwords themselves are not kept.
    accepted: Mutex<HashSet<[u8; 32]>>,
    cache_key: hmac::Key,
    /// bcrypt verifications run so far.
    bcrypt_runs: AtomicU64,
    /// Checks dropped from the queue because their client had gone.
    cancelled: AtomicU64,
}

/// Basic authentication: the checker, and the queue of checks for its thread.
struct BasicAuth {
    checker: Arc<Checker>,
    /// The verification thread's queue, started with the first check that needs bcrypt
    /// (`None`: the thread could not be started; checks are then refused as busy).
    queue: OnceLock<Option<mpsc::Sender<Job>>>,
    /// Checks waiting or running whose requests are still there, by client.
    pending: Arc<Mutex<Pending>>,
}

/// Checks waiting or running whose requests are still there: the queue's budget. A request
/// that goes away gives its place back at once; its job stays in the channel until the thread
/// skips it, which costs nothing.
#[derive(Default)]
struct Pending {
    total: usize,
    by_client: HashMap<Client, usize>,
}

/// Who a password check is counted against: an IPv4 address or an IPv6 /64 (a single host
/// usually has a whole /64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Client {
    V4(u32),
    V6(u64),
}

impl From<IpAddr> for Client {
    fn from(ip: IpAddr) -> Client {
        match ip {
            IpAddr::V4(v4) => Client::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Client::V4(u32::from(v4)),
                None => Client::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// A place in the queue's budget taken by one request, given back when it has its verdict or
/// is dropped.
struct Slot {
    pending: Arc<Mutex<Pending>>,
    client: Client,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.total -= 1;
        if let Some(n) = pending.by_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                pending.by_client.remove(&self.client);
            }
        }
    }
}

/// A check for the verification thread.
struct Job {
    credentials: Credentials,
    /// Closed when the request was dropped (its client hung up): the check is skipped.
    reply: tokio::sync::oneshot::Sender<AuthResult>,
}

/// Credentials from a header, not in the cache: bcrypt is to decide.
struct Credentials {
    user: Vec<u8>,
    password: Vec<u8>,
    tag: [u8; 32],
}

enum Precheck {
    Done(AuthResult),
    Verify(Credentials),
}

impl BasicAuth {
    fn new(users: Vec<(String, String)>) -> Result<BasicAuth, String> {
        let mut checked = Vec::with_capacity(users.len());
        for (name, hash) in users {
            if name.contains(':') {
                return Err(format!(
                    "{name}: a user name cannot contain ':' (basic authentication splits on it)"
                ));
            }
            // The hash is never repeated in the message.
            let parts: bcrypt::HashParts = hash.parse().map_err(|e| {
                format!(
                    "{name}: not a bcrypt hash ({e}); make one with: htpasswd -nBC 10 \"\" | tr -d ':\\n'"
                )
            })?;
            if !(4..=31).contains(&parts.get_cost()) {
                return Err(format!(
                    "{name}: bcrypt cost {} is out of range (4 to 31)",
                    parts.get_cost()
                ));
            }
            checked.push(User {
                name: name.into_bytes(),
                hash,
            });
        }
        let cache_key = hmac::Key::generate(hmac::HMAC_SHA256, &ring::rand::SystemRandom::new())
            .map_err(|_| "cannot get random bytes for the credential cache".to_owned())?;
        Ok(BasicAuth {
            checker: Arc::new(Checker {
                users: checked,
                accepted: Mutex::new(HashSet::new()),
                cache_key,
                bcrypt_runs: AtomicU64::new(0),
                cancelled: AtomicU64::new(0),
            }),
            queue: OnceLock::new(),
            pending: Arc::default(),
        })
    }

    /// Waits for the verification thread's verdict on `credentials`, unless too many checks
    /// are waiting already, overall or from `client`.
    async fn verify_queued(&self, credentials: Credentials, client: IpAddr) -> AuthResult {
        let Some(_slot) = self.take_slot(Client::from(client)) else {
            return Some(Denied::BUSY);
        };
        let Some(queue) = self.queue() else {
            return Some(Denied::BUSY);
        };
        let (reply, verdict) = tokio::sync::oneshot::channel();
        if queue.send(Job { credentials, reply }).is_err() {
            return Some(Denied::BUSY);
        }
        // The thread answers every job it does not skip; if it is gone, refuse.
        verdict.await.unwrap_or(Some(Denied::WRONG))
    }

    /// A place for one more check, if fewer than `VERIFY_QUEUE + 1` are pending (the one
    /// running and those waiting), and fewer than [`VERIFY_PER_CLIENT`] from `client`.
    fn take_slot(&self, client: Client) -> Option<Slot> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let mine = pending.by_client.get(&client).copied().unwrap_or(0);
        if pending.total > VERIFY_QUEUE || mine >= VERIFY_PER_CLIENT {
            return None;
        }
        pending.total += 1;
        *pending.by_client.entry(client).or_default() += 1;
        Some(Slot {
            pending: Arc::clone(&self.pending),
            client,
        })
    }

    /// The queue of the verification thread, started on first use. The thread ends when the
    /// config (and with it the queue's sender) is dropped.
    fn queue(&self) -> Option<&mpsc::Sender<Job>> {
        self.queue
            .get_or_init(|| {
                let (sender, jobs) = mpsc::channel::<Job>();
                let checker = Arc::clone(&self.checker);
                let started = std::thread::Builder::new()
                    .name("password-checks".to_owned())
                    .spawn(move || {
                        for job in jobs {
                            if job.reply.is_closed() {
                                checker.cancelled.fetch_add(1, Ordering::Relaxed);
                                continue;
                            }
                            let verdict = checker.verify(&job.credentials);
                            let _ = job.reply.send(verdict);
                        }
                    });
                match started {
                    Ok(_) => Some(sender),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start the password-check thread; requests needing one are refused");
                        None
                    }
                }
            })
            .as_ref()
    }
}

impl Checker {
    /// Parses the header and looks in the cache: what can be decided without bcrypt.
    fn precheck(&self, authorization: Option<&HeaderValue>) -> Precheck {
        let Some(header) = authorization else {
            return Precheck::Done(Some(Denied::NO_CREDENTIALS));
        };
        let Some((user, password)) = parse_basic(header.as_bytes()) else {
            return Precheck::Done(Some(Denied::MALFORMED));
        };
        let mut context = hmac::Context::with_key(&self.cache_key);
        context.update(&(user.len() as u64).to_be_bytes());
        context.update(&user);
        context.update(&password);
        let mut tag = [0u8; 32];
        tag.copy_from_slice(context.sign().as_ref());
        if self.is_cached(&tag) {
            return Precheck::Done(None);
        }
        Precheck::Verify(Credentials {
            user,
            password,
            tag,
        })
    }

    fn is_cached(&self, tag: &[u8; 32]) -> bool {
        self.accepted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(tag)
    }

    /// bcrypt against the user's hash, or, for an unknown user, against another user's (the
    /// same work, so that timing does not tell which users exist), then denied.
    fn verify(&self, credentials: &Credentials) -> AuthResult {
        // Another request may have verified the same credentials while this one waited.
        if self.is_cached(&credentials.tag) {
            return None;
        }
        let user = self.users.iter().find(|u| u.name == credentials.user);
        let hash = user.map_or(&self.users[0].hash, |u| &u.hash);
        self.bcrypt_runs.fetch_add(1, Ordering::Relaxed);
        let matches = bcrypt::verify(&credentials.password, hash).unwrap_or(false);
        if user.is_none() || !matches || credentials.password.len() > BCRYPT_MAX_PASSWORD {
            return Some(Denied::WRONG);
        }
        let mut accepted = self.accepted.lock().unwrap_or_else(|e| e.into_inner());
        if accepted.len() >= CACHE_CAPACITY {
            accepted.clear();
        }
        accepted.insert(credentials.tag);
        None
    }
}

// ---------------------------------------------------------------------------------------------
// rate_limit.

/// exporter-toolkit's `rate_limit`: a token bucket (Go's `rate.NewLimiter(rate.Every(interval),
/// burst)`) over every request: one token per `interval`, at most `burst` saved up, full at
/// start; a request finding no token is refused. `burst: 0` refuses everything, as in Go.
#[derive(Debug)]
struct RateLimiter {
    interval: Duration,
    burst: u32,
    /// Tokens left, and when they were counted.
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    /// `None` when `interval` is 0 or unset (no rate limit, as in exporter-toolkit). Errors
    /// start with the key's name.
    fn new(raw: RawRateLimit) -> Result<Option<RateLimiter>, String> {
        let interval = match raw.interval {
            None => Duration::ZERO,
            Some(Scalar(text)) => go_duration(&text).ok_or_else(|| {
                format!("interval: '{text}' is not a duration (examples: 100ms, 1s, 1m30s)")
            })?,
        };
        let burst = raw.burst.unwrap_or(0);
        let burst = u32::try_from(burst)
            .map_err(|_| format!("burst: {burst} must be 0 or more (requests saved up)"))?;
        if interval.is_zero() {
            return Ok(None);
        }
        Ok(Some(RateLimiter {
            interval,
            burst,
            state: Mutex::new((f64::from(burst), Instant::now())),
        }))
    }

    /// Takes a token if there is one.
    fn allow(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, counted) = &mut *state;
        let now = Instant::now();
        let earned = now.duration_since(*counted).as_secs_f64() / self.interval.as_secs_f64();
        *tokens = (*tokens + earned).min(f64::from(self.burst));
        *counted = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A Go duration (`time.ParseDuration`, as exporter-toolkit's YAML reads it): decimal numbers
/// with units `ns`, `us` (or `µs`), `ms`, `s`, `m`, `h`, such as `1.5s` or `1h30m`; a bare
/// integer is nanoseconds (yaml.v2's reading of an integer). Negative durations are refused.
fn go_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_nanos(text.parse().ok()?));
    }
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number = rest
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        let value: f64 = rest[..number].parse().ok()?;
        rest = &rest[number..];
        let unit = rest
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(rest.len(), |(i, _)| i);
        let seconds = match &rest[..unit] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit..];
        total += value * seconds;
    }
    Duration::try_from_secs_f64(total).ok()
}

/// `Basic <base64(user:password)>` → (user, password); `None` when malformed.
fn parse_basic(header: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let text = std::str::from_utf8(header).ok()?.trim();
    let (scheme, encoded) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64_decode(encoded.trim())?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    Some((decoded[..colon].to_vec(), decoded[colon + 1..].to_vec()))
}

/// Standard base64 with padding (RFC 4648 §4), as Go's `StdEncoding`.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if bytes.len() % 4 != 0 {
        return None;
    }
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let chunks = bytes.len() / 4;
    for (i, chunk) in bytes.chunks(4).enumerate() {
        let padding = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if padding > 2 || (padding > 0 && i + 1 != chunks) {
            return None;
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - padding] {
            n = (n << 6) | value(c)?;
        }
        n <<= 6 * padding as u32;
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&decoded[..3 - padding]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::convert::Infallible;
    use std::process::Command;

    use bytes::Bytes;
    use http_body_util::Full;
    use hyper::body::Incoming;
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper::{Request, Response};
    use hyper_util::rt::TokioIo;
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::mpsc;
    use tokio_rustls::rustls::ProtocolVersion;
    use tokio_rustls::rustls::pki_types::ServerName;

    /// A temporary directory with a CA, a server certificate for localhost and 127.0.0.1, a
    /// client certificate, and a second CA that signed a client certificate of its own; all
    /// made with the `openssl` CLI. Removed on drop.
    struct Fixture {
        dir: PathBuf,
    }

    impl Fixture {
        fn new(name: &str) -> Fixture {
            let dir =
                std::env::temp_dir().join(format!("gae-webconfig-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let fixture = Fixture { dir };
            fixture.ca("ca");
            fixture.leaf(
                "server",
                "ca",
                "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
            );
            fixture.leaf(
                "client",
                "ca",
                "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n",
            );
            fixture.ca("other-ca");
            fixture.leaf(
                "stranger",
                "other-ca",
                "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n",
            );
            fixture
        }

        fn openssl(&self, args: &[&str]) {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&self.dir)
                .output()
                .expect("the openssl CLI runs");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }

        fn ca(&self, name: &str) {
            self.openssl(&[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.pem"),
                "-days",
                "2",
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ]);
        }

        fn leaf(&self, name: &str, ca: &str, extensions: &str) {
            self.write(&format!("{name}.ext"), extensions);
            self.openssl(&[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={name}"),
            ]);
            self.openssl(&[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                &format!("{ca}.pem"),
                "-CAkey",
                &format!("{ca}.key"),
                "-CAcreateserial",
                "-out",
                &format!("{name}.pem"),
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
            ]);
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.join(name)
        }

        fn write(&self, name: &str, content: &str) -> PathBuf {
            let path = self.path(name);
            std::fs::write(&path, content).unwrap();
            path
        }

        fn read(&self, name: &str) -> Vec<u8> {
            std::fs::read(self.path(name)).unwrap()
        }

        /// Writes `web.yml` and loads it.
        fn load(&self, yaml: &str) -> Result<WebConfig, String> {
            WebConfig::load(&self.write("web.yml", yaml))
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// A config without files: parsed from text, with no directory to look in.
    fn parse(yaml: &str) -> Result<WebConfig, String> {
        WebConfig::parse(yaml, Path::new("/nonexistent"), Path::new("web.yml"))
    }

    /// A bcrypt hash at the lowest cost (fast in tests), in htpasswd's `$2y$` form.
    fn hash(password: &str) -> String {
        bcrypt::hash_with_salt(password, 4, *b"0123456789abcdef")
            .unwrap()
            .format_for_version(bcrypt::Version::TwoY)
    }

    fn basic(user: &str, password: &str) -> HeaderValue {
        let raw = format!("{user}:{password}");
        HeaderValue::from_str(&format!("Basic {}", base64_encode(raw.as_bytes()))).unwrap()
    }

    fn base64_encode(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    /// [`WebConfig::authorize`] without a runtime: bcrypt on this thread.
    impl WebConfig {
        fn check_basic_auth(&self, authorization: Option<&HeaderValue>) -> AuthResult {
            let auth = self.auth.as_ref()?;
            match auth.checker.precheck(authorization) {
                Precheck::Done(result) => result,
                Precheck::Verify(credentials) => auth.checker.verify(&credentials),
            }
        }
    }

    fn users_config() -> WebConfig {
        parse(&format!(
            "basic_auth_users:\n  alice: {}\n  bob: '{}'\n",
            hash("wonderland"),
            hash("builder")
        ))
        .unwrap()
    }

    fn runs(config: &WebConfig) -> u64 {
        config
            .auth
            .as_ref()
            .unwrap()
            .checker
            .bcrypt_runs
            .load(Ordering::Relaxed)
    }

    #[test]
    fn base64_round_trips() {
        for input in ["", "a", "ab", "abc", "alice:wonder:land", "é:ü"] {
            let encoded = base64_encode(input.as_bytes());
            assert_eq!(
                base64_decode(&encoded).as_deref(),
                Some(input.as_bytes()),
                "{input}"
            );
        }
        for bad in ["abc", "ab=c", "a===", "ab==cd==", "ab!d", "YQ==YQ=="] {
            assert_eq!(base64_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_empty_file_means_plain_http_without_auth() {
        for text in [
            "",
            "\n",
            "# nothing\n",
            "---\n",
            "tls_server_config:\nbasic_auth_users:\n",
        ] {
            let config = parse(text).unwrap();
            assert!(config.tls_acceptor().is_none(), "{text:?}");
            assert!(!config.requires_auth());
            assert!(config.headers.is_empty());
            assert_eq!(config.check_basic_auth(None), None);
        }
        // Go's IsEnabled: versions alone do not turn TLS on.
        let config = parse("tls_server_config:\n  min_version: TLS13\n").unwrap();
        assert!(config.tls_acceptor().is_none());
    }

    #[test]
    fn unknown_keys_are_named() {
        let fixture = Fixture::new("unknown");
        let cases = [
            ("tls_config:\n  cert_file: x\n", "tls_config"),
            ("tls_server_config:\n  cert_fil: server.pem\n", "cert_fil"),
            (
                "http_server_config:\n  header:\n    X-Frame-Options: deny\n",
                "header",
            ),
            (
                "http_server_config:\n  headers:\n    Content-Type: text/html\n",
                "Content-Type",
            ),
        ];
        for (yaml, key) in cases {
            let err = fixture.load(yaml).unwrap_err();
            assert!(err.contains(key), "{yaml:?}: {err}");
            assert!(err.contains("web.yml"), "{yaml:?}: {err}");
        }
        for (yaml, key) in [
            ("rate_limit:\n  interval: soon\n", "rate_limit.interval"),
            ("rate_limit:\n  interval: -1s\n", "rate_limit.interval"),
            (
                "rate_limit:\n  interval: 1s\n  burst: -1\n",
                "rate_limit.burst",
            ),
            ("rate_limit:\n  period: 1s\n", "period"),
        ] {
            let err = fixture.load(yaml).unwrap_err();
            assert!(err.contains(key), "{yaml:?}: {err}");
        }
        let err = fixture
            .load("basic_auth_users:\n  alice: x\n  alice: y\n")
            .unwrap_err();
        assert!(err.contains("alice") && err.contains("twice"), "{err}");
        let err = fixture.load("basic_auth_users: [alice]\n").unwrap_err();
        assert!(err.contains("basic_auth_users"), "{err}");
        let err = WebConfig::load(&fixture.path("missing.yml")).unwrap_err();
        assert!(err.contains("missing.yml"), "{err}");
    }

    #[test]
    fn file_errors_name_the_key_and_the_file() {
        let fixture = Fixture::new("files");
        let err = fixture
            .load("tls_server_config:\n  cert_file: server.pem\n  key_file: nokey.pem\n")
            .unwrap_err();
        assert!(
            err.contains("key_file") && err.contains("nokey.pem"),
            "{err}"
        );
        let err = fixture
            .load("tls_server_config:\n  cert_file: server.pem\n")
            .unwrap_err();
        assert!(err.contains("key_file: missing"), "{err}");
        let err = fixture
            .load("tls_server_config:\n  key_file: server.key\n")
            .unwrap_err();
        assert!(err.contains("cert_file: missing"), "{err}");
        // A certificate where the key should be, and the reverse.
        let err = fixture
            .load("tls_server_config:\n  cert_file: server.pem\n  key_file: server.pem\n")
            .unwrap_err();
        assert!(
            err.contains("key_file") && err.contains("no PEM private key"),
            "{err}"
        );
        let err = fixture
            .load("tls_server_config:\n  cert_file: server.key\n  key_file: server.key\n")
            .unwrap_err();
        assert!(
            err.contains("cert_file") && err.contains("no PEM certificate"),
            "{err}"
        );
        // Another certificate's key.
        let err = fixture
            .load("tls_server_config:\n  cert_file: server.pem\n  key_file: client.key\n")
            .unwrap_err();
        assert!(err.contains("does not match"), "{err}");
        assert!(
            !err.contains(&String::from_utf8_lossy(&fixture.read("client.key"))[40..80]),
            "{err}"
        );
        let err = fixture
            .load(
                "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  cert: x\n",
            )
            .unwrap_err();
        assert!(err.contains("not both"), "{err}");
    }

    #[test]
    fn a_full_config_is_read() {
        let fixture = Fixture::new("full");
        let yaml = format!(
            "tls_server_config:\n\
             \x20 cert_file: server.pem\n\
             \x20 key_file: {}\n\
             \x20 client_auth_type: RequireAndVerifyClientCert\n\
             \x20 client_ca_file: ca.pem\n\
             \x20 min_version: TLS12\n\
             \x20 max_version: TLS13\n\
             \x20 cipher_suites:\n\
             \x20   - TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\n\
             \x20   - TLS_AES_128_GCM_SHA256\n\
             \x20 prefer_server_cipher_suites: false\n\
             \x20 curve_preferences: [X25519, CurveP256]\n\
             http_server_config:\n\
             \x20 http2: false\n\
             \x20 headers:\n\
             \x20   X-Frame-Options: deny\n\
             \x20   X-Content-Type-Options: nosniff\n\
             \x20   X-XSS-Protection: 0\n\
             \x20   Strict-Transport-Security: max-age=31536000\n\
             \x20   Content-Security-Policy: \"\"\n\
             basic_auth_users:\n\
             \x20 prometheus: {}\n",
            fixture.path("server.key").display(),
            hash("secret"),
        );
        let config = fixture.load(&yaml).unwrap();
        assert!(config.tls_acceptor().is_some());
        assert!(config.requires_auth());
        let headers: Vec<(&str, &str)> = config
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(
            headers,
            [
                ("x-frame-options", "deny"),
                ("x-content-type-options", "nosniff"),
                ("x-xss-protection", "0"),
                ("strict-transport-security", "max-age=31536000"),
            ]
        );
        let mut map = HeaderMap::new();
        config.apply_headers(&mut map);
        assert_eq!(map.len(), 4);
        let tls = config.tls.as_ref().unwrap();
        assert!(!tls.config.ignore_client_order);
        assert_eq!(tls.config.alpn_protocols, [b"http/1.1".to_vec()]);
        let debug = format!("{config:?}");
        assert!(
            debug.contains("prometheus") && debug.contains("server.pem"),
            "{debug}"
        );
        assert!(!debug.contains("$2"), "a hash in {debug}");
        assert!(!debug.contains("PRIVATE"), "a key in {debug}");
        let alternate = format!("{config:#?}");
        assert!(!alternate.contains("$2"), "{alternate}");
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
            let err = with(extra).unwrap_err();
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
            let err = with(extra).unwrap_err();
            assert!(err.contains(expected), "{extra:?}: {err}");
        }
    }

    #[test]
    fn bad_hashes_are_refused_without_being_repeated() {
        for (hash, expected) in [
            ("plaintext-password", "not a bcrypt hash"),
            (
                "$1$abcdefgh$abcdefghijklmnopqrstuv0123456789abcdefghijklmnopqrs",
                "not a bcrypt hash",
            ),
            (
                "$2y$03$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi",
                "cost 3",
            ),
            ("", "not a bcrypt hash"),
        ] {
            let err = parse(&format!("basic_auth_users:\n  alice: '{hash}'\n")).unwrap_err();
            assert!(
                err.contains("basic_auth_users: alice") && err.contains(expected),
                "{err}"
            );
            if !hash.is_empty() {
                assert!(!err.contains(hash), "the hash is repeated: {err}");
            }
        }
        let err = parse(&format!("basic_auth_users:\n  'a:b': {}\n", hash("x"))).unwrap_err();
        assert!(err.contains("cannot contain ':'"), "{err}");
    }

    #[test]
    fn basic_auth_accepts_the_right_credentials_only() {
        let config = users_config();
        assert_eq!(
            config.check_basic_auth(Some(&basic("alice", "wonderland"))),
            None
        );
        assert_eq!(
            config.check_basic_auth(Some(&basic("bob", "builder"))),
            None
        );
        for (user, password) in [
            ("alice", "builder"),
            ("alice", "Wonderland"),
            ("alice", ""),
            ("mallory", "wonderland"),
            ("", "wonderland"),
            ("Alice", "wonderland"),
        ] {
            let denied = config
                .check_basic_auth(Some(&basic(user, password)))
                .unwrap_or_else(|| panic!("{user}:{password} was let in"));
            assert_eq!(denied.reason(), "wrong user name or password");
        }
        // Past bcrypt's 72 bytes: refused, not truncated.
        let long = "x".repeat(80);
        let config = parse(&format!("basic_auth_users:\n  alice: {}\n", hash(&long))).unwrap();
        assert!(
            config
                .check_basic_auth(Some(&basic("alice", &long)))
                .is_some()
        );
        assert!(
            config
                .check_basic_auth(Some(&basic("alice", &format!("{long}yz"))))
                .is_some()
        );
    }

    #[test]
    fn hashes_from_other_tools_verify() {
        // Made by glibc's crypt (libxcrypt) for "scrape-me"; htpasswd writes the same hash with
        // the $2y$ prefix.
        let libxcrypt = "$2b$04$YJYS3K41WZqLqq8AHh0sse9Iq4lCJ1sglI6WChTQH4wM5bjmiLt0C";
        for hash in [libxcrypt.to_owned(), libxcrypt.replacen("$2b$", "$2y$", 1)] {
            let config = parse(&format!("basic_auth_users:\n  prometheus: '{hash}'\n")).unwrap();
            assert_eq!(
                config.check_basic_auth(Some(&basic("prometheus", "scrape-me"))),
                None,
                "{hash}"
            );
            assert!(
                config
                    .check_basic_auth(Some(&basic("prometheus", "scrape-you")))
                    .is_some()
            );
        }
    }

    #[test]
    fn malformed_headers_are_refused() {
        let config = users_config();
        assert_eq!(
            config.check_basic_auth(None).map(|d| d.reason()),
            Some("no basic authentication credentials")
        );
        let no_colon = format!("Basic {}", base64_encode(b"alicewonderland"));
        for header in [
            "Bearer abc",
            "Basic",
            "Basic ",
            "Basic !!!!",
            "Basic YWxpY2U6d29uZGVybGFuZA",
            no_colon.as_str(),
            "YWxpY2U6d29uZGVybGFuZA==",
        ] {
            let value = HeaderValue::from_str(header).unwrap();
            assert_eq!(
                config.check_basic_auth(Some(&value)).map(|d| d.reason()),
                Some("malformed Authorization header"),
                "{header}"
            );
        }
        let non_utf8 = HeaderValue::from_bytes(b"Basic \xff\xfe").unwrap();
        assert!(config.check_basic_auth(Some(&non_utf8)).is_some());
        // The scheme is case-insensitive.
        let lower = basic("alice", "wonderland")
            .to_str()
            .unwrap()
            .replace("Basic", "basic");
        assert_eq!(
            config.check_basic_auth(Some(&HeaderValue::from_str(&lower).unwrap())),
            None
        );
    }

    #[test]
    fn accepted_credentials_are_cached_and_refused_ones_are_not() {
        let config = users_config();
        let right = basic("alice", "wonderland");
        assert_eq!(config.check_basic_auth(Some(&right)), None);
        assert_eq!(runs(&config), 1);
        for _ in 0..5 {
            assert_eq!(config.check_basic_auth(Some(&right)), None);
        }
        assert_eq!(runs(&config), 1, "bcrypt ran again for cached credentials");
        let wrong = basic("alice", "nope");
        assert!(config.check_basic_auth(Some(&wrong)).is_some());
        assert!(config.check_basic_auth(Some(&wrong)).is_some());
        assert_eq!(runs(&config), 3, "refusals are not cached");
        // Unknown users cost a bcrypt too (timing does not tell who exists).
        assert!(
            config
                .check_basic_auth(Some(&basic("mallory", "x")))
                .is_some()
        );
        assert_eq!(runs(&config), 4);
        // The cache holds keyed hashes, not the password.
        let auth = config.auth.as_ref().unwrap();
        let cached = auth.checker.accepted.lock().unwrap();
        assert_eq!(cached.len(), 1);
        assert!(
            !cached
                .iter()
                .any(|t| t.windows(10).any(|w| w == b"wonderland"))
        );
    }

    const LOCALHOST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[tokio::test]
    async fn authorize_runs_bcrypt_off_the_async_workers() {
        let config = users_config();
        let bob = basic("bob", "builder");
        assert_eq!(config.authorize(Some(&bob), LOCALHOST).await, None);
        assert_eq!(config.authorize(Some(&bob), LOCALHOST).await, None);
        assert_eq!(runs(&config), 1);
        let wrong = config.authorize(Some(&basic("bob", "x")), LOCALHOST).await;
        assert_eq!(wrong.map(|d| d.kind()), Some(DeniedKind::Unauthorized));
        assert!(config.authorize(None, LOCALHOST).await.is_some());
        let open = parse("").unwrap();
        assert_eq!(open.authorize(None, LOCALHOST).await, None);
    }

    /// A hash that takes a while to check (cost 10: tens of milliseconds in a release build,
    /// hundreds in a debug build), so that checks pile up behind it.
    fn slow_config() -> WebConfig {
        let slow = bcrypt::hash_with_salt("wonderland", 10, *b"0123456789abcdef")
            .unwrap()
            .format_for_version(bcrypt::Version::TwoY);
        parse(&format!("basic_auth_users:\n  alice: {slow}\n")).unwrap()
    }

    fn client(n: u32) -> IpAddr {
        IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n))
    }

    /// Guesses from many clients: one runs, [`VERIFY_QUEUE`] wait, every other one is refused
    /// at once with a 429; from one client, at most [`VERIFY_PER_CLIENT`] get in.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flood_of_guesses_is_refused_beyond_the_queue() {
        let config = Arc::new(slow_config());
        let started = Instant::now();
        let guesses: Vec<_> = (0..40u32)
            .map(|i| {
                let config = Arc::clone(&config);
                tokio::spawn(async move {
                    let header = basic("alice", &format!("guess-{i}"));
                    let verdict = config.authorize(Some(&header), client(i)).await;
                    (verdict.map(|d| d.kind()), started.elapsed())
                })
            })
            .collect();
        let mut busy = Vec::new();
        let mut checked = 0;
        for guess in guesses {
            match guess.await.unwrap() {
                (Some(DeniedKind::Busy), took) => busy.push(took),
                (Some(DeniedKind::Unauthorized), _) => checked += 1,
                other => panic!("{other:?}"),
            }
        }
        assert!(checked <= VERIFY_QUEUE + 1, "{checked} checked");
        assert_eq!(busy.len() + checked, 40);
        assert!(busy.len() >= 40 - VERIFY_QUEUE - 1, "{}", busy.len());
        let first_check = Duration::from_millis(100);
        assert!(
            busy.iter().all(|took| *took < first_check),
            "refusals wait for nothing: {busy:?}"
        );
        // One client alone gets at most its share in.
        let config = Arc::new(slow_config());
        let guesses: Vec<_> = (0..6u32)
            .map(|i| {
                let config = Arc::clone(&config);
                tokio::spawn(async move {
                    let header = basic("alice", &format!("guess-{i}"));
                    config
                        .authorize(Some(&header), client(7))
                        .await
                        .map(|d| d.kind())
                })
            })
            .collect();
        let verdicts = futures::future::join_all(guesses).await;
        let checked = verdicts
            .iter()
            .filter(|v| matches!(v, Ok(Some(DeniedKind::Unauthorized))))
            .count();
        assert_eq!(checked, VERIFY_PER_CLIENT, "{verdicts:?}");
        // An IPv6 /64 is one client.
        assert_eq!(
            Client::from("2001:db8::1".parse::<IpAddr>().unwrap()),
            Client::from("2001:db8::ffff:1".parse::<IpAddr>().unwrap())
        );
        assert_ne!(
            Client::from("2001:db8::1".parse::<IpAddr>().unwrap()),
            Client::from("2001:db8:0:1::1".parse::<IpAddr>().unwrap())
        );
        assert_eq!(
            Client::from("::ffff:10.0.0.7".parse::<IpAddr>().unwrap()),
            Client::from(client(7))
        );
    }

    /// Requests dropped while their check waits (the client hung up) run no bcrypt; the right
    /// password still gets in afterwards.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn abandoned_checks_are_dropped_from_the_queue() {
        let config = Arc::new(slow_config());
        let waiting: Vec<_> = (0..=VERIFY_QUEUE as u32)
            .map(|i| {
                let config = Arc::clone(&config);
                tokio::spawn(async move {
                    let header = basic("alice", &format!("guess-{i}"));
                    config.authorize(Some(&header), client(i)).await
                })
            })
            .collect();
        let auth = config.auth.as_ref().unwrap();
        while auth.pending.lock().unwrap().total <= VERIFY_QUEUE {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        for request in &waiting {
            request.abort();
        }
        // Cancelled once each task has dropped its future (and so given back its place).
        for request in waiting {
            let _ = request.await;
        }
        let right = basic("alice", "wonderland");
        assert_eq!(config.authorize(Some(&right), client(99)).await, None);
        let (runs, cancelled) = (
            auth.checker.bcrypt_runs.load(Ordering::Relaxed),
            auth.checker.cancelled.load(Ordering::Relaxed),
        );
        // The one running when they were dropped, then the right password.
        assert!(runs <= 2, "{runs} bcrypt runs");
        assert!(
            cancelled >= VERIFY_QUEUE as u64 - 1,
            "{cancelled} cancelled"
        );
        let pending = auth.pending.lock().unwrap();
        assert!(
            pending.total == 0 && pending.by_client.is_empty(),
            "slots given back"
        );
    }

    #[test]
    fn rate_limit_is_a_token_bucket() {
        let config = parse("rate_limit:\n  interval: 100ms\n  burst: 3\n").unwrap();
        let admitted = (0..10).filter(|_| config.admit().is_none()).count();
        assert_eq!(admitted, 3, "the burst, then nothing");
        let denied = config.admit().unwrap();
        assert_eq!(denied.kind(), DeniedKind::RateLimited);
        let response = denied.response(|text| text);
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        std::thread::sleep(Duration::from_millis(220));
        let refilled = (0..10).filter(|_| config.admit().is_none()).count();
        assert_eq!(refilled, 2, "one token per interval");
        // As in exporter-toolkit: burst 0 admits nothing, interval 0 turns the limit off.
        let closed = parse("rate_limit:\n  interval: 1s\n").unwrap();
        assert!(closed.admit().is_some());
        let off = parse("rate_limit:\n  interval: 0s\n  burst: 0\n").unwrap();
        assert!(off.admit().is_none());
        assert!(parse("").unwrap().admit().is_none());
    }

    #[test]
    fn go_durations() {
        let ms = Duration::from_millis;
        assert_eq!(go_duration("1s"), Some(ms(1000)));
        assert_eq!(go_duration("1.5s"), Some(ms(1500)));
        assert_eq!(go_duration("1h30m"), Some(ms(5_400_000)));
        assert_eq!(go_duration("250ms"), Some(ms(250)));
        assert_eq!(go_duration("10us"), Some(Duration::from_micros(10)));
        assert_eq!(
            go_duration("1000000000"),
            Some(ms(1000)),
            "bare integers are nanoseconds"
        );
        assert_eq!(go_duration("0"), Some(Duration::ZERO));
        for bad in ["", "s", "-1s", "1x", "1s2", "1..5s", "1d"] {
            assert_eq!(go_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_401_asks_for_basic_credentials() {
        let config = users_config();
        let denied = config.check_basic_auth(None).unwrap();
        let response = denied.response(|text| text);
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let challenge = response.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap();
        assert!(challenge.starts_with("Basic realm="), "{challenge}");
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
        for cert in certificates(ca, "ca").unwrap() {
            roots.add(cert).unwrap();
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
