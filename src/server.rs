//! The HTTP side: hyper http1 on a listener, the routes (metrics, landing page, health and
//! readiness, probes), the scrape's time budget, content negotiation (OpenMetrics or text 0.0.4),
//! gzip, TLS and basic auth (`--web.config.file`), connection limits in time, and graceful
//! shutdown.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Notify;
use tokio_io_timeout::TimeoutStream;
use tracing::{debug, info, warn};

use crate::cache::Cache;
use crate::cache::Source;
use crate::config::ListenAddress;
use crate::gitlab::Client;
use crate::metrics::ExporterMetrics;
use crate::render::exposition::{Compressed, ExpositionBody};
use crate::render::{Format, Process, Served, scrape_lines};
use web_config::WebConfig;

/// How long a client may take to send its request headers (and an idle keep-alive connection
/// may stay open).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long writing an answer may make no progress (the client reads nothing) before the
/// connection is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Accept queue length asked of the kernel (capped by `net.core.somaxconn`).
const LISTEN_BACKLOG: u32 = 1024;
/// How long shutdown waits for open connections to finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What the request handlers share.
#[derive(Debug)]
pub struct App {
    /// The probe targets, in multi-target mode.
    pub probes: Option<crate::probe::Probes>,
    /// The snapshot cache (and through it, the collector).
    pub cache: Cache,
    /// The exporter's own metrics.
    pub metrics: ExporterMetrics,
    /// Path of the metrics page.
    pub telemetry_path: String,
    /// One line describing the scope and the GitLab instance, for the landing page.
    pub description: String,
    /// The GitLab client, asked whether GitLab is answering when a collection runs late.
    pub client: Client,
    /// Subtracted from the scraper's timeout (`--web.timeout-offset`).
    pub timeout_offset: Duration,
    /// Longest wait for a collection (`--web.max-timeout`).
    pub max_timeout: Duration,
    /// The open connections and their cap (`--web.max-connections`).
    pub connections: Arc<Connections>,
}

/// How long a scrape may wait for a collection: the scraper's timeout
/// (`X-Prometheus-Scrape-Timeout-Seconds`) minus `offset` (half the timeout when it is shorter
/// than the offset), at most `max`; `max` when the scraper does not say.
pub fn scrape_budget(header: Option<&str>, offset: Duration, max: Duration) -> Duration {
    let Some(timeout) = header
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|t| t.is_finite() && *t > 0.0)
    else {
        return max;
    };
    let timeout = Duration::from_secs_f64(timeout.min(max.as_secs_f64() + offset.as_secs_f64()));
    let budget = if timeout > offset {
        timeout - offset
    } else {
        timeout / 2
    };
    budget.min(max)
}

/// Binds the listen address: `:port` means every interface (IPv6 and IPv4 where possible),
/// with an accept queue of [`LISTEN_BACKLOG`].
pub async fn bind(address: &ListenAddress) -> std::io::Result<TcpListener> {
    match &address.host {
        None => listen(SocketAddr::from(([0u16; 8], address.port)))
            .or_else(|_| listen(SocketAddr::from(([0u8; 4], address.port)))),
        Some(host) => {
            let mut last = None;
            for addr in tokio::net::lookup_host((host.as_str(), address.port)).await? {
                match listen(addr) {
                    Ok(listener) => return Ok(listener),
                    Err(e) => last = Some(e),
                }
            }
            Err(last.unwrap_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, format!("{host}: no address"))
            }))
        }
    }
}

/// A listener on `addr`. tokio's default accept queue (128) overflows under a burst of
/// connections, and the kernel then drops SYNs, which costs clients a 1 s retransmission
/// (benches/load.rs measured it).
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting and lets open
/// connections finish (up to 10 s). With `web`, connections speak TLS and requests must
/// authenticate as its configuration says.
pub async fn run(
    listener: TcpListener,
    app: Arc<App>,
    web: Option<Arc<WebConfig>>,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    let tls = web.as_ref().and_then(|w| w.tls_acceptor());
    let mut shutdown = std::pin::pin!(shutdown);
    let connections = Arc::clone(&app.connections);
    loop {
        // At the cap with no idle connection to close, new ones wait in the accept queue.
        tokio::select! {
            () = connections.room() => {}
            () = &mut shutdown => break,
        }
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // The room seen before accepting may be gone (the idle connection got a request): then
        // this one connection waits, accepted, until there is room again.
        let registration = loop {
            if let Some(registration) = connections.try_register() {
                break registration;
            }
            tokio::select! {
                () = connections.room() => {}
                () = &mut shutdown => return drain(&connections).await,
            }
        };
        // A client that stops reading an answer is dropped after WRITE_TIMEOUT, so it cannot
        // hold a connection, its task and the body being sent forever.
        let mut stream = TimeoutStream::new(stream);
        stream.set_write_timeout(Some(WRITE_TIMEOUT));
        let stream = Box::pin(stream);
        let (app, web, http, tls) = (Arc::clone(&app), web.clone(), http.clone(), tls.clone());
        tokio::spawn(async move {
            let registration = registration;
            let service = service_fn(|request| {
                let busy = registration.busy();
                let answer = handle(request, Arc::clone(&app), web.clone(), peer);
                async move {
                    let response = answer.await?;
                    Ok::<_, Infallible>(response.map(|body| Tracked { body, _busy: busy }))
                }
            });
            match tls {
                None => serve(&http, TokioIo::new(stream), service, &registration, peer).await,
                Some(acceptor) => {
                    // The handshake runs in the connection's task, with a deadline: a slow
                    // client must not hold up the accept loop. No request yet: closing to make
                    // room, or shutting down, drops it.
                    let handshake =
                        tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(stream));
                    let stream = tokio::select! {
                        handshake = handshake => match handshake {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(e)) => {
                                debug!(error = %e, %peer, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        },
                        () = registration.closing() => return,
                    };
                    serve(&http, TokioIo::new(stream), service, &registration, peer).await;
                }
            }
        });
    }
    drop(listener);
    drain(&connections).await;
}

/// Serves one connection until it ends. Asked to close (to make room, or for shutdown), it
/// shuts down gracefully: at once if idle, after the answer being sent otherwise.
async fn serve<I, S>(
    http: &http1::Builder,
    io: I,
    service: S,
    registration: &Registration,
    peer: SocketAddr,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S: hyper::service::HttpService<Incoming>,
    S::ResBody: 'static,
    <S::ResBody as Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let connection = http.serve_connection(io, service);
    let mut connection = std::pin::pin!(connection);
    let mut closing = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    debug!(error = %e, %peer, "connection ended with an error");
                }
                return;
            }
            () = registration.closing(), if !closing => {
                closing = true;
                debug!(%peer, "closing a connection to make room (--web.max-connections)");
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Shutdown: no new connections; every open one is asked to close (idle ones at once, others
/// after their answer), for up to [`DRAIN_TIMEOUT`].
async fn drain(connections: &Connections) {
    info!("shutting down: no new connections, waiting for open ones");
    connections.close_all();
    tokio::select! {
        () = connections.drained() => info!("all connections closed"),
        () = tokio::time::sleep(DRAIN_TIMEOUT) => warn!("connections still open after {DRAIN_TIMEOUT:?}; stopping anyway"),
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => info!("SIGINT received"),
        () = terminate => info!("SIGTERM received"),
    }
}

async fn handle(
    request: Request<Incoming>,
    app: Arc<App>,
    web: Option<Arc<WebConfig>>,
    peer: SocketAddr,
) -> Result<Response<ExpositionBody>, Infallible> {
    // Every path, health included, as exporter-toolkit does: the rate limit first, then the
    // credentials.
    let denied = match &web {
        Some(web) => match web.admit() {
            Some(denied) => Some(denied),
            None => {
                web.authorize(request.headers().get(header::AUTHORIZATION), peer.ip())
                    .await
            }
        },
        None => None,
    };
    let mut response = match denied {
        Some(denied) => {
            debug!(%peer, reason = denied.reason(), "request refused");
            app.metrics.refused(denied.kind());
            denied.response(|text| ExpositionBody::chunks([Bytes::from_static(text.as_bytes())]))
        }
        None => route(request, &app, peer).await,
    };
    if let Some(web) = &web {
        web.apply_headers(response.headers_mut());
    }
    Ok(response)
}

async fn route(
    request: Request<Incoming>,
    app: &App,
    peer: SocketAddr,
) -> Response<ExpositionBody> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let path = request.uri().path();
    if path == app.telemetry_path {
        metrics(&request, app, peer).await
    } else {
        match path {
            "/" => landing_page(app),
            "/probe" => probe(&request, app, peer).await,
            "/-/healthy" => plain(StatusCode::OK, "Healthy\n"),
            "/-/ready" => plain(StatusCode::OK, "Ready\n"),
            _ => plain(StatusCode::NOT_FOUND, "Not Found\n"),
        }
    }
}

async fn metrics(
    request: &Request<Incoming>,
    app: &App,
    peer: SocketAddr,
) -> Response<ExpositionBody> {
    match &app.probes {
        // Multi-target mode: the data is under /probe; here only the exporter's own metrics.
        Some(probes) => exposition(request, app, peer, None, Some(probes.len())).await,
        None => exposition(request, app, peer, Some(&app.cache), None).await,
    }
}

async fn probe(
    request: &Request<Incoming>,
    app: &App,
    peer: SocketAddr,
) -> Response<ExpositionBody> {
    let Some(probes) = &app.probes else {
        return plain(
            StatusCode::NOT_FOUND,
            "Multi-target mode is off: start the exporter with --multi-target to use /probe?target=<group or project>.\n",
        );
    };
    let Some(target) = query_param(request.uri().query(), "target") else {
        return plain(
            StatusCode::BAD_REQUEST,
            "The target parameter is missing: /probe?target=<group or project path, or project id>.\n",
        );
    };
    match probes.target(&target) {
        Ok(target) => exposition(request, app, peer, Some(&target.cache), None).await,
        Err(e) => plain(StatusCode::BAD_REQUEST, &format!("{e}\n")),
    }
}

/// The first value of `name` in a query string, percent-decoded (`+` is a space).
pub fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        (decode(key) == name).then(|| decode(value))
    })
}

/// A scrape: the snapshot of `cache` (none: only the exporter's own metrics) within the
/// scraper's time budget, and the metrics that go with it. The process-wide metrics go on
/// /metrics only (`targets` is the number of probe targets in multi-target mode).
async fn exposition(
    request: &Request<Incoming>,
    app: &App,
    peer: SocketAddr,
    cache: Option<&Cache>,
    targets: Option<usize>,
) -> Response<ExpositionBody> {
    let header = |name| {
        request
            .headers()
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let format = negotiate_format(header(header::ACCEPT));
    let gzip = accepts_gzip(header(header::ACCEPT_ENCODING));
    let process = request.uri().path() == app.telemetry_path;
    let Some(cache) = cache else {
        let own = scrape_lines(
            &app.metrics,
            None,
            process_metrics(app, process, targets),
            format,
        );
        return respond(empty(format), own, format, gzip);
    };
    let budget = scrape_budget(
        header(header::HeaderName::from_static(
            "x-prometheus-scrape-timeout-seconds",
        )),
        app.timeout_offset,
        app.max_timeout,
    );
    let waiting_from = tokio::time::Instant::now();
    let busy_before = app.client.busy();
    let (snapshot, source) = cache.get(budget).await;
    app.metrics.scraped(source.label());
    // A collection that ran late while GitLab answered nothing during the wait, with calls out
    // for most of it: GitLab is down or hanging, whatever the last finished collection said.
    // (Calls merely paced or paused for a 429 are not out.)
    let hanging = source == Source::Timeout
        && !app.client.answered_since(waiting_from)
        && app.client.busy().saturating_sub(busy_before) >= budget / 2;
    let served = Served::new(&snapshot.snapshot, hanging);
    if source == Source::Timeout {
        warn!(
            path = request.uri().path(),
            budget = ?budget,
            gitlab_answering = !hanging,
            served_data_age = ?snapshot.data_age(),
            "the collection did not finish within the scrape timeout; serving the last data, the collection goes on"
        );
    }
    if !snapshot.is_encoded(format) {
        // Encoding a big instance takes a while: not on the async workers.
        let snapshot = Arc::clone(&snapshot);
        let encoded = tokio::task::spawn_blocking(move || {
            snapshot.encoded(format);
        });
        if let Err(e) = encoded.await {
            return plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("encoding failed: {e}\n"),
            );
        }
    }
    let families = snapshot.encoded(format);
    let own = scrape_lines(
        &app.metrics,
        Some(served),
        process_metrics(app, process, targets),
        format,
    );
    debug!(%peer, ?format, gzip, ?source, bytes = families.text_len() + own.len() as u64, "scrape");
    respond(families, own, format, gzip)
}

/// What the process-wide metrics need, when they are to be served (on the telemetry path).
fn process_metrics(app: &App, process: bool, targets: Option<usize>) -> Option<Process> {
    process.then(|| Process {
        targets,
        connections_open: app.connections.open(),
        connections_limit: app.connections.cap(),
        idle_connections_closed: app.connections.closed_idle(),
    })
}

/// An exposition with no GitLab families, per format.
fn empty(format: Format) -> &'static Compressed {
    static EMPTY: [OnceLock<Compressed>; 2] = [OnceLock::new(), OnceLock::new()];
    let cell = match format {
        Format::OpenMetrics => &EMPTY[0],
        Format::Text => &EMPTY[1],
    };
    cell.get_or_init(|| Compressed::encode(|_| Ok(())))
}

fn respond(
    families: &Compressed,
    own: String,
    format: Format,
    gzip: bool,
) -> Response<ExpositionBody> {
    let body = if gzip {
        families.gzip_body(&own)
    } else {
        families.plain_body(own)
    };
    let mut builder = Response::builder()
        .header(header::CONTENT_TYPE, format.content_type())
        .header(header::VARY, "Accept, Accept-Encoding");
    if gzip {
        builder = builder.header(header::CONTENT_ENCODING, "gzip");
    }
    builder
        .body(body)
        .unwrap_or_else(|e| plain(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}\n")))
}

fn landing_page(app: &App) -> Response<ExpositionBody> {
    let body = crate::status::render(crate::status::View {
        description: &app.description,
        telemetry_path: &app.telemetry_path,
        cache: &app.cache,
        probes: app.probes.as_ref(),
        metrics: &app.metrics,
    });
    let mut response = Response::new(ExpositionBody::chunks([Bytes::from(body)]));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

fn plain(status: StatusCode, body: &str) -> Response<ExpositionBody> {
    let mut response = Response::new(ExpositionBody::chunks([Bytes::copy_from_slice(
        body.as_bytes(),
    )]));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The members of an `Accept` or `Accept-Encoding` header: value (lowercase, without
/// parameters) and quality.
fn weighted(header: &str) -> impl Iterator<Item = (String, f32)> + '_ {
    header.split(',').filter_map(|member| {
        let mut parts = member.split(';');
        let value = parts.next()?.trim().to_ascii_lowercase();
        if value.is_empty() {
            return None;
        }
        let q = parts
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .map_or(Some(1.0), |(_, v)| v.trim().parse::<f32>().ok())?;
        Some((value, q.clamp(0.0, 1.0)))
    })
}

/// OpenMetrics when the client names it with a quality at least that of plain text (as
/// Prometheus does); otherwise the text format 0.0.4, which is also the answer to `*/*`.
pub fn negotiate_format(accept: Option<&str>) -> Format {
    let Some(accept) = accept else {
        return Format::Text;
    };
    // Quality of the most specific range matching each format: (specificity, q).
    let mut openmetrics: Option<(u8, f32)> = None;
    let mut text: Option<(u8, f32)> = None;
    let better = |slot: &mut Option<(u8, f32)>, specificity: u8, q: f32| match slot {
        Some((s, best)) if *s > specificity || (*s == specificity && *best >= q) => {}
        _ => *slot = Some((specificity, q)),
    };
    for (range, q) in weighted(accept) {
        match range.as_str() {
            "application/openmetrics-text" => better(&mut openmetrics, 2, q),
            "application/*" => better(&mut openmetrics, 1, q),
            "text/plain" => better(&mut text, 2, q),
            "text/*" => better(&mut text, 1, q),
            "*/*" => better(&mut text, 0, q),
            _ => {}
        }
    }
    match (openmetrics, text) {
        (Some((_, om)), Some((_, t))) if om > 0.0 && om >= t => Format::OpenMetrics,
        (Some((_, om)), None) if om > 0.0 => Format::OpenMetrics,
        _ => Format::Text,
    }
}

/// True when `Accept-Encoding` allows gzip (by name or by `*`, with a non-zero quality).
pub fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    let Some(header) = accept_encoding else {
        return false;
    };
    let mut wildcard = None;
    for (coding, q) in weighted(header) {
        match coding.as_str() {
            "gzip" | "x-gzip" => return q > 0.0,
            "*" => wildcard = Some(q > 0.0),
            _ => {}
        }
    }
    wildcard.unwrap_or(false)
}

// ---------------------------------------------------------------------------------------------
// Connections.

/// Descriptors kept for everything but served connections: GitLab's connections (in flight and
/// pooled, and their other end too in demo mode, where the fake GitLab runs in the process),
/// the listener, files, and the runtime's own.
fn descriptor_reserve(concurrency: usize) -> u64 {
    64 + 4 * concurrency as u64
}

/// The connection cap to use: `wanted` (`--web.max-connections`), lowered with a warning to
/// what the soft descriptor limit leaves after [`descriptor_reserve`] (at least 16).
pub fn connection_cap(wanted: usize, concurrency: usize) -> usize {
    let Ok((soft, _)) = rlimit::getrlimit(rlimit::Resource::NOFILE) else {
        return wanted;
    };
    let room = soft.saturating_sub(descriptor_reserve(concurrency)).max(16);
    let room = usize::try_from(room).unwrap_or(usize::MAX);
    if wanted > room {
        warn!(
            max_connections = wanted,
            descriptor_limit = soft,
            using = room,
            "--web.max-connections is more than the descriptor limit allows (raise it with ulimit -n or LimitNOFILE=); serving fewer connections at once"
        );
        return room;
    }
    wanted
}

/// The open connections, capped: when a new one would pass the cap, the one idle the longest
/// (between requests, or still sending its request head) is asked to close to make room, which
/// hyper does at once for an idle connection (and, should a request have arrived meanwhile,
/// after its answer); when none is idle, new connections wait (in the accept queue, or the one
/// already accepted) until one ends or goes idle. So connections that send nothing cannot lock
/// scrapers out, and a request being served is never cut short.
#[derive(Debug)]
pub struct Connections {
    cap: usize,
    state: Mutex<Open>,
    /// A connection ended or went idle.
    changed: Notify,
    /// Connections closed to make room.
    closed_idle: AtomicU64,
}

#[derive(Debug, Default)]
struct Open {
    next_id: u64,
    connections: HashMap<u64, Arc<Connection>>,
    /// Asked to close, not yet gone.
    closing: usize,
}

/// One open connection, as the cap sees it.
#[derive(Debug)]
struct Connection {
    /// Requests being served (from the request head to the end of the answer's body).
    requests: AtomicUsize,
    /// When it last went idle (its accept, or the end of its last answer).
    idle_since: Mutex<std::time::Instant>,
    /// Set once it is asked to close.
    closing: AtomicBool,
    close: Notify,
}

/// A connection's place among the open ones, given back on drop.
struct Registration {
    connections: Arc<Connections>,
    id: u64,
    connection: Arc<Connection>,
}

/// Held while a request is served, answer body included.
struct Busy(Arc<Connection>, Arc<Connections>);

impl Connections {
    /// At most `cap` connections at once.
    pub fn new(cap: usize) -> Arc<Connections> {
        Arc::new(Connections {
            cap: cap.max(1),
            state: Mutex::default(),
            changed: Notify::new(),
            closed_idle: AtomicU64::new(0),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Open> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cap.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.state().connections.len()
    }

    /// Idle connections closed so far to make room.
    pub fn closed_idle(&self) -> u64 {
        self.closed_idle.load(Ordering::Relaxed)
    }

    /// Resolves when one more connection may be registered: under the cap, or at it with an
    /// idle connection to close.
    async fn room(&self) {
        loop {
            let changed = self.changed.notified();
            {
                let state = self.state();
                let staying = state.connections.len() - state.closing;
                if staying < self.cap || Self::longest_idle(&state).is_some() {
                    return;
                }
            }
            changed.await;
        }
    }

    fn longest_idle(state: &Open) -> Option<&Arc<Connection>> {
        state
            .connections
            .values()
            .filter(|c| {
                c.requests.load(Ordering::Acquire) == 0 && !c.closing.load(Ordering::Acquire)
            })
            .min_by_key(|c| *c.idle_since.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Counts a new connection, asking the one idle the longest to close if the cap is
    /// reached; `None` (nothing counted) when it is reached and no connection is idle.
    fn try_register(self: &Arc<Self>) -> Option<Registration> {
        let mut state = self.state();
        if state.connections.len() - state.closing >= self.cap {
            let idle = Self::longest_idle(&state)?;
            Self::ask_to_close(idle);
            state.closing += 1;
            self.closed_idle.fetch_add(1, Ordering::Relaxed);
        }
        let id = state.next_id;
        state.next_id += 1;
        let connection = Arc::new(Connection {
            requests: AtomicUsize::new(0),
            idle_since: Mutex::new(std::time::Instant::now()),
            closing: AtomicBool::new(false),
            close: Notify::new(),
        });
        state.connections.insert(id, Arc::clone(&connection));
        Some(Registration {
            connections: Arc::clone(self),
            id,
            connection,
        })
    }

    fn ask_to_close(connection: &Connection) {
        connection.closing.store(true, Ordering::Release);
        connection.close.notify_one();
    }

    /// Asks every open connection to close (shutdown).
    fn close_all(&self) {
        let mut state = self.state();
        let mut asked = 0;
        for connection in state.connections.values() {
            if !connection.closing.load(Ordering::Acquire) {
                Self::ask_to_close(connection);
                asked += 1;
            }
        }
        state.closing += asked;
    }

    /// Resolves once no connection is open.
    async fn drained(&self) {
        loop {
            let changed = self.changed.notified();
            if self.open() == 0 {
                return;
            }
            changed.await;
        }
    }
}

impl Registration {
    /// Resolves when the connection is to close to make room.
    async fn closing(&self) {
        self.connection.close.notified().await;
    }

    /// Marks a request as being served until the returned guard is dropped.
    fn busy(&self) -> Busy {
        self.connection.requests.fetch_add(1, Ordering::AcqRel);
        Busy(Arc::clone(&self.connection), Arc::clone(&self.connections))
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut state = self.connections.state();
        state.connections.remove(&self.id);
        if self.connection.closing.load(Ordering::Acquire) {
            state.closing -= 1;
        }
        drop(state);
        self.connections.changed.notify_waiters();
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        *self.0.idle_since.lock().unwrap_or_else(|e| e.into_inner()) = std::time::Instant::now();
        if self.0.requests.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.1.changed.notify_waiters();
        }
    }
}

/// An answer's body that keeps its connection counted as busy until it is sent (or dropped).
struct Tracked<B> {
    body: B,
    _busy: Busy,
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// At the cap, a connection is counted only if an idle one is asked to close: a connection
    /// that goes busy between the check and the accept cannot let the cap be passed, and one
    /// being served is never asked to close.
    #[test]
    fn the_cap_is_never_passed() {
        let connections = Connections::new(2);
        let a = connections.try_register().unwrap();
        let b = connections.try_register().unwrap();
        let (busy_a, busy_b) = (a.busy(), b.busy());
        assert!(
            connections.try_register().is_none(),
            "nothing idle to close"
        );
        assert_eq!(connections.open(), 2);
        drop(busy_b);
        let c = connections.try_register().expect("b is idle now");
        assert!(b.connection.closing.load(Ordering::Acquire));
        assert!(
            !a.connection.closing.load(Ordering::Acquire),
            "a is being served"
        );
        assert_eq!((connections.open(), connections.closed_idle()), (3, 1));
        let _c_busy = c.busy();
        assert!(
            connections.try_register().is_none(),
            "a and c are served, b is already closing"
        );
        drop(b);
        assert_eq!(connections.open(), 2);
        assert!(connections.try_register().is_none());
        drop(busy_a);
        let d = connections.try_register().expect("a is idle now");
        assert!(a.connection.closing.load(Ordering::Acquire));
        drop((a, d));
        connections.close_all();
        assert!(
            c.connection.closing.load(Ordering::Acquire),
            "shutdown asks all"
        );
    }

    #[test]
    fn budget_follows_the_scrapers_timeout() {
        let (offset, max) = (Duration::from_millis(500), Duration::from_secs(120));
        let budget = |h| scrape_budget(h, offset, max);
        assert_eq!(budget(Some("10")), Duration::from_millis(9500));
        assert_eq!(budget(Some(" 2.5 ")), Duration::from_secs(2));
        assert_eq!(budget(Some("0.4")), Duration::from_millis(200));
        assert_eq!(budget(Some("3600")), max);
        assert_eq!(budget(Some("1e300")), max);
        for bad in [
            None,
            Some(""),
            Some("soon"),
            Some("-3"),
            Some("NaN"),
            Some("inf"),
        ] {
            assert_eq!(budget(bad), max, "{bad:?}");
        }
    }

    #[test]
    fn prometheus_gets_openmetrics() {
        let prometheus2 = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(negotiate_format(Some(prometheus2)), Format::OpenMetrics);
        let prometheus3 = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1";
        assert_eq!(negotiate_format(Some(prometheus3)), Format::OpenMetrics);
        assert_eq!(
            negotiate_format(Some("application/openmetrics-text")),
            Format::OpenMetrics
        );
    }

    #[test]
    fn others_get_text() {
        assert_eq!(negotiate_format(None), Format::Text);
        assert_eq!(negotiate_format(Some("*/*")), Format::Text);
        assert_eq!(
            negotiate_format(Some("text/plain;version=0.0.4")),
            Format::Text
        );
        assert_eq!(
            negotiate_format(Some("text/plain, application/openmetrics-text;q=0.5")),
            Format::Text
        );
        assert_eq!(
            negotiate_format(Some("application/openmetrics-text;q=0, */*")),
            Format::Text
        );
        assert_eq!(negotiate_format(Some("garbage;;;q=x,,")), Format::Text);
    }

    #[test]
    fn gzip_negotiation() {
        assert!(accepts_gzip(Some("gzip")));
        assert!(accepts_gzip(Some("deflate, gzip;q=0.5")));
        assert!(accepts_gzip(Some("*")));
        assert!(!accepts_gzip(Some("gzip;q=0, identity")));
        assert!(!accepts_gzip(Some("gzip;q=0, *")));
        assert!(!accepts_gzip(Some("identity")));
        assert!(!accepts_gzip(None));
    }
}
