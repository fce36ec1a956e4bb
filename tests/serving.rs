//! What a scraper and an operator see: formats, gzip, routes, promtool's verdict, failures that
//! still answer, the token kept out of everything, bad flags, graceful shutdown.

mod common;

use std::io::Read as _;
use std::process::Command;

use common::{BINARY, Exporter, Exposition, demo_gitlab, promtool_check};

const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// Prometheus's Accept header gets OpenMetrics (ending in `# EOF`), gzip when asked; curl gets
/// the text format; both carry the same samples.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_negotiation_and_gzip() {
    let gitlab = demo_gitlab().await;
    let exporter = Exporter::start(&gitlab, &[]);

    let om = exporter
        .get(
            "/metrics",
            &[("Accept", PROMETHEUS_ACCEPT), ("Accept-Encoding", "gzip")],
        )
        .await;
    assert_eq!(om.status, 200);
    assert_eq!(
        om.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert_eq!(om.header("content-encoding"), Some("gzip"));
    let mut text = String::new();
    flate2::read::GzDecoder::new(om.body.as_slice())
        .read_to_string(&mut text)
        .unwrap();
    assert!(text.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
    assert_eq!(text.matches("# EOF").count(), 1);
    assert!(text.contains("# TYPE gitlab_project info\n"));
    assert!(text.contains("# TYPE gitlab_exporter_api_requests counter\n"));
    assert!(text.contains("# UNIT gitlab_project_storage_bytes bytes\n"));

    let plain = exporter.get("/metrics", &[("Accept", "*/*")]).await;
    assert_eq!(
        plain.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert_eq!(plain.header("content-encoding"), None);
    let plain = Exposition::parse(&plain.text());
    let commits = plain.series("gitlab_project_commits");
    assert!(!commits.is_empty());
    for sample in commits {
        let project = &sample.labels["project"];
        let line = format!(
            "gitlab_project_commits{{project_id=\"{}\",project=\"{project}\"}} {}\n",
            sample.labels["project_id"], sample.value
        );
        assert!(text.contains(&line), "OpenMetrics and text agree on {line}");
    }
    gitlab.shutdown().await;
}

/// promtool, which reads the text format, finds nothing to complain about.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_accepts_the_text_format() {
    let gitlab = demo_gitlab().await;
    let exporter = Exporter::start(&gitlab, &[]);
    let body = exporter.get("/metrics", &[]).await.text();
    let (ok, report) = promtool_check(&body);
    assert!(
        ok && report.trim().is_empty(),
        "promtool check metrics:\n{report}"
    );
    // A failed collection's page too.
    let failing = Exporter::start_with_env(&gitlab.url(), &[("GITLAB_TOKEN", "glpat-wrong")], &[]);
    let body = failing.get("/metrics", &[]).await.text();
    let (ok, report) = promtool_check(&body);
    assert!(
        ok && report.trim().is_empty(),
        "promtool check metrics (gitlab_up 0):\n{report}"
    );
    gitlab.shutdown().await;
}

/// The landing page links to the metrics path; health and readiness answer; unknown paths are
/// 404 and other methods 405; none of them calls GitLab.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes() {
    let gitlab = demo_gitlab().await;
    let exporter = Exporter::start(&gitlab, &["--web.telemetry-path", "/gitlab-metrics"]);
    let landing = exporter.get("/", &[]).await;
    assert_eq!(landing.status, 200);
    assert_eq!(
        landing.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(landing.text().contains("href=\"/gitlab-metrics\""));
    assert_eq!(exporter.get("/-/healthy", &[]).await.status, 200);
    assert_eq!(exporter.get("/-/ready", &[]).await.status, 200);
    assert_eq!(exporter.get("/metrics", &[]).await.status, 404);
    let post = tokio::task::spawn_blocking({
        let addr = exporter.addr;
        move || {
            common::http_request(
                addr,
                "POST",
                "/gitlab-metrics",
                &[("Content-Length".into(), "0".into())],
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    assert_eq!(gitlab.total_requests(), 0);
    assert_eq!(exporter.get("/gitlab-metrics", &[]).await.status, 200);
    assert!(gitlab.total_requests() > 0);
    gitlab.shutdown().await;
}

/// A rejected token: 200 with gitlab_up 0 and the exporter's own metrics, one log line saying
/// GitLab answered 401, and the token nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_token_gives_up_zero_and_a_log_line() {
    let gitlab = demo_gitlab().await;
    let bad = "glpat-WRONG-token-1234567890";
    let exporter = Exporter::start_with_env(
        &gitlab.url(),
        &[("GITLAB_TOKEN", bad)],
        &["--log.level", "debug", "--gitlab.api", "rest"],
    );
    let response = exporter.get("/metrics", &[]).await;
    assert_eq!(response.status, 200);
    let body = response.text();
    let metrics = Exposition::parse(&body);
    assert_eq!(metrics.value("gitlab_up", &[]), Some(0.0));
    assert!(metrics.series("gitlab_project_commits").is_empty());
    assert_eq!(
        metrics.value(
            "gitlab_exporter_collections_total",
            &[("result", "failure")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metrics.value(
            "gitlab_exporter_api_requests_total",
            &[("endpoint", "/projects"), ("code", "401")]
        ),
        Some(1.0)
    );
    assert!(
        metrics
            .value(
                "gitlab_exporter_build_info",
                &[("version", env!("CARGO_PKG_VERSION"))]
            )
            .is_some()
    );
    let logs = exporter.logs_once("collection failed");
    let failures: Vec<_> = logs
        .lines()
        .filter(|l| l.contains("collection failed"))
        .collect();
    assert_eq!(failures.len(), 1, "{logs}");
    assert!(failures[0].contains("401"), "{}", failures[0]);
    assert!(
        !logs.contains(bad) && !body.contains(bad),
        "the token leaked"
    );
    gitlab.shutdown().await;
}

/// The valid token is in no log line (even at debug level), response or page, whether read from
/// the environment or from a file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_stays_secret() {
    let gitlab = demo_gitlab().await;
    let token = gitlab.token();
    let dir = std::env::temp_dir().join(format!("gitlab-exporter-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("token");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    let from_env = Exporter::start(&gitlab, &["--log.level", "debug"]);
    let from_file = Exporter::start_with_env(
        &gitlab.url(),
        &[],
        &[
            "--log.level",
            "debug",
            "--gitlab.token-file",
            file.to_str().unwrap(),
        ],
    );
    for exporter in [&from_env, &from_file] {
        let metrics = exporter.get("/metrics", &[]).await.text();
        assert!(
            Exposition::parse(&metrics).value("gitlab_up", &[]) == Some(1.0),
            "{metrics}"
        );
        let landing = exporter.get("/", &[]).await.text();
        let logs = exporter.logs();
        assert!(logs.contains("GitLab call"), "debug logging is on");
        for (what, text) in [
            ("metrics", &metrics),
            ("landing page", &landing),
            ("logs", &logs),
        ] {
            assert!(!text.contains(&token), "the token appears in the {what}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
    gitlab.shutdown().await;
}

/// Bad flags exit with status 2 and a message naming the flag; the token is not a flag.
#[test]
fn bad_flags_exit_2_naming_the_flag() {
    let cases: [(&[&str], &str); 15] = [
        (&["--cache.ttl", "soon"], "--cache.ttl"),
        (&["--cache.ttl", "10"], "--cache.ttl"),
        (&["--gitlab.concurrency", "0"], "--gitlab.concurrency"),
        (
            &["--gitlab.request-timeout", "0s"],
            "--gitlab.request-timeout",
        ),
        (&["--web.listen-address", "nowhere"], "--web.listen-address"),
        (&["--gitlab.url", "gitlab.example.com"], "--gitlab.url"),
        (&["--gitlab.token", "glpat-x"], "--gitlab.token"),
        (
            &["--gitlab.token-file", "/nonexistent/token"],
            "--gitlab.token-file",
        ),
        (&["--log.level", "loud"], "--log.level"),
        (&["--log.format", "xml"], "--log.format"),
        (
            &["--multi-target", "--gitlab.group", "acme"],
            "--multi-target",
        ),
        (
            &["--gitlab.ca-file", "/nonexistent/ca.pem"],
            "--gitlab.ca-file",
        ),
        (
            &["--gitlab.max-requests-per-second", "many"],
            "--gitlab.max-requests-per-second",
        ),
        (&["--cache.max-stale", "1"], "--cache.max-stale"),
        (&["--web.max-timeout", "0s"], "--web.max-timeout"),
    ];
    for (args, flag) in cases {
        let output = Command::new(BINARY)
            .arg("--demo")
            .args(args)
            .env_remove("GITLAB_TOKEN")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(flag), "{args:?} must name {flag}: {stderr}");
        assert!(!stderr.contains("glpat-x"), "{stderr}");
    }
    // No token and the default scope: nothing to export.
    let output = Command::new(BINARY)
        .env_remove("GITLAB_TOKEN")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("GITLAB_TOKEN") && stderr.contains("--gitlab.token-file"),
        "{stderr}"
    );
    // A port in use: a clear error naming the flag, status 1.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let output = Command::new(BINARY)
        .args(["--demo", "--web.listen-address", &address])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--web.listen-address"), "{stderr}");
}

/// SIGTERM stops the exporter cleanly (exit status 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_down_gracefully() {
    let gitlab = demo_gitlab().await;
    let exporter = Exporter::start(&gitlab, &[]);
    assert_eq!(exporter.get("/-/healthy", &[]).await.status, 200);
    assert!(exporter.terminate(), "clean exit on SIGTERM");
    gitlab.shutdown().await;
}

/// `--demo` needs no URL and no token: one command runs the exporter on the built-in GitLab.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_mode_runs_on_its_own() {
    let mut command = Command::new(BINARY);
    command
        .args(["--demo", "--web.listen-address", "127.0.0.1:0"])
        .env_remove("GITLAB_TOKEN")
        .env_remove("GITLAB_URL")
        .stderr(std::process::Stdio::piped());
    let exporter = Exporter::spawn(command);
    let metrics = exporter.scrape().await;
    assert_eq!(metrics.value("gitlab_up", &[]), Some(1.0));
    assert_eq!(
        metrics.project("gitlab_project_commits", "acme/platform/deploy"),
        Some(25.0)
    );
}

/// When the scope is only named projects, a rejected token or an unreachable GitLab still
/// gives gitlab_up 0, not an empty success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_projects_only_still_report_failures() {
    let gitlab = demo_gitlab().await;
    let bad = Exporter::start_with_env(
        &gitlab.url(),
        &[("GITLAB_TOKEN", "glpat-WRONG-token-000")],
        &["--gitlab.project", "acme/api", "--gitlab.project", "7"],
    );
    let metrics = bad.scrape().await;
    assert_eq!(metrics.value("gitlab_up", &[]), Some(0.0));
    assert!(bad.logs_once("collection failed").contains("401"));

    // A GitLab that never answers (a listener that never accepts, kept open so that its port
    // is not reused by another test).
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}", silent.local_addr().unwrap());
    let unreachable = Exporter::start_with_env(
        &nowhere,
        &[("GITLAB_TOKEN", "glpat-x")],
        &[
            "--gitlab.project",
            "acme/api",
            "--gitlab.request-timeout",
            "500ms",
        ],
    );
    let metrics = unreachable.scrape().await;
    assert_eq!(metrics.value("gitlab_up", &[]), Some(0.0));
    let logs = unreachable.logs_once("collection failed");
    assert!(logs.contains("did not answer"), "{logs}");
    drop(silent);
    gitlab.shutdown().await;
}

/// A redirect to another host is not followed: the token never reaches that host, the
/// collection fails with a message saying what to do, and the token is not in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_not_followed() {
    use std::io::{BufRead, BufReader, Write};
    use std::sync::{Arc, Mutex};

    // The other host: 127.0.0.2 (loopback, but another address), recording what it receives.
    let other = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
    let other_addr = other.local_addr().unwrap();
    let received = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = Arc::clone(&received);
    std::thread::spawn(move || {
        for stream in other.incoming().flatten() {
            let mut lines = Vec::new();
            let mut reader = BufReader::new(&stream);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                lines.push(std::mem::take(&mut line));
            }
            sink.lock().unwrap().push(lines.concat());
            let _ = (&stream)
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n[]");
        }
    });
    // The configured GitLab (the fake) answers every call with a redirect to the other host.
    let gitlab = demo_gitlab().await;
    gitlab.set_faults(fake_gitlab::Faults {
        redirect_to: Some(format!("http://{other_addr}")),
        ..Default::default()
    });
    let token = "glpat-redirect-secret-123";
    let exporter = Exporter::start_with_env(&gitlab.url(), &[("GITLAB_TOKEN", token)], &[]);
    let body = exporter.get("/metrics", &[]).await.text();
    assert_eq!(Exposition::parse(&body).value("gitlab_up", &[]), Some(0.0));
    let logs = exporter.logs_once("collection failed");
    assert!(
        logs.contains("redirect") && logs.contains("--gitlab.url"),
        "{logs}"
    );
    assert!(
        !logs.contains("membership=true"),
        "the redirect's query is not logged: {logs}"
    );
    assert!(!logs.contains(token) && !body.contains(token));
    assert!(
        received.lock().unwrap().is_empty(),
        "the other host was contacted: {:?}",
        received.lock().unwrap()
    );
}

/// `--version` names the version and the git revision it was built from.
#[test]
fn version_names_the_revision() {
    let output = Command::new(BINARY).arg("--version").output().unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.starts_with(&format!(
            "gitlab-api-exporter {} (revision ",
            env!("CARGO_PKG_VERSION")
        )),
        "{stdout}"
    );
    assert!(!stdout.contains("revision )"), "{stdout}");
}

/// `--log.format json` writes one JSON object per line (level, message, fields); the default
/// logfmt writes `key=value` pairs. Neither carries the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_formats() {
    let gitlab = demo_gitlab().await;
    let json = Exporter::start(&gitlab, &["--log.format", "json"]);
    json.scrape().await;
    let logs = json.logs_once("collection finished");
    for line in logs.lines() {
        let object: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            object["level"].is_string() && object["message"].is_string(),
            "{line}"
        );
        assert!(object["timestamp"].is_string(), "{line}");
    }
    assert!(
        logs.contains(r#""message":"collection finished""#),
        "{logs}"
    );
    let logfmt = Exporter::start(&gitlab, &[]);
    logfmt.scrape().await;
    let logs = logfmt.logs_once("collection finished");
    for line in logs.lines() {
        assert!(
            line.starts_with("ts=") && line.contains(" level="),
            "{line}"
        );
    }
    assert!(logs.contains(r#"message="collection finished""#), "{logs}");
    assert!(!logs.contains(&gitlab.token()));
}
