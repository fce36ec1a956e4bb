//! The one client through which every GitLab API call passes: one ureq `Agent` (a pooled
//! session, like the seed script's `requests.Session`), the token in one `PRIVATE-TOKEN` header,
//! one semaphore bounding the calls in flight, a timeout per call, accounting by route template,
//! and retries of answers that say "try again" (429, 5xx) or connections that failed.
//!
//! ureq is blocking; each call runs on tokio's blocking pool while holding a semaphore permit, so
//! the number of blocking threads in use never exceeds `--gitlab.concurrency`.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;
use tracing::debug;

use super::Error;
use super::pagination::PageInfo;
use super::types::parse_http_date;
use crate::config::Secret;

/// Largest body read from a successful answer (a page of 100 projects is a few hundred KiB).
const MAX_BODY_BYTES: u64 = 32 << 20;
/// Largest body read from an error answer, for its message.
const MAX_ERROR_BODY_BYTES: u64 = 64 << 10;
/// Retries after the first attempt, for answers and failures that say "try again".
const MAX_RETRIES: u32 = 2;
/// The longest `Retry-After` honoured within one call.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);
/// First backoff step; doubled at each retry, plus up to 50 % jitter.
const BACKOFF: Duration = Duration::from_millis(200);

/// What the client needs to know.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// GitLab base URL, without `/api/v4`.
    pub base_url: String,
    /// Token sent as `PRIVATE-TOKEN`; none for anonymous access to public data.
    pub token: Option<Secret>,
    /// Most calls in flight at once.
    pub concurrency: usize,
    /// Timeout of one call, from connecting to the end of the body.
    pub request_timeout: Duration,
}

/// Labels of `gitlab_exporter_api_requests_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiRequestLabels {
    /// Route template, e.g. `/projects/:id/merge_requests`.
    pub endpoint: &'static str,
    /// HTTP status code of the answer.
    pub code: u16,
}

/// Labels of `gitlab_exporter_api_errors_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiErrorLabels {
    /// Route template.
    pub endpoint: &'static str,
    /// `timeout`, `transport` or `decode`.
    pub reason: &'static str,
}

/// The exporter-lifetime counters the client updates (registered by [`crate::metrics`]).
#[derive(Debug, Clone, Default)]
pub struct ApiCounters {
    /// Answers received, by route template and status code.
    pub requests: Family<ApiRequestLabels, Counter>,
    /// Calls that got no usable answer, by route template and reason.
    pub errors: Family<ApiErrorLabels, Counter>,
}

/// A successful answer: its decoded body and what it says about the next page.
#[derive(Debug)]
pub struct Reply<T> {
    /// The decoded JSON body.
    pub body: T,
    /// Pagination headers.
    pub page: PageInfo,
}

/// The GitLab client. Cheap to clone; clones share the connection pool and the concurrency
/// limit. [`Client::for_collection`] gives a clone that counts its own calls.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
    calls: Arc<AtomicU64>,
    /// The earliest `Date` GitLab sent to this clone, in Unix seconds (`i64::MAX`: none yet).
    clock: Arc<AtomicI64>,
}

struct Shared {
    agent: ureq::Agent,
    api_url: String,
    token: Option<Secret>,
    limit: Semaphore,
    timeout: Duration,
    counters: ApiCounters,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("api_url", &self.shared.api_url)
            .field("token", &self.shared.token)
            .field("available_permits", &self.shared.limit.available_permits())
            .field("timeout", &self.shared.timeout)
            .finish()
    }
}

/// One attempt's failure, and whether and when to try again.
struct Failure {
    error: Error,
    retry: Retry,
}

/// Whether a failed attempt is worth repeating.
enum Retry {
    /// The answer will not change (4xx, redirect, timeout already waited out).
    Never,
    /// Transient: wait the exponential backoff.
    Backoff,
    /// GitLab said when (`Retry-After`).
    After(Duration),
}

impl Client {
    /// Builds the client: one agent with pooled connections, no redirects followed (they would
    /// carry the token to wherever they point), non-2xx answers returned with their headers.
    pub fn new(options: ClientOptions, counters: ApiCounters) -> Client {
        let pool = options.concurrency.max(4);
        let mut config = ureq::Agent::config_builder();
        if crate::config::is_loopback_url(&options.base_url) {
            // A proxy from the environment (HTTPS_PROXY, ALL_PROXY) would catch loopback too.
            config = config.proxy(None);
        }
        let agent: ureq::Agent = config
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(options.request_timeout))
            .user_agent(format!("gitlab-api-exporter/{}", crate::VERSION))
            .max_idle_connections(pool)
            .max_idle_connections_per_host(pool)
            // ureq's defaults (128 KiB each way per connection) cost 16 MiB at 64 pooled
            // connections; GitLab's answer headers fit in a few KiB and requests are bare GETs.
            .max_response_header_size(32 << 10)
            .input_buffer_size(32 << 10)
            .output_buffer_size(8 << 10)
            .build()
            .into();
        Client {
            shared: Arc::new(Shared {
                agent,
                api_url: format!("{}/api/v4", options.base_url.trim_end_matches('/')),
                token: options.token,
                limit: Semaphore::new(options.concurrency.max(1)),
                timeout: options.request_timeout,
                counters,
            }),
            calls: Arc::new(AtomicU64::new(0)),
            clock: Arc::new(AtomicI64::new(i64::MAX)),
        }
    }

    /// A clone sharing everything but the call count, which starts at 0, and the clock.
    pub fn for_collection(&self) -> Client {
        Client {
            shared: Arc::clone(&self.shared),
            calls: Arc::new(AtomicU64::new(0)),
            clock: Arc::new(AtomicI64::new(i64::MAX)),
        }
    }

    /// GitLab's clock at the first answer this clone received (the earliest `Date` header), in
    /// Unix seconds: a time no later than any change GitLab made after that answer.
    pub fn gitlab_time(&self) -> Option<i64> {
        Some(self.clock.load(Ordering::Relaxed)).filter(|t| *t != i64::MAX)
    }

    /// Calls made through this clone (and the clones made from it by `clone`), retries included.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// `GET /api/v4{path}?{query}` and the decoded JSON body. `endpoint` is the route template
    /// the call is counted under; `path` must already have its segments encoded
    /// ([`encode_segment`]); query values are encoded here.
    pub async fn get<T>(
        &self,
        endpoint: &'static str,
        path: String,
        query: Vec<(&'static str, String)>,
    ) -> Result<Reply<T>, Error>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let path: Arc<str> = path.into();
        let query: Arc<[(&'static str, String)]> = query.into();
        let mut retries = 0;
        loop {
            let attempt = {
                let _permit = self
                    .shared
                    .limit
                    .acquire()
                    .await
                    .map_err(|_| Error::Transport {
                        endpoint,
                        detail: "the client is shutting down".to_owned(),
                    })?;
                let shared = Arc::clone(&self.shared);
                let (path, query, clock) = (
                    Arc::clone(&path),
                    Arc::clone(&query),
                    Arc::clone(&self.clock),
                );
                tokio::task::spawn_blocking(move || {
                    shared.fetch::<T>(endpoint, &path, &query, &clock)
                })
                .await
            };
            self.calls.fetch_add(1, Ordering::Relaxed);
            let failure = match attempt {
                Ok(Ok(reply)) => return Ok(reply),
                Ok(Err(failure)) => failure,
                Err(join) => {
                    return Err(Error::Transport {
                        endpoint,
                        detail: format!("the request task failed: {join}"),
                    });
                }
            };
            let wait = match failure.retry {
                Retry::Never => None,
                Retry::Backoff => Some(backoff(retries)),
                Retry::After(wait) => Some(wait),
            };
            match wait {
                Some(wait) if retries < MAX_RETRIES => {
                    debug!(endpoint, error = %failure.error, retry_in = ?wait, "retrying GitLab call");
                    tokio::time::sleep(wait).await;
                    retries += 1;
                }
                _ => return Err(failure.error),
            }
        }
    }
}

impl Shared {
    /// One attempt, on a blocking thread: send, read, count, decode.
    fn fetch<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        path: &str,
        query: &[(&'static str, String)],
        clock: &AtomicI64,
    ) -> Result<Reply<T>, Failure> {
        let mut request = self.agent.get(format!("{}{}", self.api_url, path));
        for (key, value) in query {
            request = request.query(key, value);
        }
        if let Some(token) = &self.token {
            request = request.header("PRIVATE-TOKEN", token.expose());
        }
        debug!(endpoint, path, "GitLab call");
        let mut response = match request.call() {
            Ok(response) => response,
            Err(e) => return Err(self.no_answer(endpoint, e)),
        };
        let status = response.status().as_u16();
        if let Some(date) = response
            .headers()
            .get("date")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_http_date)
        {
            clock.fetch_min(date, Ordering::Relaxed);
        }
        self.counters
            .requests
            .get_or_create(&ApiRequestLabels {
                endpoint,
                code: status,
            })
            .inc();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        match status {
            200..=299 => {
                let page = PageInfo::from_headers(response.headers());
                let body = response
                    .body_mut()
                    .with_config()
                    .limit(MAX_BODY_BYTES)
                    .read_to_vec()
                    .map_err(|e| self.no_answer(endpoint, e))?;
                let body = serde_json::from_slice(&body).map_err(|e| {
                    self.count_error(endpoint, "decode");
                    Failure {
                        error: Error::Decode {
                            endpoint,
                            detail: self.scrub(e.to_string()),
                        },
                        retry: Retry::Never,
                    }
                })?;
                Ok(Reply { body, page })
            }
            300..=399 => Err(Failure {
                error: Error::Redirect {
                    endpoint,
                    status,
                    location: header("location")
                        .map(|l| l.split(['?', '#']).next().unwrap_or_default().to_owned())
                        .unwrap_or_else(|| "nowhere".to_owned()),
                },
                retry: Retry::Never,
            }),
            401 => Err(Failure {
                error: Error::Unauthorized { endpoint },
                retry: Retry::Never,
            }),
            _ => {
                let retry_after = header("retry-after")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
                let body = response
                    .body_mut()
                    .with_config()
                    .limit(MAX_ERROR_BODY_BYTES)
                    .read_to_vec()
                    .unwrap_or_default();
                let retry = match (status, retry_after) {
                    (429, Some(wait)) => Retry::After(wait),
                    (429 | 500 | 502 | 503 | 504, _) => Retry::Backoff,
                    _ => Retry::Never,
                };
                Err(Failure {
                    error: Error::Status {
                        endpoint,
                        status,
                        message: self.scrub(error_message(&body)),
                    },
                    retry,
                })
            }
        }
    }

    /// A failure without a usable answer: counted under its reason.
    fn no_answer(&self, endpoint: &'static str, e: ureq::Error) -> Failure {
        let (error, retry) = match e {
            ureq::Error::Timeout(_) => (
                Error::Timeout {
                    endpoint,
                    after: self.timeout,
                },
                Retry::Never,
            ),
            ureq::Error::BodyExceedsLimit(limit) => (
                Error::Decode {
                    endpoint,
                    detail: format!("body larger than {limit} bytes"),
                },
                Retry::Never,
            ),
            other => (
                Error::Transport {
                    endpoint,
                    detail: self.scrub(other.to_string()),
                },
                Retry::Backoff,
            ),
        };
        if let Some(reason) = error.reason() {
            self.count_error(endpoint, reason);
        }
        Failure { error, retry }
    }

    /// Text that came from the network, with the token cut out in case something echoed it
    /// (a proxy reflecting request headers, a body quoting them).
    fn scrub(&self, text: String) -> String {
        match &self.token {
            Some(token) if !token.expose().is_empty() && text.contains(token.expose()) => {
                text.replace(token.expose(), "<redacted>")
            }
            _ => text,
        }
    }

    fn count_error(&self, endpoint: &'static str, reason: &'static str) {
        self.counters
            .errors
            .get_or_create(&ApiErrorLabels { endpoint, reason })
            .inc();
    }
}

/// Backoff before retry `n` (0-based): 200 ms, 400 ms, … plus up to 50 % jitter.
fn backoff(n: u32) -> Duration {
    let base = BACKOFF * 2u32.pow(n);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    base + base.mul_f64(f64::from(nanos % 1000) / 2000.0)
}

/// GitLab's error message from an error body: `message` (a string or an object), `error` and
/// `error_description`, or the start of a plain-text body; shortened to one safe line.
fn error_message(body: &[u8]) -> String {
    let text = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(map)) => {
            let field = |k: &str| match map.get(k) {
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(serde_json::Value::Null) | None => None,
                Some(other) => Some(other.to_string()),
            };
            match (field("message"), field("error"), field("error_description")) {
                (Some(m), _, _) => m,
                (None, Some(e), Some(d)) => format!("{e}: {d}"),
                (None, Some(e), None) => e,
                _ => String::from_utf8_lossy(body).into_owned(),
            }
        }
        _ => String::from_utf8_lossy(body).into_owned(),
    };
    let mut line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    line.truncate(line.trim_end().len());
    if line.is_empty() {
        "(empty body)".to_owned()
    } else {
        line
    }
}

/// Percent-encodes one path segment (a project path, a branch name): everything but RFC 3986
/// unreserved characters, so `acme/api` becomes `acme%2Fapi` as GitLab requires.
pub fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded() {
        assert_eq!(
            encode_segment("acme/platform/deploy"),
            "acme%2Fplatform%2Fdeploy"
        );
        assert_eq!(encode_segment("release/2.0"), "release%2F2.0");
        assert_eq!(encode_segment("feat #1+ü"), "feat%20%231%2B%C3%BC");
        assert_eq!(encode_segment("42"), "42");
    }

    #[test]
    fn error_messages_from_gitlab_bodies() {
        assert_eq!(
            error_message(br#"{"message":"404 Project Not Found"}"#),
            "404 Project Not Found"
        );
        assert_eq!(
            error_message(br#"{"error":"404 Not Found"}"#),
            "404 Not Found"
        );
        assert_eq!(
            error_message(br#"{"message":{"error":"This endpoint has been requested too many times. Try again later."}}"#),
            r#"{"error":"This endpoint has been requested too many times. Try again later."}"#
        );
        assert_eq!(
            error_message(br#"{"error":"insufficient_scope","error_description":"The request requires higher privileges than provided by the access token.","scope":"sudo"}"#),
            "insufficient_scope: The request requires higher privileges than provided by the access token."
        );
        assert_eq!(error_message(b"Retry later\n"), "Retry later");
        assert_eq!(error_message(b""), "(empty body)");
        assert_eq!(error_message(&[b'x'; 1000]).len(), 200);
    }

    #[test]
    fn backoff_grows() {
        assert!(
            backoff(0) >= Duration::from_millis(200) && backoff(0) <= Duration::from_millis(300)
        );
        assert!(
            backoff(1) >= Duration::from_millis(400) && backoff(1) <= Duration::from_millis(600)
        );
    }

    #[test]
    fn debug_hides_the_token() {
        let client = Client::new(
            ClientOptions {
                base_url: "https://gitlab.example.com".to_owned(),
                token: Some(Secret::new("glpat-do-not-print")),
                concurrency: 2,
                request_timeout: Duration::from_secs(1),
            },
            ApiCounters::default(),
        );
        let debug = format!("{client:?}");
        assert!(!debug.contains("do-not-print"), "{debug}");
        assert!(
            debug.contains("https://gitlab.example.com/api/v4"),
            "{debug}"
        );
    }
}
