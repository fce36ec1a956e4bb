//! The Grafana dashboard `examples/grafana-dashboard.json`: its JSON is importable anywhere and
//! consistent (unique ids, titles, the `datasource` variable, layout, the `job`/`namespace`/
//! `project` variables), and every panel query returns data from a real Prometheus that scraped
//! the demo GitLab through the exporter, with the variables at All and narrowed to one namespace
//! or one project (which must then agree).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use common::Exporter;
use common::prometheus::Prometheus;
use fake_gitlab::{
    DeploymentStatus, FakeGitlab, Faults, Instance, MergeRequestChange, PipelineStatus, Tier,
};

const DASHBOARD: &str = include_str!("../examples/grafana-dashboard.json");

/// The datasource every panel and query variable must use.
const DATASOURCE_UID: &str = "${datasource}";

/// What Grafana's built-in interval variables become in the test (Prometheus scrapes every 1 s).
const INTERVALS: [(&str, &str); 3] = [
    ("$__rate_interval", "10s"),
    ("$__interval", "2s"),
    ("$__range", "30s"),
];

/// A namespace with one project of its own and a subgroup (`acme/platform/infra`) with another:
/// narrowed to it, the dashboard must show exactly `acme/platform/deploy`.
const NAMESPACE: &str = "acme/platform";
const NAMESPACE_ONLY_PROJECT: &str = "acme/platform/deploy";

fn dashboard() -> Value {
    serde_json::from_str(DASHBOARD).expect("examples/grafana-dashboard.json is JSON")
}

/// A panel and where it sits (top level, or nested in a collapsed row).
struct Panel<'a> {
    json: &'a Value,
    nested: bool,
}

impl Panel<'_> {
    fn kind(&self) -> &str {
        self.json["type"].as_str().unwrap_or("")
    }
    fn title(&self) -> &str {
        self.json["title"].as_str().unwrap_or("")
    }
}

/// Every panel: the top-level ones, and those nested in rows (collapsed rows keep theirs).
fn panels(dashboard: &Value) -> Vec<Panel<'_>> {
    fn walk<'a>(list: &'a Value, nested: bool, out: &mut Vec<Panel<'a>>) {
        for panel in list.as_array().into_iter().flatten() {
            out.push(Panel {
                json: panel,
                nested,
            });
            if panel.get("panels").is_some() {
                walk(&panel["panels"], true, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], false, &mut out);
    out
}

/// One query of a panel.
#[derive(Debug, Clone)]
struct Query {
    panel: String,
    ref_id: String,
    expr: String,
}

fn queries(dashboard: &Value) -> Vec<Query> {
    panels(dashboard)
        .iter()
        .flat_map(|p| {
            p.json["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| Query {
                    panel: p.title().to_owned(),
                    ref_id: t["refId"].as_str().unwrap_or("").to_owned(),
                    expr: t["expr"].as_str().unwrap_or("").to_owned(),
                })
        })
        .collect()
}

/// The template variables, by name.
fn variables(dashboard: &Value) -> BTreeMap<String, Value> {
    dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .map(|v| (v["name"].as_str().unwrap_or("").to_owned(), v.clone()))
        .collect()
}

/// A query variable's query (the object form of Grafana 10+, or the older plain string).
fn variable_query(variable: &Value) -> String {
    variable["query"]["query"]
        .as_str()
        .or_else(|| variable["query"].as_str())
        .unwrap_or("")
        .to_owned()
}

/// `expr` with the variables replaced as Grafana would (multi-value variables are regexes; All
/// is `.*`, the variables' `allValue`), and the interval variables by short windows.
fn render(expr: &str, vars: &[(&str, &str)]) -> String {
    let mut out = expr.to_owned();
    for (name, value) in INTERVALS.iter().copied().chain(vars.iter().copied()) {
        let name = name.trim_start_matches('$');
        out = out
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("${name}"), value);
    }
    out
}

/// Metric selectors of `expr` naming a GitLab metric: (name, the text between its braces).
fn gitlab_selectors(expr: &str) -> Vec<(String, String)> {
    let bytes = expr.as_bytes();
    let is_ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
    let mut out = Vec::new();
    let mut i = 0;
    let mut in_string = false;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'"' && (i == 0 || bytes[i - 1] != b'\\') {
            in_string = !in_string;
            i += 1;
            continue;
        }
        if in_string || !is_ident(c) || (i > 0 && is_ident(bytes[i - 1])) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_ident(bytes[i]) {
            i += 1;
        }
        let name = &expr[start..i];
        if !name.starts_with("gitlab_") {
            continue;
        }
        let braces = if bytes.get(i) == Some(&b'{') {
            let close = expr[i..].find('}').map_or(expr.len(), |j| i + j);
            expr[i + 1..close].to_owned()
        } else {
            String::new()
        };
        out.push((name.to_owned(), braces));
    }
    out
}

#[test]
fn dashboard_json_is_importable_and_consistent() {
    let dashboard = dashboard();
    let mut problems = Vec::new();
    let mut problem = |p: String| problems.push(p);

    let schema = dashboard["schemaVersion"].as_u64().unwrap_or(0);
    if !(36..=41).contains(&schema) {
        problem(format!("schemaVersion {schema}, expected about 39"));
    }
    for key in ["title", "uid"] {
        if dashboard[key].as_str().unwrap_or("").is_empty() {
            problem(format!("dashboard has no {key}"));
        }
    }
    if DASHBOARD.contains("${DS_") || dashboard.get("__inputs").is_some() {
        problem("uses a datasource input; the `datasource` variable is enough".into());
    }

    // Variables.
    let vars = variables(&dashboard);
    match vars.get("datasource") {
        Some(v) if v["type"] == "datasource" && v["query"] == "prometheus" => {}
        other => problem(format!(
            "no `datasource` variable of type prometheus: {other:?}"
        )),
    }
    let expected = [
        ("job", "label_values(gitlab_up, job)", false),
        (
            "namespace",
            r#"label_values(gitlab_project_info{job=~"$job"}, namespace)"#,
            true,
        ),
        (
            "project",
            r#"label_values(gitlab_project_info{job=~"$job", namespace=~"$namespace"}, project)"#,
            true,
        ),
    ];
    for (name, query, multi) in expected {
        let Some(v) = vars.get(name) else {
            problem(format!("no `{name}` variable"));
            continue;
        };
        if v["type"] != "query" || variable_query(v) != query {
            problem(format!("`{name}` should be the query {query}, is {v}"));
        }
        if v["datasource"]["uid"] != DATASOURCE_UID {
            problem(format!("`{name}` does not query ${{datasource}}"));
        }
        if multi && (v["multi"] != true || v["includeAll"] != true || v["allValue"] != ".*") {
            problem(format!("`{name}` should be multi-value with All = .*"));
        }
    }

    // Panels.
    let all = panels(&dashboard);
    let mut ids = BTreeSet::new();
    let mut rows = Vec::new();
    for p in &all {
        let title = p.title();
        match p.json["id"].as_u64() {
            Some(id) if ids.insert(id) => {}
            Some(id) => problem(format!("panel id {id} ({title:?}) is not unique")),
            None => problem(format!("panel {title:?} has no id")),
        }
        if title.trim().is_empty() {
            problem(format!("a {} panel has no title", p.kind()));
        }
        let pos = &p.json["gridPos"];
        let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| pos[k].as_u64());
        match (x, y, w, h) {
            (Some(x), Some(_), Some(w), Some(h)) if w >= 1 && h >= 1 && x + w <= 24 => {}
            _ => problem(format!("panel {title:?} has a bad gridPos: {pos}")),
        }
        if p.kind() == "row" {
            rows.push(title.to_owned());
            continue;
        }
        let ds = &p.json["datasource"];
        if ds["uid"] != DATASOURCE_UID || ds["type"] != "prometheus" {
            problem(format!(
                "panel {title:?} datasource is {ds}, not ${{datasource}}"
            ));
        }
        if p.kind() == "text" {
            continue;
        }
        let targets = p.json["targets"].as_array().cloned().unwrap_or_default();
        if targets.is_empty() {
            problem(format!("panel {title:?} has no targets"));
        }
        let mut refs = BTreeSet::new();
        for t in &targets {
            let ref_id = t["refId"].as_str().unwrap_or("");
            if ref_id.is_empty() || !refs.insert(ref_id.to_owned()) {
                problem(format!(
                    "panel {title:?}: missing or repeated refId {ref_id:?}"
                ));
            }
            if t.get("datasource").is_some() && t["datasource"]["uid"] != DATASOURCE_UID {
                problem(format!(
                    "panel {title:?} {ref_id}: target datasource is not the variable"
                ));
            }
            if t["expr"].as_str().unwrap_or("").trim().is_empty() {
                problem(format!("panel {title:?} {ref_id}: no expr"));
            }
        }
    }
    if rows != ["Overview", "DORA and flow", "Projects", "Exporter health"] {
        problem(format!("rows are {rows:?}"));
    }

    // Top-level panels do not overlap (the rows are expanded; a collapsed row's panels are
    // laid out when it opens).
    let boxes: Vec<_> = all
        .iter()
        .filter(|p| !p.nested)
        .map(|p| {
            let g = &p.json["gridPos"];
            let v = |k: &str| g[k].as_u64().unwrap_or(0);
            (p.title(), v("x"), v("y"), v("w"), v("h"))
        })
        .collect();
    for (i, a) in boxes.iter().enumerate() {
        for b in &boxes[i + 1..] {
            if a.1 < b.1 + b.3 && b.1 < a.1 + a.3 && a.2 < b.2 + b.4 && b.2 < a.2 + a.4 {
                problem(format!("panels {:?} and {:?} overlap", a.0, b.0));
            }
        }
    }

    // Every GitLab query is filtered by $job; per-project ones by $namespace and $project.
    for q in queries(&dashboard) {
        let selectors = gitlab_selectors(&q.expr);
        let at = format!("{:?} {}: {}", q.panel, q.ref_id, q.expr);
        if !q.expr.contains(r#"job=~"$job""#) {
            problem(format!("not filtered by $job: {at}"));
        }
        for (name, braces) in &selectors {
            if !braces.contains(r#"job=~"$job""#) {
                problem(format!("{name} not filtered by $job: {at}"));
            }
            if name == "gitlab_project_info" && !braces.contains(r#"namespace=~"$namespace""#) {
                problem(format!("{name} not filtered by $namespace: {at}"));
            }
        }
        if selectors
            .iter()
            .any(|(n, _)| n.starts_with("gitlab_project_"))
            && !(q.expr.contains(r#"project=~"$project""#)
                && q.expr.contains(r#"namespace=~"$namespace""#))
        {
            problem(format!(
                "per-project query not filtered by $namespace and $project: {at}"
            ));
        }
        let rendered = render(
            &q.expr,
            &[("job", "gitlab"), ("namespace", ".*"), ("project", ".*")],
        );
        if rendered.contains('$') {
            problem(format!("unknown variable left in {rendered}"));
        }
    }

    assert!(
        problems.is_empty(),
        "examples/grafana-dashboard.json:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn selector_scanner() {
    let s = gitlab_selectors(
        r#"sum(gitlab_a{job=~"$job", x="gitlab_b"} and on(project_id) gitlab_c) / up{job="j"}"#,
    );
    assert_eq!(
        s,
        vec![
            (
                "gitlab_a".to_owned(),
                r#"job=~"$job", x="gitlab_b""#.to_owned()
            ),
            ("gitlab_c".to_owned(), String::new()),
        ]
    );
}

/// An instant query's result at `time`, or Prometheus's error.
fn instant_query(base: &str, query: &str, time: f64) -> Result<Vec<Value>, String> {
    let mut response = ureq::get(format!("{base}/api/v1/query"))
        .config()
        .http_status_as_error(false)
        .build()
        .query("query", query)
        .query("time", format!("{time:.3}"))
        .call()
        .map_err(|e| e.to_string())?;
    let body = response
        .body_mut()
        .read_to_vec()
        .map_err(|e| e.to_string())?;
    let body: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    if body["status"] != "success" {
        return Err(format!("{}: {}", body["errorType"], body["error"]));
    }
    if body["data"]["resultType"] == "scalar" {
        return Ok(vec![body["data"]["result"].clone()]);
    }
    body["data"]["result"]
        .as_array()
        .cloned()
        .ok_or_else(|| format!("no result in {body}"))
}

/// A result as comparable (labels, value) pairs.
fn samples(result: &[Value]) -> BTreeSet<(String, String)> {
    result
        .iter()
        .map(|s| (s["metric"].to_string(), s["value"][1].to_string()))
        .collect()
}

/// The variable settings the queries are run with.
const PASSES: [(&str, [(&str, &str); 3]); 3] = [
    (
        "All",
        [("job", "gitlab"), ("namespace", ".*"), ("project", ".*")],
    ),
    (
        "namespace=acme/platform",
        [
            ("job", "gitlab"),
            ("namespace", NAMESPACE),
            ("project", ".*"),
        ],
    ),
    (
        "project=acme/platform/deploy",
        [
            ("job", "gitlab"),
            ("namespace", ".*"),
            ("project", NAMESPACE_ONLY_PROJECT),
        ],
    ),
];

/// Variable settings: (name, value) pairs.
type Vars<'a> = &'a [(&'a str, &'a str)];

/// One round over every query at one instant: the failures, empty when all is well.
fn check_round(base: &str, queries: &[Query], variables: &BTreeMap<String, Value>) -> Vec<String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let mut failures = Vec::new();
    for q in queries {
        let mut results = Vec::new();
        for (pass, vars) in &PASSES {
            let expr = render(&q.expr, vars);
            match instant_query(base, &expr, now) {
                Ok(r) if !r.is_empty() => results.push(Some(samples(&r))),
                Ok(_) => {
                    failures.push(format!(
                        "{:?} {} [{pass}]: no data from {expr}",
                        q.panel, q.ref_id
                    ));
                    results.push(None);
                }
                Err(e) => {
                    failures.push(format!(
                        "{:?} {} [{pass}]: {e} in {expr}",
                        q.panel, q.ref_id
                    ));
                    results.push(None);
                }
            }
        }
        // Narrowed to the namespace or to its only project, the panel shows the same thing.
        if let (Some(Some(by_namespace)), Some(Some(by_project))) = (results.get(1), results.get(2))
        {
            if by_namespace != by_project {
                failures.push(format!(
                    "{:?} {}: {} differs from {}: {by_namespace:?} vs {by_project:?}",
                    q.panel, q.ref_id, PASSES[1].0, PASSES[2].0
                ));
            }
        }
    }
    // The variables' own queries: label_values(selector, label) is count by (label) (selector).
    let values = |name: &str, vars: &[(&str, &str)]| -> Result<BTreeSet<String>, String> {
        let query = render(&variable_query(&variables[name]), vars);
        let inner = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .ok_or_else(|| format!("not label_values: {query}"))?;
        let (selector, label) = inner.rsplit_once(',').ok_or("no label")?;
        let label = label.trim();
        let result = instant_query(base, &format!("count by ({label}) ({selector})"), now)?;
        Ok(result
            .iter()
            .filter_map(|s| s["metric"][label].as_str().map(str::to_owned))
            .collect())
    };
    let checks: [(&str, Vars<'_>, &str, bool); 3] = [
        ("job", &[], "gitlab", false),
        ("namespace", &[("job", "gitlab")], NAMESPACE, false),
        (
            "project",
            &[("job", "gitlab"), ("namespace", NAMESPACE)],
            NAMESPACE_ONLY_PROJECT,
            true,
        ),
    ];
    for (name, vars, wanted, only) in checks {
        match values(name, vars) {
            Ok(v) if v.contains(wanted) && (!only || v.len() == 1) => {}
            other => failures.push(format!(
                "variable `{name}` with {vars:?}: {other:?}, wanted {}{wanted}",
                if only { "only " } else { "" }
            )),
        }
    }
    failures
}

/// `acme/platform/deploy`, the project the flow panels' data comes from.
const DEPLOY: u64 = 7;

/// One round of flow on `acme/platform/deploy`: a pipeline on the default branch, a merge
/// request opened and merged, and a successful production deployment by the pipeline shipping
/// it. GitLab's clock moves on 90 s (from `offset`, returned): the exporter counts a deployment
/// once it is a minute old.
fn flow_round(gitlab: &FakeGitlab, offset: i64) -> i64 {
    let branch = gitlab.with_instance(|i| i.project(DEPLOY).and_then(|p| p.default_branch.clone()));
    let branch = branch.expect("acme/platform/deploy has a default branch");
    let pipeline = gitlab.run_pipeline(DEPLOY, &branch, PipelineStatus::Running);
    let offset = offset + 90;
    gitlab.set_clock_offset(offset);
    if let Some(pipeline) = pipeline {
        gitlab.finish_pipeline(DEPLOY, pipeline, PipelineStatus::Success, 30 + offset % 60);
    }
    gitlab.change_merge_request(DEPLOY, MergeRequestChange::Open);
    gitlab.change_merge_request(DEPLOY, MergeRequestChange::Merge);
    let merged = gitlab.with_instance(|i| {
        i.project(DEPLOY).map_or(0, |p| {
            let c = &p.merge_requests;
            c.merged + c.closed + c.locked + c.opened
        })
    });
    gitlab.deploy(
        DEPLOY,
        "production",
        DeploymentStatus::Success,
        &[merged],
        pipeline,
    );
    offset
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_query_returns_data_from_a_real_prometheus() {
    let started = Instant::now();
    let mut instance = Instance::demo();
    // GitLab sends RateLimit-* headers only with a limit on: the rate-limit panels need them.
    instance.rate_limit_per_minute = Some(100_000);
    let gitlab = FakeGitlab::start(instance)
        .await
        .expect("fake GitLab starts");
    // Every 10th call fails with a 5xx (the exporter retries it): real
    // gitlab_exporter_api_errors_total series for the errors panel, exact values still. (A
    // steady GraphQL collection of the demo makes about 5 calls.)
    gitlab.set_faults(Faults {
        server_error_rate: 0.1,
        ..Faults::default()
    });
    let exporter = Exporter::start(&gitlab, &["--cache.ttl", "2s"]);
    let prometheus = Arc::new(Prometheus::start_with(&format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: gitlab\n    scrape_interval: 1s\n    scrape_timeout: 1s\n    static_configs:\n      - targets: ['{}']\n",
        exporter.addr
    )));
    let dashboard = dashboard();
    let queries = Arc::new(queries(&dashboard));
    let variables = Arc::new(variables(&dashboard));
    assert!(queries.len() >= 20, "{} queries", queries.len());

    gitlab.create_environment(DEPLOY, "production", Tier::Production);
    let mut offset = flow_round(&gitlab, 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut rounds = 0;
    let failures = loop {
        rounds += 1;
        let (p, q, v) = (
            Arc::clone(&prometheus),
            Arc::clone(&queries),
            Arc::clone(&variables),
        );
        let failures = tokio::task::spawn_blocking(move || check_round(p.url(), &q, &v))
            .await
            .unwrap();
        if failures.is_empty() || Instant::now() > deadline {
            break failures;
        }
        // Pushes make the commit-growth panels move, as they would on a live GitLab; a
        // pipeline, a merge and a deployment the flow panels.
        gitlab.push(42, 1);
        offset = flow_round(&gitlab, offset);
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert!(
        failures.is_empty(),
        "after {rounds} rounds, {} failing queries:\n  {}\nexporter log:\n{}",
        failures.len(),
        failures.join("\n  "),
        exporter.logs()
    );
    assert!(
        gitlab.faults_injected() > 0,
        "the errors panel showed real errors"
    );
    eprintln!(
        "{} queries x {} variable settings returned data after {rounds} rounds, {:.1?} in all",
        queries.len(),
        PASSES.len(),
        started.elapsed()
    );
    drop(prometheus);
    gitlab.shutdown().await;
}
