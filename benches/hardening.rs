//! Hardening benchmark (issue 8): does a scraper with the right credentials keep its latency
//! and `gitlab_up 1` while 200 wrong passwords a second are sent, and do scrapes and
//! `/-/healthy` still answer with 256 open files at most and 1,000 idle connections held?
//!
//! ```text
//! cargo bench --bench hardening
//! cargo bench --bench hardening -- --guess-rate 200 --guess-secs 30 --idle 1000 --nofile 256
//! cargo bench --bench hardening -- --binary /path/to/an/older/gitlab-api-exporter
//! ```
//!
//! Against the release binary (or `--binary`) and the fake GitLab (`--projects` generated
//! projects, a 20 ms round trip on every call):
//!
//! 1. **Password guessing.** The exporter requires basic auth (bcrypt cost 10) and collects at
//!    every scrape (`--cache.ttl 0s`), so each scrape runs GitLab calls. A scraper with the
//!    right credentials scrapes back to back (a new connection each time, `gitlab_up` read
//!    from every answer) for `--quiet-secs` alone, then for `--guess-secs` while guessers send
//!    `--guess-rate` wrong passwords a second (each on a new connection, paced from a shared
//!    schedule by 64 threads).
//! 2. **Descriptors.** The exporter runs under `prlimit --nofile=N:N` (soft and hard, so it
//!    cannot raise them), `--cache.ttl 10m`; `--idle` connections are opened and held without
//!    a request; then a scraper alternates `/metrics` and `/-/healthy` for `--idle-secs`, each
//!    on a new connection with a 5 s timeout.
//!
//! Tables in markdown at the end; the exit status is 1 when a check fails (a guessing-phase
//! scrape slower than the quiet p99 + 100 ms at the median, or any with `gitlab_up` other than
//! 1; any error or timeout in the descriptors phase).

#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Exporter;
use fake_gitlab::{FakeGitlab, Instance};

#[derive(Debug, Clone)]
struct Settings {
    binary: String,
    projects: usize,
    quiet: Duration,
    guess: Duration,
    guess_rate: f64,
    nofile: u64,
    idle: usize,
    idle_window: Duration,
}

impl Settings {
    fn from_args() -> Settings {
        let mut s = Settings {
            binary: common::BINARY.to_owned(),
            projects: 1000,
            quiet: Duration::from_secs(10),
            guess: Duration::from_secs(30),
            guess_rate: 200.0,
            nofile: 256,
            idle: 1000,
            idle_window: Duration::from_secs(10),
        };
        let args: Vec<String> = std::env::args().skip(1).collect();
        let mut i = 0;
        while i < args.len() {
            let value = args.get(i + 1).cloned().unwrap_or_default();
            let secs = || Duration::from_secs_f64(value.parse().expect("seconds"));
            match args[i].as_str() {
                "--binary" => s.binary = value.clone(),
                "--projects" => s.projects = value.parse().expect("a number"),
                "--quiet-secs" => s.quiet = secs(),
                "--guess-secs" => s.guess = secs(),
                "--guess-rate" => s.guess_rate = value.parse().expect("a rate"),
                "--nofile" => s.nofile = value.parse().expect("a number"),
                "--idle" => s.idle = value.parse().expect("a number"),
                "--idle-secs" => s.idle_window = secs(),
                // cargo bench passes --bench.
                "--bench" => {
                    i += 1;
                    continue;
                }
                other => panic!("unknown argument {other:?}"),
            }
            i += 2;
        }
        s
    }
}

fn main() {
    let settings = Settings::from_args();
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let gitlab = runtime
        .block_on(FakeGitlab::start(Instance::generated(settings.projects)))
        .expect("fake GitLab");
    gitlab.set_latency(Duration::from_millis(20));
    println!(
        "binary: {} ({} projects, 20 ms round trip)\n",
        settings.binary, settings.projects
    );
    let mut passed = guessing(&settings, &gitlab);
    passed &= descriptors(&settings, &gitlab);
    runtime.block_on(gitlab.shutdown());
    if !passed {
        std::process::exit(1);
    }
}

/// An answer: status, `gitlab_up` if the body has it, connect and total time.
#[derive(Debug, Clone, Copy)]
struct Answer {
    status: u16,
    up: Option<f64>,
    connect: Duration,
    total: Duration,
}

/// GET `path` on a new connection with `Connection: close` and `headers`, read to the end.
fn get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Result<Answer, String> {
    let started = Instant::now();
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    let connect = started.elapsed();
    stream.set_read_timeout(Some(timeout)).unwrap();
    stream.set_write_timeout(Some(timeout)).unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("read after {:?}: {e}", started.elapsed()))?;
    let total = started.elapsed();
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status line ({} bytes)", raw.len()))?;
    let up = text
        .lines()
        .find_map(|l| l.strip_prefix("gitlab_up "))
        .and_then(|v| v.trim().parse().ok());
    Ok(Answer {
        status,
        up,
        connect,
        total,
    })
}

fn pct(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// A scraper's window: latencies of good answers, answers without `gitlab_up 1`, errors.
#[derive(Debug, Default)]
struct Window {
    latencies: Vec<Duration>,
    not_up: usize,
    errors: Vec<String>,
}

impl Window {
    fn row(&self, name: &str) -> String {
        let l = &self.latencies;
        format!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} |",
            l.len(),
            self.not_up,
            self.errors.len(),
            ms(pct(l, 0.5)),
            ms(pct(l, 0.9)),
            ms(pct(l, 0.99)),
            ms(l.last().copied().unwrap_or_default())
        )
    }
}

/// Scrapes `/metrics` back to back with `auth` for `window`.
fn scrape_for(addr: SocketAddr, auth: &str, window: Duration) -> Window {
    let mut w = Window::default();
    let started = Instant::now();
    while started.elapsed() < window {
        match get(
            addr,
            "/metrics",
            &[
                ("Authorization", auth),
                ("X-Prometheus-Scrape-Timeout-Seconds", "10"),
            ],
            Duration::from_secs(15),
        ) {
            Ok(a) if a.status == 200 => {
                w.latencies.push(a.total);
                if a.up != Some(1.0) {
                    w.not_up += 1;
                }
            }
            Ok(a) => w.errors.push(format!("status {}", a.status)),
            Err(e) => w.errors.push(e),
        }
    }
    w.latencies.sort();
    w
}

/// Phase 1: password guessing.
fn guessing(settings: &Settings, gitlab: &FakeGitlab) -> bool {
    let dir = std::env::temp_dir().join(format!("gae-bench-hardening-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let hash = bcrypt::hash("scrape-me", 10).unwrap();
    let config = dir.join("web.yml");
    std::fs::write(
        &config,
        format!("basic_auth_users:\n  prometheus: '{hash}'\n"),
    )
    .unwrap();
    let exporter = Exporter::spawn(common::command_of(
        &settings.binary,
        &[],
        &gitlab.url(),
        &[("GITLAB_TOKEN", &gitlab.token())],
        &[
            "--web.config.file",
            config.to_str().unwrap(),
            "--cache.ttl",
            "0s",
        ],
    ));
    let addr = exporter.addr;
    let right = common::basic_auth("prometheus", "scrape-me");
    // Warm: the first collection and the one bcrypt run for the right password.
    let warm = get(
        addr,
        "/metrics",
        &[("Authorization", &right)],
        Duration::from_secs(300),
    );
    assert!(
        warm.is_ok_and(|a| a.status == 200),
        "the first scrape failed"
    );
    let quiet = scrape_for(addr, &right, settings.quiet);

    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU64::new(0));
    let statuses = Arc::new(Mutex::new(Vec::<(u16, Duration)>::new()));
    let errors = Arc::new(AtomicU64::new(0));
    let interval = Duration::from_secs_f64(1.0 / settings.guess_rate);
    let started = Instant::now();
    let guessers: Vec<_> = (0..64)
        .map(|_| {
            let (stop, next, statuses, errors) = (
                Arc::clone(&stop),
                Arc::clone(&next),
                Arc::clone(&statuses),
                Arc::clone(&errors),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let at = started + interval.mul_f64(k as f64);
                    if let Some(wait) = at.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let wrong = common::basic_auth("prometheus", &format!("guess-{k}"));
                    match get(
                        addr,
                        "/metrics",
                        &[("Authorization", &wrong)],
                        Duration::from_secs(10),
                    ) {
                        Ok(a) => statuses.lock().unwrap().push((a.status, a.total)),
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    let attacked = scrape_for(addr, &right, settings.guess);
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    for g in guessers {
        let _ = g.join();
    }
    let statuses = statuses.lock().unwrap();
    let count = |code: u16| statuses.iter().filter(|(s, _)| *s == code).count();
    let mut guess_latency: Vec<Duration> = statuses.iter().map(|(_, t)| *t).collect();
    guess_latency.sort();
    let sent = statuses.len() as u64 + errors.load(Ordering::Relaxed);

    println!("## Password guessing (bcrypt cost 10, --cache.ttl 0s: every scrape collects)\n");
    println!("| phase | scrapes | without gitlab_up 1 | errors | p50 | p90 | p99 | max |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    println!("{}", quiet.row("quiet"));
    println!("{}", attacked.row("guessing"));
    println!();
    println!("| guesses | value |\n|---|---:|");
    println!(
        "| sent | {sent} in {:.1} s ({:.0} /s) |",
        elapsed.as_secs_f64(),
        sent as f64 / elapsed.as_secs_f64()
    );
    println!("| answered 429 (refused at once) | {} |", count(429));
    println!("| answered 401 (checked) | {} |", count(401));
    println!(
        "| errors or timeouts (10 s) | {} |",
        errors.load(Ordering::Relaxed)
    );
    println!(
        "| latency p50 / p99 / max | {} / {} / {} |",
        ms(pct(&guess_latency, 0.5)),
        ms(pct(&guess_latency, 0.99)),
        ms(guess_latency.last().copied().unwrap_or_default())
    );
    let delta = |q| pct(&attacked.latencies, q).saturating_sub(pct(&quiet.latencies, q));
    println!(
        "| scraper p50 / p99 minus quiet | {} / {} |\n",
        ms(delta(0.5)),
        ms(delta(0.99))
    );
    let _ = std::fs::remove_dir_all(&dir);
    let passed = attacked.errors.is_empty()
        && attacked.not_up == 0
        && !attacked.latencies.is_empty()
        && delta(0.5) < Duration::from_millis(100)
        && delta(0.99) < Duration::from_millis(100);
    if !passed {
        println!("CHECK FAILED: the scraper's latency or gitlab_up under guessing\n");
    }
    passed
}

/// Phase 2: descriptors.
fn descriptors(settings: &Settings, gitlab: &FakeGitlab) -> bool {
    let nofile = format!("--nofile={0}:{0}", settings.nofile);
    let exporter = Exporter::spawn(common::command_of(
        &settings.binary,
        &["prlimit", &nofile, "--"],
        &gitlab.url(),
        &[("GITLAB_TOKEN", &gitlab.token())],
        &["--cache.ttl", "10m"],
    ));
    let addr = exporter.addr;
    let warm = get(addr, "/metrics", &[], Duration::from_secs(300));
    assert!(
        warm.is_ok_and(|a| a.status == 200),
        "the first scrape failed"
    );
    let mut idle = Vec::with_capacity(settings.idle);
    let mut connect_errors = 0;
    for _ in 0..settings.idle {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(s) => idle.push(s),
            Err(_) => connect_errors += 1,
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut windows = [Window::default(), Window::default()];
    let started = Instant::now();
    let mut connects = Vec::new();
    let mut turn = 0;
    while started.elapsed() < settings.idle_window {
        let path = ["/metrics", "/-/healthy"][turn];
        let w = &mut windows[turn];
        match get(addr, path, &[], Duration::from_secs(5)) {
            Ok(a) if a.status == 200 => {
                w.latencies.push(a.total);
                connects.push(a.connect);
                if path == "/metrics" && a.up != Some(1.0) {
                    w.not_up += 1;
                }
            }
            Ok(a) => w.errors.push(format!("status {}", a.status)),
            Err(e) => w.errors.push(e),
        }
        turn = 1 - turn;
    }
    for w in &mut windows {
        w.latencies.sort();
    }
    connects.sort();
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", exporter.pid()))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .map(|l| l.split_whitespace().nth(3).unwrap_or("?").to_owned())
        .unwrap_or_default();
    drop(idle);
    println!(
        "## Descriptors ({} open files at most, {} idle connections held)\n",
        settings.nofile, settings.idle
    );
    println!("| path | answers | without gitlab_up 1 | errors | p50 | p90 | p99 | max |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    println!("{}", windows[0].row("/metrics"));
    println!("{}", windows[1].row("/-/healthy"));
    println!();
    println!(
        "exporter's soft limit: {limits}; idle connections opened: {} ({connect_errors} failed to connect); \
         connect p50 / max: {} / {}",
        settings.idle - connect_errors,
        ms(pct(&connects, 0.5)),
        ms(connects.last().copied().unwrap_or_default())
    );
    for (w, path) in windows.iter().zip(["/metrics", "/-/healthy"]) {
        if let Some(e) = w.errors.first() {
            println!("first error on {path}: {e}");
        }
    }
    println!();
    let passed = windows
        .iter()
        .all(|w| w.errors.is_empty() && w.not_up == 0 && !w.latencies.is_empty());
    if !passed {
        println!("CHECK FAILED: scrapes or /-/healthy did not all answer\n");
    }
    passed
}
