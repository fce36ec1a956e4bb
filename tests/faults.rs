//! Failure modes, end to end: the exporter binary against the fake GitLab with faults injected
//! (5xx, resets, both kinds of 429, rate limits, hangs, malformed bodies, a rejected token), and
//! what a scrape then answers, how fast, and with which values.

mod common;

use std::time::{Duration, Instant};

use common::{Exporter, Exposition, assert_exact, expected_membership, http_request};
use fake_gitlab::{FakeGitlab, Faults, Instance, Malformed};

const MERGE_REQUESTS: &str = "/projects/:id/merge_requests";

async fn gitlab(instance: Instance) -> FakeGitlab {
    FakeGitlab::start(instance)
        .await
        .expect("fake GitLab starts")
}

/// A scrape as Prometheus sends it with `scrape_timeout` = `timeout`, and how long it took.
async fn scrape_within(exporter: &Exporter, timeout: f64) -> (Exposition, Duration) {
    let started = Instant::now();
    let header = ("X-Prometheus-Scrape-Timeout-Seconds", timeout.to_string());
    let response = exporter.get("/metrics", &[(header.0, &header.1)]).await;
    assert_eq!(response.status, 200, "{}", response.text());
    (Exposition::parse(&response.text()), started.elapsed())
}

/// The sum of a counter's samples whose labels include `labels`.
fn sum(exposition: &Exposition, name: &str, labels: &[(&str, &str)]) -> f64 {
    exposition
        .series(name)
        .iter()
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

/// 5 % of answers are 5xx and 5 % of connections are reset: retries with backoff still give
/// exact values for every project, and the failures are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flaky_gitlab_still_gives_exact_values() {
    let gitlab = gitlab(Instance::demo()).await;
    gitlab.set_faults(Faults {
        server_error_rate: 0.05,
        reset_rate: 0.05,
        ..Faults::default()
    });
    let exporter = Exporter::start(&gitlab, &["--gitlab.api", "rest"]);
    let metrics = exporter.scrape().await;
    assert!(
        gitlab.faults_injected() >= 20,
        "{}",
        gitlab.faults_injected()
    );
    assert_exact(&metrics, &gitlab.with_instance(|i| expected_membership(i)));
    assert!(
        sum(
            &metrics,
            "gitlab_exporter_api_errors_total",
            &[("reason", "server_error")]
        ) > 0.0
    );
    assert!(
        sum(
            &metrics,
            "gitlab_exporter_api_errors_total",
            &[("reason", "transport")]
        ) > 0.0
    );
    assert_eq!(
        metrics.value("gitlab_exporter_collect_incomplete_projects", &[]),
        Some(0.0)
    );
}

/// GitLab's application limits answer 429 with a JSON body and no header saying when to come
/// back: the exporter backs off and continues, and loses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_without_headers_is_backed_off_and_loses_nothing() {
    let gitlab = gitlab(Instance::demo()).await;
    gitlab.set_faults(Faults {
        route: Some(MERGE_REQUESTS.to_owned()),
        endpoint_throttle_rate: 0.2,
        ..Faults::default()
    });
    let exporter = Exporter::start(&gitlab, &[]);
    let metrics = exporter.scrape().await;
    assert!(gitlab.faults_injected() > 0);
    assert_exact(&metrics, &gitlab.with_instance(|i| expected_membership(i)));
    assert_eq!(
        sum(
            &metrics,
            "gitlab_exporter_api_requests_total",
            &[("endpoint", MERGE_REQUESTS), ("code", "429")]
        ),
        gitlab.faults_injected() as f64
    );
    assert!(
        sum(
            &metrics,
            "gitlab_exporter_api_errors_total",
            &[("reason", "throttled")]
        ) > 0.0
    );
}

/// With a rate limit of 60 calls per 3 s window, the exporter reads `RateLimit-*`, slows down
/// before the quota runs out rather than running into it, exports the headers, and the values
/// are exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_headers_pace_the_calls() {
    let mut instance = Instance::demo();
    instance.rate_limit_per_minute = Some(60);
    instance.rate_limit_period_seconds = 3;
    let gitlab = gitlab(instance).await;
    let exporter = Exporter::start(&gitlab, &["--gitlab.api", "rest"]);
    let metrics = exporter.scrape().await;
    assert_exact(&metrics, &gitlab.with_instance(|i| expected_membership(i)));
    let calls = gitlab.total_requests();
    assert!(calls > 120, "the collection needs several windows: {calls}");
    let throttled = sum(
        &metrics,
        "gitlab_exporter_api_requests_total",
        &[("code", "429")],
    );
    assert!(throttled <= 3.0, "{throttled} calls ran into the limit");
    assert_eq!(
        metrics.value("gitlab_api_rate_limit_limit", &[]),
        Some(60.0)
    );
    let remaining = metrics.value("gitlab_api_rate_limit_remaining", &[]);
    assert!(
        remaining.is_some_and(|r| (0.0..=60.0).contains(&r)),
        "{remaining:?}"
    );
    let reset = metrics
        .value("gitlab_api_rate_limit_reset_timestamp_seconds", &[])
        .expect("reset time");
    assert!((reset - gitlab.now() as f64).abs() <= 10.0, "{reset}");
}

/// A burst larger than the quota (64 calls at once against 20 per 3 s window, before any
/// answer told the quota) runs into Rack::Attack's 429 with `Retry-After`: every call pauses
/// as told, then goes on; nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_with_retry_after_pauses_and_loses_nothing() {
    let mut instance = Instance::generated(15);
    instance.rate_limit_per_minute = Some(20);
    instance.rate_limit_period_seconds = 3;
    let gitlab = gitlab(instance).await;
    let exporter = Exporter::start(
        &gitlab,
        &["--gitlab.api", "rest", "--gitlab.concurrency", "64"],
    );
    let metrics = exporter.scrape().await;
    assert_exact(&metrics, &gitlab.with_instance(|i| expected_membership(i)));
    let throttled = sum(
        &metrics,
        "gitlab_exporter_api_requests_total",
        &[("code", "429")],
    );
    assert!(throttled > 0.0, "the first burst is throttled");
    assert_eq!(
        sum(
            &metrics,
            "gitlab_exporter_api_errors_total",
            &[("reason", "throttled")]
        ),
        throttled
    );
    assert_eq!(
        metrics.value("gitlab_exporter_collect_incomplete_projects", &[]),
        Some(0.0)
    );
}

/// A fixed cap below what one collection needs: every scrape answers within Prometheus's
/// timeout (at first without data, still `gitlab_up 1`), GitLab never sees more than the cap,
/// and the values become complete and exact over the following scrapes. GitLab's own limit is
/// above the cap: no 429 is provoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_requests_per_second_keeps_scrapes_on_time() {
    let mut instance = Instance::demo();
    instance.rate_limit_per_minute = Some(130);
    instance.rate_limit_period_seconds = 2;
    let gitlab = gitlab(instance).await;
    let exporter = Exporter::start(
        &gitlab,
        &[
            "--gitlab.api",
            "rest",
            "--gitlab.max-requests-per-second",
            "50",
            "--cache.ttl",
            "0s",
        ],
    );
    let started = Instant::now();
    let (first, took) = scrape_within(&exporter, 2.0).await;
    assert!(took < Duration::from_millis(2000), "{took:?}");
    assert_eq!(first.value("gitlab_up", &[]), Some(1.0));
    assert_eq!(first.value("gitlab_projects", &[]), None, "no data yet");
    assert_eq!(
        first.value("gitlab_exporter_scrapes_total", &[("result", "timeout")]),
        Some(1.0)
    );
    let expected = gitlab.with_instance(|i| expected_membership(i));
    let complete = loop {
        let (metrics, took) = scrape_within(&exporter, 2.0).await;
        assert!(took < Duration::from_millis(2000), "{took:?}");
        if metrics.value("gitlab_projects", &[]).is_some() {
            break metrics;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no data after a minute"
        );
    };
    let elapsed = started.elapsed().as_secs_f64();
    assert_exact(&complete, &expected);
    let calls = complete
        .value("gitlab_exporter_collect_api_requests", &[])
        .expect("calls");
    assert!(calls > 100.0, "{calls}");
    // 50 per second at most (plus the first call, at once).
    assert!(
        calls <= 50.0 * elapsed + 1.0,
        "{calls} calls in {elapsed:.1} s"
    );
    assert!(
        (calls - 1.0) / 50.0 <= elapsed,
        "{calls} calls in {elapsed:.1} s: faster than the cap"
    );
    let throttled = sum(
        &complete,
        "gitlab_exporter_api_requests_total",
        &[("code", "429")],
    );
    assert!(throttled <= 2.0, "{throttled} 429s");
    assert!(
        complete
            .value("gitlab_exporter_last_success_timestamp_seconds", &[])
            .is_some()
    );
}

/// GitLab hangs: the scrape answers within its timeout with `gitlab_up 0` and the last data,
/// which is dropped once older than `--cache.max-stale`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_gitlab_answers_in_time_then_drops_old_data() {
    let gitlab = gitlab(Instance::demo()).await;
    let exporter = Exporter::start(&gitlab, &["--cache.ttl", "0s", "--cache.max-stale", "4s"]);
    let (good, _) = scrape_within(&exporter, 5.0).await;
    assert_eq!(good.value("gitlab_up", &[]), Some(1.0));
    let collected_at = Instant::now();
    let last_success = good
        .value("gitlab_exporter_last_success_timestamp_seconds", &[])
        .expect("last success");

    gitlab.set_faults(Faults {
        hang: true,
        ..Faults::default()
    });
    let (stale, took) = scrape_within(&exporter, 2.0).await;
    assert!(took < Duration::from_millis(2000), "{took:?}");
    assert_eq!(stale.value("gitlab_up", &[]), Some(0.0));
    assert_eq!(
        stale.value("gitlab_projects", &[]),
        good.value("gitlab_projects", &[]),
        "the last data is served"
    );
    assert_eq!(
        stale.value("gitlab_exporter_last_success_timestamp_seconds", &[]),
        Some(last_success)
    );
    let logs = exporter.logs_once("did not finish within the scrape timeout");
    assert!(!logs.contains(&gitlab.token()));

    // Past max-stale: no per-project series, still an answer in time, still down.
    tokio::time::sleep(Duration::from_secs(4).saturating_sub(collected_at.elapsed())).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (expired, took) = scrape_within(&exporter, 2.0).await;
    assert!(took < Duration::from_millis(2000), "{took:?}");
    assert_eq!(expired.value("gitlab_up", &[]), Some(0.0));
    assert_eq!(expired.value("gitlab_projects", &[]), None);
    assert!(expired.series("gitlab_project_info").is_empty());
    assert!(expired.series("gitlab_project_commits").is_empty());
    assert_eq!(
        expired.value("gitlab_exporter_last_success_timestamp_seconds", &[]),
        None
    );
    gitlab.set_faults(Faults::default());
}

/// A collection that fails (here: the token was revoked) serves the last good data with
/// `gitlab_up 0` until `--cache.max-stale`, then leaves the per-project series out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_collections_serve_the_last_data_until_max_stale() {
    let gitlab = gitlab(Instance::demo()).await;
    let exporter = Exporter::start(&gitlab, &["--cache.ttl", "0s", "--cache.max-stale", "3s"]);
    let good = exporter.scrape().await;
    let collected_at = Instant::now();
    gitlab.with_instance(|i| i.token = "glpat-rotated-elsewhere".to_owned());
    let failed = exporter.scrape().await;
    assert_eq!(failed.value("gitlab_up", &[]), Some(0.0));
    assert_eq!(
        failed.value("gitlab_project_commits", &[("project", "acme/api")]),
        good.value("gitlab_project_commits", &[("project", "acme/api")])
    );
    assert!(
        failed
            .value("gitlab_project_commits", &[("project", "acme/api")])
            .is_some()
    );
    tokio::time::sleep(Duration::from_secs(3).saturating_sub(collected_at.elapsed())).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let expired = exporter.scrape().await;
    assert_eq!(expired.value("gitlab_up", &[]), Some(0.0));
    assert!(expired.series("gitlab_project_info").is_empty());
    assert_eq!(expired.value("gitlab_projects", &[]), None);
}

/// 12 projects (each failing call is retried with backoff, about 4 s, before it gives up), and
/// an exporter that collects at every scrape over REST (its merge-request counts are the calls
/// made to fail), counting everything from scratch, with the given `--cache.max-stale`.
async fn recounting_everything(max_stale: Duration) -> (FakeGitlab, Exporter) {
    let gitlab = gitlab(Instance::generated(12)).await;
    let max_stale = format!("{}s", max_stale.as_secs());
    let exporter = Exporter::start(
        &gitlab,
        &[
            "--gitlab.api",
            "rest",
            "--cache.ttl",
            "0s",
            "--cache.max-stale",
            &max_stale,
            "--collect.full-refresh-interval",
            "0s",
        ],
    );
    (gitlab, exporter)
}

/// One family's calls keep failing: its last good values are kept (other projects and
/// families are unaffected), the failures are counted, and after max-stale only that family's
/// series go away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_calls_keep_the_last_good_values_for_max_stale() {
    let (gitlab, exporter) = recounting_everything(Duration::from_secs(8)).await;
    let good = exporter.scrape().await;
    let expected = gitlab.with_instance(|i| expected_membership(i));
    assert_exact(&good, &expected);
    let collected_at = Instant::now();
    gitlab.set_faults(Faults {
        route: Some(MERGE_REQUESTS.to_owned()),
        server_error_rate: 1.0,
        ..Faults::default()
    });
    let kept = exporter.scrape().await;
    assert!(
        collected_at.elapsed() < Duration::from_secs(8),
        "{:?}",
        collected_at.elapsed()
    );
    assert_exact(&kept, &expected);
    assert!(
        sum(
            &kept,
            "gitlab_exporter_api_errors_total",
            &[("endpoint", MERGE_REQUESTS), ("reason", "server_error")]
        ) > 0.0
    );
    assert_eq!(
        kept.value("gitlab_exporter_collect_incomplete_projects", &[]),
        Some(expected.len() as f64)
    );
    exporter.logs_once("collection finished with project calls failing");

    tokio::time::sleep(Duration::from_secs(8).saturating_sub(collected_at.elapsed())).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let expired = exporter.scrape().await;
    assert_eq!(expired.value("gitlab_up", &[]), Some(1.0));
    assert!(expired.series("gitlab_project_merge_requests").is_empty());
    for e in &expected {
        assert_eq!(
            expired.project("gitlab_project_commits", &e.path),
            e.commits.map(|c| c as f64),
            "other families are unaffected"
        );
    }
    assert_eq!(
        expired.value("gitlab_projects", &[]),
        Some(expected.len() as f64)
    );
}

/// Malformed answers (not JSON, the wrong shape, invalid UTF-8, over the size cap, an HTML
/// sign-in page) are typed errors: counted, logged, never a panic; the exporter keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_answers_are_counted_and_logged() {
    let gitlab = gitlab(Instance::demo()).await;
    let exporter = Exporter::start(&gitlab, &["--gitlab.api", "rest", "--cache.ttl", "0s"]);
    let cases = [
        (
            Malformed::Truncated,
            "decode",
            "invalid type: map, expected a sequence",
        ),
        (Malformed::WrongShape, "decode", "surprise"),
        (Malformed::InvalidUtf8, "decode", "missing field `id`"),
        (Malformed::Oversized(33 << 20), "too_large", "larger than"),
        (Malformed::Html, "decode", "expected JSON, got text/html"),
    ];
    for (malformed, reason, message) in cases {
        gitlab.set_faults(Faults {
            route: Some("/projects".to_owned()),
            malformed: Some(malformed.clone()),
            ..Faults::default()
        });
        let metrics = exporter.scrape().await;
        assert_eq!(metrics.value("gitlab_up", &[]), Some(0.0), "{malformed:?}");
        assert!(
            sum(
                &metrics,
                "gitlab_exporter_api_errors_total",
                &[("endpoint", "/projects"), ("reason", reason)]
            ) > 0.0,
            "{malformed:?}"
        );
        let logs = exporter.logs_once(message);
        assert!(!logs.contains("panicked"), "{logs}");
    }
    // A family's calls answering garbage leave the rest intact.
    gitlab.set_faults(Faults {
        route: Some(MERGE_REQUESTS.to_owned()),
        malformed: Some(Malformed::WrongShape),
        ..Faults::default()
    });
    let metrics = exporter.scrape().await;
    assert_eq!(metrics.value("gitlab_up", &[]), Some(1.0));
    assert_eq!(
        metrics.value("gitlab_project_commits", &[("project", "acme/api")]),
        Some(347.0)
    );
    exporter.logs_once("collection finished with project calls failing");
    gitlab.set_faults(Faults::default());
    let healed = exporter.scrape().await;
    assert_exact(&healed, &gitlab.with_instance(|i| expected_membership(i)));
}

/// The token file is read again on SIGHUP: a rotated token takes effect at the next scrape,
/// whatever the TTL; a file that cannot be read keeps the current token. The token appears in
/// no log line and no metric.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_rereads_the_token_file() {
    let gitlab = gitlab(Instance::demo()).await;
    let dir = std::env::temp_dir().join(format!("gae-sighup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("token");
    std::fs::write(&file, "glpat-old-revoked-token\n").unwrap();
    let file_arg = file.to_str().unwrap();
    let exporter = Exporter::start_with_env(
        &gitlab.url(),
        &[],
        &["--gitlab.token-file", file_arg, "--cache.ttl", "1h"],
    );
    let hup = || {
        let status = std::process::Command::new("kill")
            .args(["-HUP", &exporter.pid().to_string()])
            .status();
        assert!(status.is_ok_and(|s| s.success()));
    };
    let rejected = exporter.get("/metrics", &[]).await.text();
    assert_eq!(
        Exposition::parse(&rejected).value("gitlab_up", &[]),
        Some(0.0)
    );

    std::fs::write(&file, format!("{}\n", gitlab.token())).unwrap();
    hup();
    exporter.logs_once("token re-read");
    let accepted = exporter.get("/metrics", &[]).await.text();
    assert_exact(
        &Exposition::parse(&accepted),
        &gitlab.with_instance(|i| expected_membership(i)),
    );

    std::fs::remove_file(&file).unwrap();
    hup();
    let logs = exporter.logs_once("keeping the current token");
    let still = exporter.get("/metrics", &[]).await.text();
    assert_eq!(Exposition::parse(&still).value("gitlab_up", &[]), Some(1.0));
    for text in [&logs, &rejected, &accepted, &still] {
        assert!(!text.contains(&gitlab.token()) && !text.contains("glpat-old-revoked-token"));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Proxies from the environment are used for a GitLab that is not on loopback (here a name
/// that does not resolve: only the proxy can reach it), with a warning for plain http. The
/// proxy is a minimal CONNECT proxy (as ureq tunnels through proxies) that leads to the fake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_from_the_environment() {
    use std::io::{BufRead, BufReader, Write};
    use std::sync::{Arc, Mutex};

    let gitlab = gitlab(Instance::demo()).await;
    let backend = gitlab.url().trim_start_matches("http://").to_owned();
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let tunnels = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = Arc::clone(&tunnels);
    std::thread::spawn(move || {
        for client in proxy.incoming().flatten() {
            let (backend, seen) = (backend.clone(), Arc::clone(&seen));
            std::thread::spawn(move || {
                let mut reader = BufReader::new(client.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                seen.lock().unwrap().push(line.trim().to_owned());
                let mut header = String::new();
                while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                    header.clear();
                }
                let upstream = std::net::TcpStream::connect(&backend).unwrap();
                (&client)
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .unwrap();
                let (mut up_read, mut up_write) = (upstream.try_clone().unwrap(), upstream);
                let mut down_write = client;
                std::thread::spawn(move || std::io::copy(&mut up_read, &mut down_write));
                let _ = std::io::copy(&mut reader, &mut up_write);
            });
        }
    });
    let exporter = Exporter::start_with_env(
        "http://gitlab.invalid",
        &[
            ("GITLAB_TOKEN", &gitlab.token()),
            ("HTTP_PROXY", &proxy_url),
        ],
        &[],
    );
    let metrics = exporter.scrape().await;
    assert_exact(&metrics, &gitlab.with_instance(|i| expected_membership(i)));
    let tunnels = tunnels.lock().unwrap().clone();
    assert!(
        !tunnels.is_empty()
            && tunnels
                .iter()
                .all(|t| t.starts_with("CONNECT gitlab.invalid:80 ")),
        "{tunnels:?}"
    );
    let logs = exporter.logs_once("plain http://");
    assert!(!logs.contains(&gitlab.token()));
}

/// TLS with a private CA: trusted with `--gitlab.ca-file`, rejected without it (the system
/// roots do not know it). A TLS terminator (socat) stands in front of the fake GitLab.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_ca_with_ca_file() {
    let gitlab = gitlab(Instance::demo()).await;
    let dir = std::env::temp_dir().join(format!("gae-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    common::make_certificates(&dir);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let backend = gitlab.url().trim_start_matches("http://").to_owned();
    let mut socat = std::process::Command::new("socat")
        .arg(format!(
            "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={},key={},verify=0",
            dir.join("server.pem").display(),
            dir.join("server.key").display()
        ))
        .arg(format!("TCP:{backend}"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("socat runs (scripts/test installs it)");
    // Wait for socat to listen.
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = format!("https://localhost:{port}");
    let token = gitlab.token();
    let ca = dir.join("ca.pem");
    let trusted = Exporter::start_with_env(
        &url,
        &[("GITLAB_TOKEN", &token)],
        &["--gitlab.ca-file", ca.to_str().unwrap()],
    );
    let metrics = trusted.scrape().await;
    assert_exact(&metrics, &gitlab.with_instance(|i| expected_membership(i)));

    let untrusted = Exporter::start_with_env(&url, &[("GITLAB_TOKEN", &token)], &[]);
    let metrics = untrusted.scrape().await;
    assert_eq!(metrics.value("gitlab_up", &[]), Some(0.0));
    let logs = untrusted.logs_once("collection failed");
    assert!(logs.to_lowercase().contains("certificate"), "{logs}");
    assert!(!logs.contains(&token));

    let _ = socat.kill();
    let _ = socat.wait();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A slow GitLab (300 ms per call) and a short scrape timeout (1 s): the scrape answers in
/// time, GitLab counts as up (it answers, slowly), and the collection goes on for the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_timeouts_still_get_an_answer() {
    let gitlab = gitlab(Instance::demo()).await;
    gitlab.set_latency(Duration::from_millis(300));
    let exporter = Exporter::start(&gitlab, &["--cache.ttl", "1h"]);
    let addr = exporter.addr;
    let headers = vec![(
        "X-Prometheus-Scrape-Timeout-Seconds".to_owned(),
        "1".to_owned(),
    )];
    let started = Instant::now();
    let response =
        tokio::task::spawn_blocking(move || http_request(addr, "GET", "/metrics", &headers))
            .await
            .unwrap();
    assert!(started.elapsed() < Duration::from_millis(900));
    assert_eq!(response.status, 200);
    let metrics = Exposition::parse(&response.text());
    assert_eq!(metrics.value("gitlab_up", &[]), Some(1.0));
    // The collection went on: a patient scrape gets it.
    gitlab.set_latency(Duration::ZERO);
    let complete = exporter.scrape().await;
    assert_exact(&complete, &gitlab.with_instance(|i| expected_membership(i)));
}

/// Values kept from collection 1 (t0) by collection 2 (whose merge-request calls failed) are not
/// served past t0 + max-stale when collection 3 fails: max-stale counts from when the values
/// were collected, not from the last collection that kept them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_values_expire_max_stale_after_they_were_collected() {
    let (gitlab, exporter) = recounting_everything(Duration::from_secs(8)).await;
    let good = exporter.scrape().await;
    let t0 = Instant::now();
    assert_exact(&good, &gitlab.with_instance(|i| expected_membership(i)));
    gitlab.set_faults(Faults {
        route: Some(MERGE_REQUESTS.to_owned()),
        server_error_rate: 1.0,
        ..Faults::default()
    });
    let kept = exporter.scrape().await;
    assert!(!kept.series("gitlab_project_merge_requests").is_empty());
    gitlab.with_instance(|i| i.token = "glpat-rotated-elsewhere".to_owned());
    tokio::time::sleep(Duration::from_secs(8).saturating_sub(t0.elapsed())).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let late = exporter.scrape().await;
    assert_eq!(late.value("gitlab_up", &[]), Some(0.0));
    assert!(
        late.series("gitlab_project_merge_requests").is_empty(),
        "merge request counts collected at t0 are still served {:?} later (max-stale 8s)",
        t0.elapsed()
    );
}

/// GitLab hangs from the start and a call times out (2 s) and is retried during the scrape's
/// 3 s wait: still `gitlab_up 0`, as no answer ever came.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hang_with_a_timeout_retry_during_the_wait_is_down() {
    let gitlab = gitlab(Instance::demo()).await;
    gitlab.set_faults(Faults {
        hang: true,
        ..Faults::default()
    });
    let exporter = Exporter::start(
        &gitlab,
        &["--cache.ttl", "0s", "--gitlab.request-timeout", "2s"],
    );
    let (metrics, took) = scrape_within(&exporter, 3.5).await;
    assert!(took < Duration::from_millis(3500), "{took:?}");
    assert_eq!(
        metrics.value("gitlab_up", &[]),
        Some(0.0),
        "no answer in 3 s with calls out the whole time"
    );
    gitlab.set_faults(Faults::default());
}

/// A named project whose own detail call keeps failing keeps its last good series (the other
/// projects are collected as usual), until `--cache.max-stale`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_project_failing_keeps_its_last_good_values() {
    let gitlab = gitlab(Instance::demo()).await;
    let exporter = Exporter::start(
        &gitlab,
        &[
            "--gitlab.api",
            "rest",
            "--gitlab.group",
            "labs",
            "--gitlab.project",
            "acme/api",
            "--cache.ttl",
            "0s",
            "--cache.max-stale",
            "6s",
        ],
    );
    let good = exporter.scrape().await;
    let t0 = Instant::now();
    let commits = good.value("gitlab_project_commits", &[("project", "acme/api")]);
    assert_eq!(commits, Some(347.0));
    gitlab.set_faults(Faults {
        route: Some("/projects/:id".to_owned()),
        server_error_rate: 1.0,
        ..Faults::default()
    });
    let kept = exporter.scrape().await;
    assert_eq!(kept.value("gitlab_up", &[]), Some(1.0));
    assert_eq!(
        kept.value("gitlab_project_commits", &[("project", "acme/api")]),
        commits
    );
    assert_eq!(
        kept.value("gitlab_projects", &[]),
        good.value("gitlab_projects", &[])
    );
    assert!(
        kept.value("gitlab_exporter_collect_incomplete_projects", &[])
            .is_some_and(|n| n >= 1.0)
    );
    tokio::time::sleep(Duration::from_secs(6).saturating_sub(t0.elapsed())).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let expired = exporter.scrape().await;
    assert_eq!(
        expired.value("gitlab_project_info", &[("project", "acme/api")]),
        None
    );
    assert!(
        !expired.series("gitlab_project_info").is_empty(),
        "labs is still there"
    );
    gitlab.set_faults(Faults::default());
}

/// Calls that time out are retried once: GitLab hangs the merge-request calls for 3 s, longer
/// than `--gitlab.request-timeout 2s`; the retries, sent at 2 s, are answered when it recovers,
/// and every value is exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timed_out_calls_are_retried() {
    let gitlab = std::sync::Arc::new(gitlab(Instance::demo()).await);
    gitlab.set_faults(Faults {
        route: Some(MERGE_REQUESTS.to_owned()),
        hang: true,
        ..Faults::default()
    });
    let exporter = Exporter::start(&gitlab, &["--gitlab.request-timeout", "2s"]);
    let recover = {
        let gitlab = std::sync::Arc::clone(&gitlab);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            gitlab.set_faults(Faults::default());
        })
    };
    let metrics = exporter.scrape().await;
    recover.await.unwrap();
    assert!(
        sum(
            &metrics,
            "gitlab_exporter_api_errors_total",
            &[("endpoint", MERGE_REQUESTS), ("reason", "timeout")]
        ) > 0.0,
        "some calls timed out"
    );
    assert_exact(&metrics, &gitlab.with_instance(|i| expected_membership(i)));
}
