//! The fewest calls: a cold scrape makes exactly the calls its metrics need, route by route; a
//! scrape within the TTL makes none; concurrent scrapes share one collection.

mod common;

use std::collections::BTreeMap;

use common::{Exporter, demo_gitlab, expected_membership};

/// Calls the demo's membership scope needs, derived from the data: one listing call per 100
/// projects and the empty keyset page that ends the walk; four merge-request counts per project whose merge requests are readable, plus the
/// searches past 10,000, and one (answered 403) per project whose merge requests are enabled
/// but forbidden to a guest; two calls (branch head, sequence) per project without statistics whose
/// code is readable and not empty; nothing else.
fn expected_calls(expected: &[common::Expected]) -> BTreeMap<String, u64> {
    let readable_mrs = expected
        .iter()
        .filter(|e| e.merge_requests.is_some())
        .count() as u64;
    let forbidden_mrs = expected
        .iter()
        .filter(|e| e.merge_requests_enabled && e.merge_requests.is_none())
        .count() as u64;
    // acme/web/frontend: opened = 10,000 has X-Total (0 more calls); closed = 10,001 is found on
    // page 101 at once (1 call); merged = 12,345 takes 8 probes: pages 101 (full), 202 (empty),
    // 151, 126 (empty), 113, 119, 122 (full) and 124 (45 items: 123 x 100 + 45).
    let search_calls = 1 + 8;
    let fallback = expected
        .iter()
        .filter(|e| !e.statistics && e.commits.is_some_and(|c| c > 0))
        .count();
    let mut calls = BTreeMap::new();
    // Keyset pages: every page with a project links to the next, so the walk ends on an empty page.
    calls.insert(
        "/projects".to_owned(),
        expected.len().div_ceil(100) as u64 + 1,
    );
    calls.insert(
        "/projects/:id/merge_requests".to_owned(),
        4 * readable_mrs + forbidden_mrs + search_calls,
    );
    calls.insert(
        "/projects/:id/repository/branches/:branch".to_owned(),
        fallback as u64,
    );
    calls.insert(
        "/projects/:id/repository/commits/:sha/sequence".to_owned(),
        fallback as u64,
    );
    calls
}

/// A cold scrape of the default scope makes exactly the calls listed above, and says so in its
/// own metrics; a second scrape within the TTL makes none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_scrape_makes_exactly_the_needed_calls_and_a_warm_one_none() {
    let gitlab = demo_gitlab().await;
    let exporter = Exporter::start(&gitlab, &["--gitlab.api", "rest", "--cache.ttl", "1h"]);
    let first_scrape = std::time::Instant::now();
    let metrics = exporter.scrape().await;
    let expected = gitlab.with_instance(|i| expected_membership(i));
    let wanted = expected_calls(&expected);
    let made = common::calls_made(&gitlab);
    assert_eq!(made, wanted);
    let total: u64 = wanted.values().sum();
    assert_eq!(
        metrics.value("gitlab_exporter_collect_api_requests", &[]),
        Some(total as f64)
    );
    for (route, calls) in &wanted {
        let answered: f64 = metrics
            .series("gitlab_exporter_api_requests_total")
            .iter()
            .filter(|s| s.labels["endpoint"] == *route)
            .map(|s| s.value)
            .sum();
        assert_eq!(
            answered, *calls as f64,
            "gitlab_exporter_api_requests_total of {route}"
        );
    }
    assert_eq!(
        metrics.value(
            "gitlab_exporter_collections_total",
            &[("result", "success")]
        ),
        Some(1.0)
    );

    gitlab.reset_counts();
    let again = exporter.scrape().await;
    assert_eq!(gitlab.total_requests(), 0, "within the TTL: no call");
    assert_eq!(
        again.value(
            "gitlab_exporter_collections_total",
            &[("result", "success")]
        ),
        Some(1.0)
    );
    let age = again
        .value("gitlab_exporter_cache_age_seconds", &[])
        .unwrap();
    assert!(
        age > 0.0 && age < first_scrape.elapsed().as_secs_f64(),
        "cache age {age}"
    );
    gitlab.shutdown().await;
}

/// With the cache always expired (TTL 0s), 20 scrapes arriving while a collection runs all get
/// that one collection: GitLab sees the calls of one collection, not twenty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_scrapes_share_one_collection() {
    let gitlab = demo_gitlab().await;
    // Every collection from scratch, so that each costs the same (the flow collectors' first
    // collection differs from their later ones: off).
    let mut args = vec!["--cache.ttl", "0s", "--collect.full-refresh-interval", "0s"];
    args.extend(common::NO_FLOW);
    let exporter = Exporter::start(&gitlab, &args);
    exporter.scrape().await;
    let one_collection = gitlab.total_requests();
    gitlab.reset_counts();

    // Hold GitLab's answers so that the collection is still running when every scrape arrives.
    gitlab.hold();
    let scrapes: Vec<_> = (0..20)
        .map(|_| {
            let addr = exporter.addr;
            tokio::task::spawn_blocking(move || common::http_request(addr, "GET", "/metrics", &[]))
        })
        .collect();
    while gitlab.pending() == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // The scrapes are on their way; give the slowest of them time to reach the exporter.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    gitlab.release();
    let bodies: Vec<String> = futures::future::join_all(scrapes)
        .await
        .into_iter()
        .map(|r| r.unwrap().text())
        .collect();
    assert_eq!(
        gitlab.total_requests(),
        one_collection,
        "20 concurrent scrapes, one collection"
    );
    let collections: Vec<_> = bodies
        .iter()
        .map(|b| {
            common::Exposition::parse(b).value(
                "gitlab_exporter_collections_total",
                &[("result", "success")],
            )
        })
        .collect();
    assert!(
        collections.iter().all(|c| *c == Some(2.0)),
        "every scrape got the second collection: {collections:?}"
    );
    gitlab.shutdown().await;
}

/// Calls go out concurrently, never more than `--gitlab.concurrency` at once, through one
/// session that names the exporter in its User-Agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_is_bounded_by_the_flag() {
    let gitlab = demo_gitlab().await;
    gitlab.set_latency(std::time::Duration::from_millis(20));
    for limit in [1usize, 5] {
        // Two projects: two detail calls and eight merge-request counts want to go at once.
        let exporter = Exporter::start(
            &gitlab,
            &[
                "--gitlab.api",
                "rest",
                "--gitlab.group",
                "acme/platform",
                "--gitlab.concurrency",
                &limit.to_string(),
            ],
        );
        gitlab.reset_counts();
        let metrics = exporter.scrape().await;
        assert_eq!(metrics.value("gitlab_up", &[]), Some(1.0));
        assert_eq!(
            gitlab.max_in_flight(),
            limit,
            "--gitlab.concurrency {limit}"
        );
    }
    assert_eq!(
        gitlab.user_agents(),
        vec![format!("gitlab-api-exporter/{}", env!("CARGO_PKG_VERSION"))]
    );
    gitlab.shutdown().await;
}
