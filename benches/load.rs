//! Load benchmark: does the exporter keep serving a well-behaved scraper while it is flooded,
//! read slowly, slowloris'd and held open by idle connections, and does it let go of those
//! connections afterwards?
//!
//! ```text
//! cargo bench --bench load
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

use common::Exporter;
use fake_gitlab::{FakeGitlab, Instance};

/// The header read timeout of src/server.rs.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// What Prometheus sends.
const ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
/// How long a well-behaved or flood request may take before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// File descriptors kept in reserve beyond the attack's connections (both processes).
const FD_RESERVE: usize = 64;

/// Benchmark settings from the command line.
#[derive(Debug, Clone)]
struct Settings {
    projects: usize,
    scrapers: usize,
    slow_readers: usize,
    slowloris: usize,
    idle: usize,
    baseline: Duration,
    attack: Duration,
    release: Duration,
    slow_read_bytes: usize,
    slow_read_interval: Duration,
    slow_rcvbuf: usize,
    slowloris_interval: Duration,
}

impl Settings {
    fn from_args() -> Settings {
        let mut s = Settings {
            projects: 1_000,
            scrapers: 64,
            slow_readers: 32,
            slowloris: 500,
            idle: 200,
            baseline: Duration::from_secs(5),
            attack: Duration::from_secs(15),
            release: Duration::from_secs(25),
            slow_read_bytes: 300,
            slow_read_interval: Duration::from_millis(100),
            slow_rcvbuf: 4096,
            slowloris_interval: Duration::from_secs(2),
        };
        let args: Vec<String> = std::env::args().skip(1).collect();
        let number = |v: &str| -> usize {
            v.replace('_', "")
                .parse()
                .unwrap_or_else(|_| panic!("not a number: {v:?}"))
        };
        let secs = |v: &str| Duration::from_secs_f64(v.parse().expect("seconds"));
        let millis = |v: &str| Duration::from_millis(number(v) as u64);
        let mut i = 0;
        while i < args.len() {
            let value = args.get(i + 1).map(String::as_str).unwrap_or("");
            match args[i].as_str() {
                "--projects" => s.projects = number(value),
                "--scrapers" => s.scrapers = number(value),
                "--slow-readers" => s.slow_readers = number(value),
                "--slowloris" => s.slowloris = number(value),
                "--idle" => s.idle = number(value),
                "--baseline-secs" => s.baseline = secs(value),
                "--attack-secs" => s.attack = secs(value),
                "--release-secs" => s.release = secs(value),
                "--slow-read-bytes" => s.slow_read_bytes = number(value).max(1),
                "--slow-read-interval-ms" => s.slow_read_interval = millis(value),
                "--slow-rcvbuf" => s.slow_rcvbuf = number(value),
                "--slowloris-interval-ms" => s.slowloris_interval = millis(value),
                // cargo bench passes --bench; ignore anything else.
                _ => {
                    i += 1;
                    continue;
                }
            }
            i += 2;
        }
        s
    }

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
    let settings = Settings::from_args();
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
    let warm = scrape_once(addr, true).expect("warm-up scrape").bytes;
    let cold = started.elapsed();
    scrape_once(addr, false).expect("warm-up scrape without gzip");
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
    let baseline = scrape_for(addr, settings.baseline);
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
    let under_attack = scrape_for(addr, settings.attack);
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
    let after = scrape_for(addr, Duration::from_secs(2));
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
// HTTP over raw TCP.

/// An answer as far as the benchmark cares.
struct Answer {
    /// When the first byte of the answer arrived.
    first_byte: Instant,
    status: u16,
    body: Vec<u8>,
    body_len: usize,
    close: bool,
}

fn request_bytes(addr: SocketAddr, gzip: bool, close: bool) -> Vec<u8> {
    let mut r = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAccept: {ACCEPT}\r\n");
    if gzip {
        r.push_str("Accept-Encoding: gzip\r\n");
    }
    if close {
        r.push_str("Connection: close\r\n");
    }
    r.push_str("\r\n");
    r.into_bytes()
}

/// How to read an answer: all at once, or `bytes` at a time with a pause after each read (until
/// `stop` is raised).
#[derive(Clone, Copy)]
enum Pace<'a> {
    Fast,
    Slow {
        bytes: usize,
        pause: Duration,
        stop: &'a AtomicBool,
        read: &'a AtomicU64,
    },
}

/// Sends `request` and reads one answer (by its `Content-Length`, or to the end of the stream).
fn exchange(
    stream: &mut TcpStream,
    request: &[u8],
    keep_body: bool,
    scratch: &mut [u8],
    pace: Pace<'_>,
) -> Result<Answer, String> {
    stream
        .write_all(request)
        .map_err(|e| format!("write: {e}"))?;
    let read = |stream: &mut TcpStream, buf: &mut [u8]| -> Result<usize, String> {
        let n = match pace {
            Pace::Fast => stream.read(buf),
            Pace::Slow {
                bytes,
                pause,
                stop,
                read,
            } => {
                if stop.load(Ordering::Relaxed) {
                    return Err("stopped".into());
                }
                std::thread::sleep(pause);
                let limit = bytes.min(buf.len());
                let n = stream.read(&mut buf[..limit]);
                if let Ok(n) = n {
                    read.fetch_add(n as u64, Ordering::Relaxed);
                }
                n
            }
        };
        n.map_err(|e| format!("read: {e}"))
    };
    let mut head = Vec::with_capacity(1024);
    let mut first_byte = None;
    let split = loop {
        let n = read(stream, scratch)?;
        first_byte.get_or_insert_with(Instant::now);
        if n == 0 {
            return Err(format!(
                "closed after {} bytes of the answer's head",
                head.len()
            ));
        }
        let searched_from = head.len().saturating_sub(3);
        head.extend_from_slice(&scratch[..n]);
        if let Some(p) = head[searched_from..]
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
        {
            break searched_from + p;
        }
        if head.len() > 64 << 10 {
            return Err("answer head over 64 KiB".into());
        }
    };
    let text = String::from_utf8_lossy(&head[..split]).into_owned();
    let mut lines = text.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line in {text:?}"))?;
    let mut length = None;
    let mut close = false;
    for (k, v) in lines.filter_map(|l| l.split_once(':')) {
        let (k, v) = (k.trim(), v.trim());
        if k.eq_ignore_ascii_case("content-length") {
            length = v.parse::<usize>().ok();
        } else if k.eq_ignore_ascii_case("connection") && v.eq_ignore_ascii_case("close") {
            close = true;
        } else if k.eq_ignore_ascii_case("transfer-encoding") {
            return Err(format!("unexpected Transfer-Encoding: {v}"));
        }
    }
    let leftover = &head[split + 4..];
    let mut body = Vec::new();
    if keep_body {
        body.reserve(length.unwrap_or(0));
        body.extend_from_slice(leftover);
    }
    let mut body_len = leftover.len();
    match length {
        Some(length) => {
            if body_len > length {
                return Err("more bytes than Content-Length".into());
            }
            while body_len < length {
                let want = (length - body_len).min(scratch.len());
                let n = read(stream, &mut scratch[..want])?;
                if n == 0 {
                    return Err(format!("body cut at {body_len} of {length} bytes"));
                }
                if keep_body {
                    body.extend_from_slice(&scratch[..n]);
                }
                body_len += n;
            }
        }
        None => {
            close = true;
            loop {
                let n = read(stream, scratch)?;
                if n == 0 {
                    break;
                }
                if keep_body {
                    body.extend_from_slice(&scratch[..n]);
                }
                body_len += n;
            }
        }
    }
    Ok(Answer {
        first_byte: first_byte.unwrap_or_else(Instant::now),
        status,
        body,
        body_len,
        close,
    })
}

fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    let stream =
        TcpStream::connect_timeout(&addr, REQUEST_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(REQUEST_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(REQUEST_TIMEOUT)))
        .map_err(|e| format!("socket options: {e}"))?;
    Ok(stream)
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
    total: Duration,
}

/// One scrape on a new connection, checked: 200, the whole body, an exposition (gzip decoded).
fn scrape_once(addr: SocketAddr, gzip: bool) -> Result<Timing, String> {
    let started = Instant::now();
    let mut stream = connect(addr)?;
    let connected = started.elapsed();
    let mut scratch = vec![0; 64 << 10];
    let answer = exchange(
        &mut stream,
        &request_bytes(addr, gzip, true),
        true,
        &mut scratch,
        Pace::Fast,
    )?;
    let total = started.elapsed();
    let first_byte = answer.first_byte - started;
    if answer.status != 200 {
        return Err(format!("status {}", answer.status));
    }
    let text = if gzip {
        let mut text = String::new();
        flate2::read::GzDecoder::new(answer.body.as_slice())
            .read_to_string(&mut text)
            .map_err(|e| format!("gzip: {e}"))?;
        text
    } else {
        String::from_utf8(answer.body).map_err(|e| format!("utf-8: {e}"))?
    };
    if !text.contains("\ngitlab_up 1") || !text.ends_with("# EOF\n") {
        return Err(format!(
            "not a complete exposition ({} bytes of text)",
            text.len()
        ));
    }
    Ok(Timing {
        bytes: answer.body_len,
        connect: connected,
        first_byte,
        total,
    })
}

/// Scrapes back to back for `window`, alternating gzip and plain.
fn scrape_for(addr: SocketAddr, window: Duration) -> Scrapes {
    let mut scrapes = Scrapes::default();
    let started = Instant::now();
    let mut gzip = true;
    while started.elapsed() < window {
        let t = Instant::now();
        match scrape_once(addr, gzip) {
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
        let requests = [
            request_bytes(addr, true, false),
            request_bytes(addr, false, false),
        ];
        let mut scratch = vec![0; 64 << 10];
        let mut stream: Option<TcpStream> = None;
        let mut k = i;
        while !phase.attack_over.load(Ordering::Relaxed) {
            let s = match stream.as_mut() {
                Some(s) => s,
                None => match connect(addr) {
                    Ok(s) => {
                        ports.register(&s, Class::Flood);
                        stream.insert(s)
                    }
                    Err(_) => {
                        counts.connect_errors.fetch_add(1, Ordering::Relaxed);
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                },
            };
            k += 1;
            match exchange(s, &requests[k % 2], false, &mut scratch, Pace::Fast) {
                Ok(answer) if answer.status == 200 => {
                    counts.flood_served.fetch_add(1, Ordering::Relaxed);
                    counts
                        .flood_bytes
                        .fetch_add(answer.body_len as u64, Ordering::Relaxed);
                    if answer.close {
                        stream = None;
                    }
                }
                Ok(_) | Err(_) => {
                    counts.flood_errors.fetch_add(1, Ordering::Relaxed);
                    stream = None;
                }
            }
        }
        // The connection closes here: the flood is over.
    })
}

/// A connection with a small receive buffer reading plain `/metrics` a few hundred bytes at a
/// time; once the attack is over it stops reading and holds the connection until told to close.
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
        let request = request_bytes(addr, false, false);
        let mut scratch = vec![0; 64 << 10];
        let pace = Pace::Slow {
            bytes: settings.slow_read_bytes,
            pause: settings.slow_read_interval,
            stop: &phase.attack_over,
            read: &counts.slow_bytes,
        };
        loop {
            match exchange(&mut stream, &request, false, &mut scratch, pace) {
                Ok(_) => {
                    counts.slow_responses.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    if e != "stopped" {
                        counts.slow_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    break;
                }
            }
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
