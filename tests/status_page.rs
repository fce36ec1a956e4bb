//! The landing page as an operator sees it: rendered by a real browser (Debian's chromium,
//! headless; scripts/test installs it), its text checked against the exporter's own metrics,
//! and a screenshot kept in `target/status-page*.png` to look at.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Exporter, Exposition};
use fake_gitlab::{FakeGitlab, Instance};

/// Chromium's rendering of `url`: the DOM after scripts and layout, and a screenshot at `png`.
fn chromium(url: &str, png: &Path) -> String {
    let profile = std::env::temp_dir().join(format!(
        "gae-chromium-{}-{}",
        std::process::id(),
        png.file_stem().unwrap().to_string_lossy()
    ));
    let common = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--window-size=1280,900",
    ];
    let run = |extra: &[String]| {
        let output = Command::new("chromium")
            .args(common)
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(extra)
            .arg(url)
            .output()
            .expect("chromium runs (scripts/test installs Debian's chromium)");
        assert!(
            output.status.success(),
            "chromium failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    run(&[format!("--screenshot={}", png.display())]);
    let dom = run(&["--dump-dom".to_owned()]);
    let _ = std::fs::remove_dir_all(&profile);
    dom
}

fn screenshot(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Text of the DOM without tags, whitespace collapsed.
fn text(dom: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in dom.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_in_a_browser() {
    let mut instance = Instance::demo();
    instance.rate_limit_per_minute = Some(2000);
    let gitlab = FakeGitlab::start(instance).await.unwrap();
    let exporter = Exporter::start(&gitlab, &["--cache.ttl", "0s"]);
    let url = format!("http://{}/", exporter.addr);

    let before = {
        let png = screenshot("status-page-before.png");
        let url = url.clone();
        tokio::task::spawn_blocking(move || chromium(&url, &png))
            .await
            .unwrap()
    };
    assert!(text(&before).contains("No collection yet"), "{before}");

    // Two collections: the chart of the last hour has two bars.
    exporter.scrape().await;
    let metrics: Exposition = exporter.scrape().await;
    let calls = metrics
        .value("gitlab_exporter_collect_api_requests", &[])
        .unwrap();
    let projects = metrics.value("gitlab_projects", &[]).unwrap();
    let png = screenshot("status-page.png");
    let dom = {
        let (url, png) = (url.clone(), png.clone());
        tokio::task::spawn_blocking(move || chromium(&url, &png))
            .await
            .unwrap()
    };
    let page = text(&dom);
    for expected in [
        "GitLab API Exporter".to_owned(),
        "Result success".to_owned(),
        format!("API calls {calls}"),
        format!("Projects {projects}"),
        "of 2000 left".to_owned(),
        "Failed calls none".to_owned(),
        "the projects the token's user is a member of".to_owned(),
        "Last hour".to_owned(),
        "2 collection(s)".to_owned(),
    ] {
        assert!(page.contains(&expected), "{expected:?} not in: {page}");
    }
    // Each collector's part in the last collection, as its own metrics say.
    for family in ["projects", "storage", "commits", "merge_requests"] {
        let labels = [("collector", family)];
        let family_calls = metrics
            .value("gitlab_exporter_collector_api_requests", &labels)
            .unwrap();
        assert_eq!(
            metrics.value("gitlab_exporter_collector_success", &labels),
            Some(1.0)
        );
        let row = format!("{family} ok ");
        let at = page
            .find(&row)
            .unwrap_or_else(|| panic!("{row:?} not in: {page}"));
        let rest: Vec<&str> = page[at + row.len()..].split(' ').collect();
        // "<duration> <unit> <calls>"
        assert_eq!(rest[2], family_calls.to_string(), "{family}: {page}");
    }
    // The chart: one bar per collection, and the line of API calls.
    assert!(dom.contains("<svg class=\"history\""), "{dom}");
    assert_eq!(dom.matches("class=\"duration\"").count(), 2, "{dom}");
    assert!(dom.contains("<polyline class=\"calls\""), "{dom}");
    assert!(dom.contains("href=\"/metrics\""), "{dom}");
    // A real screenshot: a PNG of the window's size, not an empty file.
    let image = std::fs::read(&png).unwrap();
    assert!(
        image.starts_with(b"\x89PNG") && image.len() > 10_000,
        "{}",
        image.len()
    );
    let (width, height) = (
        u32::from_be_bytes(image[16..20].try_into().unwrap()),
        u32::from_be_bytes(image[20..24].try_into().unwrap()),
    );
    assert_eq!((width, height), (1280, 900));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_lists_probe_targets() {
    let gitlab = FakeGitlab::start(Instance::demo()).await.unwrap();
    let exporter = Exporter::start(&gitlab, &["--multi-target"]);
    for target in ["acme/platform", "labs", "no-such-group"] {
        let response = exporter.get(&format!("/probe?target={target}"), &[]).await;
        assert_eq!(response.status, 200);
    }
    let url = format!("http://{}/", exporter.addr);
    let png = screenshot("status-page-multi-target.png");
    let dom = tokio::task::spawn_blocking(move || chromium(&url, &png))
        .await
        .unwrap();
    let page = text(&dom);
    assert!(page.contains("3 target(s) held"), "{page}");
    assert!(page.contains("acme/platform ok"), "{page}");
    assert!(page.contains("labs ok"), "{page}");
    assert!(page.contains("no-such-group failed"), "{page}");
    assert!(
        dom.contains("href=\"/probe?target=acme%2Fplatform\""),
        "{dom}"
    );
}
