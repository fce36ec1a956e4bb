//! `--web.config.file` (exporter-toolkit format) end to end, with `examples/web-config.yml` as
//! shipped: TLS, client certificates and basic auth checked with real clients, curl and a real
//! Prometheus scraping over HTTPS with credentials; wrong passwords, missing credentials or
//! client certificates and plain HTTP refused; a bad file refused at start.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::prometheus::Prometheus;
use common::{
    BINARY, Exporter, demo_gitlab, expected_membership, make_certificates, sign_certificate,
};

/// bcrypt (cost 10) of "change-me", as `htpasswd -nBC 10 "" | tr -d ':\n'` makes it.
const HASH: &str = "$2b$10$67T5Z4T9fSKUhT1p34mA9OTOdD4YZc73rZyZ2/A2hAbw1YbkE9gdG";

/// `examples/web-config.yml` as shipped, in `dir` with test certificates under the names it
/// uses, and a client certificate (`client.pem`, `client.key`) from the same CA.
fn web_config(dir: &Path) -> PathBuf {
    make_certificates(dir);
    for (from, to) in [
        ("server.pem", "exporter.crt"),
        ("server.key", "exporter.key"),
        ("ca.pem", "scrapers-ca.crt"),
    ] {
        std::fs::copy(dir.join(from), dir.join(to)).unwrap();
    }
    // Like Go's, rustls's check of client certificates wants the clientAuth key usage.
    sign_certificate(
        dir,
        "client",
        "/CN=prometheus",
        "extendedKeyUsage=clientAuth",
    );
    let path = dir.join("web-config.yml");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/examples/web-config.yml"),
        &path,
    )
    .unwrap();
    assert!(std::fs::read_to_string(&path).unwrap().contains(HASH));
    path
}

/// curl's status code and body for `url` with extra arguments.
fn curl(url: &str, args: &[&str]) -> (String, String) {
    let output = Command::new("curl")
        .args(["-sS", "-o", "-", "-w", "\n%{http_code}", "--max-time", "10"])
        .args(args)
        .arg(url)
        .output()
        .expect("curl runs (scripts/test installs it)");
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, code) = out.rsplit_once('\n').unwrap_or(("", &out));
    (code.to_owned(), body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_basic_auth_with_curl() {
    let gitlab = demo_gitlab().await;
    let dir = std::env::temp_dir().join(format!("gae-webcfg-curl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = web_config(&dir);
    let exporter = Exporter::start(&gitlab, &["--web.config.file", config.to_str().unwrap()]);
    let port = exporter.addr.port();
    let ca = dir.join("ca.pem").to_str().unwrap().to_owned();
    let url = format!("https://localhost:{port}/metrics");

    let client = (
        dir.join("client.pem").to_str().unwrap().to_owned(),
        dir.join("client.key").to_str().unwrap().to_owned(),
    );
    let outcomes = tokio::task::spawn_blocking(move || {
        let (url, ca) = (url.as_str(), ca.as_str());
        let cert = ["--cert", client.0.as_str(), "--key", client.1.as_str()];
        let curl = |url: &str, args: &[&str]| curl(url, &[&cert[..], args].concat());
        let ok = curl(
            url,
            &[
                "--cacert",
                ca,
                "-u",
                "prometheus:change-me",
                "-D",
                "/dev/stderr",
            ],
        );
        let wrong = curl(url, &["--cacert", ca, "-u", "prometheus:wrong"]);
        let nobody = curl(url, &["--cacert", ca]);
        let health = curl(&url.replace("/metrics", "/-/healthy"), &["--cacert", ca]);
        let untrusted = curl(url, &["-u", "prometheus:change-me"]);
        let plain = curl(
            &format!("http://127.0.0.1:{port}/metrics"),
            &["-u", "prometheus:change-me"],
        );
        let no_client_cert = crate::curl(url, &["--cacert", ca, "-u", "prometheus:change-me"]);
        let headers = Command::new("curl")
            .args([
                "-sS",
                "-o",
                "/dev/null",
                "-D",
                "-",
                "--cacert",
                ca,
                "-u",
                "prometheus:wrong",
            ])
            .args(cert)
            .arg(url)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).to_lowercase())
            .unwrap_or_default();
        (
            ok,
            wrong,
            nobody,
            health,
            untrusted,
            plain,
            headers,
            no_client_cert,
        )
    })
    .await
    .unwrap();
    let (ok, wrong, nobody, health, untrusted, plain, headers, no_client_cert) = outcomes;
    assert_eq!(no_client_cert.0, "000", "a client certificate is required");
    assert_eq!(ok.0, "200", "{}", ok.1);
    assert!(ok.1.contains("gitlab_up 1"), "{}", ok.1);
    assert_eq!(wrong.0, "401");
    assert_eq!(nobody.0, "401");
    assert_eq!(health.0, "401", "every path needs credentials");
    assert_eq!(
        untrusted.0, "000",
        "the system roots do not know the test CA"
    );
    assert_ne!(plain.0, "200", "plain HTTP on a TLS port is refused");
    assert!(headers.contains("www-authenticate: basic"), "{headers}");
    assert!(
        headers.contains("x-content-type-options: nosniff"),
        "{headers}"
    );
    let logs = exporter.logs();
    assert!(logs.contains("tls=true"), "{logs}");
    assert!(
        !logs.contains("change-me") && !logs.contains(HASH),
        "{logs}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A real Prometheus scrapes the exporter over HTTPS with basic auth (`tls_config`,
/// `basic_auth`) and sees the data; a job with a wrong password sees the target down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_prometheus_scrapes_over_tls_with_basic_auth() {
    let gitlab = demo_gitlab().await;
    let dir = std::env::temp_dir().join(format!("gae-webcfg-prom-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = web_config(&dir);
    let exporter = Exporter::start(&gitlab, &["--web.config.file", config.to_str().unwrap()]);
    let projects = gitlab.with_instance(|i| expected_membership(i)).len();
    let target = format!("localhost:{}", exporter.addr.port());
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    let (ca, cert, key) = (read("ca.pem"), read("client.pem"), read("client.key"));
    let job = |name: &str, password: &str| {
        format!(
            "  - job_name: {name}\n    scheme: https\n    scrape_interval: 1s\n    scrape_timeout: 900ms\n\
             \x20   tls_config:\n      ca_file: ca.pem\n      cert_file: client.pem\n      key_file: client.key\n    basic_auth:\n      username: prometheus\n      password: {password}\n\
             \x20   static_configs:\n      - targets: ['{target}']\n"
        )
    };
    let prometheus_config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n{}{}",
        job("gitlab", "change-me"),
        job("intruder", "guess")
    );
    let prometheus = Prometheus::start_with_files(
        &prometheus_config,
        &[("ca.pem", &ca), ("client.pem", &cert), ("client.key", &key)],
    );
    let seen = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let seen = (
                prometheus.query_one(r#"up{job="gitlab"}"#),
                prometheus.query_one(r#"gitlab_projects{job="gitlab"}"#),
                prometheus.query_one(r#"up{job="intruder"}"#),
            );
            if seen.0 == Some(1.0) && seen.1.is_some() && seen.2.is_some()
                || Instant::now() > deadline
            {
                return seen;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    })
    .await
    .unwrap();
    assert_eq!(seen, (Some(1.0), Some(projects as f64), Some(0.0)));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A web configuration that does not load stops the exporter at start with status 2 and a
/// message naming the flag and the problem.
#[test]
fn bad_web_config_is_refused_at_start() {
    let dir = std::env::temp_dir().join(format!("gae-webcfg-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("web.yml");
    std::fs::write(&path, "tls_server_config:\n  cert_fil: x.pem\n").unwrap();
    let output = Command::new(BINARY)
        .args(["--demo", "--web.config.file", path.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--web.config.file") && stderr.contains("cert_fil"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
