//! Fault injection of the fake GitLab: [`Faults`] (what goes wrong, and on which route), the
//! deterministic choice of the requests that get a fault, hangs, and the injected answers' bodies.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::watch;

use super::api::Reply;
use super::graphql::Knobs;
use super::routes::Route;

/// What the fake does wrong, settable at any time with
/// [`FakeGitlab::set_faults`](super::FakeGitlab::set_faults) (default: nothing).
///
/// Rates are fractions of the *affected* requests (those on [`route`](Self::route)), clamped to
/// `0.0..=1.0` (NaN counts as 0). Selection is deterministic: the affected requests are numbered
/// `n = 0, 1, 2, ...` from the last `set_faults`, and a kind of fault with rate `r` goes to
/// request `n` when `floor((n + 1) * r)` exceeds the number of faults of that kind injected so
/// far. Alone, a rate of 0.05 faults exactly requests 19, 39, 59, ... (every 20th). The kinds are
/// tried in the order hang, reset, server error, endpoint throttle; when an earlier kind takes a
/// request, a later kind that was due gets the next request instead (so the counts stay exact
/// as long as the rates add up to at most 1).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Only requests on this route template (e.g. `"/projects/:id/merge_requests"`, as
    /// [`FakeGitlab::requests`](super::FakeGitlab::requests) uses, `"unknown"` included) are
    /// affected; `None` = every route.
    pub route: Option<String>,
    /// Fraction of affected requests answered with a 5xx instead, rotating 500
    /// (`{"message":"500 Internal Server Error"}`, JSON), 502 (nginx's HTML page) and 503
    /// (`no healthy upstream`, plain text).
    pub server_error_rate: f64,
    /// Fraction of affected requests answered with GitLab's application-limit 429: JSON
    /// `{"message":{"error":"This endpoint has been requested too many times. Try again later."}}`,
    /// with no `Retry-After` and no `RateLimit-*` headers.
    pub endpoint_throttle_rate: f64,
    /// Fraction of affected requests whose connection is closed without any answer.
    pub reset_rate: f64,
    /// Successful (2xx) answers on the affected routes get this body instead.
    pub malformed: Option<Malformed>,
    /// Requests on affected routes get no answer until `set_faults` stops hanging their route,
    /// or the fake shuts down (the connection is then closed without an answer).
    pub hang: bool,
    /// Every affected request is answered `302 Found` with `Location: <this base URL><the
    /// request's path and query>` (GitLab moved, or a proxy sends clients elsewhere).
    pub redirect_to: Option<String>,
    /// Every affected request is answered `400` with a JSON body that quotes the request's
    /// `PRIVATE-TOKEN` with each character written as a `\uXXXX` escape (a proxy or an error
    /// page reflecting request headers): the token is only the token once the JSON is decoded.
    pub echo_token: bool,
    /// A proxy in front of GitLab that resolves `.` and `..` segments of every request path
    /// before forwarding it (RFC 3986 §5.2.4, as nginx does with a URI in `proxy_pass`, or
    /// Envoy with `normalize_path`): `/projects/1/repository/branches/..` reaches GitLab as
    /// `/projects/1/repository/`. Percent-encoded dots (`%2E`) are left alone. Every route.
    pub normalize_paths: bool,
    /// A broken proxy or cache in front of GitLab that makes every affected list endless:
    /// offset-paginated lists answer every page with page 1's items, GitLab's `X-Total` kept,
    /// and `X-Next-Page: <page + 1>` (a cache that drops the `page` parameter); keyset lists
    /// (`GET /projects?pagination=keyset`), once past the real projects, invent projects with
    /// growing ids (copies of the last real one, merge requests disabled, empty repository, so
    /// they cost no call of their own) and always link to a next page.
    pub endless: bool,
    /// Fields of projects' JSON replaced by raw JSON text, in successful answers on the
    /// affected routes (as real GitLab answers were found to carry: a negative storage size,
    /// integers above `u64`, bytes that are not UTF-8, lone surrogates, a null commit id).
    pub corrupt: Vec<Corruption>,
    /// `/api/graphql` answers `404` `{"message":"404 Not Found"}`, as an instance (or a proxy)
    /// without the GraphQL endpoint. Applies when [`route`](Self::route) is `None` or
    /// `"/api/graphql"`, like the other GraphQL faults.
    pub graphql_disabled: bool,
    /// A complexity limit below GitLab's (250 signed in, 200 anonymous, 300 administrators):
    /// queries scoring more are refused with GitLab's "Query has complexity of N, which exceeds
    /// max complexity of M" (forcing a client to split its batches).
    pub graphql_max_complexity: Option<u32>,
    /// A GraphQL query that does more work than this, counted as the project nodes it resolves
    /// (connection pages and single lookups together) plus the merge-request counts it runs,
    /// answers as GitLab does when its database gives up on a query:
    /// `503` `{"errors":[{"message":"Request timed out. Please try a less complex query or a
    /// smaller set of records."}]}`.
    pub graphql_timeout_above: Option<usize>,
    /// Every `mergeRequests { count }` of this project id answers a field error ("The resource
    /// that you are attempting to access does not exist or you don't have permission to perform
    /// this action"): the answer is partial, `data` with those `mergeRequests` null (`count` is
    /// non-null) and an `errors` entry with each one's `path`.
    pub graphql_field_error: Option<u64>,
    /// `repository { tree { lastCommit } }` of this project id answers the same field error (as
    /// when the project's Gitaly shard is unavailable): a field of a listing's page, so the page
    /// is partial for that one project.
    pub graphql_last_commit_error: Option<u64>,
    /// A field this GitLab lacks (as an older version lacks a newer field): a query selecting it
    /// is refused as graphql-ruby's validation refuses it, HTTP 200
    /// `{"errors":[{"message":"Field 'name' doesn't exist on type 'Type'"}]}`, no data.
    pub graphql_unknown_field: Option<&'static str>,
}

/// The GraphQL faults in force for one request.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct GraphqlFaults {
    pub(crate) disabled: bool,
    pub(crate) knobs: Knobs,
}

/// The answer of [`Faults::graphql_disabled`].
pub(crate) fn graphql_disabled() -> Reply {
    Reply {
        status: 404,
        content_type: "application/json",
        headers: Vec::new(),
        body: br#"{"message":"404 Not Found"}"#.to_vec(),
    }
}

/// One field of one project's JSON replaced (see [`Faults::corrupt`]): in a list, in each
/// record that is that project (an object with its `id` and a `path_with_namespace`); in an
/// answer about the project itself (`/projects/<id>` and below, such as its branch), in the
/// answer's top object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corruption {
    /// The project.
    pub project_id: u64,
    /// The field, as a JSON pointer within the record or answer (`/statistics/repository_size`,
    /// `/commit/id`); nothing happens where its parent object is missing.
    pub pointer: String,
    /// The raw JSON text put there: anything, text that is not UTF-8 included.
    pub raw: Vec<u8>,
}

impl Corruption {
    /// `pointer` of project `project_id` set to `raw`.
    pub fn new(project_id: u64, pointer: &str, raw: impl Into<Vec<u8>>) -> Corruption {
        Corruption {
            project_id,
            pointer: pointer.to_owned(),
            raw: raw.into(),
        }
    }
}

/// A broken body for successful answers (see [`Faults::malformed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Malformed {
    /// Not JSON at all: `{"id": 1, "name": ` (truncated), as `application/json`.
    Truncated,
    /// Valid JSON of the wrong shape: the string `"surprise"`, as `application/json`.
    WrongShape,
    /// Bytes that are not UTF-8: `[{"name":"\xff\xfe"}]`, as `application/json`.
    InvalidUtf8,
    /// A valid JSON array `[0,0,...,0]` (plus one trailing space when needed) of exactly
    /// `n + 1` bytes (3 bytes for `n` < 2), as `application/json`.
    Oversized(usize),
    /// `text/html`: an SSO proxy's sign-in page instead of GitLab's answer (GitLab's headers,
    /// pagination and `RateLimit-*` included, are dropped).
    Html,
}

/// The answer of the application-limit 429.
pub(crate) const ENDPOINT_THROTTLE_BODY: &str =
    r#"{"message":{"error":"This endpoint has been requested too many times. Try again later."}}"#;

/// The answer of an injected 500.
pub(crate) const SERVER_ERROR_500_BODY: &str = r#"{"message":"500 Internal Server Error"}"#;

/// nginx's own 502 page.
pub(crate) const BAD_GATEWAY_502_BODY: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";

/// Envoy's 503 when no backend is up.
pub(crate) const UNAVAILABLE_503_BODY: &str = "no healthy upstream";

/// The sign-in page of [`Malformed::Html`].
pub(crate) const SIGN_IN_PAGE: &str = "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>Sign In</title></head>\n<body>\n<h1>Sign in to continue</h1>\n<form method=\"GET\" action=\"/oauth2/start\">\n<input type=\"hidden\" name=\"rd\" value=\"/\">\n<button type=\"submit\">Sign in with SSO</button>\n</form>\n</body>\n</html>\n";

impl Faults {
    /// True when requests on `route` are affected.
    fn affects(&self, route: Route) -> bool {
        self.route.as_deref().is_none_or(|t| t == route.template())
    }

    fn hangs(&self, route: Route) -> bool {
        self.hang && self.affects(route)
    }
}

/// What to do with one request once hold, latency and any hang are over.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Answer normally; a 2xx answer gets `malformed` instead (see [`malform`]), is made
    /// endless with `endless` (see [`Endless`]) and has `corrupt` applied (see [`corrupt`]).
    /// `counted`: the request already counts as faulted (it hung), so a malformed body must not
    /// count it again.
    Answer {
        malformed: Option<Malformed>,
        endless: bool,
        corrupt: Vec<Corruption>,
        counted: bool,
    },
    /// Close the connection without an answer.
    Drop,
    /// Answer this instead (5xx or the application-limit 429); the API is not asked.
    Reply(Reply),
}

/// Per-kind progress since the last `set_faults`.
#[derive(Debug, Default)]
struct Sequence {
    /// Affected requests seen (the next one's number).
    next: u64,
    resets: u64,
    server_errors: u64,
    throttles: u64,
}

/// Fault state shared by the handle and every connection.
#[derive(Debug)]
pub(crate) struct FaultState {
    /// The current faults; a watch so that hung requests see changes.
    current: watch::Sender<Faults>,
    /// Locked before `current` is replaced or read for a verdict, so both stay consistent.
    sequence: Mutex<Sequence>,
    /// True once the server shuts down: hung requests end (without an answer).
    closing: watch::Sender<bool>,
    /// Requests that got a fault of any kind since start or `reset_injected`.
    injected: AtomicU64,
    /// The last real project an endless keyset list copied, for pages past every real one.
    phantom: Mutex<Option<serde_json::Value>>,
}

impl Default for FaultState {
    fn default() -> Self {
        FaultState {
            current: watch::Sender::new(Faults::default()),
            sequence: Mutex::new(Sequence::default()),
            closing: watch::Sender::new(false),
            injected: AtomicU64::new(0),
            phantom: Mutex::new(None),
        }
    }
}

impl FaultState {
    fn sequence(&self) -> MutexGuard<'_, Sequence> {
        self.sequence.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the faults and restarts the numbering of affected requests. Releases hung
    /// requests whose route no longer hangs.
    ///
    /// # Panics
    /// When `faults.route` names no route template.
    pub(crate) fn set(&self, faults: Faults) {
        if let Some(t) = faults.route.as_deref() {
            let known = Route::ALL.iter().any(|r| r.template() == t);
            assert!(
                known,
                "Faults::route {t:?} is not a route template; use one of {:?}",
                Route::ALL.map(Route::template)
            );
        }
        let mut seq = self.sequence();
        *seq = Sequence::default();
        self.current.send_replace(faults);
    }

    /// The GraphQL faults for a request on `/api/graphql` (none when the faults' route is
    /// another one).
    pub(crate) fn graphql(&self) -> GraphqlFaults {
        let f = self.current.borrow();
        if !f.affects(Route::Graphql) {
            return GraphqlFaults::default();
        }
        GraphqlFaults {
            disabled: f.graphql_disabled,
            knobs: Knobs {
                max_complexity: f.graphql_max_complexity,
                timeout_above: f.graphql_timeout_above,
                field_error: f.graphql_field_error,
                last_commit_error: f.graphql_last_commit_error,
                unknown_field: f.graphql_unknown_field,
            },
        }
    }

    /// True when request paths are to be normalized first (see [`Faults::normalize_paths`]).
    pub(crate) fn normalizes_paths(&self) -> bool {
        self.current.borrow().normalize_paths
    }

    /// Requests that got a fault since start or the last [`reset_injected`](Self::reset_injected).
    pub(crate) fn injected(&self) -> u64 {
        self.injected.load(Ordering::SeqCst)
    }

    pub(crate) fn reset_injected(&self) {
        self.injected.store(0, Ordering::SeqCst);
    }

    /// Counts one more faulted request.
    pub(crate) fn count(&self) {
        self.injected.fetch_add(1, Ordering::SeqCst);
    }

    /// Ends every hang, now and later (the server is shutting down).
    pub(crate) fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Waits out a hang on `route`, then decides the request's fault. Counts the request in
    /// [`injected`](Self::injected) once if it got (or will get) any fault but a malformed
    /// body, which the caller counts when it applies one.
    pub(crate) async fn verdict(
        &self,
        route: Route,
        path_and_query: &str,
        token: Option<&str>,
    ) -> Verdict {
        let mut faults = self.current.subscribe();
        let hung = faults.borrow_and_update().hangs(route);
        if hung {
            self.count();
            if !self.wait_unhung(faults, route).await {
                return Verdict::Drop;
            }
        }
        let mut verdict = self.pick(route, path_and_query, token);
        match &mut verdict {
            Verdict::Answer { counted, .. } => *counted = hung,
            _ if !hung => self.count(),
            _ => {}
        }
        verdict
    }

    /// True once `route` no longer hangs; false when the server shuts down first.
    async fn wait_unhung(&self, mut faults: watch::Receiver<Faults>, route: Route) -> bool {
        let mut closing = self.closing.subscribe();
        tokio::select! {
            biased;
            () = wait_closing(&mut closing) => false,
            () = wait_unhung(&mut faults, route) => true,
        }
    }

    /// Numbers one request and picks its fault (hangs excluded).
    fn pick(&self, route: Route, path_and_query: &str, token: Option<&str>) -> Verdict {
        let mut seq = self.sequence();
        let faults = self.current.borrow();
        if !faults.affects(route) {
            return Verdict::Answer {
                malformed: None,
                endless: false,
                corrupt: Vec::new(),
                counted: false,
            };
        }
        let n = seq.next;
        seq.next += 1;
        if let Some(base) = &faults.redirect_to {
            let location = format!("{}{path_and_query}", base.trim_end_matches('/'));
            Verdict::Reply(Reply {
                status: 302,
                content_type: "text/html",
                headers: vec![("Location", location.clone())],
                body: format!(
                    "<html><body>You are being <a href=\"{location}\">redirected</a>.</body></html>"
                )
                .into_bytes(),
            })
        } else if faults.echo_token {
            Verdict::Reply(echo(token.unwrap_or_default()))
        } else if due(n, faults.reset_rate, seq.resets) {
            seq.resets += 1;
            Verdict::Drop
        } else if due(n, faults.server_error_rate, seq.server_errors) {
            let nth = seq.server_errors;
            seq.server_errors += 1;
            Verdict::Reply(server_error(nth))
        } else if due(n, faults.endpoint_throttle_rate, seq.throttles) {
            seq.throttles += 1;
            Verdict::Reply(endpoint_throttle())
        } else {
            Verdict::Answer {
                malformed: faults.malformed.clone(),
                endless: faults.endless,
                corrupt: faults.corrupt.clone(),
                counted: false,
            }
        }
    }
}

/// Resolves once the server shuts down. (A helper so the watch's `Ref` never lives across an
/// await, which keeps the request future `Send`.)
async fn wait_closing(closing: &mut watch::Receiver<bool>) {
    // Err only if the sender is gone, which cannot happen while the state lives.
    let _ = closing.wait_for(|c| *c).await;
}

/// Resolves once the faults no longer hang `route`.
async fn wait_unhung(faults: &mut watch::Receiver<Faults>, route: Route) {
    let _ = faults.wait_for(|f| !f.hangs(route)).await;
}

/// Parts per billion: rates compare in integers, so 0.29 of 100 requests is exactly 29.
const SCALE: u128 = 1_000_000_000;

/// True when request `n` (0-based) should get a fault of a kind at `rate`, `done` of which were
/// injected so far: `floor((n + 1) * rate) > done`.
fn due(n: u64, rate: f64, done: u64) -> bool {
    let rate = if rate.is_nan() {
        0.0
    } else {
        rate.clamp(0.0, 1.0)
    };
    // In 0..=SCALE after the clamp, so the cast is exact.
    let ppb = (rate * 1e9).round() as u128;
    (u128::from(n) + 1) * ppb / SCALE > u128::from(done)
}

/// The `nth` (0-based) injected server error: 500, 502, 503, 500, ...
fn server_error(nth: u64) -> Reply {
    let (status, content_type, body) = match nth % 3 {
        0 => (500, "application/json", SERVER_ERROR_500_BODY),
        1 => (502, "text/html", BAD_GATEWAY_502_BODY),
        _ => (503, "text/plain", UNAVAILABLE_503_BODY),
    };
    Reply {
        status,
        content_type,
        headers: Vec::new(),
        body: body.as_bytes().to_vec(),
    }
}

/// A 400 quoting `token` in `\uXXXX` escapes (see [`Faults::echo_token`]).
fn echo(token: &str) -> Reply {
    let escaped: String = token
        .chars()
        .map(|c| format!("\\u{:04x}", c as u32))
        .collect();
    Reply {
        status: 400,
        content_type: "application/json",
        headers: Vec::new(),
        body: format!(r#"{{"message":"400 Bad request - header PRIVATE-TOKEN: {escaped} is not accepted here"}}"#)
            .into_bytes(),
    }
}

/// GitLab's application rate limiter: no informational headers.
fn endpoint_throttle() -> Reply {
    Reply {
        status: 429,
        content_type: "application/json",
        headers: Vec::new(),
        body: ENDPOINT_THROTTLE_BODY.as_bytes().to_vec(),
    }
}

/// Endless lists (see [`Faults::endless`]): how a request is asked of the API, and how its
/// answer is then rewritten.
#[derive(Debug)]
pub(crate) struct Endless {
    /// The page the client asked for (offset lists), answered as page 1.
    asked_page: Option<u64>,
    keyset: bool,
}

impl Endless {
    /// For a request with `query`: what to ask of the API instead (page 1, for an offset
    /// list), and what to remember for [`Endless::rewrite`].
    pub(crate) fn ask(query: Option<&str>) -> (Option<String>, Endless) {
        let parsed = super::paginate::Query::parse(query);
        if parsed.get("pagination") == Some("keyset") {
            let endless = Endless {
                asked_page: None,
                keyset: true,
            };
            return (query.map(str::to_owned), endless);
        }
        let asked_page = parsed.int("page").ok().flatten().map(|p| p.max(1) as u64);
        let query = query.map(|q| {
            q.split('&')
                .filter(|p| !p.starts_with("page="))
                .chain(["page=1"])
                .collect::<Vec<_>>()
                .join("&")
        });
        let endless = Endless {
            asked_page: Some(asked_page.unwrap_or(1)),
            keyset: false,
        };
        (query, endless)
    }

    /// The API's answer to the rewritten request, made endless (2xx list answers only).
    pub(crate) fn rewrite(
        &self,
        mut reply: Reply,
        base: &str,
        query: Option<&str>,
        state: &FaultState,
    ) -> Reply {
        if !(200..300).contains(&reply.status) {
            return reply;
        }
        let Ok(serde_json::Value::Array(mut items)) =
            serde_json::from_slice::<serde_json::Value>(&reply.body)
        else {
            return reply;
        };
        if let Some(page) = self.asked_page {
            reply
                .headers
                .retain(|(k, _)| !matches!(*k, "X-Page" | "X-Next-Page" | "Link"));
            reply.headers.push(("X-Page", page.to_string()));
            reply.headers.push(("X-Next-Page", (page + 1).to_string()));
            return reply;
        }
        let q = super::paginate::Query::parse(query);
        let per_page = q.int("per_page").ok().flatten().unwrap_or(20).clamp(1, 100) as usize;
        if !self.keyset || items.len() >= per_page {
            return reply; // a full page of real projects: nothing to invent yet
        }
        let after = q.int("id_after").ok().flatten().unwrap_or(0).max(0) as u64;
        let mut last = items
            .iter()
            .filter_map(|p| p["id"].as_u64())
            .max()
            .unwrap_or(after)
            .max(after);
        let template = match items.last().cloned() {
            Some(real) => real,
            None => state
                .phantom
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
                .unwrap_or_else(|| serde_json::json!({})),
        };
        *state.phantom.lock().unwrap_or_else(|e| e.into_inner()) = Some(template.clone());
        while items.len() < per_page {
            last += 1;
            let mut phantom = template.clone();
            phantom["id"] = last.into();
            phantom["name"] = format!("phantom {last}").into();
            phantom["path"] = format!("phantom-{last}").into();
            phantom["path_with_namespace"] = format!("phantoms/phantom-{last}").into();
            phantom["merge_requests_enabled"] = false.into();
            phantom["merge_requests_access_level"] = "disabled".into();
            phantom["empty_repo"] = true.into();
            items.push(phantom);
        }
        let link = q.href(base, "/api/v4/projects", &[("id_after", last.to_string())]);
        reply.headers.retain(|(k, _)| *k != "Link");
        reply
            .headers
            .push(("Link", format!("<{link}>; rel=\"next\"")));
        reply.body = serde_json::Value::Array(items).to_string().into_bytes();
        reply
    }
}

/// `reply` (to a request on `path`) with the corruptions that apply to it (2xx JSON answers
/// only). Each replaced field first holds a marker string, then the serialized answer has the
/// marker replaced by the raw bytes.
pub(crate) fn corrupt(mut reply: Reply, path: &str, corruptions: &[Corruption]) -> Reply {
    if corruptions.is_empty() || !(200..300).contains(&reply.status) {
        return reply;
    }
    let Ok(mut body) = serde_json::from_slice::<serde_json::Value>(&reply.body) else {
        return reply;
    };
    let about = |id: u64| {
        let prefix = format!("/api/v4/projects/{id}");
        path == prefix || path.starts_with(&format!("{prefix}/"))
    };
    let mut raws = Vec::new();
    for c in corruptions {
        let (parent, key) = c.pointer.rsplit_once('/').unwrap_or(("", &c.pointer));
        let mut targets: Vec<&mut serde_json::Value> = match &mut body {
            serde_json::Value::Array(items) => items
                .iter_mut()
                .filter(|r| {
                    r["id"].as_u64() == Some(c.project_id) && r.get("path_with_namespace").is_some()
                })
                .collect(),
            top @ serde_json::Value::Object(_) if about(c.project_id) => vec![top],
            _ => Vec::new(),
        };
        for target in targets.iter_mut() {
            if let Some(serde_json::Value::Object(fields)) = target.pointer_mut(parent) {
                fields.insert(
                    key.to_owned(),
                    format!("\u{1}corrupt-{}\u{1}", raws.len()).into(),
                );
                raws.push(&c.raw);
            }
        }
    }
    let mut bytes = body.to_string().into_bytes();
    for (n, raw) in raws.iter().enumerate() {
        let marker = format!("\"\\u0001corrupt-{n}\\u0001\"");
        if let Some(at) = bytes
            .windows(marker.len())
            .position(|w| w == marker.as_bytes())
        {
            bytes.splice(at..at + marker.len(), raw.iter().copied());
        }
    }
    reply.body = bytes;
    reply
}

/// `path` with its `.` and `..` segments resolved (RFC 3986 §5.2.4), as a normalizing proxy
/// forwards it: `/a/b/../c` is `/a/c`, `/a/b/..` is `/a/`. Encoded dots are not dots.
pub(crate) fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let mut trailing = false;
    for segment in path.split('/').skip(1) {
        trailing = false;
        match segment {
            "." => trailing = true,
            ".." => {
                out.pop();
                trailing = true;
            }
            s => out.push(s),
        }
    }
    let mut resolved = String::with_capacity(path.len());
    for segment in &out {
        resolved.push('/');
        resolved.push_str(segment);
    }
    if trailing || resolved.is_empty() {
        resolved.push('/');
    }
    resolved
}

/// `reply` with a malformed body when it is a 2xx; `None` (keep it) otherwise.
pub(crate) fn malform(reply: &Reply, kind: &Malformed) -> Option<Reply> {
    if !(200..300).contains(&reply.status) {
        return None;
    }
    let json = |body: Vec<u8>| Reply {
        status: reply.status,
        content_type: "application/json",
        headers: reply.headers.clone(),
        body,
    };
    Some(match kind {
        Malformed::Truncated => json(br#"{"id": 1, "name": "#.to_vec()),
        Malformed::WrongShape => json(br#""surprise""#.to_vec()),
        Malformed::InvalidUtf8 => json(b"[{\"name\":\"\xff\xfe\"}]".to_vec()),
        Malformed::Oversized(n) => json(oversized(*n)),
        Malformed::Html => Reply {
            status: 200,
            content_type: "text/html",
            headers: Vec::new(),
            body: SIGN_IN_PAGE.as_bytes().to_vec(),
        },
    })
}

/// `[0,0,...,0]`, space-padded to exactly `n + 1` bytes (`[0]` when `n` < 2).
fn oversized(n: usize) -> Vec<u8> {
    let zeros = (n / 2).max(1);
    let mut body = Vec::with_capacity(n.saturating_add(2));
    body.push(b'[');
    body.extend_from_slice(&b"0,".repeat(zeros - 1));
    body.extend_from_slice(b"0]");
    while body.len() <= n {
        body.push(b' ');
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{Answer, Client, date_of, get};
    use crate::{Corruption, FakeGitlab, Instance};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    async fn demo() -> FakeGitlab {
        FakeGitlab::start(Instance::demo()).await.expect("start")
    }

    fn on(route: &str) -> Faults {
        Faults {
            route: Some(route.to_string()),
            ..Faults::default()
        }
    }

    /// Polls `cond` for up to 2 s.
    async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
        for _ in 0..400 {
            if cond() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        cond()
    }

    fn has_date(a: &Answer, fake: &FakeGitlab) -> bool {
        date_of(a, fake.now()).is_some()
    }

    #[tokio::test]
    async fn five_percent_server_errors_are_exactly_five_of_a_hundred() {
        let fake = demo().await;
        fake.set_faults(Faults {
            server_error_rate: 0.05,
            ..Faults::default()
        });
        let token = fake.token();
        let mut c = Client::connect(&fake).await;
        let mut errors = Vec::new();
        for i in 0..100 {
            let a = c.send("GET", "/api/v4/version", Some(&token)).await;
            if a.status != 200 {
                assert!(has_date(&a, &fake), "Date on injected answers");
                errors.push((
                    i,
                    a.status,
                    a.header("content-type").map(str::to_string),
                    a.body,
                ));
            }
        }
        let ct = |s: &str| Some(s.to_string());
        assert_eq!(
            errors,
            vec![
                (
                    19,
                    500,
                    ct("application/json"),
                    SERVER_ERROR_500_BODY.to_string()
                ),
                (39, 502, ct("text/html"), BAD_GATEWAY_502_BODY.to_string()),
                (59, 503, ct("text/plain"), UNAVAILABLE_503_BODY.to_string()),
                (
                    79,
                    500,
                    ct("application/json"),
                    SERVER_ERROR_500_BODY.to_string()
                ),
                (99, 502, ct("text/html"), BAD_GATEWAY_502_BODY.to_string()),
            ]
        );
        assert_eq!(fake.faults_injected(), 5);
        assert_eq!(
            fake.requests("/version"),
            100,
            "faulted requests still count"
        );
        fake.reset_counts();
        assert_eq!(fake.faults_injected(), 0);
        fake.shutdown().await;
    }

    #[tokio::test]
    async fn endpoint_throttle_has_no_rate_limit_headers_nor_consumes_the_throttle() {
        let fake = demo().await;
        fake.with_instance(|i| i.rate_limit_per_minute = Some(1000));
        fake.set_faults(Faults {
            endpoint_throttle_rate: 1.0,
            ..Faults::default()
        });
        for _ in 0..3 {
            let a = get(&fake, "/api/v4/projects/42").await;
            assert_eq!(a.status, 429);
            assert_eq!(a.body, ENDPOINT_THROTTLE_BODY);
            assert_eq!(
                a.json()["message"]["error"],
                "This endpoint has been requested too many times. Try again later."
            );
            assert_eq!(a.header("content-type"), Some("application/json"));
            assert!(
                a.headers
                    .iter()
                    .all(|(k, _)| !k.starts_with("ratelimit-") && k != "retry-after"),
                "{:?}",
                a.headers
            );
            assert!(has_date(&a, &fake));
        }
        fake.set_faults(Faults::default());
        let ok = get(&fake, "/api/v4/projects/42").await;
        assert_eq!(ok.status, 200);
        assert_eq!(ok.header("ratelimit-observed"), Some("1"));
        assert_eq!(fake.faults_injected(), 3);
        fake.shutdown().await;
    }

    #[tokio::test]
    async fn route_filter_affects_only_that_route() {
        let fake = demo().await;
        fake.set_faults(Faults {
            server_error_rate: 1.0,
            ..on("/projects/:id")
        });
        assert_eq!(get(&fake, "/api/v4/projects/42").await.status, 500);
        assert_eq!(get(&fake, "/api/v4/projects/7").await.status, 502);
        assert_eq!(get(&fake, "/api/v4/version").await.status, 200);
        assert_eq!(
            get(&fake, "/api/v4/projects/42/merge_requests")
                .await
                .status,
            200
        );
        assert_eq!(get(&fake, "/api/v4/projects?per_page=1").await.status, 200);
        fake.set_faults(Faults {
            server_error_rate: 1.0,
            ..on("unknown")
        });
        assert_eq!(get(&fake, "/api/v4/nothing").await.status, 500);
        assert_eq!(get(&fake, "/api/v4/projects/42").await.status, 200);
        assert_eq!(fake.faults_injected(), 3);
        fake.shutdown().await;
    }

    #[tokio::test]
    async fn malformed_bodies() {
        let fake = demo().await;
        let route = "/projects/:id/merge_requests";
        let path = "/api/v4/projects/42/merge_requests?state=merged&per_page=2";
        let cases: [(Malformed, &[u8]); 3] = [
            (Malformed::Truncated, br#"{"id": 1, "name": "#),
            (Malformed::WrongShape, br#""surprise""#),
            (Malformed::InvalidUtf8, b"[{\"name\":\"\xff\xfe\"}]"),
        ];
        for (kind, body) in cases {
            fake.set_faults(Faults {
                malformed: Some(kind.clone()),
                ..on(route)
            });
            let a = get(&fake, path).await;
            assert_eq!((a.status, a.bytes.as_slice()), (200, body), "{kind:?}");
            assert_eq!(a.header("content-type"), Some("application/json"));
            assert_eq!(a.header("x-total"), Some("312"), "GitLab's headers stay");
            assert!(has_date(&a, &fake));
            // Other routes, and errors on the route, keep their bodies.
            let version = get(&fake, "/api/v4/version").await;
            assert!(version.json()["version"].is_string());
            let denied = get(&fake, "/api/v4/projects/77/merge_requests").await;
            assert_eq!(denied.status, 403);
            assert!(denied.json().is_object());
        }
        assert!(std::str::from_utf8(&get(&fake, path).await.bytes).is_err());

        fake.set_faults(Faults {
            malformed: Some(Malformed::Oversized(1000)),
            ..on(route)
        });
        let a = get(&fake, path).await;
        assert_eq!(a.bytes.len(), 1001);
        assert!(a.json().as_array().is_some_and(|l| l.len() == 500));
        fake.set_faults(Faults {
            malformed: Some(Malformed::Oversized(33 << 20)),
            ..on(route)
        });
        let a = get(&fake, path).await;
        assert_eq!(a.header("content-length"), Some("34603009"));
        assert_eq!(a.bytes.len(), (33 << 20) + 1);
        assert!(a.bytes.starts_with(b"[0,0,") && a.bytes.ends_with(b",0]"));

        fake.set_faults(Faults {
            malformed: Some(Malformed::Html),
            ..on(route)
        });
        let a = get(&fake, path).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.header("content-type"), Some("text/html"));
        assert_eq!(a.body, SIGN_IN_PAGE);
        assert_eq!(
            a.header("x-total"),
            None,
            "the proxy's answer, not GitLab's"
        );
        assert!(has_date(&a, &fake));
        // 3 + 1 of the first three kinds, 2 oversized, 1 HTML; 403s and other routes untouched.
        assert_eq!(fake.faults_injected(), 7);
        fake.shutdown().await;
    }

    #[tokio::test]
    async fn echo_quotes_the_token_in_escapes() {
        let fake = demo().await;
        fake.set_faults(Faults {
            echo_token: true,
            ..on("/projects")
        });
        let a = get(&fake, "/api/v4/projects").await;
        assert_eq!(a.status, 400);
        assert!(!a.body.contains(&fake.token()), "only escaped: {}", a.body);
        let message = a.json()["message"].as_str().unwrap().to_owned();
        assert!(message.contains(&fake.token()), "{message}");
        assert_eq!(get(&fake, "/api/v4/version").await.status, 200);
        fake.shutdown().await;
    }

    #[tokio::test]
    async fn endless_lists_announce_one_more_page_forever() {
        let fake = demo().await;
        fake.set_faults(Faults {
            endless: true,
            ..Faults::default()
        });
        // Offset: page 7 of 312 merged merge requests (4 pages of 100) is page 1 again.
        let path = "/api/v4/projects/42/merge_requests?state=merged&per_page=100&page=7";
        let a = get(&fake, path).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.header("x-next-page"), Some("8"));
        assert_eq!(a.header("x-page"), Some("7"));
        assert_eq!(a.header("x-total"), Some("312"));
        let first = get(
            &fake,
            "/api/v4/projects/42/merge_requests?state=merged&per_page=100",
        )
        .await;
        assert_eq!(a.json(), first.json());
        // Keyset: past the real projects, invented ones with growing ids, and a next link.
        let mut after = 0;
        let mut ids = Vec::new();
        for _ in 0..3 {
            let a = get(
                &fake,
                &format!("/api/v4/projects?pagination=keyset&order_by=id&sort=asc&per_page=100&membership=true&id_after={after}"),
            )
            .await;
            let link = a.header("link").expect("always a next page").to_owned();
            let page: Vec<u64> = a
                .json()
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["id"].as_u64().unwrap())
                .collect();
            assert_eq!(page.len(), 100);
            after = *page.last().unwrap();
            assert!(link.contains(&format!("id_after={after}")), "{link}");
            ids.extend(page);
        }
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "growing ids");
        fake.shutdown().await;
    }

    #[tokio::test]
    async fn corruptions_replace_one_field_of_one_project() {
        let fake = demo().await;
        fake.set_faults(Faults {
            corrupt: vec![
                Corruption::new(42, "/statistics/repository_size", "-1234"),
                Corruption::new(42, "/name", b"\"\xff\xfe\"".to_vec()),
                Corruption::new(21, "/commit/id", "null"),
            ],
            ..Faults::default()
        });
        let listing = "/api/v4/projects?membership=true&statistics=true&order_by=id&sort=asc&id_after=40&per_page=3";
        for path in [listing, "/api/v4/projects/42?statistics=true"] {
            let a = get(&fake, path).await;
            assert_eq!(a.status, 200);
            let text = String::from_utf8_lossy(&a.bytes).into_owned();
            assert_eq!(
                text.matches("\"repository_size\":-1234").count(),
                1,
                "{path}: {text}"
            );
            assert_eq!(
                text.matches("\"repository_size\":").count(),
                if path == listing { 3 } else { 1 }
            );
            assert!(a.bytes.windows(2).any(|w| w == b"\xff\xfe"));
        }
        let branch = get(&fake, "/api/v4/projects/21/repository/branches/main").await;
        assert!(branch.json()["commit"]["id"].is_null(), "{}", branch.body);
        let other = get(&fake, "/api/v4/projects/42/repository/branches/main").await;
        assert!(other.json()["commit"]["id"].is_string());
        fake.shutdown().await;
    }

    #[tokio::test]
    async fn reset_closes_the_connection_without_an_answer() {
        let fake = demo().await;
        fake.set_faults(Faults {
            reset_rate: 0.5,
            ..on("/user")
        });
        let token = fake.token();
        let mut c = Client::connect(&fake).await;
        assert_eq!(
            c.send("GET", "/api/v4/user", Some(&token)).await.status,
            200
        );
        assert_eq!(
            c.send("GET", "/api/v4/version", Some(&token)).await.status,
            200
        );
        assert!(
            c.send_expecting_close("GET", "/api/v4/user", Some(&token))
                .await
        );
        let mut c = Client::connect(&fake).await;
        assert_eq!(
            c.send("GET", "/api/v4/user", Some(&token)).await.status,
            200
        );
        assert!(
            c.send_expecting_close("GET", "/api/v4/user", Some(&token))
                .await
        );
        assert_eq!(fake.requests("/user"), 4);
        assert_eq!(fake.faults_injected(), 2);
        fake.shutdown().await;
    }

    #[tokio::test]
    async fn hang_waits_until_faults_are_cleared() {
        let fake = Arc::new(demo().await);
        fake.set_faults(Faults {
            hang: true,
            server_error_rate: 1.0,
            ..on("/version")
        });
        let f2 = Arc::clone(&fake);
        let hung = tokio::spawn(async move { get(&f2, "/api/v4/version").await.status });
        assert!(eventually(|| fake.faults_injected() == 1).await);
        // Other routes are served meanwhile.
        assert_eq!(get(&fake, "/api/v4/user").await.status, 200);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!hung.is_finished());
        assert_eq!(fake.pending(), 0, "a hang is not a hold");
        // Still hanging, still on /version: the request waits on.
        fake.set_faults(Faults {
            hang: true,
            ..on("/version")
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!hung.is_finished());
        fake.set_faults(Faults::default());
        assert_eq!(hung.await.ok(), Some(200));
        assert_eq!(fake.faults_injected(), 1);
        assert_eq!(fake.requests("/version"), 1);

        // Released into other faults: they apply, and the request counts once.
        fake.set_faults(Faults {
            hang: true,
            ..on("/version")
        });
        let f2 = Arc::clone(&fake);
        let hung = tokio::spawn(async move { get(&f2, "/api/v4/version").await.status });
        assert!(eventually(|| fake.faults_injected() == 2).await);
        fake.set_faults(Faults {
            endpoint_throttle_rate: 1.0,
            ..on("/version")
        });
        assert_eq!(hung.await.ok(), Some(429));
        assert_eq!(fake.faults_injected(), 2);
    }

    #[tokio::test]
    async fn hang_does_not_block_shutdown() {
        let fake = demo().await;
        fake.set_faults(Faults {
            hang: true,
            ..Faults::default()
        });
        let token = fake.token();
        let mut c = Client::connect(&fake).await;
        let hung = tokio::spawn(async move {
            c.send_expecting_close("GET", "/api/v4/version", Some(&token))
                .await
        });
        assert!(eventually(|| fake.faults_injected() == 1).await);
        let t0 = Instant::now();
        fake.shutdown().await;
        assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
        assert_eq!(hung.await.ok(), Some(true), "closed without an answer");
    }

    #[test]
    fn dot_segments_resolve_as_a_normalizing_proxy_does() {
        for (raw, resolved) in [
            (
                "/api/v4/projects/1/repository/branches/..",
                "/api/v4/projects/1/repository/",
            ),
            ("/api/v4/projects/./1", "/api/v4/projects/1"),
            ("/api/v4/projects/..", "/api/v4/"),
            ("/a/b/../../..", "/"),
            ("/api/v4/projects/%2E%2E", "/api/v4/projects/%2E%2E"),
            ("/api/v4/version", "/api/v4/version"),
        ] {
            assert_eq!(remove_dot_segments(raw), resolved, "{raw}");
        }
    }

    fn picks(rate: f64, requests: u64) -> Vec<u64> {
        let mut done = 0;
        (0..requests)
            .filter(|&n| {
                let hit = due(n, rate, done);
                done += u64::from(hit);
                hit
            })
            .collect()
    }

    #[test]
    fn rates_pick_evenly_spread_requests() {
        assert_eq!(picks(0.05, 100), vec![19, 39, 59, 79, 99]);
        assert_eq!(picks(0.29, 100).len(), 29);
        assert_eq!(picks(0.5, 6), vec![1, 3, 5]);
        assert_eq!(picks(1.0, 3), vec![0, 1, 2]);
        assert!(picks(0.0, 100).is_empty());
        assert!(picks(f64::NAN, 100).is_empty());
        assert_eq!(picks(7.0, 3).len(), 3, "clamped to 1");
        assert!(picks(-1.0, 100).is_empty());
    }

    #[test]
    fn kinds_taken_by_an_earlier_one_come_next() {
        let state = FaultState::default();
        state.set(Faults {
            server_error_rate: 0.5,
            endpoint_throttle_rate: 0.5,
            ..Faults::default()
        });
        let statuses: Vec<u16> = (0..6)
            .map(
                |_| match state.pick(Route::Version, "/api/v4/version", None) {
                    Verdict::Reply(r) => r.status,
                    Verdict::Answer { .. } => 200,
                    Verdict::Drop => 0,
                },
            )
            .collect();
        assert_eq!(statuses, vec![200, 500, 429, 502, 429, 503]);
        // `set` restarts the numbering.
        state.set(Faults {
            server_error_rate: 0.5,
            ..Faults::default()
        });
        assert!(matches!(
            state.pick(Route::Version, "/api/v4/version", None),
            Verdict::Answer {
                malformed: None,
                endless: false,
                corrupt: _,
                ..
            }
        ));
        assert!(
            matches!(state.pick(Route::Version, "/api/v4/version", None), Verdict::Reply(ref r) if r.status == 500)
        );
    }

    #[test]
    #[should_panic(expected = "not a route template")]
    fn unknown_route_template_panics() {
        FaultState::default().set(Faults {
            route: Some("/api/v4/projects".to_string()),
            ..Faults::default()
        });
    }

    #[test]
    fn oversized_is_valid_json_one_byte_over() {
        for n in [0, 1, 2, 3, 10, 1001] {
            let body = oversized(n);
            assert_eq!(body.len(), (n + 1).max(3), "{n}");
            let v: serde_json::Value = serde_json::from_slice(&body).expect("valid JSON");
            assert!(v.as_array().is_some_and(|a| a.iter().all(|x| x == 0)));
        }
    }
}
