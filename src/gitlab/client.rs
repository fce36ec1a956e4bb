//! The one client through which every GitLab API call passes: one ureq `Agent` (a pooled
//! session, like the seed script's `requests.Session`), the token in one `PRIVATE-TOKEN` header,
//! one semaphore bounding the calls in flight, pacing ([`super::pacing`]: a fixed cap, GitLab's
//! rate-limit headers, 429 pauses), a timeout per call, accounting by route template, and retries
//! of answers that say "try again" (429, 5xx) or calls that got no answer.
//!
//! ureq is blocking; each call runs on tokio's blocking pool while holding a semaphore permit, so
//! the number of blocking threads in use never exceeds `--gitlab.concurrency`.

use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::Error;
use super::pacing::{LastRateLimit, MAX_PAUSE, Pacer, RateLimit};
use super::pagination::PageInfo;
use super::types::parse_http_date;
use crate::redact::{Secret, log_line, redact};

/// Largest body read from a successful answer (a page of 100 projects is a few hundred KiB).
const MAX_BODY_BYTES: u64 = 32 << 20;
/// Largest body read from an error answer, for its message.
const MAX_ERROR_BODY_BYTES: u64 = 64 << 10;
/// Retries after the first attempt, for 5xx answers and failed connections: with 5 % of answers
/// failing, a call still fails only once in 3 million.
const MAX_RETRIES: u32 = 4;
/// Retries after a call timed out (each costs `--gitlab.request-timeout`).
const MAX_TIMEOUT_RETRIES: u32 = 1;
/// First backoff step; doubled at each retry, plus up to 50 % jitter.
const BACKOFF: Duration = Duration::from_millis(200);
/// First backoff step after a 429 that says nothing of when to come back (GitLab's
/// application limits); doubled at each retry up to [`MAX_THROTTLE_BACKOFF`], plus jitter.
const THROTTLE_BACKOFF: Duration = Duration::from_secs(1);
const MAX_THROTTLE_BACKOFF: Duration = Duration::from_secs(60);
/// Unusable records logged as warnings per collection; the rest at debug level.
pub const LOGGED_BAD_RECORDS: u64 = 10;
/// A call is given up after this long of 429s: never before, whatever their number.
const MAX_THROTTLED: Duration = Duration::from_secs(900);

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
    /// Most calls started per second (0: no fixed cap).
    pub max_requests_per_second: f64,
    /// CA certificates trusted for GitLab's TLS besides the system's (`--gitlab.ca-file`).
    pub ca_certs: Vec<ureq::tls::Certificate<'static>>,
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
    /// See [`Error::reason`].
    pub reason: &'static str,
}

/// The exporter-lifetime counters the client updates (registered by [`crate::metrics`]).
#[derive(Debug, Clone, Default)]
pub struct ApiCounters {
    /// Answers received, by route template and status code.
    pub requests: Family<ApiRequestLabels, Counter>,
    /// Attempts that failed, by route template and reason.
    pub errors: Family<ApiErrorLabels, Counter>,
    /// GitLab's rate-limit headers on the last answer that had them.
    pub rate_limit: LastRateLimit,
    /// Failed attempts by reason, all endpoints together (for the status page).
    pub errors_by_reason: Arc<Mutex<std::collections::BTreeMap<&'static str, u64>>>,
    /// GraphQL queries by operation and result.
    pub graphql: Family<super::graphql::GraphqlLabels, Counter>,
    /// The score GitLab gave the last query of each operation.
    pub graphql_complexity: Family<super::graphql::OperationLabels, Gauge>,
    /// The complexity limit GitLab reported last.
    pub graphql_complexity_limit: Gauge,
    /// Projects per query each operation runs at.
    pub graphql_batch_size: Family<super::graphql::OperationLabels, Gauge>,
    /// Uses of REST in place of GraphQL, by reason.
    pub rest_fallbacks: Family<super::graphql::FallbackLabels, Counter>,
}

/// A successful answer: its decoded body and what it says about the next page.
#[derive(Debug)]
pub struct Reply<T> {
    /// The decoded JSON body.
    pub body: T,
    /// Pagination headers.
    pub page: PageInfo,
}

/// What one call asks.
#[derive(Debug)]
enum Request {
    /// `GET /api/v4{path}?{query}`.
    Get {
        path: Box<str>,
        query: Vec<(&'static str, String)>,
    },
    /// `POST /api/graphql` with this JSON body.
    Graphql { body: Vec<u8> },
}

/// The GitLab client. Cheap to clone; clones share the connection pool and the concurrency
/// limit. [`Client::for_collection`] gives a clone that counts its own calls.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
    calls: Arc<AtomicU64>,
    /// A second count of this clone's calls (one metric family's, see [`Client::tallied`]).
    tally: Option<Arc<AtomicU64>>,
    /// Records found unusable through this clone (see [`Client::bad_record`]).
    bad_records: Arc<AtomicU64>,
    /// The earliest `Date` GitLab sent to this clone, in Unix seconds (`i64::MAX`: none yet).
    clock: Arc<AtomicI64>,
}

struct Shared {
    agent: ureq::Agent,
    api_url: String,
    /// `{base}/api/graphql`.
    graphql_url: String,
    /// Replaced when the token file is read again (SIGHUP).
    token: RwLock<Option<Secret>>,
    limit: Arc<Semaphore>,
    pacer: Pacer,
    timeout: Duration,
    counters: ApiCounters,
    progress: Mutex<Progress>,
    /// GitLab answered 404/405 on `/api/graphql`: every collection through this client (every
    /// probe target's too) goes over REST from then on.
    graphql_unavailable: std::sync::atomic::AtomicBool,
}

/// Whether GitLab is answering: calls waiting for an answer, for how long, and the last answer.
#[derive(Debug)]
struct Progress {
    in_flight: usize,
    /// Time with at least one call out, before `busy_from`.
    busy: Duration,
    /// Since when calls are out, while some are.
    busy_from: Option<Instant>,
    /// The last answer.
    last_answer: Option<Instant>,
}

impl Progress {
    fn busy(&self) -> Duration {
        self.busy + self.busy_from.map_or(Duration::ZERO, |from| from.elapsed())
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("api_url", &self.shared.api_url)
            .field("token", &*self.shared.token())
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
    /// The answer will not change (4xx, redirect).
    Never,
    /// Transient (5xx, failed connection): wait the exponential backoff.
    Backoff,
    /// No answer in time.
    Timeout,
    /// A 429: wait as GitLab said (`Retry-After`, paused for every call), or back off.
    Throttled(Option<Duration>),
}

impl Client {
    /// Builds the client: one agent with pooled connections, no redirects followed (they would
    /// carry the token to wherever they point), non-2xx answers returned with their headers.
    pub fn new(options: ClientOptions, counters: ApiCounters) -> Client {
        let pool = options.concurrency.max(4);
        let mut config = ureq::Agent::config_builder();
        if crate::gitlab::is_loopback_url(&options.base_url) {
            // A proxy from the environment (HTTPS_PROXY, ALL_PROXY) would catch loopback too.
            config = config.proxy(None);
        }
        if options.base_url.starts_with("https://") {
            let roots = super::tls::root_certs(options.ca_certs);
            config = config.tls_config(ureq::tls::TlsConfig::builder().root_certs(roots).build());
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
                graphql_url: format!("{}/api/graphql", options.base_url.trim_end_matches('/')),
                token: RwLock::new(options.token),
                limit: Arc::new(Semaphore::new(options.concurrency.max(1))),
                pacer: Pacer::new(
                    options.max_requests_per_second,
                    Arc::clone(&counters.rate_limit),
                ),
                timeout: options.request_timeout,
                counters,
                progress: Mutex::new(Progress {
                    in_flight: 0,
                    busy: Duration::ZERO,
                    busy_from: None,
                    last_answer: None,
                }),
                graphql_unavailable: std::sync::atomic::AtomicBool::new(false),
            }),
            calls: Arc::new(AtomicU64::new(0)),
            tally: None,
            bad_records: Arc::new(AtomicU64::new(0)),
            clock: Arc::new(AtomicI64::new(i64::MAX)),
        }
    }

    /// A clone sharing everything but the call and bad-record counts, which start at 0, and
    /// the clock.
    pub fn for_collection(&self) -> Client {
        Client {
            shared: Arc::clone(&self.shared),
            calls: Arc::new(AtomicU64::new(0)),
            tally: None,
            bad_records: Arc::new(AtomicU64::new(0)),
            clock: Arc::new(AtomicI64::new(i64::MAX)),
        }
    }

    /// A clone counting its calls in this collection's count and also in `tally`.
    pub fn tallied(&self, tally: Arc<AtomicU64>) -> Client {
        Client {
            tally: Some(tally),
            ..self.clone()
        }
    }

    /// A record (or some fields of one) in a successful answer on `endpoint` that could not be
    /// used, `what` saying which and why: counted under `reason="decode"` and logged; it costs
    /// only the values it feeds. The first [`LOGGED_BAD_RECORDS`] of a collection are logged
    /// as warnings, the others at debug level.
    pub fn bad_record(&self, endpoint: &'static str, what: &str) {
        self.shared.count_error(endpoint, "decode");
        let n = self.bad_records.fetch_add(1, Ordering::Relaxed);
        let what = log_line(what, 2000);
        if n < LOGGED_BAD_RECORDS {
            warn!(endpoint, record = %what, "part of an answer from GitLab cannot be used; only the values it feeds are left out");
        } else {
            debug!(endpoint, record = %what, "part of an answer from GitLab cannot be used; only the values it feeds are left out");
        }
    }

    /// The exporter-lifetime counters.
    pub(crate) fn counters(&self) -> &ApiCounters {
        &self.shared.counters
    }

    /// True once GitLab said it has no GraphQL API (404/405 on `/api/graphql`).
    pub fn graphql_unavailable(&self) -> bool {
        self.shared.graphql_unavailable.load(Ordering::Relaxed)
    }

    /// Notes that GitLab has no GraphQL API; true the first time.
    pub fn graphql_unavailable_now(&self) -> bool {
        !self
            .shared
            .graphql_unavailable
            .swap(true, Ordering::Relaxed)
    }

    /// Counts a failed attempt under `reason` (for errors found in an answer read as a success).
    pub(crate) fn counters_error(&self, endpoint: &'static str, reason: &'static str) {
        self.shared.count_error(endpoint, reason);
    }

    /// Records found unusable in this collection so far.
    pub fn bad_records(&self) -> u64 {
        self.bad_records.load(Ordering::Relaxed)
    }

    /// GitLab's clock at the first answer this clone received (the earliest `Date` header), in
    /// Unix seconds: a time no later than any change GitLab made after that answer.
    pub fn gitlab_time(&self) -> Option<i64> {
        Some(self.clock.load(Ordering::Relaxed)).filter(|t| *t != i64::MAX)
    }

    /// Replaces the token (the token file was read again); calls already sent keep the old one.
    pub fn set_token(&self, token: Option<Secret>) {
        *self.shared.token.write().unwrap_or_else(|e| e.into_inner()) = token;
    }

    /// Total time with at least one call out (a clock that only runs while calls wait for
    /// GitLab): the difference over a scrape's wait says for how much of it calls were out,
    /// however many of them timed out and were retried in between.
    pub fn busy(&self) -> Duration {
        self.shared.progress().busy()
    }

    /// True when GitLab answered a call (with any status) at or after `t`.
    pub fn answered_since(&self, t: Instant) -> bool {
        self.shared.progress().last_answer.is_some_and(|a| a >= t)
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
        let request = Arc::new(Request::Get {
            path: path.into(),
            query,
        });
        self.send(endpoint, request).await
    }

    /// `POST /api/graphql` with a JSON body (`{"query", "variables"}`) and the decoded JSON
    /// answer, through the same limit, pacing, accounting and retries as REST calls.
    pub async fn post_graphql<T>(&self, body: Vec<u8>) -> Result<Reply<T>, Error>
    where
        T: DeserializeOwned + Send + 'static,
    {
        self.send(
            super::endpoint::GRAPHQL,
            Arc::new(Request::Graphql { body }),
        )
        .await
    }

    /// One call, retried as its failures allow.
    async fn send<T>(
        &self,
        endpoint: &'static str,
        request: Arc<Request>,
    ) -> Result<Reply<T>, Error>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let (mut retries, mut timeouts, mut throttles) = (0, 0, 0);
        let mut throttled = Duration::ZERO;
        loop {
            let attempt = {
                let permit = Arc::clone(&self.shared.limit)
                    .acquire_owned()
                    .await
                    .map_err(|_| Error::Transport {
                        endpoint,
                        detail: "the client is shutting down".to_owned(),
                    })?;
                self.shared.pacer.wait().await;
                let shared = Arc::clone(&self.shared);
                let (request, clock) = (Arc::clone(&request), Arc::clone(&self.clock));
                // The permit and the in-flight count are held by the thread making the call:
                // a call abandoned by its collection still counts until it ends, and time spent
                // waiting for a pool thread is not time GitLab leaves a call unanswered.
                tokio::task::spawn_blocking(move || {
                    let _permit = permit;
                    let _in_flight = InFlight::start(&shared);
                    shared.fetch::<T>(endpoint, &request, &clock)
                })
                .await
            };
            self.calls.fetch_add(1, Ordering::Relaxed);
            if let Some(tally) = &self.tally {
                tally.fetch_add(1, Ordering::Relaxed);
            }
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
                Retry::Backoff if retries < MAX_RETRIES => {
                    retries += 1;
                    Some(backoff(BACKOFF, retries - 1, Duration::MAX))
                }
                Retry::Timeout if timeouts < MAX_TIMEOUT_RETRIES => {
                    timeouts += 1;
                    Some(Duration::ZERO)
                }
                Retry::Throttled(_) if throttled >= MAX_THROTTLED => None,
                Retry::Throttled(Some(after)) => {
                    // Counted as the pause actually taken (capped), never overflowing.
                    let after = after.min(MAX_PAUSE);
                    // Every call waits: the limit is the user's, not this call's.
                    self.shared.pacer.pause(after);
                    throttled = throttled.saturating_add(after);
                    Some(Duration::ZERO)
                }
                Retry::Throttled(None) => {
                    throttles += 1;
                    let wait = backoff(THROTTLE_BACKOFF, throttles - 1, MAX_THROTTLE_BACKOFF);
                    throttled = throttled.saturating_add(wait);
                    Some(wait)
                }
                Retry::Backoff | Retry::Timeout => None,
            };
            match wait {
                Some(wait) => {
                    debug!(endpoint, error = %failure.error, retry_in = ?wait, "retrying GitLab call");
                    tokio::time::sleep(wait).await;
                }
                None => return Err(failure.error),
            }
        }
    }
}

/// Counts a call in flight for [`Client::busy`], however it ends.
struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn start(shared: &'a Shared) -> InFlight<'a> {
        let mut progress = shared.progress();
        if progress.in_flight == 0 {
            progress.busy_from = Some(Instant::now());
        }
        progress.in_flight += 1;
        InFlight(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut progress = self.0.progress();
        progress.in_flight -= 1;
        if progress.in_flight == 0 {
            if let Some(from) = progress.busy_from.take() {
                progress.busy += from.elapsed();
            }
        }
    }
}

impl Shared {
    fn progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn token(&self) -> std::sync::RwLockReadGuard<'_, Option<Secret>> {
        self.token.read().unwrap_or_else(|e| e.into_inner())
    }

    /// One attempt, on a blocking thread: send, read, count, decode.
    fn fetch<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        request: &Request,
        clock: &AtomicI64,
    ) -> Result<Reply<T>, Failure> {
        // Cloned (an `Arc`): the lock is not held while the call waits for GitLab.
        let token = self.token().clone();
        let token = token.as_ref().map(Secret::expose);
        let (sent, path) = match request {
            Request::Get { path, query } => {
                let mut get = self.agent.get(format!("{}{}", self.api_url, path));
                for (key, value) in query {
                    get = get.query(key, value);
                }
                if let Some(token) = token {
                    get = get.header("PRIVATE-TOKEN", token);
                }
                (get.call(), &**path)
            }
            Request::Graphql { body } => {
                let mut post = self
                    .agent
                    .post(&self.graphql_url)
                    .header("content-type", "application/json");
                if let Some(token) = token {
                    post = post.header("PRIVATE-TOKEN", token);
                }
                (post.send(&body[..]), "/api/graphql")
            }
        };
        debug!(endpoint, path, "GitLab call");
        let mut response = match sent {
            Ok(response) => response,
            Err(e) => return Err(self.no_answer(endpoint, e)),
        };
        // An answer, whatever it says: GitLab is not hanging. The calls still out besides this
        // one are what the rate-limit headers may not count yet.
        let others = {
            let mut progress = self.progress();
            progress.last_answer = Some(Instant::now());
            progress.in_flight.saturating_sub(1)
        };
        let status = response.status().as_u16();
        let date = response
            .headers()
            .get("date")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_http_date);
        if let Some(date) = date {
            clock.fetch_min(date, Ordering::Relaxed);
        }
        if let Some(limit) = RateLimit::from_headers(response.headers()) {
            self.pacer.observe(limit, date, others);
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
                let content_type = header("content-type").unwrap_or_default();
                if !content_type.is_empty() && !content_type.contains("json") {
                    let detail = format!(
                        "expected JSON, got {} (is a proxy or a sign-in page in front of the API?)",
                        content_type.split(';').next().unwrap_or_default()
                    );
                    return Err(self.failed(Error::Decode { endpoint, detail }, Retry::Never));
                }
                let page = PageInfo::from_headers(response.headers());
                let body = response
                    .body_mut()
                    .with_config()
                    .limit(MAX_BODY_BYTES)
                    .read_to_vec()
                    .map_err(|e| self.no_answer(endpoint, e))?;
                // Bytes that are not UTF-8 become U+FFFD first: one bad string then costs
                // only the value it is in (see `types`), not the whole answer.
                let text = String::from_utf8_lossy(&body);
                if let std::borrow::Cow::Owned(_) = text {
                    self.count_error(endpoint, "decode");
                    warn!(
                        endpoint,
                        path,
                        "an answer from GitLab has bytes that are not UTF-8; they are read as U+FFFD"
                    );
                }
                let body = serde_json::from_str(&text).map_err(|e| {
                    // serde quotes decoded values in its messages (of any length).
                    let detail = log_line(&e.to_string(), 300);
                    self.failed(Error::Decode { endpoint, detail }, Retry::Never)
                })?;
                Ok(Reply { body, page })
            }
            300..=399 => {
                // Shown decoded (a percent-encoded token is still the token), then redacted,
                // then cut; without its query, which may carry anything.
                let location = header("location").map_or_else(
                    || "nowhere".to_owned(),
                    |l| {
                        let l = l.split(['?', '#']).next().unwrap_or_default();
                        let decoded = percent_encoding::percent_decode_str(l).decode_utf8_lossy();
                        log_line(&decoded, 200)
                    },
                );
                let error = Error::Redirect {
                    endpoint,
                    status,
                    location,
                };
                Err(self.failed(error, Retry::Never))
            }
            401 => Err(self.failed(Error::Unauthorized { endpoint }, Retry::Never)),
            _ => {
                // `Retry-After: 0` gives no pause: back off as when the header is missing.
                let retry_after = header("retry-after")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .filter(|secs| *secs > 0)
                    .map(Duration::from_secs);
                let body = response
                    .body_mut()
                    .with_config()
                    .limit(MAX_ERROR_BODY_BYTES)
                    .read_to_vec()
                    .unwrap_or_default();
                let message = error_message(&body);
                // GitLab giving up on a GraphQL query for time: asking the same again would
                // only time out again; the collector asks for less instead.
                let gave_up = endpoint == super::endpoint::GRAPHQL && message.contains("timed out");
                let retry = match status {
                    429 => Retry::Throttled(retry_after),
                    503 if gave_up => Retry::Never,
                    500 | 502 | 503 | 504 => Retry::Backoff,
                    _ => Retry::Never,
                };
                let error = Error::Status {
                    endpoint,
                    status,
                    message,
                };
                Err(self.failed(error, retry))
            }
        }
    }

    /// A failure without a usable answer.
    fn no_answer(&self, endpoint: &'static str, e: ureq::Error) -> Failure {
        let (error, retry) = match e {
            ureq::Error::Timeout(_) => (
                Error::Timeout {
                    endpoint,
                    after: self.timeout,
                },
                // A GraphQL query that took too long is asked again smaller, by the collector.
                if endpoint == super::endpoint::GRAPHQL {
                    Retry::Never
                } else {
                    Retry::Timeout
                },
            ),
            ureq::Error::BodyExceedsLimit(limit) => {
                (Error::TooLarge { endpoint, limit }, Retry::Never)
            }
            other => (
                Error::Transport {
                    endpoint,
                    detail: redact(&other.to_string()).into_owned(),
                },
                Retry::Backoff,
            ),
        };
        self.failed(error, retry)
    }

    /// A failed attempt, counted under its reason (unless it is an answer collectors expect,
    /// such as 404 for a deleted project or 403 for a guest).
    fn failed(&self, error: Error, retry: Retry) -> Failure {
        if let Some(reason) = error.reason() {
            if reason == "decode" || reason == "too_large" {
                warn!(%error, "unreadable answer from GitLab");
            }
            self.count_error(error.endpoint(), reason);
        }
        Failure { error, retry }
    }

    fn count_error(&self, endpoint: &'static str, reason: &'static str) {
        self.counters
            .errors
            .get_or_create(&ApiErrorLabels { endpoint, reason })
            .inc();
        *self
            .counters
            .errors_by_reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(reason)
            .or_default() += 1;
    }
}

/// Backoff before retry `n` (0-based): `first`, twice that, … up to `max`, plus up to 50 %
/// jitter so that calls failing together do not come back together.
fn backoff(first: Duration, n: u32, max: Duration) -> Duration {
    let base = first
        .saturating_mul(2u32.saturating_pow(n.min(20)))
        .min(max);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    base + base.mul_f64(f64::from(nanos % 1000) / 2000.0)
}

/// GitLab's error message from an error body: `message` (a string or an object), `error` and
/// `error_description`, or the start of a plain-text body; decoded, then redacted (a token
/// echoed with JSON escapes is the token once decoded), then shortened to one safe line (after
/// redacting: a cut through the token would leave its first part).
pub(crate) fn error_message(body: &[u8]) -> String {
    // JSON is always shown decoded, whatever its shape: a `\uXXXX`-escaped token is only the
    // token, for redaction to find, once decoded.
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
                _ => serde_json::Value::Object(map).to_string(),
            }
        }
        Ok(serde_json::Value::String(text)) => text,
        Ok(other) => other.to_string(),
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    let line = log_line(&text, 200);
    if line.is_empty() {
        "(empty body)".to_owned()
    } else {
        line
    }
}

/// Percent-encodes one path segment (a project path, a branch name): everything but RFC 3986
/// unreserved characters, so `acme/api` becomes `acme%2Fapi` as GitLab requires; and the dots
/// of a segment that is only `.` or `..`, which would otherwise be resolved away on the way
/// (`branches/..` means `branches/`'s parent to any proxy that normalizes paths).
pub fn encode_segment(segment: &str) -> String {
    if segment == "." || segment == ".." {
        return "%2E".repeat(segment.len());
    }
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
        assert_eq!(encode_segment(".."), "%2E%2E");
        assert_eq!(encode_segment("."), "%2E");
        assert_eq!(encode_segment("..."), "...");
        assert_eq!(encode_segment("v1.0"), "v1.0");
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
        // Any JSON is shown decoded.
        assert_eq!(
            error_message(br#"{"detail":"\u0061b"}"#),
            r#"{"detail":"ab"}"#
        );
        assert_eq!(error_message(br#"["\u0061b"]"#), r#"["ab"]"#);
        assert_eq!(error_message(br#""\u0061b""#), "ab");
        assert_eq!(
            error_message("a\u{2028}b\u{202E}c\u{2066}d".as_bytes()),
            "a b c d"
        );
        assert_eq!(error_message(b""), "(empty body)");
        assert_eq!(error_message(&[b'x'; 1000]).len(), 200);
    }

    #[test]
    fn backoff_grows() {
        let ms = Duration::from_millis;
        let b = |n| backoff(BACKOFF, n, Duration::MAX);
        assert!(b(0) >= ms(200) && b(0) <= ms(300));
        assert!(b(1) >= ms(400) && b(1) <= ms(600));
        let t = |n| backoff(THROTTLE_BACKOFF, n, MAX_THROTTLE_BACKOFF);
        assert!(t(3) >= ms(8000) && t(3) <= ms(12000));
        assert!(t(40) >= ms(60_000) && t(40) <= ms(90_000), "capped");
    }

    #[test]
    fn debug_hides_the_token() {
        let client = Client::new(
            ClientOptions {
                base_url: "https://gitlab.example.com".to_owned(),
                token: Some(Secret::new("glpat-do-not-print")),
                concurrency: 2,
                request_timeout: Duration::from_secs(1),
                max_requests_per_second: 0.0,
                ca_certs: Vec::new(),
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
