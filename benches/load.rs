//! Load benchmark: does the exporter keep serving a well-behaved scraper while it is flooded,
//! read slowly, slowloris'd and held open by idle connections, and does it let go of those
//! connections afterwards?
//!
//! ```text
//! cargo bench --bench load
//! cargo bench --bench load -- --help
//! cargo bench --bench load -- --slowloris 500 --idle 200 --scrapers 64 --slow-readers 32
//! cargo bench --bench load -- --projects 1000 --baseline-secs 5 --attack-secs 15 --release-secs 25
//! cargo bench --bench load -- --projects 5000 --scrapers 4 --slowloris 0 --idle 0 --attack-secs 5 --release-secs 40
//! ```
//!
//! Phases, against the release binary and the fake GitLab (cache TTL 10 min, warmed once):
//!
//! 1. baseline: one well-behaved scraper (a new connection per scrape, alternately with and
//!    without `Accept-Encoding: gzip`, OpenMetrics as Prometheus asks for it) scrapes back to back;
//! 2. attack: at once (a) `--scrapers` keep-alive connections scraping in a loop, (b)
//!    `--slow-readers` connections with a small receive buffer reading plain `/metrics` a few
//!    hundred bytes per 100 ms, (c) `--slowloris` connections sending a request head a byte every
//!    2 s, never finishing it, (d) `--idle` connections sending nothing; the well-behaved scraper
//!    measures again;
//! 3. release: the flood stops (its connections close), slow readers stop reading but keep their
//!    connections (stalled), slowloris connections keep dribbling, idle ones stay idle; the
//!    exporter's connections are watched by class (from `/proc/<pid>/fd` and `/proc/net/tcp`)
//!    until they are gone or `--release-secs` have passed;
//! 4. after: every attacker closes; file descriptors should fall back to the baseline, and the
//!    well-behaved scraper measures once more.
//!
//! Resident size, peak resident size (VmHWM), threads, open file descriptors, connections by
//! class, the kernel send queues and the accept queue are sampled every 200 ms. The tables are
//! printed in markdown at the end, then checks; the exit status is 1 when one fails (errors for
//! the well-behaved scraper, slowloris or idle connections not closed by the header read
//! timeout, attack connections still held at the end of the release window, file descriptors
//! not back to the baseline).
//!
//! **HTTP clients.** Requests that are well-formed and read promptly, those of the well-behaved
//! scraper and of the flood, go through ureq, the exporter's own HTTP client: an agent without
//! keep-alive for the well-behaved scraper (`Connection: close`, a new connection per scrape),
//! one with a keep-alive connection per flood scraper. Their connections are opened by the
//! bench's [`Dialer`] and carried by its [`Socket`] (ureq's pluggable transport, from its
//! `unversioned` API, pinned by Cargo.lock), which register the client port (the monitor tells
//! the exporter's connections apart by it) and note what ureq does not tell: how long connecting
//! took, when the first and the last byte of the answer arrived, its size on the wire and its
//! `Content-Encoding`. ureq inflates every gzip answer as it is read; the well-behaved
//! scraper's socket reads each answer whole before ureq inflates it, so that a scrape's time is
//! the exporter's, but the flood's threads pay for inflating theirs (about 2 MB each at 1,000
//! projects), CPU that the machine's two cores then lack for the exporter. Raw sockets remain
//! only where the attack is to misbehave in ways an HTTP client cannot:
//!
//! - slow readers: the receive buffer is shrunk before connecting and the answer is taken off
//!   the socket a few hundred bytes per interval, then not at all while the connection stays
//!   open; a client reads into buffers of its own as fast as the kernel delivers;
//! - slowloris: a request head sent a byte every `--slowloris-interval-ms` and never finished;
//!   a client writes a request whole;
//! - idle: connections that send nothing at all, held open; a client connects only to send.
//!
//! A stalled reader is only released by the exporter if the whole answer fits the kernel's
//! socket buffers (on loopback up to `net.ipv4.tcp_wmem`'s maximum, 4 MiB by default): hyper
//! then considers the answer sent and the keep-alive wait (the header read timeout) ends the
//! connection. A plain answer larger than that (`--projects 5000`: about 10 MB) keeps hyper
//! writing, and nothing times out a write that makes no progress.
//!
//! The exporter runs with `--web.max-connections` above the attack's connections: at its cap
//! (512 by default) the exporter closes the connection idle the longest to make room, which
//! would end keep-alive flood connections between two requests and slowloris or idle ones
//! before their header read timeout; benches/hardening.rs measures the cap.
//!
//! The machine is shared by the exporter, the fake GitLab and the attackers' threads: under
//! attack, the well-behaved scraper's latency is mostly its share of the CPU. The table
//! compares it with the flood's own mean time per answer (Little's law).

#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clap::Parser;
use common::Exporter;
use fake_gitlab::{FakeGitlab, Instance};
use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, LazyBuffers, NextTimeout, Transport,
};

/// The header read timeout of src/server.rs.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// What Prometheus sends.
const ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
/// How long a well-behaved or flood request may wait to connect, or for a byte to be taken or to
/// arrive, before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// File descriptors kept in reserve beyond the attack's connections (both processes).
const FD_RESERVE: usize = 64;

/// Load benchmark of the exporter: a well-behaved scraper measured before, during and after a
/// flood of keep-alive scrapers, slow readers, slowloris and idle connections (benches/load.rs).
#[derive(Debug, Clone, Parser)]
#[command(name = "load", bin_name = "cargo bench --bench load --")]
struct Settings {
    /// Generated projects the fake GitLab serves.
    #[arg(long, value_name = "N", default_value = "1000", value_parser = count)]
    projects: usize,
    /// Keep-alive connections scraping back to back during the attack.
    #[arg(long, value_name = "N", default_value = "64", value_parser = count)]
    scrapers: usize,
    /// Connections reading plain /metrics slowly during the attack, stalled after it.
    #[arg(long, value_name = "N", default_value = "32", value_parser = count)]
    slow_readers: usize,
    /// Connections sending an endless request head, a byte per --slowloris-interval-ms.
    #[arg(long, value_name = "N", default_value = "500", value_parser = count)]
    slowloris: usize,
    /// Connections sending nothing.
    #[arg(long, value_name = "N", default_value = "200", value_parser = count)]
    idle: usize,
    /// How long the well-behaved scraper measures before the attack.
    #[arg(long = "baseline-secs", value_name = "SECONDS", default_value = "5", value_parser = secs)]
    baseline: Duration,
    /// How long the attack lasts.
    #[arg(long = "attack-secs", value_name = "SECONDS", default_value = "15", value_parser = secs)]
    attack: Duration,
    /// Longest wait, after the attack, for the exporter to close the attack's connections.
    #[arg(long = "release-secs", value_name = "SECONDS", default_value = "25", value_parser = secs)]
    release: Duration,
    /// Bytes a slow reader takes off its socket per read.
    #[arg(long, value_name = "BYTES", default_value = "300", value_parser = positive)]
    slow_read_bytes: usize,
    /// Pause before each read of a slow reader.
    #[arg(long = "slow-read-interval-ms", value_name = "MS", default_value = "100", value_parser = millis)]
    slow_read_interval: Duration,
    /// Receive buffer (SO_RCVBUF) of a slow reader's socket; 0 keeps the system's.
    #[arg(long, value_name = "BYTES", default_value = "4096", value_parser = count)]
    slow_rcvbuf: usize,
    /// Pause between two bytes of a slowloris request head.
    #[arg(long = "slowloris-interval-ms", value_name = "MS", default_value = "2000", value_parser = millis)]
    slowloris_interval: Duration,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// A count, `_` allowed between digits (`10_000`).
fn count(value: &str) -> Result<usize, String> {
    value
        .replace('_', "")
        .parse()
        .map_err(|e| format!("not a count: {e}"))
}

/// A count of at least 1.
fn positive(value: &str) -> Result<usize, String> {
    match count(value)? {
        0 => Err("must be at least 1".into()),
        n => Ok(n),
    }
}

/// Seconds, fractions allowed.
fn secs(value: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value.parse().map_err(|e| format!("not seconds: {e}"))?)
        .map_err(|e| e.to_string())
}

/// Whole milliseconds.
fn millis(value: &str) -> Result<Duration, String> {
    Ok(Duration::from_millis(count(value)? as u64))
}

impl Settings {
    /// Connections the attack holds at once.
    fn attack_connections(&self) -> usize {
        self.scrapers + self.slow_readers + self.slowloris + self.idle
    }

    /// The exporter's `--web.max-connections`: room for the whole attack and the well-behaved
    /// scraper, so that what is measured is the timeouts, not the cap (benches/hardening.rs
    /// measures the cap).
    fn max_connections(&self) -> usize {
        self.attack_connections() + FD_RESERVE
    }
}

/// Who opened a connection, by the client's port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Class {
    Other = 0,
    Flood = 1,
    Slow = 2,
    Slowloris = 3,
    Idle = 4,
}

const CLASSES: [Class; 5] = [
    Class::Other,
    Class::Flood,
    Class::Slow,
    Class::Slowloris,
    Class::Idle,
];

impl Class {
    fn name(self) -> &'static str {
        match self {
            Class::Other => "other (well-behaved, GitLab)",
            Class::Flood => "flood scrapers",
            Class::Slow => "slow readers",
            Class::Slowloris => "slowloris",
            Class::Idle => "idle",
        }
    }
}

/// Client port → class, shared by the attackers and the monitor.
#[derive(Clone)]
struct Ports(Arc<Vec<AtomicU8>>);

impl Ports {
    fn new() -> Ports {
        Ports(Arc::new((0..=u16::MAX).map(|_| AtomicU8::new(0)).collect()))
    }

    fn register(&self, stream: &TcpStream, class: Class) {
        if let Ok(local) = stream.local_addr() {
            self.0[local.port() as usize].store(class as u8, Ordering::Relaxed);
        }
    }

    fn class(&self, port: u16) -> Class {
        match self.0[port as usize].load(Ordering::Relaxed) {
            1 => Class::Flood,
            2 => Class::Slow,
            3 => Class::Slowloris,
            4 => Class::Idle,
            _ => Class::Other,
        }
    }
}

fn main() {
    let settings = Settings::parse();
    // The fake GitLab runs on this runtime; everything else is plain threads.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let gitlab = runtime
        .block_on(FakeGitlab::start(Instance::generated(settings.projects)))
        .expect("fake GitLab");
    let (report, passed) = run(&settings, &gitlab, runtime.handle());
    runtime.block_on(gitlab.shutdown());
    println!("{report}");
    if !passed {
        std::process::exit(1);
    }
}

/// The latencies and errors of one well-behaved scraping window.
#[derive(Debug, Default)]
struct Scrapes {
    gzip: Vec<Duration>,
    plain: Vec<Duration>,
    errors: Vec<String>,
    gzip_bytes: usize,
    plain_bytes: usize,
    /// The three slowest good scrapes (gzip or not), slowest first.
    slowest: Vec<(bool, Timing)>,
}

impl Scrapes {
    fn all(&self) -> Vec<Duration> {
        let mut all: Vec<Duration> = self.gzip.iter().chain(&self.plain).copied().collect();
        all.sort();
        all
    }
}

/// One sample of the exporter process.
#[derive(Debug, Clone, Default)]
struct Sample {
    at: Duration,
    rss_kb: u64,
    hwm_kb: u64,
    threads: u64,
    fds: usize,
    connections: [usize; 5],
    /// Bytes in the kernel's send queues of the exporter's connections, by class.
    send_queue: [u64; 5],
    /// Connections waiting in the listening socket's accept queue.
    accept_queue: u64,
    cpu_ticks: u64,
}

/// Everything the attack threads report back.
#[derive(Debug, Default)]
struct AttackCounts {
    flood_served: AtomicU64,
    flood_bytes: AtomicU64,
    flood_errors: AtomicU64,
    slow_bytes: AtomicU64,
    slow_responses: AtomicU64,
    slow_errors: AtomicU64,
    slowloris_connected: AtomicU64,
    idle_connected: AtomicU64,
    connect_errors: AtomicU64,
    /// Seconds from connect until the exporter closed it, for slowloris and idle connections.
    slowloris_closed_after: Mutex<Vec<f64>>,
    idle_closed_after: Mutex<Vec<f64>>,
    /// What the exporter sent a slowloris or idle connection before closing it (first line).
    holder_answers: Mutex<Vec<String>>,
    /// When the last slowloris or idle connection was made.
    holder_connected: Mutex<Option<Instant>>,
}

/// Flags the phases raise.
#[derive(Debug, Default)]
struct Phase {
    /// The attack is over: the flood stops, slow readers stall.
    attack_over: AtomicBool,
    /// Every attacker closes its connections and ends.
    close: AtomicBool,
}

/// Runs the phases; returns the report and whether every check passed.
fn run(
    settings: &Settings,
    gitlab: &FakeGitlab,
    runtime: &tokio::runtime::Handle,
) -> (String, bool) {
    let own_limit = open_files_limit("self");
    let needed = settings.max_connections();
    assert!(
        needed <= own_limit,
        "the attack needs {needed} file descriptors, the limit (ulimit -n) is {own_limit}: \
         raise it or lower --slowloris/--idle/--scrapers/--slow-readers"
    );
    let max_connections = settings.max_connections().to_string();
    let exporter = Exporter::start(
        gitlab,
        &[
            "--cache.ttl",
            "10m",
            "--web.max-connections",
            &max_connections,
        ],
    );
    let pid = exporter.pid();
    let exporter_limit = open_files_limit(&pid.to_string());
    assert!(
        needed <= exporter_limit,
        "the exporter's file descriptor limit is {exporter_limit}, the attack needs {needed}"
    );
    let addr = exporter.addr;
    eprintln!(
        "exporter pid {pid} on {addr}; fd limits: bench {own_limit}, exporter {exporter_limit}"
    );

    // Warm the cache (one collection) and both encodings.
    let started = Instant::now();
    let warmup = Scraper::new(addr, 0);
    let warm = warmup.scrape(true).expect("warm-up scrape").bytes;
    let cold = started.elapsed();
    warmup.scrape(false).expect("warm-up scrape without gzip");
    // Room for a whole gzip answer: it is read off the socket before ureq inflates it.
    let scraper = Scraper::new(addr, warm + (64 << 10));
    eprintln!(
        "cache warmed in {:.2} s ({} bytes gzip)",
        cold.as_secs_f64(),
        warm
    );

    let ports = Ports::new();
    let origin = Instant::now();
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let monitor_stop = Arc::new(AtomicBool::new(false));
    let monitor = {
        let (samples, stop, ports) = (
            Arc::clone(&samples),
            Arc::clone(&monitor_stop),
            ports.clone(),
        );
        let port = addr.port();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let sample = sample(pid, port, &ports, origin.elapsed());
                samples.lock().unwrap().push(sample);
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    // Let the monitor take a few samples of the idle exporter.
    std::thread::sleep(Duration::from_millis(600));

    eprintln!("baseline: {:?}", settings.baseline);
    let t_baseline = origin.elapsed();
    let baseline = scraper.scrape_for(settings.baseline);
    let t_attack = origin.elapsed();

    eprintln!(
        "attack: {:?}, {} connections",
        settings.attack,
        settings.attack_connections()
    );
    let counts = Arc::new(AttackCounts::default());
    let phase = Arc::new(Phase::default());
    let mut attackers: Vec<JoinHandle<()>> = Vec::new();
    attackers.push(holder(
        addr,
        settings.clone(),
        ports.clone(),
        Arc::clone(&counts),
        Arc::clone(&phase),
    ));
    for i in 0..settings.slow_readers {
        attackers.push(slow_reader(
            i,
            addr,
            settings.clone(),
            ports.clone(),
            Arc::clone(&counts),
            Arc::clone(&phase),
            runtime.clone(),
        ));
    }
    for i in 0..settings.scrapers {
        attackers.push(flood(
            i,
            addr,
            ports.clone(),
            Arc::clone(&counts),
            Arc::clone(&phase),
        ));
    }
    let cpu_attack_start = cpu_ticks(pid);
    let drops_before = listen_overflows();
    let under_attack = scraper.scrape_for(settings.attack);
    let attack_cpu = cpu_ticks(pid).saturating_sub(cpu_attack_start);
    let attack_listen_drops = listen_overflows().saturating_sub(drops_before);
    phase.attack_over.store(true, Ordering::Relaxed);
    let t_attack_end = origin.elapsed();
    let attack_wall = t_attack_end - t_attack;

    // Release: watch the exporter's connections by class until none is left or time is up.
    eprintln!("release: up to {:?}", settings.release);
    let release_started = Instant::now();
    while release_started.elapsed() < settings.release {
        std::thread::sleep(Duration::from_millis(250));
        let last = samples.lock().unwrap().last().cloned().unwrap_or_default();
        if last.at > t_attack_end + Duration::from_secs(1)
            && last.connections[1..].iter().all(|&c| c == 0)
        {
            break;
        }
    }
    let t_release_end = origin.elapsed();

    eprintln!("closing every attacker");
    phase.close.store(true, Ordering::Relaxed);
    for attacker in attackers {
        let _ = attacker.join();
    }
    let t_closed = origin.elapsed();
    // The exporter notices the closes at once; give it up to 5 s.
    let closing = Instant::now();
    let baseline_fds = samples_between(&samples, t_baseline, t_attack)
        .iter()
        .map(|s| s.fds)
        .min()
        .unwrap_or(0);
    while closing.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(200));
        let last = samples.lock().unwrap().last().cloned().unwrap_or_default();
        if last.at > t_closed && last.fds <= baseline_fds + 2 {
            break;
        }
    }
    let t_after = origin.elapsed();
    let after = scraper.scrape_for(Duration::from_secs(2));
    std::thread::sleep(Duration::from_millis(300));
    monitor_stop.store(true, Ordering::Relaxed);
    let _ = monitor.join();
    let t_end = origin.elapsed();
    let logs = exporter.logs();
    drop(exporter);

    let samples = samples.lock().unwrap().clone();
    Report {
        settings,
        projects_bytes: (warm, baseline.plain_bytes),
        cold,
        baseline,
        under_attack,
        after,
        counts: &counts,
        samples: &samples,
        marks: Marks {
            baseline: t_baseline,
            attack: t_attack,
            attack_end: t_attack_end,
            release_end: t_release_end,
            closed: t_closed,
            after: t_after,
            end: t_end,
        },
        attack_wall,
        attack_cpu,
        attack_listen_drops,
        attack_started: origin + t_attack,
        limits: (own_limit, exporter_limit),
        logs: &logs,
    }
    .render()
}

/// Points in time, from the monitor's origin.
#[derive(Debug, Clone, Copy)]
struct Marks {
    baseline: Duration,
    attack: Duration,
    attack_end: Duration,
    release_end: Duration,
    closed: Duration,
    after: Duration,
    end: Duration,
}

fn samples_between(samples: &Mutex<Vec<Sample>>, from: Duration, to: Duration) -> Vec<Sample> {
    samples
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.at >= from && s.at <= to)
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------------------------
// HTTP through ureq, on connections the bench opens.

/// What one request's connection carried, as the bench's [`Socket`] saw it: ureq hides it (it
/// drops `Content-Encoding` and `Content-Length` from the answers it decodes).
#[derive(Debug, Default)]
struct Wire {
    /// How long connecting took, if the request opened a connection.
    connect: Option<Duration>,
    /// Whether opening a connection failed.
    connect_failed: bool,
    /// When the answer's first byte arrived.
    first_byte: Option<Instant>,
    /// The answer's head, once complete without its blank line.
    head: Vec<u8>,
    head_complete: bool,
    /// How much of the blank line ending the head the last bytes were (`\r\n\r\n`: 4).
    blank_line: u8,
    /// The head's `Content-Length`.
    content_length: Option<usize>,
    /// Bytes of the body, as sent (gzip or not).
    body_bytes: usize,
    /// When the body's last byte arrived.
    last_byte: Option<Instant>,
}

impl Wire {
    fn received(&mut self, bytes: &[u8]) {
        let now = Instant::now();
        self.first_byte.get_or_insert(now);
        if self.head_complete {
            self.body_bytes += bytes.len();
        } else {
            // Up to the blank line: the head; the rest is body.
            let end = bytes.iter().position(|&b| {
                self.blank_line = match (self.blank_line, b) {
                    (0 | 2, b'\r') | (1 | 3, b'\n') => self.blank_line + 1,
                    (_, b'\r') => 1,
                    _ => 0,
                };
                self.blank_line == 4
            });
            match end {
                None => self.head.extend_from_slice(bytes),
                Some(at) => {
                    self.head.extend_from_slice(&bytes[..=at]);
                    self.head.truncate(self.head.len() - 4);
                    self.body_bytes += bytes.len() - at - 1;
                    self.head_complete = true;
                    self.content_length =
                        header(&self.head, "content-length").and_then(|v| v.parse().ok());
                }
            }
        }
        if self.head_complete && self.content_length.is_some_and(|n| self.body_bytes >= n) {
            self.last_byte.get_or_insert(now);
        }
    }

    /// Whether more bytes of the answer are owed: its head is incomplete, or its body is
    /// shorter than its `Content-Length`.
    fn owed(&self) -> bool {
        !self.head_complete || self.content_length.is_some_and(|n| self.body_bytes < n)
    }
}

/// A header's value in an answer's head (the first of that name).
fn header(head: &[u8], name: &str) -> Option<String> {
    String::from_utf8_lossy(head)
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, value)| value.trim().to_owned())
}

/// ureq's connector for the bench's agents: opens the TCP connection itself, as ureq's own
/// connector would, and registers its client port under `class` (the monitor tells the
/// exporter's connections apart by it).
struct Dialer {
    class: Option<(Ports, Class)>,
    wire: Arc<Mutex<Wire>>,
    read_ahead: bool,
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialer")
            .field("class", &self.class.as_ref().map(|(_, class)| class))
            .finish_non_exhaustive()
    }
}

impl Connector for Dialer {
    type Out = Socket;

    fn connect(
        &self,
        details: &ConnectionDetails,
        _chained: Option<()>,
    ) -> Result<Option<Socket>, ureq::Error> {
        let addr = *details.addrs.first().ok_or(ureq::Error::ConnectionFailed)?;
        let started = Instant::now();
        let stream = TcpStream::connect_timeout(&addr, REQUEST_TIMEOUT);
        let mut wire = self.wire.lock().unwrap();
        wire.connect_failed = stream.is_err();
        let stream = stream?;
        wire.connect = Some(started.elapsed());
        // Set here, not by ureq: a ureq timeout has its resolver spawn a thread per request.
        stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
        stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
        if details.config.no_delay() {
            stream.set_nodelay(true)?;
        }
        if let Some((ports, class)) = &self.class {
            ports.register(&stream, *class);
        }
        let buffers = LazyBuffers::new(
            details.config.input_buffer_size(),
            details.config.output_buffer_size(),
        );
        Ok(Some(Socket {
            stream,
            buffers,
            wire: Arc::clone(&self.wire),
            read_ahead: self.read_ahead,
        }))
    }
}

/// ureq's transport over a [`Dialer`]'s connection, telling the [`Wire`] what arrives (ureq's
/// own TCP transport cannot be made from a socket opened outside ureq). With `read_ahead`, a
/// read goes on while the answer owes bytes and ureq's input buffer has room, so that ureq
/// decodes (inflates) an answer that fits its buffer only once it has all arrived, and the time
/// of its last byte is the server's, not the bench's.
#[derive(Debug)]
struct Socket {
    stream: TcpStream,
    buffers: LazyBuffers,
    wire: Arc<Mutex<Wire>>,
    read_ahead: bool,
}

impl Transport for Socket {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        if let Some(timeout) = timeout.for_write().not_zero() {
            self.stream.set_write_timeout(Some(*timeout))?;
        }
        self.stream.write_all(&self.buffers.output()[..amount])?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        if let Some(timeout) = timeout.for_read().not_zero() {
            self.stream.set_read_timeout(Some(*timeout))?;
        }
        let mut read = 0;
        loop {
            let buf = self.buffers.input_append_buf();
            if buf.is_empty() {
                break;
            }
            let n = match self.stream.read(buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if read == 0 => return Err(e.into()),
                Err(_) => break,
            };
            if n == 0 {
                break;
            }
            self.buffers.input_appended(n);
            read += n;
            let input = self.buffers.input();
            let mut wire = self.wire.lock().unwrap();
            wire.received(&input[input.len() - n..]);
            if !self.read_ahead || !wire.owed() {
                break;
            }
        }
        Ok(read > 0)
    }

    /// Open while nothing is waiting to be read (an idle keep-alive connection the exporter
    /// closed reads as the end of the stream).
    fn is_open(&mut self) -> bool {
        let mut byte = [0];
        let _ = self.stream.set_nonblocking(true);
        let open = matches!(
            self.stream.read(&mut byte),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
        );
        open && self.stream.set_nonblocking(false).is_ok()
    }
}

/// A ureq agent for `GET /metrics` on [`Dialer`]'s connections: answers of every status
/// returned (the caller checks them), no `Accept-Encoding` but the caller's, the sockets'
/// `REQUEST_TIMEOUT` for every wait, and one idle connection kept for the next request if
/// `keep_alive`; with `read_ahead`, an input buffer of that many bytes (at least ureq's
/// default) which its [`Socket`] reads ahead into.
struct Client {
    agent: ureq::Agent,
    wire: Arc<Mutex<Wire>>,
    url: String,
}

/// An answer to `GET /metrics` as far as the benchmark cares.
struct Answer {
    /// How long connecting took, if the request opened a connection.
    connect: Option<Duration>,
    /// When the answer's first byte arrived.
    first_byte: Instant,
    /// When its last byte arrived.
    last_byte: Instant,
    status: u16,
    /// The body, gzip decoded (empty unless asked for).
    body: Vec<u8>,
    /// The size of the body as sent.
    wire_bytes: usize,
    /// Whether the body was sent gzip-encoded.
    gzip: bool,
}

impl Client {
    fn new(
        addr: SocketAddr,
        class: Option<(Ports, Class)>,
        keep_alive: bool,
        read_ahead: Option<usize>,
    ) -> Client {
        let wire = Arc::new(Mutex::new(Wire::default()));
        let dialer = Dialer {
            class,
            wire: Arc::clone(&wire),
            read_ahead: read_ahead.is_some(),
        };
        let idle = usize::from(keep_alive);
        // A request head is small; ureq's default output buffer (128 KiB) would be zeroed for
        // every connection.
        let mut config = ureq::Agent::config_builder().output_buffer_size(16 << 10);
        if let Some(bytes) = read_ahead {
            config = config.input_buffer_size(bytes.max(128 << 10));
        }
        let config = config
            .http_status_as_error(false)
            .accept_encoding(ureq::config::AutoHeaderValue::None)
            .max_idle_connections(idle)
            .max_idle_connections_per_host(idle)
            .build();
        Client {
            agent: ureq::Agent::with_parts(config, dialer, DefaultResolver::default()),
            wire,
            url: format!("http://{addr}/metrics"),
        }
    }

    /// `GET /metrics` as Prometheus asks for it, with gzip or not, and `Connection: close` if
    /// `close`; reads the whole answer, and keeps its body if `keep_body`.
    fn get(&self, gzip: bool, close: bool, keep_body: bool) -> Result<Answer, String> {
        *self.wire.lock().unwrap() = Wire::default();
        let mut request = self.agent.get(&self.url).header("Accept", ACCEPT);
        if gzip {
            request = request.header("Accept-Encoding", "gzip");
        }
        if close {
            request = request.header("Connection", "close");
        }
        let mut response = request.call().map_err(|e| e.to_string())?;
        let mut reader = response.body_mut().with_config().limit(u64::MAX).reader();
        let mut body = Vec::new();
        let read = if keep_body {
            reader.read_to_end(&mut body).map(|_| ())
        } else {
            std::io::copy(&mut reader, &mut std::io::sink()).map(|_| ())
        };
        read.map_err(|e| format!("body: {e}"))?;
        let wire = std::mem::take(&mut *self.wire.lock().unwrap());
        Ok(Answer {
            connect: wire.connect,
            first_byte: wire.first_byte.unwrap_or_else(Instant::now),
            last_byte: wire.last_byte.unwrap_or_else(Instant::now),
            status: response.status().as_u16(),
            body,
            wire_bytes: wire.body_bytes,
            gzip: header(&wire.head, "content-encoding").is_some_and(|v| v == "gzip"),
        })
    }

    /// Whether the last request failed to open a connection.
    fn connect_failed(&self) -> bool {
        self.wire.lock().unwrap().connect_failed
    }
}

// ---------------------------------------------------------------------------------------------
// The well-behaved scraper.

/// How one good scrape went.
#[derive(Debug, Clone, Copy)]
struct Timing {
    /// Size of the body on the wire.
    bytes: usize,
    connect: Duration,
    first_byte: Duration,
    /// Until the answer's last byte arrived.
    total: Duration,
}

/// The well-behaved scraper: a new connection per scrape, its answers read ahead into an input
/// buffer of `buffer` bytes (at least ureq's default).
struct Scraper(Client);

impl Scraper {
    fn new(addr: SocketAddr, buffer: usize) -> Scraper {
        Scraper(Client::new(addr, None, false, Some(buffer)))
    }

    /// One scrape on a new connection, checked: 200, the whole body, gzip-encoded if asked for,
    /// an exposition.
    fn scrape(&self, gzip: bool) -> Result<Timing, String> {
        let started = Instant::now();
        let answer = self.0.get(gzip, true, true)?;
        if answer.status != 200 {
            return Err(format!("status {}", answer.status));
        }
        if answer.gzip != gzip {
            return Err(format!(
                "gzip asked for: {gzip}, sent gzip: {}",
                answer.gzip
            ));
        }
        let text = String::from_utf8(answer.body).map_err(|e| format!("utf-8: {e}"))?;
        if !text.contains("\ngitlab_up 1") || !text.ends_with("# EOF\n") {
            return Err(format!(
                "not a complete exposition ({} bytes of text)",
                text.len()
            ));
        }
        Ok(Timing {
            bytes: answer.wire_bytes,
            connect: answer.connect.unwrap_or_default(),
            first_byte: answer.first_byte - started,
            total: answer.last_byte - started,
        })
    }

    /// Scrapes back to back for `window`, alternating gzip and plain.
    fn scrape_for(&self, window: Duration) -> Scrapes {
        let mut scrapes = Scrapes::default();
        let started = Instant::now();
        let mut gzip = true;
        while started.elapsed() < window {
            let t = Instant::now();
            match self.scrape(gzip) {
                Ok(timing) => {
                    if gzip {
                        scrapes.gzip.push(timing.total);
                        scrapes.gzip_bytes = timing.bytes;
                    } else {
                        scrapes.plain.push(timing.total);
                        scrapes.plain_bytes = timing.bytes;
                    }
                    scrapes.slowest.push((gzip, timing));
                    scrapes
                        .slowest
                        .sort_by_key(|(_, t)| std::cmp::Reverse(t.total));
                    scrapes.slowest.truncate(3);
                }
                Err(e) => {
                    scrapes.errors.push(format!(
                        "{} after {:.3} s: {e}",
                        if gzip { "gzip" } else { "plain" },
                        t.elapsed().as_secs_f64()
                    ));
                    // Do not spin on a refused connection.
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            gzip = !gzip;
        }
        scrapes.gzip.sort();
        scrapes.plain.sort();
        scrapes
    }
}

// ---------------------------------------------------------------------------------------------
// The attackers.

/// A keep-alive connection scraping as fast as it can until the attack is over.
fn flood(
    i: usize,
    addr: SocketAddr,
    ports: Ports,
    counts: Arc<AttackCounts>,
    phase: Arc<Phase>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let client = Client::new(addr, Some((ports, Class::Flood)), true, None);
        let mut k = i;
        while !phase.attack_over.load(Ordering::Relaxed) {
            k += 1;
            match client.get(k % 2 == 0, false, false) {
                Ok(answer) if answer.status == 200 => {
                    counts.flood_served.fetch_add(1, Ordering::Relaxed);
                    counts
                        .flood_bytes
                        .fetch_add(answer.wire_bytes as u64, Ordering::Relaxed);
                }
                Err(_) if client.connect_failed() => {
                    counts.connect_errors.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(50));
                }
                Ok(_) | Err(_) => {
                    counts.flood_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        // The client's connection closes here: the flood is over.
    })
}

/// A connection with a small receive buffer reading plain `/metrics` a few hundred bytes at a
/// time, request after request; once the attack is over it stops reading and holds the
/// connection until told to close.
fn slow_reader(
    i: usize,
    addr: SocketAddr,
    settings: Settings,
    ports: Ports,
    counts: Arc<AttackCounts>,
    phase: Arc<Phase>,
    runtime: tokio::runtime::Handle,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        // Spread the requests over the first read interval.
        std::thread::sleep(settings.slow_read_interval * i as u32 / settings.slow_readers as u32);
        let rcvbuf = settings.slow_rcvbuf;
        let connected = runtime.block_on(async move {
            let socket = tokio::net::TcpSocket::new_v4()?;
            if rcvbuf > 0 {
                socket.set_recv_buffer_size(rcvbuf as u32)?;
            }
            socket.connect(addr).await?.into_std()
        });
        let mut stream = match connected {
            Ok(s) => s,
            Err(_) => {
                counts.connect_errors.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
        ports.register(&stream, Class::Slow);
        let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAccept: {ACCEPT}\r\n\r\n");
        let mut buf = vec![0; settings.slow_read_bytes];
        'requests: while !phase.attack_over.load(Ordering::Relaxed) {
            if stream.write_all(request.as_bytes()).is_err() {
                counts.slow_errors.fetch_add(1, Ordering::Relaxed);
                break;
            }
            // The answer's head, then its body: Content-Length bytes, never more.
            let mut head = Vec::new();
            let mut body_left = None;
            while body_left != Some(0) {
                if phase.attack_over.load(Ordering::Relaxed) {
                    break 'requests;
                }
                std::thread::sleep(settings.slow_read_interval);
                let want = body_left.unwrap_or(buf.len()).min(buf.len());
                let n = match stream.read(&mut buf[..want]) {
                    Ok(n) if n > 0 => n,
                    // Closed, or no byte for 60 s.
                    _ => {
                        counts.slow_errors.fetch_add(1, Ordering::Relaxed);
                        break 'requests;
                    }
                };
                counts.slow_bytes.fetch_add(n as u64, Ordering::Relaxed);
                match body_left {
                    Some(left) => body_left = Some(left - n),
                    None => {
                        head.extend_from_slice(&buf[..n]);
                        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                            let length = header(&head[..end], "content-length")
                                .and_then(|v| v.parse::<usize>().ok());
                            let Some(length) = length else {
                                counts.slow_errors.fetch_add(1, Ordering::Relaxed);
                                break 'requests;
                            };
                            body_left = Some(length.saturating_sub(head.len() - end - 4));
                        }
                    }
                }
            }
            counts.slow_responses.fetch_add(1, Ordering::Relaxed);
        }
        // Stalled: the connection stays open, unread, until everything closes.
        while !phase.close.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
        drop(stream);
    })
}

/// One thread holding the slowloris connections (a byte of an endless request head every
/// interval, until the exporter closes them) and the idle ones (nothing sent), noting when the
/// exporter closes each.
fn holder(
    addr: SocketAddr,
    settings: Settings,
    ports: Ports,
    counts: Arc<AttackCounts>,
    phase: Arc<Phase>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        struct Held {
            stream: TcpStream,
            slowloris: bool,
            connected: Instant,
            sent: usize,
        }
        let head =
            format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: slowloris\r\nX-Slow: ")
                .into_bytes();
        let byte = |k: usize| head.get(k).copied().unwrap_or(b'a');
        let mut held: Vec<Held> = Vec::new();
        // Interleave the two kinds so that neither is all ahead in the accept queue.
        let total = settings.slowloris + settings.idle;
        let mut slowloris_done = 0;
        for k in 0..total {
            let slowloris = (k + 1) * settings.slowloris / total > slowloris_done;
            if slowloris {
                slowloris_done += 1;
            }
            let stream = match TcpStream::connect_timeout(&addr, REQUEST_TIMEOUT) {
                Ok(s) => s,
                Err(_) => {
                    counts.connect_errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            ports.register(
                &stream,
                if slowloris {
                    Class::Slowloris
                } else {
                    Class::Idle
                },
            );
            let _ = stream.set_nonblocking(true);
            let mut h = Held {
                stream,
                slowloris,
                connected: Instant::now(),
                sent: 0,
            };
            if slowloris {
                if h.stream.write(&[byte(0)]).is_ok() {
                    h.sent = 1;
                }
                counts.slowloris_connected.fetch_add(1, Ordering::Relaxed);
            } else {
                counts.idle_connected.fetch_add(1, Ordering::Relaxed);
            }
            held.push(h);
        }
        *counts.holder_connected.lock().unwrap() = Some(Instant::now());
        let mut next_dribble = Instant::now() + settings.slowloris_interval;
        let mut buf = [0u8; 512];
        while !phase.close.load(Ordering::Relaxed) {
            let dribble = Instant::now() >= next_dribble;
            if dribble {
                next_dribble += settings.slowloris_interval;
            }
            held.retain_mut(|h| {
                // Closed by the exporter? (An answer, then the end of the stream, or an error.)
                let closed = match h.stream.read(&mut buf) {
                    Ok(0) => true,
                    Ok(n) => {
                        let line = String::from_utf8_lossy(&buf[..n])
                            .lines()
                            .next()
                            .unwrap_or("")
                            .to_owned();
                        counts.holder_answers.lock().unwrap().push(line);
                        false
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
                    Err(_) => true,
                };
                let closed = closed
                    || (dribble
                        && h.slowloris
                        && match h.stream.write(&[byte(h.sent)]) {
                            Ok(_) => {
                                h.sent += 1;
                                false
                            }
                            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
                        });
                if closed {
                    let after = h.connected.elapsed().as_secs_f64();
                    let list = if h.slowloris {
                        &counts.slowloris_closed_after
                    } else {
                        &counts.idle_closed_after
                    };
                    list.lock().unwrap().push(after);
                }
                !closed
            });
            std::thread::sleep(Duration::from_millis(100));
        }
    })
}

// ---------------------------------------------------------------------------------------------
// The exporter process, from /proc.

fn open_files_limit(pid: &str) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

/// TcpExt ListenOverflows (system-wide): connection attempts the kernel dropped because an accept
/// queue was full.
fn listen_overflows() -> u64 {
    let text = std::fs::read_to_string("/proc/net/netstat").unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("TcpExt:")).collect();
    let [names, values] = lines[..] else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "ListenOverflows")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command name (in parentheses): utime and stime are the 12th and 13th fields.
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    fields
        .get(11..13)
        .map_or(0, |f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum())
}

fn sample(pid: u32, port: u16, ports: &Ports, at: Duration) -> Sample {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let mut inodes = HashSet::new();
    let mut fds = 0;
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for entry in dir.flatten() {
            fds += 1;
            if let Ok(target) = std::fs::read_link(entry.path()) {
                let target = target.to_string_lossy();
                if let Some(inode) = target
                    .strip_prefix("socket:[")
                    .and_then(|t| t.strip_suffix(']'))
                {
                    inodes.insert(inode.to_owned());
                }
            }
        }
    }
    let mut connections = [0; 5];
    let mut send_queue = [0; 5];
    let mut accept_queue = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || !inodes.contains(f[9]) {
                continue;
            }
            let hex_port = |a: &str| {
                a.rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
            };
            if hex_port(f[1]) != Some(port) {
                continue;
            }
            // tx_queue:rx_queue, in hex; for a listening socket, rx_queue is the connections
            // waiting to be accepted.
            let (tx, rx) = f[4].split_once(':').map_or((0, 0), |(t, r)| {
                (
                    u64::from_str_radix(t, 16).unwrap_or(0),
                    u64::from_str_radix(r, 16).unwrap_or(0),
                )
            });
            if f[3] == "0A" {
                accept_queue = rx;
                continue;
            }
            if let Some(remote) = hex_port(f[2]) {
                let class = ports.class(remote) as usize;
                connections[class] += 1;
                send_queue[class] += tx;
            }
        }
    }
    Sample {
        at,
        rss_kb: field("VmRSS:"),
        hwm_kb: field("VmHWM:"),
        threads: field("Threads:"),
        fds,
        connections,
        send_queue,
        accept_queue,
        cpu_ticks: cpu_ticks(pid),
    }
}

// ---------------------------------------------------------------------------------------------
// The report.

struct Report<'a> {
    settings: &'a Settings,
    projects_bytes: (usize, usize),
    cold: Duration,
    baseline: Scrapes,
    under_attack: Scrapes,
    after: Scrapes,
    counts: &'a AttackCounts,
    samples: &'a [Sample],
    marks: Marks,
    attack_wall: Duration,
    attack_cpu: u64,
    attack_listen_drops: u64,
    attack_started: Instant,
    limits: (usize, usize),
    logs: &'a str,
}

fn pct(sorted: &[Duration], q: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

fn ms(d: Option<Duration>) -> String {
    d.map_or("–".into(), |d| format!("{:.2} ms", d.as_secs_f64() * 1e3))
}

fn ratio(a: Option<Duration>, b: Option<Duration>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if !b.is_zero() => format!("{:.1}×", a.as_secs_f64() / b.as_secs_f64()),
        _ => "–".into(),
    }
}

fn mib(kb: u64) -> String {
    format!("{:.1} MiB", kb as f64 / 1024.0)
}

impl Report<'_> {
    fn between(&self, from: Duration, to: Duration) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| s.at >= from && s.at <= to)
            .collect()
    }

    /// The last sample at or before `t`.
    fn at(&self, t: Duration) -> Sample {
        self.samples
            .iter()
            .rev()
            .find(|s| s.at <= t)
            .or(self.samples.first())
            .cloned()
            .unwrap_or_default()
    }

    /// What must hold: (passed, what).
    fn checks(&self) -> Vec<(bool, String)> {
        let m = self.marks;
        let c = self.counts;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut checks = Vec::new();
        for (name, scrapes) in [("under attack", &self.under_attack), ("after", &self.after)] {
            checks.push((
                scrapes.errors.is_empty() && !scrapes.all().is_empty(),
                format!(
                    "the well-behaved scraper: {} scrapes {name}, {} errors",
                    scrapes.all().len(),
                    scrapes.errors.len()
                ),
            ));
        }
        checks.push((
            load(&c.flood_errors) == 0,
            format!("flood scrapers: {} errors", load(&c.flood_errors)),
        ));
        let limit = (HEADER_READ_TIMEOUT + Duration::from_secs(2)).as_secs_f64();
        for (name, connected, closed) in [
            (
                "slowloris",
                load(&c.slowloris_connected),
                &c.slowloris_closed_after,
            ),
            ("idle", load(&c.idle_connected), &c.idle_closed_after),
        ] {
            let closed = closed.lock().unwrap();
            let in_time = closed.iter().filter(|&&t| t <= limit).count();
            checks.push((
                in_time as u64 == connected,
                format!(
                    "{name}: {in_time} of {connected} connections closed by the exporter within {limit:.0} s"
                ),
            ));
        }
        let left = self.at(m.release_end).connections;
        checks.push((
            left[1..].iter().all(|&n| n == 0),
            format!(
                "attack connections the exporter still held at the end of the release window \
                 (flood / slow / slowloris / idle): {} / {} / {} / {}",
                left[1], left[2], left[3], left[4]
            ),
        ));
        let base_fds = self
            .between(m.baseline, m.attack)
            .iter()
            .map(|s| s.fds)
            .min()
            .unwrap_or(0);
        let end_fds = self.at(m.end).fds;
        checks.push((
            end_fds <= base_fds + 2,
            format!("open fds at the end: {end_fds} (baseline {base_fds})"),
        ));
        checks
    }

    fn render(&self) -> (String, bool) {
        use std::fmt::Write as _;
        let s = self.settings;
        let m = self.marks;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\n## Load: {} projects, /metrics {} bytes gzip, {} bytes plain (cold collection {:.2} s)\n",
            s.projects,
            self.projects_bytes.0,
            self.projects_bytes.1,
            self.cold.as_secs_f64()
        );
        let _ = writeln!(
            out,
            "Attack: {} flood scrapers (keep-alive), {} slow readers ({} B / {} ms, SO_RCVBUF {}), \
             {} slowloris (1 B / {} ms), {} idle; {:.0} s. File descriptor limits: bench {}, exporter {}; \
             --web.max-connections {}.\n",
            s.scrapers,
            s.slow_readers,
            s.slow_read_bytes,
            s.slow_read_interval.as_millis(),
            s.slow_rcvbuf,
            s.slowloris,
            s.slowloris_interval.as_millis(),
            s.idle,
            s.attack.as_secs_f64(),
            self.limits.0,
            self.limits.1,
            s.max_connections(),
        );

        // Well-behaved scraper.
        let _ = writeln!(
            out,
            "### The well-behaved scraper (a new connection per scrape)\n"
        );
        let _ = writeln!(
            out,
            "| phase | encoding | scrapes | errors | p50 | p99 | max | p50 / baseline | p99 / baseline | max / baseline |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        let base = &self.baseline;
        for (name, scrapes) in [
            ("baseline", &self.baseline),
            ("under attack", &self.under_attack),
            ("after", &self.after),
        ] {
            let rows: [(&str, Vec<Duration>, Vec<Duration>); 3] = [
                ("gzip", scrapes.gzip.clone(), base.gzip.clone()),
                ("plain", scrapes.plain.clone(), base.plain.clone()),
                ("both", scrapes.all(), base.all()),
            ];
            for (encoding, lat, base_lat) in rows {
                let errors = if encoding == "both" {
                    scrapes.errors.len().to_string()
                } else {
                    scrapes
                        .errors
                        .iter()
                        .filter(|e| e.starts_with(encoding))
                        .count()
                        .to_string()
                };
                let _ = writeln!(
                    out,
                    "| {name} | {encoding} | {} | {errors} | {} | {} | {} | {} | {} | {} |",
                    lat.len(),
                    ms(pct(&lat, 0.5)),
                    ms(pct(&lat, 0.99)),
                    ms(lat.last().copied()),
                    ratio(pct(&lat, 0.5), pct(&base_lat, 0.5)),
                    ratio(pct(&lat, 0.99), pct(&base_lat, 0.99)),
                    ratio(lat.last().copied(), base_lat.last().copied()),
                );
            }
        }
        for (name, scrapes) in [
            ("baseline", &self.baseline),
            ("under attack", &self.under_attack),
            ("after", &self.after),
        ] {
            for e in scrapes.errors.iter().take(5) {
                let _ = writeln!(out, "- error ({name}): {e}");
            }
        }
        let _ = writeln!(out, "\nSlowest scrapes (connect / first byte / total):\n");
        for (name, scrapes) in [
            ("baseline", &self.baseline),
            ("under attack", &self.under_attack),
            ("after", &self.after),
        ] {
            let list: Vec<String> = scrapes
                .slowest
                .iter()
                .map(|(gzip, t)| {
                    format!(
                        "{} {:.1} / {:.1} / {:.1} ms",
                        if *gzip { "gzip" } else { "plain" },
                        t.connect.as_secs_f64() * 1e3,
                        t.first_byte.as_secs_f64() * 1e3,
                        t.total.as_secs_f64() * 1e3
                    )
                })
                .collect();
            let _ = writeln!(out, "- {name}: {}", list.join("; "));
        }

        // The attack.
        let c = self.counts;
        let secs = self.attack_wall.as_secs_f64();
        let served = c.flood_served.load(Ordering::Relaxed);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let closed_after = |list: &Mutex<Vec<f64>>| {
            let mut v = list.lock().unwrap().clone();
            v.sort_by(f64::total_cmp);
            match (v.first(), v.last()) {
                (Some(a), Some(b)) => format!(
                    "{} closed by the exporter, {a:.1}–{b:.1} s after connecting",
                    v.len()
                ),
                _ => "none closed by the exporter".into(),
            }
        };
        let all_scrapes = self.under_attack.all();
        let mean_wb = if all_scrapes.is_empty() {
            0.0
        } else {
            all_scrapes.iter().map(Duration::as_secs_f64).sum::<f64>() / all_scrapes.len() as f64
        };
        let rate = served as f64 / secs;
        let _ = writeln!(out, "\n### The attack ({secs:.1} s)\n");
        let _ = writeln!(out, "| measure | value |");
        let _ = writeln!(out, "|---|---:|");
        let _ = writeln!(
            out,
            "| flood: answers served | {served} ({rate:.0} /s, {:.0} MiB) |",
            load(&c.flood_bytes) as f64 / (1 << 20) as f64
        );
        let _ = writeln!(out, "| flood: errors | {} |", load(&c.flood_errors));
        let _ = writeln!(
            out,
            "| flood: mean time per answer by Little's law ({} connections / rate) | {:.1} ms |",
            s.scrapers,
            if rate > 0.0 {
                s.scrapers as f64 / rate * 1e3
            } else {
                0.0
            }
        );
        let _ = writeln!(
            out,
            "| well-behaved: mean time per scrape | {:.1} ms |",
            mean_wb * 1e3
        );
        let _ = writeln!(
            out,
            "| slow readers: bytes read / complete answers / errors | {} / {} / {} |",
            load(&c.slow_bytes),
            load(&c.slow_responses),
            load(&c.slow_errors)
        );
        let _ = writeln!(
            out,
            "| slowloris: connected | {} ({}) |",
            load(&c.slowloris_connected),
            closed_after(&c.slowloris_closed_after)
        );
        let _ = writeln!(
            out,
            "| idle: connected | {} ({}) |",
            load(&c.idle_connected),
            closed_after(&c.idle_closed_after)
        );
        let answers = c.holder_answers.lock().unwrap();
        let mut distinct: Vec<&String> = answers.iter().collect();
        distinct.sort();
        distinct.dedup();
        let _ = writeln!(
            out,
            "| slowloris/idle: answers before the close | {} {:?} |",
            answers.len(),
            distinct
        );
        let _ = writeln!(
            out,
            "| slowloris/idle: all connected after | {} |",
            c.holder_connected
                .lock()
                .unwrap()
                .map_or("–".into(), |t| format!(
                    "{:.2} s",
                    (t - self.attack_started).as_secs_f64()
                ))
        );
        let waiting = self
            .between(m.attack, m.attack_end)
            .iter()
            .map(|s| s.accept_queue)
            .max()
            .unwrap_or(0);
        let _ = writeln!(
            out,
            "| accept queue: most connections waiting (sampled every 200 ms; Linux holds backlog + 1 at most) | {waiting} |"
        );
        let _ = writeln!(
            out,
            "| SYNs dropped on a full accept queue (TcpExt ListenOverflows, system-wide) | {} |",
            self.attack_listen_drops
        );
        let _ = writeln!(
            out,
            "| connect errors (all attackers) | {} |",
            load(&c.connect_errors)
        );
        let base_secs = (m.attack - m.baseline).as_secs_f64();
        let base_cpu = self
            .at(m.attack)
            .cpu_ticks
            .saturating_sub(self.at(m.baseline).cpu_ticks);
        let _ = writeln!(
            out,
            "| exporter CPU during the baseline | {:.1} s ({:.0} % of one core) |",
            base_cpu as f64 / 100.0,
            base_cpu as f64 / base_secs
        );
        let _ = writeln!(
            out,
            "| exporter CPU during the attack | {:.1} s ({:.0} % of one core) |",
            self.attack_cpu as f64 / 100.0,
            self.attack_cpu as f64 / secs
        );

        // The exporter process over time.
        let _ = writeln!(out, "\n### The exporter process\n");
        let _ = writeln!(
            out,
            "| moment | t | VmRSS | VmHWM | threads | open fds | connections: other / flood / slow / slowloris / idle | kernel send queue: flood / slow |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---|---|");
        let row = |out: &mut String, name: &str, s: &Sample| {
            let c = s.connections;
            let _ = writeln!(
                out,
                "| {name} | {:.1} s | {} | {} | {} | {} | {} / {} / {} / {} / {} | {} / {} |",
                s.at.as_secs_f64(),
                mib(s.rss_kb),
                mib(s.hwm_kb),
                s.threads,
                s.fds,
                c[0],
                c[1],
                c[2],
                c[3],
                c[4],
                mib(s.send_queue[1] / 1024),
                mib(s.send_queue[2] / 1024),
            );
        };
        let before = self.at(m.attack);
        let during = self.between(m.attack, m.attack_end);
        let peak = |f: fn(&Sample) -> u64| {
            during
                .iter()
                .max_by_key(|s| f(s))
                .map(|s| (*s).clone())
                .unwrap_or_default()
        };
        row(&mut out, "before the attack", &before);
        row(&mut out, "attack: highest VmRSS", &peak(|s| s.rss_kb));
        row(&mut out, "attack: most fds", &peak(|s| s.fds as u64));
        row(&mut out, "end of the attack", &self.at(m.attack_end));
        for k in 1..=((m.release_end - m.attack_end).as_secs() / 5) {
            let t = m.attack_end + Duration::from_secs(5 * k);
            row(&mut out, &format!("attack end + {} s", 5 * k), &self.at(t));
        }
        row(
            &mut out,
            "end of the release window",
            &self.at(m.release_end),
        );
        row(&mut out, "every attacker closed", &self.at(m.after));
        row(&mut out, "end", &self.at(m.end));

        // Release of the connections.
        let _ = writeln!(
            out,
            "\n### Release (attack over at t = {:.1} s; connections opened from t = {:.1} s; header read timeout {} s)\n",
            m.attack_end.as_secs_f64(),
            m.attack.as_secs_f64(),
            HEADER_READ_TIMEOUT.as_secs()
        );
        let _ = writeln!(
            out,
            "| connections | at the end of the attack | gone at | left at the end of the window |"
        );
        let _ = writeln!(out, "|---|---:|---|---:|");
        let release = self.between(m.attack_end, m.release_end);
        let end_of_attack = self.at(m.attack_end);
        for class in CLASSES.into_iter().skip(1) {
            let k = class as usize;
            let had_any = self
                .between(m.attack, m.attack_end)
                .iter()
                .any(|s| s.connections[k] > 0);
            let gone = release.iter().find(|s| s.connections[k] == 0);
            let gone = if had_any { gone } else { None };
            let gone = gone.map_or_else(
                || {
                    if had_any {
                        "not within the window".to_owned()
                    } else {
                        "–".to_owned()
                    }
                },
                |s| {
                    format!(
                        "t = {:.1} s ({:.1} s after the attack began)",
                        s.at.as_secs_f64(),
                        (s.at - m.attack).as_secs_f64()
                    )
                },
            );
            let _ = writeln!(
                out,
                "| {} | {} | {gone} | {} |",
                class.name(),
                end_of_attack.connections[k],
                self.at(m.release_end).connections[k]
            );
        }
        let base_fds = self
            .between(m.baseline, m.attack)
            .iter()
            .map(|s| s.fds)
            .min()
            .unwrap_or(0);
        let back = |from: Duration, to: Duration| {
            self.between(from, to)
                .iter()
                .find(|s| s.fds <= base_fds + 2)
                .map(|s| (s.at - from).as_secs_f64())
        };
        let _ = writeln!(
            out,
            "\nBaseline open fds: {base_fds}. Back to baseline (+2) after the attack ended: {}; after every attacker closed: {}.",
            back(m.attack_end, m.release_end)
                .map_or("not within the release window".into(), |t| format!(
                    "{t:.1} s"
                )),
            back(m.closed, m.end).map_or("no".into(), |t| format!("{t:.1} s")),
        );
        let warnings: Vec<&str> = self
            .logs
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .collect();
        let _ = writeln!(
            out,
            "\nExporter warnings and errors logged: {}",
            warnings.len()
        );
        for w in warnings.iter().take(5) {
            let _ = writeln!(out, "- `{w}`");
        }
        let checks = self.checks();
        let _ = writeln!(out, "\n### Checks\n");
        for (passed, what) in &checks {
            let _ = writeln!(out, "- {} {what}", if *passed { "ok:" } else { "FAILED:" });
        }
        (out, checks.iter().all(|(passed, _)| *passed))
    }
}
