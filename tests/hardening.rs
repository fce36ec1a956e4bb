//! Hardening, end to end: what an attacker, a broken proxy or one odd project can do to the
//! exporter, class by class (password floods, secrets in echoed text, endless listings, files
//! that are not files, descriptor exhaustion, bad records, bad configuration), each against the
//! exporter binary and the fake GitLab.

mod common;

use std::time::{Duration, Instant};

use common::{Exporter, Exposition, http_request};
use fake_gitlab::{FakeGitlab, Instance};

async fn gitlab(instance: Instance) -> FakeGitlab {
    FakeGitlab::start(instance)
        .await
        .expect("fake GitLab starts")
}

/// A fresh directory under the system's temporary one, removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("gae-hardening-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn join(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Password guessing does not starve collections.

/// 60 connections sending wrong passwords back to back (each a bcrypt run at cost 10) for as
/// long as a scraper with the right credentials makes three collections: the guesses beyond
/// the password-check queue are refused at once, and every scrape gets a fresh collection in
/// time with `gitlab_up 1`: GitLab's calls never wait behind the guesses. (Before, every guess
/// held a blocking-pool thread waiting for one bcrypt lock, GitLab's calls queued behind them,
/// and scrapes timed out with `gitlab_up 0`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_guessing_does_not_starve_collections() {
    let gitlab = gitlab(Instance::demo()).await;
    let dir = TempDir::new("guessing");
    let hash = bcrypt::hash_with_salt("scrape-me", 10, *b"0123456789abcdef")
        .unwrap()
        .format_for_version(bcrypt::Version::TwoY);
    let config = dir.join("web.yml");
    std::fs::write(
        &config,
        format!("basic_auth_users:\n  prometheus: '{hash}'\n"),
    )
    .unwrap();
    let exporter = Exporter::start(
        &gitlab,
        &[
            "--web.config.file",
            config.to_str().unwrap(),
            "--cache.ttl",
            "0s",
        ],
    );
    let right = common::basic_auth("prometheus", "scrape-me");
    let scrape = || async {
        let started = Instant::now();
        let answer = exporter
            .get(
                "/metrics",
                &[
                    ("Authorization", &right),
                    ("X-Prometheus-Scrape-Timeout-Seconds", "5"),
                ],
            )
            .await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        (Exposition::parse(&answer.text()), started.elapsed())
    };
    let (quiet, _) = scrape().await;
    assert_eq!(quiet.value("gitlab_up", &[]), Some(1.0));

    let addr = exporter.addr;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let guessers: Vec<_> = (0..60)
        .map(|t| {
            let stop = std::sync::Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut answers = Vec::new();
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let wrong = common::basic_auth("prometheus", &format!("guess-{t}-{i}"));
                    i += 1;
                    let started = Instant::now();
                    let answer = http_request(
                        addr,
                        "GET",
                        "/metrics",
                        &[("Authorization".to_owned(), wrong)],
                    );
                    answers.push((answer.status, started.elapsed()));
                }
                answers
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Collections during the flood: each one fresh, in time, with GitLab up.
    let mut during = Vec::new();
    for _ in 0..3 {
        let (metrics, took) = scrape().await;
        during.push(took);
        assert_eq!(metrics.value("gitlab_up", &[]), Some(1.0), "{during:?}");
        assert_eq!(
            metrics.value("gitlab_projects", &[]),
            quiet.value("gitlab_projects", &[]),
            "{during:?}"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let answers: Vec<(u16, Duration)> = guessers
        .into_iter()
        .flat_map(|g| g.join().unwrap())
        .collect();
    let refused: Vec<Duration> = answers
        .iter()
        .filter(|(status, _)| *status == 429)
        .map(|(_, took)| *took)
        .collect();
    assert!(
        answers
            .iter()
            .all(|(status, _)| [401, 429].contains(status)),
        "{answers:?}"
    );
    assert!(
        refused.len() > answers.len() / 2,
        "{} of {} refused at once",
        refused.len(),
        answers.len()
    );
    let mut sorted = refused.clone();
    sorted.sort();
    assert!(
        sorted[sorted.len() / 2] < Duration::from_millis(100),
        "refusals are quick: median {:?}",
        sorted[sorted.len() / 2]
    );
    let (after, _) = scrape().await;
    let collected = after
        .value("gitlab_exporter_scrapes_total", &[("result", "collected")])
        .unwrap_or(0.0);
    assert_eq!(collected, 5.0, "every scrape got a fresh collection");
    assert_eq!(
        after.value(
            "gitlab_exporter_web_refused_requests_total",
            &[("reason", "auth_busy")]
        ),
        Some(refused.len() as f64)
    );
    assert_eq!(
        after.value(
            "gitlab_exporter_web_refused_requests_total",
            &[("reason", "unauthorized")]
        ),
        Some((answers.len() - refused.len()) as f64)
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Descriptors and connections.

/// The soft and hard limits on open files of a process, from `/proc/<pid>/limits`.
fn open_files_limits(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

/// GET `path` on a new connection, giving up after `timeout` (connecting included).
fn get_within(
    addr: std::net::SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<(u16, String), String> {
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(timeout)).unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status line: {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    Ok((status, body))
}

/// Started with a soft limit of 256 open files and a hard one of 4096, the exporter raises its
/// soft limit to 4096 (as Go programs do), and serves up to --web.max-connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_soft_open_files_limit_is_raised_to_the_hard_one() {
    let gitlab = gitlab(Instance::demo()).await;
    let exporter = Exporter::spawn(common::command(
        &["prlimit", "--nofile=256:4096", "--"],
        &gitlab.url(),
        &[("GITLAB_TOKEN", &gitlab.token())],
        &[],
    ));
    assert_eq!(open_files_limits(exporter.pid()), (4096, 4096));
    let metrics = exporter.scrape().await;
    assert_eq!(
        metrics.value("gitlab_exporter_web_connections_limit", &[]),
        Some(512.0),
        "the default --web.max-connections fits"
    );
}

/// With 256 open files at most (soft and hard) and 1,000 connections held open without a
/// request, a scrape and /-/healthy still answer at once: at the connection cap (lowered to
/// what 256 descriptors allow, with a log line), the connection idle the longest is closed to
/// make room. (Before, the idle connections took every descriptor, accept failed, and new
/// scrapes waited in the accept queue until the idle ones timed out.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_cannot_lock_scrapers_out() {
    rlimit::increase_nofile_limit(4096).unwrap();
    let gitlab = gitlab(Instance::demo()).await;
    let exporter = Exporter::spawn(common::command(
        &["prlimit", "--nofile=256:256", "--"],
        &gitlab.url(),
        &[("GITLAB_TOKEN", &gitlab.token())],
        &[],
    ));
    assert_eq!(open_files_limits(exporter.pid()), (256, 256));
    exporter.logs_once("more than the descriptor limit allows");
    let addr = exporter.addr;
    let idle: Vec<std::net::TcpStream> = tokio::task::spawn_blocking(move || {
        (0..1000)
            .map(|_| std::net::TcpStream::connect(addr).expect("connect"))
            .collect()
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let within = Duration::from_secs(5);
    for path in ["/-/healthy", "/metrics"] {
        let started = Instant::now();
        let answer = tokio::task::spawn_blocking(move || get_within(addr, path, within))
            .await
            .unwrap();
        let (status, body) = answer.unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(status, 200, "{path}: {body}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{path}: {:?}",
            started.elapsed()
        );
        if path == "/metrics" {
            let metrics = Exposition::parse(&body);
            assert_eq!(metrics.value("gitlab_up", &[]), Some(1.0));
            let limit = metrics
                .value("gitlab_exporter_web_connections_limit", &[])
                .unwrap();
            assert!((16.0..=192.0).contains(&limit), "{limit}");
            let open = metrics
                .value("gitlab_exporter_web_connections", &[])
                .unwrap();
            assert!(open <= limit, "{open} open, limit {limit}");
            let closed = metrics
                .value("gitlab_exporter_web_idle_connections_closed_total", &[])
                .unwrap();
            assert!(closed >= 1000.0 - limit, "{closed} closed");
        }
    }
    drop(idle);
}

// ---------------------------------------------------------------------------------------------
// 2. Secrets scrubbed after every transformation.

/// GitLab (or a proxy) echoes the token in an error body with JSON escapes, then redirects to
/// a URL with a password: neither the token (decoded) nor the password appears in the log,
/// the status page or the metrics; the messages say `<redacted>` instead. (Before, the raw
/// body was scrubbed, then decoded: the token came out whole.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echoed_tokens_and_url_passwords_are_redacted_once_decoded() {
    use fake_gitlab::Faults;
    let gitlab = gitlab(Instance::demo()).await;
    let token = gitlab.token();
    let exporter = Exporter::start(
        &gitlab,
        &[
            "--gitlab.api",
            "rest",
            "--cache.ttl",
            "0s",
            "--log.level",
            "debug",
        ],
    );
    gitlab.set_faults(Faults {
        route: Some("/projects".to_owned()),
        echo_token: true,
        ..Faults::default()
    });
    let metrics = exporter.get("/metrics", &[]).await.text();
    assert_eq!(
        Exposition::parse(&metrics).value("gitlab_up", &[]),
        Some(0.0)
    );
    let logs = exporter.logs_once("collection failed");
    let page = exporter.get("/", &[]).await.text();
    for (what, text) in [
        ("log", &logs),
        ("status page", &page),
        ("metrics", &metrics),
    ] {
        assert!(!text.contains(&token), "the token in the {what}: {text}");
    }
    assert!(logs.contains("PRIVATE-TOKEN: <redacted>"), "{logs}");
    assert!(page.contains("PRIVATE-TOKEN: &lt;redacted&gt;"), "{page}");

    gitlab.set_faults(Faults {
        route: Some("/projects".to_owned()),
        redirect_to: Some("https://scraper:hunter2@gitlab.example.com".to_owned()),
        ..Faults::default()
    });
    let metrics = exporter.get("/metrics", &[]).await.text();
    assert_eq!(
        Exposition::parse(&metrics).value("gitlab_up", &[]),
        Some(0.0)
    );
    let logs = exporter.logs_once("redirects are not followed");
    let page = exporter.get("/", &[]).await.text();
    for (what, text) in [("log", &logs), ("status page", &page)] {
        assert!(
            !text.contains("hunter2"),
            "the password in the {what}: {text}"
        );
        assert!(!text.contains(&token), "the token in the {what}: {text}");
    }
    assert!(
        logs.contains("https://scraper:<redacted>@gitlab.example.com/api/v4/projects"),
        "{logs}"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Files are read safely.

/// Makes a FIFO at `path`.
fn mkfifo(path: &std::path::Path) {
    let made = std::process::Command::new("mkfifo").arg(path).status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo {}", path.display());
}

/// Runs the exporter with `args` (and a demo GitLab, so no token is needed) and returns its
/// exit code and what it printed, or `None` if it was still running after 10 s (then killed).
fn exit_of(args: &[&str]) -> (Option<i32>, String) {
    let mut child = std::process::Command::new(common::BINARY)
        .args(["--web.listen-address", "127.0.0.1:0", "--demo"])
        .args(args)
        .env_remove("GITLAB_TOKEN")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    use std::io::Read;
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    (code, stderr)
}

/// A FIFO, a device or an oversized file given for any of the files the exporter reads is
/// refused at start with exit status 2 and a message naming the flag, at once. (Before, a FIFO
/// blocked the start forever and /dev/zero ate memory until the process died.)
#[test]
fn files_that_are_not_regular_or_too_large_are_refused_at_start() {
    let dir = TempDir::new("files");
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    let big = dir.join("big");
    std::fs::write(&big, vec![b'x'; 2 << 20]).unwrap();
    let web_config = dir.join("web.yml");
    std::fs::write(
        &web_config,
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
            fifo.display(),
            fifo.display()
        ),
    )
    .unwrap();
    let fifo = fifo.to_str().unwrap();
    let cases: [(&str, &str, &str); 6] = [
        ("--gitlab.token-file", fifo, "(a FIFO)"),
        ("--gitlab.token-file", "/dev/zero", "(a device)"),
        ("--gitlab.token-file", big.to_str().unwrap(), "larger than"),
        ("--web.config.file", fifo, "(a FIFO)"),
        (
            "--web.config.file",
            web_config.to_str().unwrap(),
            "cert_file",
        ),
        ("--gitlab.ca-file", fifo, "(a FIFO)"),
    ];
    for (flag, path, why) in cases {
        let started = Instant::now();
        let (code, stderr) = exit_of(&[flag, path]);
        assert_eq!(code, Some(2), "{flag} {path}: {stderr}");
        assert!(
            stderr.contains(flag) && stderr.contains(why),
            "{flag} {path}: {stderr}"
        );
        assert!(started.elapsed() < Duration::from_secs(5), "{flag} {path}");
    }
}

/// The token file is replaced by a FIFO and the exporter gets SIGHUP: it says why it keeps the
/// current token at once, and /-/healthy and scrapes go on answering. (Before, the read blocked
/// an async worker forever.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_cannot_read_keeps_the_token_and_serving_goes_on() {
    let gitlab = gitlab(Instance::demo()).await;
    let dir = TempDir::new("reload");
    let file = dir.join("token");
    std::fs::write(&file, format!("{}\n", gitlab.token())).unwrap();
    let exporter = Exporter::start_with_env(
        &gitlab.url(),
        &[],
        &[
            "--gitlab.token-file",
            file.to_str().unwrap(),
            "--cache.ttl",
            "0s",
        ],
    );
    assert_eq!(exporter.scrape().await.value("gitlab_up", &[]), Some(1.0));
    std::fs::remove_file(&file).unwrap();
    mkfifo(&file);
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &exporter.pid().to_string()])
        .status();
    assert!(hup.is_ok_and(|s| s.success()));
    let logs = exporter.logs_once("keeping the current token");
    assert!(logs.contains("(a FIFO)"), "{logs}");
    let addr = exporter.addr;
    let started = Instant::now();
    let healthy =
        tokio::task::spawn_blocking(move || get_within(addr, "/-/healthy", Duration::from_secs(2)))
            .await
            .unwrap();
    assert_eq!(healthy.map(|(status, _)| status), Ok(200));
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(
        exporter.scrape().await.value("gitlab_up", &[]),
        Some(1.0),
        "the old token is kept"
    );
}

// ---------------------------------------------------------------------------------------------
// 7. Configuration refused at start, not at scrape time.

/// A GitLab URL the HTTP client cannot use, and telemetry paths that no request could match
/// or that shadow a route, are refused at start with exit status 2 and a message naming the
/// flag. (Before, they were accepted and failed at every scrape, or silently never matched.)
#[test]
fn unusable_urls_and_paths_are_refused_at_start() {
    for (flag, value) in [
        ("--gitlab.url", "http://[::1"),
        ("--gitlab.url", "http://gitlab.example.com:99999"),
        ("--web.telemetry-path", "/metrics?format=text"),
        ("--web.telemetry-path", "/probe"),
        ("--web.telemetry-path", "/-/healthy"),
        ("--web.telemetry-path", "/"),
        ("--web.telemetry-path", "/gitlab/../metrics"),
    ] {
        let (code, stderr) = exit_of(&[flag, value]);
        assert_eq!(code, Some(2), "{flag} {value}: {stderr}");
        assert!(stderr.contains(flag), "{flag} {value}: {stderr}");
    }
}

/// A default branch named `..` is asked for as `branches/%2E%2E`: through a proxy that
/// resolves dot segments, the request still names the branch, and the project's commits are
/// counted. (Before, `branches/..` reached GitLab as `repository/`, and the commits were
/// missing.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_segments_are_encoded_so_paths_mean_what_they_say() {
    use fake_gitlab::Faults;
    let gitlab = gitlab(Instance::demo()).await;
    // labs/guest-public: a Guest sees no statistics, so its commits come from the branch head.
    gitlab.with_instance(|i| {
        let p = i.project_mut(21).unwrap();
        p.default_branch = Some("..".to_owned());
    });
    gitlab.set_faults(Faults {
        normalize_paths: true,
        ..Faults::default()
    });
    let exporter = Exporter::start(&gitlab, &[]);
    let metrics = exporter.scrape().await;
    assert_eq!(
        metrics.value(
            "gitlab_project_commits",
            &[("project", "labs/guest-public")]
        ),
        Some(57.0)
    );
    assert_eq!(gitlab.requests("unknown"), 0);
}

// ---------------------------------------------------------------------------------------------
// 3. Every collection ends.

/// A scrape as Prometheus sends it with a 5 s `scrape_timeout`.
async fn scrape_5s(exporter: &Exporter) -> Exposition {
    let answer = exporter
        .get("/metrics", &[("X-Prometheus-Scrape-Timeout-Seconds", "5")])
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    Exposition::parse(&answer.text())
}

/// A proxy makes the keyset listing endless, inventing projects with growing ids: the walk
/// stops once the listings returned --collect.max-projects projects, the collection fails
/// with one log line and `gitlab_exporter_collections_aborted_total{limit="max_projects"}`,
/// and the last good data is served. (Before, the walk went on without end.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_without_end_stops_at_max_projects() {
    use fake_gitlab::Faults;
    let gitlab = gitlab(Instance::demo()).await;
    let exporter = Exporter::start(
        &gitlab,
        &[
            "--gitlab.api",
            "rest",
            "--cache.ttl",
            "0s",
            "--collect.max-projects",
            "2000",
        ],
    );
    let good = scrape_5s(&exporter).await;
    assert_eq!(good.value("gitlab_up", &[]), Some(1.0));
    gitlab.set_faults(Faults {
        route: Some("/projects".to_owned()),
        endless: true,
        ..Faults::default()
    });
    gitlab.reset_counts();
    let failed = scrape_5s(&exporter).await;
    assert_eq!(failed.value("gitlab_up", &[]), Some(0.0));
    assert_eq!(
        failed.value(
            "gitlab_exporter_collections_aborted_total",
            &[("limit", "max_projects")]
        ),
        Some(1.0)
    );
    assert_eq!(
        failed.value("gitlab_projects", &[]),
        good.value("gitlab_projects", &[]),
        "the last good data is served"
    );
    let pages = gitlab.requests("/projects");
    assert!(
        (20..=22).contains(&pages),
        "{pages} pages of 100 for 2000 projects"
    );
    let logs = exporter.logs_once("collection failed");
    assert!(
        logs.contains("more than --collect.max-projects (2000)"),
        "{logs}"
    );
}

/// A cache in front of GitLab answers every page of the group merge-request change query with
/// page 1 and `X-Next-Page: n + 1`, forever, with `X-Total: 1`: the walk stops at the page the
/// total says is the last, and the change it shows is counted exactly. (Before, the walk
/// followed `X-Next-Page` without end.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_walk_stops_where_the_total_says() {
    use fake_gitlab::{Faults, MergeRequestChange};
    let gitlab = gitlab(Instance::demo()).await;
    let exporter = Exporter::start(&gitlab, &["--gitlab.group", "acme", "--cache.ttl", "0s"]);
    let before = scrape_5s(&exporter).await;
    let merged = |e: &Exposition| {
        e.value(
            "gitlab_project_merge_requests",
            &[("project", "acme/api"), ("state", "merged")],
        )
    };
    assert_eq!(merged(&before), Some(312.0));
    assert!(gitlab.change_merge_request(42, MergeRequestChange::Merge));
    gitlab.set_faults(Faults {
        route: Some("/groups/:id/merge_requests".to_owned()),
        endless: true,
        ..Faults::default()
    });
    gitlab.reset_counts();
    let after = scrape_5s(&exporter).await;
    assert_eq!(after.value("gitlab_up", &[]), Some(1.0));
    assert_eq!(merged(&after), Some(313.0));
    assert_eq!(gitlab.requests("/groups/:id/merge_requests"), 1);
}

/// GitLab hangs every call longer than --collect.timeout: the collection is abandoned at the
/// limit with `gitlab_exporter_collections_aborted_total{limit="timeout"}`, and the next one
/// starts afresh and succeeds once GitLab answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_longer_than_its_timeout_is_abandoned() {
    use fake_gitlab::Faults;
    let gitlab = gitlab(Instance::demo()).await;
    let exporter = Exporter::start(
        &gitlab,
        &[
            "--cache.ttl",
            "0s",
            "--collect.timeout",
            "2s",
            "--gitlab.request-timeout",
            "1m",
        ],
    );
    gitlab.set_faults(Faults {
        hang: true,
        ..Faults::default()
    });
    let first = scrape_5s(&exporter).await;
    assert_eq!(first.value("gitlab_up", &[]), Some(0.0));
    assert_eq!(
        first.value(
            "gitlab_exporter_collections_aborted_total",
            &[("limit", "timeout")]
        ),
        Some(1.0)
    );
    exporter.logs_once("longer than --collect.timeout (2s)");
    gitlab.set_faults(Faults::default());
    let second = scrape_5s(&exporter).await;
    assert_eq!(second.value("gitlab_up", &[]), Some(1.0));
    assert!(second.value("gitlab_projects", &[]).is_some());
}

// ---------------------------------------------------------------------------------------------
// 6. One bad record costs only itself.

/// Fields of single projects as real GitLab answers have carried them (a negative storage size,
/// gitlab-org/gitlab#23327; an integer above u64; bytes that are not UTF-8 in a name; a lone
/// surrogate in a path; a number for a branch name; a null commit id; a path of 10 MB): each
/// costs only the values it feeds, with a log line and `reason="decode"`; the page, the other
/// projects and the project's other families are exported exactly, and the long path is cut
/// rather than inflating the exposition. (Before, the first of them failed the whole listing.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bad_record_costs_only_itself() {
    use fake_gitlab::{Corruption, Faults};
    let gitlab = gitlab(Instance::demo()).await;
    let long_path = format!("\"acme/web/{}\"", "x".repeat(10 << 20));
    gitlab.set_faults(Faults {
        corrupt: vec![
            Corruption::new(42, "/statistics/repository_size", "-1234"),
            Corruption::new(7, "/forks_count", "18446744073709551616"),
            Corruption::new(88, "/name", b"\"Terraform \xff\xfe\"".to_vec()),
            Corruption::new(29, "/path_with_namespace", r#""acme/docs\ud800""#),
            Corruption::new(50, "/default_branch", "42"),
            Corruption::new(21, "/commit/id", "null"),
            Corruption::new(15, "/path_with_namespace", long_path),
        ],
        ..Faults::default()
    });
    let exporter = Exporter::start(&gitlab, &["--gitlab.api", "rest"]);
    let answer = exporter.get("/metrics", &[]).await;
    assert_eq!(answer.status, 200);
    let text = answer.text();
    assert!(
        text.len() < 1 << 20,
        "the exposition is {} bytes",
        text.len()
    );
    let metrics = Exposition::parse(&text);
    assert_eq!(metrics.value("gitlab_up", &[]), Some(1.0));
    let expected = gitlab.with_instance(|i| common::expected_membership(i));
    assert_eq!(
        metrics.value("gitlab_projects", &[]),
        Some(expected.len() as f64)
    );
    let affected = [42, 7, 29, 21, 15];
    for e in expected.iter().filter(|e| !affected.contains(&e.id)) {
        common::assert_project(&metrics, e);
    }
    let of = |id: u64| expected.iter().find(|e| e.id == id).unwrap().clone();
    // acme/api: only the repository size is missing.
    let storage = |project: &str| {
        metrics
            .series("gitlab_project_storage_bytes")
            .into_iter()
            .filter(|s| s.labels["project"] == project)
            .map(|s| s.labels["storage"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(storage("acme/api").len(), 8);
    assert!(!storage("acme/api").contains(&"repository".to_owned()));
    let mut api = of(42);
    api.statistics = false; // storage checked above
    let api_storage_checked = Exposition {
        samples: metrics
            .samples
            .iter()
            .filter(|s| s.name != "gitlab_project_storage_bytes")
            .cloned()
            .collect(),
    };
    common::assert_project(&api_storage_checked, &api);
    // acme/platform/deploy: only the forks.
    let mut deploy = of(7);
    deploy.forks = None;
    common::assert_project(&metrics, &deploy);
    // acme/docs: exported under its path with U+FFFD for the lone surrogate.
    let mut docs = of(29);
    docs.path = "acme/docs\u{FFFD}".to_owned();
    common::assert_project(&metrics, &docs);
    // acme/release-train: no default branch label, its commits still counted.
    assert_eq!(
        metrics.value(
            "gitlab_project_info",
            &[("project", "acme/release-train"), ("default_branch", "")]
        ),
        Some(1.0)
    );
    // labs/guest-public: no commits (its branch has no head id); all else exact.
    let mut guest = of(21);
    guest.commits = None;
    common::assert_project(&metrics, &guest);
    // acme/web/frontend: under its path cut to 8 KiB.
    let frontend: Vec<_> = metrics
        .series("gitlab_project_info")
        .into_iter()
        .filter(|s| s.labels["project_id"] == "15")
        .collect();
    assert_eq!(frontend.len(), 1);
    assert_eq!(frontend[0].labels["project"].len(), 8 << 10);
    assert_eq!(
        metrics.value("gitlab_project_commits", &[("project_id", "15")]),
        of(15).commits.map(|c| c as f64)
    );
    assert_eq!(
        metrics.value(
            "gitlab_exporter_api_errors_total",
            &[("endpoint", "/projects"), ("reason", "decode")]
        ),
        Some(6.0),
        "5 records with unusable fields, 1 answer with bytes that are not UTF-8"
    );
    assert_eq!(
        metrics.value(
            "gitlab_exporter_api_errors_total",
            &[
                ("endpoint", "/projects/:id/repository/branches/:branch"),
                ("reason", "decode")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        metrics.value("gitlab_exporter_collect_incomplete_projects", &[]),
        Some(1.0),
        "labs/guest-public, whose branch call failed"
    );
    let logs = exporter.logs_once("cannot be used");
    for needle in [
        "project 42 (acme/api): statistics.repository_size: invalid value: integer `-1234`",
        "project 7 (acme/platform/deploy): forks_count",
        "project 29",
        "project 50 (acme/release-train): default_branch: invalid type: integer `42`",
        "project 15",
        "not UTF-8",
    ] {
        assert!(logs.contains(needle), "{needle:?} not in the log:\n{logs}");
    }
}
