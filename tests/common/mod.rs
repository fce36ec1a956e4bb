//! Shared test harness: the exporter binary started on a loopback port against the crate's
//! fake GitLab, a minimal HTTP client for scraping it, and a parser for the text format.
#![allow(dead_code)]

pub mod prometheus;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use fake_gitlab::{FakeGitlab, Instance};

/// Path of the exporter binary built by cargo for these tests.
pub const BINARY: &str = env!("CARGO_BIN_EXE_gitlab-api-exporter");

/// The calls the fake GitLab answered, by route template, without the routes never called.
pub fn calls_made(gitlab: &FakeGitlab) -> BTreeMap<String, u64> {
    gitlab
        .requests_by_route()
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// Switches the flow collectors off, for tests that count the other families' calls.
pub const NO_FLOW: [&str; 3] = [
    "--no-collector.pipelines",
    "--no-collector.deployments",
    "--no-collector.merge_request_flow",
];

/// Starts a fake GitLab serving the demo instance.
pub async fn demo_gitlab() -> FakeGitlab {
    FakeGitlab::start(Instance::demo())
        .await
        .expect("fake GitLab starts")
}

/// A running exporter process; killed on drop.
pub struct Exporter {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Exporter {
    /// Starts the exporter against `gitlab` with its valid token in `GITLAB_TOKEN` and the given
    /// extra flags, and waits until it listens.
    pub fn start(gitlab: &FakeGitlab, args: &[&str]) -> Exporter {
        Exporter::start_with_env(&gitlab.url(), &[("GITLAB_TOKEN", &gitlab.token())], args)
    }

    /// Starts the exporter on `url` with exactly the given environment additions and flags.
    pub fn start_with_env(url: &str, env: &[(&str, &str)], args: &[&str]) -> Exporter {
        Exporter::spawn(command(&[], url, env, args))
    }

    /// Spawns a prepared command and waits for its "listening" log line.
    pub fn spawn(mut command: Command) -> Exporter {
        let mut child = command.spawn().expect("exporter starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("listening") {
                    if let Some(addr) = field(&line, "address") {
                        let _ = tx.send(addr);
                    }
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => addr.parse().expect("listen address parses"),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "exporter did not start; its log:\n{}",
                    logs.lock().unwrap().join("\n")
                );
            }
        };
        Exporter { child, addr, logs }
    }

    /// The process id.
    /// Peak resident set size of the exporter process (VmHWM), in bytes (0 when unknown).
    pub fn peak_rss(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the exporter logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// Everything logged, once a line containing `needle` has arrived (the log is read by
    /// another thread, a moment behind the HTTP answers); panics after 10 s.
    pub fn logs_once(&self, needle: &str) -> String {
        for _ in 0..200 {
            let logs = self.logs();
            if logs.contains(needle) {
                return logs;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no log line contains {needle:?}; the log:\n{}", self.logs());
    }

    /// Scrapes the metrics page as text 0.0.4 and parses it.
    pub async fn scrape(&self) -> Exposition {
        let response = self.get("/metrics", &[]).await;
        assert_eq!(response.status, 200, "{}", response.text());
        Exposition::parse(&response.text())
    }

    /// GET `path` with extra headers.
    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
        let addr = self.addr;
        let path = path.to_owned();
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        tokio::task::spawn_blocking(move || http_request(addr, "GET", &path, &headers))
            .await
            .expect("request thread")
    }

    /// Sends SIGTERM and waits for the process to exit; returns whether it exited cleanly.
    pub fn terminate(mut self) -> bool {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        for _ in 0..100 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The command [`Exporter::start_with_env`] runs: the exporter on `url` on a loopback port with
/// exactly the given environment additions and flags, run through `wrapper` when it is not
/// empty (`["prlimit", "--nofile=256:256", "--"]`).
pub fn command(wrapper: &[&str], url: &str, env: &[(&str, &str)], args: &[&str]) -> Command {
    command_of(BINARY, wrapper, url, env, args)
}

/// [`command`] for another build of the exporter (`binary`).
pub fn command_of(
    binary: &str,
    wrapper: &[&str],
    url: &str,
    env: &[(&str, &str)],
    args: &[&str],
) -> Command {
    let mut command = match wrapper.split_first() {
        Some((program, wrapper_args)) => {
            let mut command = Command::new(program);
            command.args(wrapper_args).arg(binary);
            command
        }
        None => Command::new(binary),
    };
    command
        .args(["--web.listen-address", "127.0.0.1:0", "--gitlab.url", url])
        .args(args)
        .env_remove("GITLAB_TOKEN")
        .env_remove("GITLAB_URL")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// A field of a log line: `key=value` (logfmt) or a member of a JSON object (`--log.format json`).
pub fn field(line: &str, key: &str) -> Option<String> {
    if line.starts_with('{') {
        let object: serde_json::Value = serde_json::from_str(line).ok()?;
        return object[key].as_str().map(str::to_owned);
    }
    let prefix = format!("{key}=");
    line.split_whitespace()
        .find_map(|token| token.strip_prefix(&prefix))
        .map(|v| v.trim_matches('"').to_owned())
}

/// The `Authorization` header value of basic authentication for `user` and `password`.
pub fn basic_auth(user: &str, password: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let raw = format!("{user}:{password}");
    let mut out = String::from("Basic ");
    for chunk in raw.as_bytes().chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

/// An HTTP answer.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A minimal HTTP/1.1 request with `Connection: close`, read to the end.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(String, String)],
) -> HttpResponse {
    let mut stream = TcpStream::connect(addr).expect("connect to the exporter");
    // Generous: a cold scrape of 100,000 projects in the benchmark takes minutes.
    stream
        .set_read_timeout(Some(Duration::from_secs(900)))
        .unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the answer");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// GET `path` (`/api/v4/...`) from the fake GitLab with its token; the body as text.
pub async fn http_get_fake(gitlab: &FakeGitlab, path: &str) -> String {
    let addr: SocketAddr = gitlab
        .url()
        .trim_start_matches("http://")
        .parse()
        .expect("the fake listens on an address");
    let headers = vec![("PRIVATE-TOKEN".to_owned(), gitlab.token())];
    let path = path.to_owned();
    let response = tokio::task::spawn_blocking(move || http_request(addr, "GET", &path, &headers))
        .await
        .expect("request thread");
    assert_eq!(response.status, 200, "{}", response.text());
    response.text()
}

/// One sample of the text format.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed text-format exposition.
#[derive(Debug, Clone)]
pub struct Exposition {
    pub samples: Vec<Sample>,
}

impl Exposition {
    /// Parses the Prometheus text format 0.0.4 (HELP/TYPE lines skipped).
    pub fn parse(text: &str) -> Exposition {
        let samples = text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|line| {
                parse_sample(line).unwrap_or_else(|| panic!("unparsable sample line: {line:?}"))
            })
            .collect();
        Exposition { samples }
    }

    /// The samples of one metric name.
    pub fn series(&self, name: &str) -> Vec<&Sample> {
        self.samples.iter().filter(|s| s.name == name).collect()
    }

    /// The value of the one sample of `name` whose labels include `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let matching: Vec<_> = self
            .samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect();
        assert!(
            matching.len() <= 1,
            "{name}{labels:?} matches {} samples",
            matching.len()
        );
        matching.first().map(|s| s.value)
    }

    /// The value of a project's sample.
    pub fn project(&self, name: &str, project: &str) -> Option<f64> {
        self.value(name, &[("project", project)])
    }
}

fn parse_sample(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_owned();
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(mut s) = rest.strip_prefix('{') {
        loop {
            s = s.trim_start_matches(',');
            if let Some(after) = s.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after) = s.split_once("=\"")?;
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                let (i, c) = chars.next()?;
                match c {
                    '\\' => {
                        let (_, escaped) = chars.next()?;
                        value.push(if escaped == 'n' { '\n' } else { escaped });
                    }
                    '"' => break i,
                    c => value.push(c),
                }
            };
            labels.insert(key.to_owned(), value);
            s = &after[end + 1..];
        }
    }
    let value = match rest.split_whitespace().next()? {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// Runs `promtool check metrics` on a text exposition; returns its exit status and output.
pub fn promtool_check(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (Debian package prometheus; .ci/run installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let mut report = String::from_utf8_lossy(&output.stdout).into_owned();
    report.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.success(), report)
}

#[test]
fn sample_parser() {
    let e = Exposition::parse(
        "# HELP x y\nx 1\ny{a=\"1\",b=\"q\\\"u\\\\o\\nte\"} 2.5\nz{a=\"}\",} 3\n",
    );
    assert_eq!(e.value("x", &[]), Some(1.0));
    assert_eq!(e.value("y", &[("b", "q\"u\\o\nte")]), Some(2.5));
    assert_eq!(e.value("z", &[("a", "}")]), Some(3.0));
}

/// What GitLab lets the demo user see of a project, by the rules of ../shared/gitlab-api.md:
/// statistics from the Reporter role up; code on public and internal projects, or from Reporter up;
/// merge requests when enabled (for members only: from Reporter up) and the code-level access
/// allows.
#[derive(Debug, Clone)]
pub struct Expected {
    pub id: u64,
    pub path: String,
    pub commits: Option<u64>,
    pub merge_requests: Option<[u64; 4]>,
    pub merge_requests_enabled: bool,
    pub open_issues: Option<u64>,
    pub statistics: bool,
    pub archived: bool,
    pub stars: u64,
    pub forks: Option<u64>,
}

/// The expectation for one fake project, seen by the instance's user.
pub fn expected(instance: &Instance, p: &fake_gitlab::FakeProject) -> Expected {
    use fake_gitlab::{Role, Visibility};
    let reporter = instance.admin || p.role.is_some_and(|r| r >= Role::Reporter);
    let code = reporter || p.visibility != Visibility::Private;
    // Merge requests for members only (`private`) are a feature the others do not have.
    let merge_requests_enabled =
        p.merge_requests_enabled && (!p.merge_requests_private || reporter);
    let m = p.merge_requests;
    Expected {
        id: p.id,
        path: p.path_with_namespace(instance),
        commits: code.then_some(p.commits),
        merge_requests: (merge_requests_enabled && code)
            .then_some([m.opened, m.merged, m.closed, m.locked]),
        merge_requests_enabled,
        open_issues: p.issues_enabled.then_some(p.open_issues),
        statistics: reporter,
        archived: p.archived,
        stars: p.star_count,
        // GitLab shows forks_count only to those who can read the code.
        forks: code.then_some(p.forks_count),
    }
}

/// Expectations for the default scope: member projects, not archived.
pub fn expected_membership(instance: &Instance) -> Vec<Expected> {
    instance
        .projects
        .iter()
        .filter(|p| p.role.is_some() && !p.archived)
        .map(|p| expected(instance, p))
        .collect()
}

/// Expectations for a group scope: the projects under the group's path (subgroups included,
/// shared-in projects not), archived left out.
pub fn expected_in_group(instance: &Instance, group: &str) -> Vec<Expected> {
    let prefix = format!("{group}/");
    instance
        .projects
        .iter()
        .filter(|p| !p.archived && p.path_with_namespace(instance).starts_with(&prefix))
        .map(|p| expected(instance, p))
        .collect()
}

/// Asserts that the exposition holds exactly the expected projects with exact values.
pub fn assert_exact(exposition: &Exposition, expected: &[Expected]) {
    assert_eq!(exposition.value("gitlab_up", &[]), Some(1.0));
    assert_eq!(
        exposition.value("gitlab_projects", &[]),
        Some(expected.len() as f64),
        "gitlab_projects"
    );
    assert_eq!(
        exposition.series("gitlab_project_info").len(),
        expected.len(),
        "one info series per project"
    );
    for e in expected {
        assert_project(exposition, e);
    }
}

/// Asserts that the exposition holds one project's series with exact values.
pub fn assert_project(exposition: &Exposition, e: &Expected) {
    const STATES: [&str; 4] = ["opened", "merged", "closed", "locked"];
    let p = e.path.as_str();
    let id = e.id.to_string();
    assert_eq!(
        exposition.value(
            "gitlab_project_info",
            &[("project", p), ("project_id", &id)]
        ),
        Some(1.0),
        "info of {p}"
    );
    assert_eq!(
        exposition.project("gitlab_project_commits", p),
        e.commits.map(|c| c as f64),
        "commits of {p}"
    );
    for (i, state) in STATES.iter().enumerate() {
        assert_eq!(
            exposition.value(
                "gitlab_project_merge_requests",
                &[("project", p), ("state", state)]
            ),
            e.merge_requests.map(|m| m[i] as f64),
            "{state} merge requests of {p}"
        );
    }
    assert_eq!(
        exposition.project("gitlab_project_open_issues", p),
        e.open_issues.map(|c| c as f64),
        "open issues of {p}"
    );
    assert_eq!(
        exposition.project("gitlab_project_stars", p),
        Some(e.stars as f64),
        "stars of {p}"
    );
    assert_eq!(
        exposition.project("gitlab_project_forks", p),
        e.forks.map(|c| c as f64),
        "forks of {p}"
    );
    let storage = exposition
        .series("gitlab_project_storage_bytes")
        .into_iter()
        .filter(|s| s.labels.get("project").map(String::as_str) == Some(p))
        .count();
    assert_eq!(
        storage,
        if e.statistics { 9 } else { 0 },
        "storage series of {p}"
    );
    assert!(
        exposition
            .project("gitlab_project_last_activity_timestamp_seconds", p)
            .is_some(),
        "activity of {p}"
    );
}

/// A private CA (`ca.pem`, `ca.key`) and a certificate it signed for `localhost` (`server.pem`,
/// `server.key`) in `dir`, made with the openssl CLI (scripts/test installs it).
pub fn make_certificates(dir: &std::path::Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=Test Private CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    sign_certificate(
        dir,
        "server",
        "/CN=localhost",
        "subjectAltName=DNS:localhost,IP:127.0.0.1",
    );
}

/// A key (`<name>.key`) and a certificate (`<name>.pem`) for `subject` with the X.509 extensions
/// `extensions`, signed by the CA of [`make_certificates`] in `dir`.
pub fn sign_certificate(dir: &std::path::Path, name: &str, subject: &str, extensions: &str) {
    let (key, csr, ext, pem) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.cnf"),
        format!("{name}.pem"),
    );
    openssl(
        dir,
        &[
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", &key, "-out", &csr,
        ],
    );
    std::fs::write(dir.join(&ext), format!("{extensions}\n")).unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &pem,
        ],
    );
}

/// Runs the openssl CLI in `dir`; panics with its message when it fails.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs (scripts/test installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
