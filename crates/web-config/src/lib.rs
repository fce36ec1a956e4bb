//! The `--web.config.file` of the Prometheus exporter-toolkit, for hyper servers: TLS for the
//! listener (certificate, versions, cipher suites, curves, client certificates), basic
//! authentication against bcrypt hashes (successful checks cached, password checks on their own
//! thread with a bounded queue), the `rate_limit` token bucket, and extra response headers;
//! read and validated once, at start, by [`WebConfig::load`].
//!
//! The format is exporter-toolkit's (`docs/web-configuration.md`), and as strict: an unknown key
//! is an error naming it. Relative file names are taken from the config file's directory. What
//! rustls cannot do is refused with a message saying so rather than ignored: TLS 1.0 and 1.1,
//! CBC cipher suites, the P-521 curve, client certificates accepted without verification
//! (`RequestClientCert`, `RequireAnyClientCert`) and `client_allowed_sans`.
//! `http_server_config.http2` is accepted and has no effect: the server speaks HTTP/1.1.
//!
//! Errors are typed: [`LoadError`] says whether the file could not be read ([`FileError`]) or
//! which section is wrong ([`ConfigError`], down to [`TlsError`], [`HeaderError`],
//! [`BasicAuthError`] and [`RateLimitError`]), with the path, key or value involved; its
//! message names the file and the key as exporter-toolkit's users expect. The [`files`] module
//! reads the other files an exporter may be given (a token file, a CA file) as safely.
//!
//! # Wiring
//!
//! Wrap each accepted connection with [`WebConfig::tls_acceptor`] (in the connection's task,
//! under a timeout), set [`WebConfig::apply_headers`] on every response, refusals included,
//! and let a request through only when [`WebConfig::admit`] and then [`WebConfig::authorize`]
//! return `None`:
//!
//! ```no_run
//! use std::convert::Infallible;
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use hyper::{Request, Response, body::Incoming, header, server::conn::http1, service::service_fn};
//! use hyper_util::rt::TokioIo;
//! use web_config::WebConfig;
//!
//! async fn serve(listener: tokio::net::TcpListener, web: Arc<WebConfig>) -> std::io::Result<()> {
//!     let tls = web.tls_acceptor();
//!     loop {
//!         let (stream, peer) = listener.accept().await?;
//!         let (tls, web) = (tls.clone(), Arc::clone(&web));
//!         tokio::spawn(async move {
//!             let service = service_fn(move |request: Request<Incoming>| {
//!                 let web = Arc::clone(&web);
//!                 async move {
//!                     let denied = match web.admit() {
//!                         Some(denied) => Some(denied),
//!                         None => {
//!                             let authorization = request.headers().get(header::AUTHORIZATION);
//!                             web.authorize(authorization, peer.ip()).await
//!                         }
//!                     };
//!                     let mut response = match denied {
//!                         Some(denied) => denied.response(|text| Full::new(Bytes::from(text))),
//!                         None => Response::new(Full::new(Bytes::from("metrics\n"))),
//!                     };
//!                     web.apply_headers(response.headers_mut());
//!                     Ok::<_, Infallible>(response)
//!                 }
//!             });
//!             let http = http1::Builder::new();
//!             let _ = match tls {
//!                 None => http.serve_connection(TokioIo::new(stream), service).await,
//!                 Some(tls) => {
//!                     let handshake = tls.accept(stream);
//!                     match tokio::time::timeout(Duration::from_secs(10), handshake).await {
//!                         Ok(Ok(stream)) => http.serve_connection(TokioIo::new(stream), service).await,
//!                         _ => return,
//!                     }
//!                 }
//!             };
//!         });
//!     }
//! }
//!
//! # async fn start() -> Result<(), Box<dyn std::error::Error>> {
//! let web = WebConfig::load("web.yml".as_ref())?; // or print the error and exit
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9100").await?;
//! serve(listener, Arc::new(web)).await?;
//! # Ok(())
//! # }
//! ```
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

mod basic_auth;
mod denied;
pub mod files;
mod headers;
mod rate_limit;
mod raw;
mod tls;

#[cfg(test)]
mod test_support;

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use tokio_rustls::TlsAcceptor;

pub use basic_auth::{BasicAuthError, VERIFY_PER_CLIENT, VERIFY_QUEUE};
pub use denied::{AuthResult, Denied, DeniedKind};
pub use files::FileError;
pub use headers::HeaderError;
pub use rate_limit::RateLimitError;
pub use tls::{PemOrigin, TlsError};

use basic_auth::BasicAuth;
use rate_limit::RateLimiter;
use raw::RawConfig;
use tls::Tls;

/// Why [`WebConfig::load`] gave no config. The message is the one to show (the exporter
/// prints it after the flag's name): it names the file, then the key and the problem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The config file itself cannot be read (missing, not a regular file, too large, not
    /// UTF-8).
    #[error(transparent)]
    File(FileError),
    /// The config file was read, but it is not a valid web config, or a file it names cannot
    /// be read or used.
    #[error("{}: {error}", path.display())]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// What is wrong in it (boxed: the TLS errors are large, and a `Result` carries its
        /// error's size).
        error: Box<ConfigError>,
    },
}

/// What is wrong in a web config file, by section. The message starts with the section's key
/// (`tls_server_config.cert_file: …`), but for [`ConfigError::Yaml`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file is not YAML of the expected shape: a syntax error, an unknown key (named), a
    /// value of the wrong type, or a user or header given twice.
    #[error("{message}")]
    Yaml {
        /// The YAML parser's message, with the line and column where it applies.
        message: String,
    },
    /// `tls_server_config` cannot be used.
    #[error("tls_server_config.{0}")]
    Tls(TlsError),
    /// `http_server_config.headers` names a header that cannot be set, or a bad value.
    #[error("http_server_config.headers: {0}")]
    Headers(HeaderError),
    /// `basic_auth_users` has an unusable user name or hash.
    #[error("basic_auth_users: {0}")]
    BasicAuth(BasicAuthError),
    /// `rate_limit` has an unusable value.
    #[error("rate_limit.{0}")]
    RateLimit(RateLimitError),
}

/// A parsed and validated web config file: what the server applies to every connection
/// ([`WebConfig::tls_acceptor`]) and every request ([`WebConfig::admit`],
/// [`WebConfig::authorize`], [`WebConfig::apply_headers`]). Share it between connections in
/// an `Arc`. Its `Debug` shows what was configured, never a hash or a key.
pub struct WebConfig {
    path: PathBuf,
    tls: Option<Tls>,
    auth: Option<BasicAuth>,
    headers: Vec<(HeaderName, HeaderValue)>,
    rate_limit: Option<RateLimiter>,
}

impl fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebConfig")
            .field("path", &self.path)
            .field("tls", &self.tls.as_ref().map(|tls| &tls.summary))
            .field(
                "basic_auth_users",
                &self.auth.as_ref().map(BasicAuth::user_names),
            )
            .field("headers", &self.headers)
            .field("rate_limit", &self.rate_limit)
            .finish()
    }
}

impl WebConfig {
    /// Reads and validates the file, with the certificate and key files it names (relative
    /// names are taken from the file's directory). An error names the file and the offending
    /// key (and value, unless a secret).
    pub fn load(path: &Path) -> Result<WebConfig, LoadError> {
        let text = files::read_text(path, files::MAX_SMALL).map_err(LoadError::File)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        WebConfig::parse(&text, dir, path).map_err(|error| LoadError::Invalid {
            path: path.to_owned(),
            error: Box::new(error),
        })
    }

    fn parse(text: &str, dir: &Path, path: &Path) -> Result<WebConfig, ConfigError> {
        let raw: RawConfig = if text.trim().is_empty() {
            RawConfig::default()
        } else {
            yaml_serde::from_str::<Option<RawConfig>>(text)
                .map_err(|e| ConfigError::Yaml {
                    message: e.to_string(),
                })?
                .unwrap_or_default()
        };
        let rate_limit = match raw.rate_limit {
            Some(raw) => RateLimiter::new(raw).map_err(ConfigError::RateLimit)?,
            None => None,
        };
        let tls = match raw.tls_server_config {
            Some(tls) => tls::build_tls(tls, dir).map_err(ConfigError::Tls)?,
            None => None,
        };
        let http = raw.http_server_config.unwrap_or_default();
        let headers = headers::validate_headers(http.headers.unwrap_or_default())
            .map_err(ConfigError::Headers)?;
        let users = raw.basic_auth_users.unwrap_or_default();
        let auth = if users.is_empty() {
            None
        } else {
            Some(BasicAuth::new(users).map_err(ConfigError::BasicAuth)?)
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
    /// the verification thread (see the crate's docs). Dropping the future before its turn
    /// takes the check out of the queue.
    pub async fn authorize(
        &self,
        authorization: Option<&HeaderValue>,
        client: IpAddr,
    ) -> AuthResult {
        self.auth.as_ref()?.authorize(authorization, client).await
    }

    /// Sets the headers of `http_server_config.headers` on a response's headers (replacing any
    /// of the same name); for every response, 401s included.
    pub fn apply_headers(&self, headers: &mut HeaderMap) {
        for (name, value) in &self.headers {
            headers.insert(name.clone(), value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_support::{Fixture, hash, parse};

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
            let err = fixture.load(yaml).unwrap_err().to_string();
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
            let err = fixture.load(yaml).unwrap_err().to_string();
            assert!(err.contains(key), "{yaml:?}: {err}");
        }
        let err = fixture
            .load("basic_auth_users:\n  alice: x\n  alice: y\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("alice") && err.contains("twice"), "{err}");
        let err = fixture
            .load("basic_auth_users: [alice]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("basic_auth_users"), "{err}");
        let missing = fixture.path("missing.yml");
        let err = WebConfig::load(&missing).unwrap_err();
        assert!(
            matches!(&err, LoadError::File(FileError::Io { path, .. }) if *path == missing),
            "{err:?}"
        );
        assert!(err.to_string().contains("missing.yml"), "{err}");
        // The sections' errors, as values.
        let err = fixture
            .load("rate_limit:\n  interval: 1s\n  burst: -1\n")
            .unwrap_err();
        let LoadError::Invalid { path, error } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(*path, fixture.path("web.yml"));
        assert!(
            matches!(
                **error,
                ConfigError::RateLimit(RateLimitError::Burst { value: -1 })
            ),
            "{error:?}"
        );
        let err = fixture.load("tls_config: {}\n").unwrap_err();
        assert!(
            matches!(
                &err,
                LoadError::Invalid { error, .. }
                    if matches!(&**error, ConfigError::Yaml { message } if message.contains("tls_config"))
            ),
            "{err:?}"
        );
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
}
