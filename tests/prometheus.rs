//! A real Prometheus (Debian's `prometheus` package) scrapes the exporter over loopback with a
//! tuned scrape_timeout, negotiating OpenMetrics and gzip as it does in production, and sees
//! the target up with one commits series per project.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Exporter, demo_gitlab, expected_membership};

/// A Prometheus server on a free loopback port, killed on drop.
struct Prometheus {
    child: Child,
    url: String,
    dir: std::path::PathBuf,
}

impl Prometheus {
    fn start(target: std::net::SocketAddr) -> Prometheus {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!(
            "gitlab-exporter-prometheus-{}-{port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: gitlab\n    scrape_interval: 2s\n    scrape_timeout: 1500ms\n    static_configs:\n      - targets: ['{target}']\n"
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let check = Command::new("promtool")
            .args(["check", "config"])
            .arg(dir.join("prometheus.yml"))
            .output()
            .expect("promtool is installed (Debian package prometheus; .ci/run installs it)");
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stdout)
        );
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus is installed (Debian package prometheus; .ci/run installs it)");
        Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir,
        }
    }

    /// The value of an instant query that returns one sample, if it does.
    fn query_one(&self, query: &str) -> Option<f64> {
        let mut response = ureq::get(format!("{}/api/v1/query", self.url))
            .query("query", query)
            .call()
            .ok()?;
        let body: serde_json::Value =
            serde_json::from_slice(&response.body_mut().read_to_vec().ok()?).ok()?;
        let result = body["data"]["result"].as_array()?;
        if result.len() != 1 {
            return None;
        }
        result[0]["value"][1].as_str()?.parse().ok()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_prometheus_scrapes_the_exporter() {
    let gitlab = demo_gitlab().await;
    let exporter = Exporter::start(&gitlab, &["--cache.ttl", "1m"]);
    let projects = gitlab.with_instance(|i| expected_membership(i)).len();
    let with_commits = gitlab
        .with_instance(|i| expected_membership(i))
        .iter()
        .filter(|e| e.commits.is_some())
        .count();
    let prometheus = Prometheus::start(exporter.addr);
    let seen = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let up = prometheus.query_one("up{job=\"gitlab\"}");
            let commits = prometheus.query_one("count(gitlab_project_commits)");
            let count = prometheus.query_one("gitlab_projects");
            let info = prometheus.query_one("count(gitlab_project_info)");
            if (up, commits, count, info)
                == (
                    Some(1.0),
                    Some(with_commits as f64),
                    Some(projects as f64),
                    Some(projects as f64),
                )
                || Instant::now() > deadline
            {
                let samples = prometheus.query_one("scrape_samples_scraped{job=\"gitlab\"}");
                return (up, commits, count, info, samples);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    })
    .await
    .unwrap();
    let (up, commits, count, info, samples) = seen;
    assert_eq!(up, Some(1.0), "Prometheus sees the target up");
    assert_eq!(
        commits,
        Some(with_commits as f64),
        "one commits series per project with readable code"
    );
    assert_eq!(count, Some(projects as f64));
    assert_eq!(
        info,
        Some(projects as f64),
        "OpenMetrics info family ingested as gitlab_project_info"
    );
    assert!(samples.unwrap_or(0.0) > 1000.0, "{samples:?}");
    gitlab.shutdown().await;
}
