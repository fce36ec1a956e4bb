//! A real Prometheus server (Debian's `prometheus` package, installed by scripts/test) on a
//! free loopback port, with a given configuration, and instant queries against it.

use std::process::{Child, Command, Stdio};

/// A Prometheus server on a free loopback port, killed on drop.
pub struct Prometheus {
    child: Child,
    url: String,
    dir: std::path::PathBuf,
}

impl Prometheus {
    /// Scrapes `target`'s /metrics every 2 s (job `gitlab`, timeout 1.5 s).
    pub fn start(target: std::net::SocketAddr) -> Prometheus {
        Prometheus::start_with(&format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: gitlab\n    scrape_interval: 2s\n    scrape_timeout: 1500ms\n    static_configs:\n      - targets: ['{target}']\n"
        ))
    }

    /// Runs with `config` (a prometheus.yml), after `promtool check config` accepts it.
    pub fn start_with(config: &str) -> Prometheus {
        Prometheus::start_with_files(config, &[])
    }

    /// Runs with `config` and, beside it, `files` (name, content): rule files, say.
    pub fn start_with_files(config: &str, files: &[(&str, &str)]) -> Prometheus {
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
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        for (name, content) in files {
            std::fs::write(dir.join(name), content).unwrap();
        }
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

    /// The result of an instant query (`data.result`), if it succeeded.
    pub fn query(&self, query: &str) -> Option<Vec<serde_json::Value>> {
        let mut response = ureq::get(format!("{}/api/v1/query", self.url))
            .query("query", query)
            .call()
            .ok()?;
        let body: serde_json::Value =
            serde_json::from_slice(&response.body_mut().read_to_vec().ok()?).ok()?;
        body["data"]["result"].as_array().cloned()
    }

    /// The value of an instant query that returns one sample, if it does.
    pub fn query_one(&self, query: &str) -> Option<f64> {
        let result = self.query(query)?;
        if result.len() != 1 {
            return None;
        }
        result[0]["value"][1].as_str()?.parse().ok()
    }

    /// The base URL of its HTTP API.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
