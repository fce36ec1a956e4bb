//! The GraphQL path (`--gitlab.api graphql`, the default) against the fake GitLab's GraphQL
//! endpoint: the same values as REST on the whole demo instance and in every scope, the calls
//! it makes cold and steady, and what it does when GitLab limits, refuses, half-answers, times
//! out or has no GraphQL at all.

mod common;

use std::collections::BTreeMap;

use common::{
    Exporter, Exposition, assert_exact, calls_made, demo_gitlab, expected_in_group,
    expected_membership,
};
use fake_gitlab::Faults;

/// Every project series (`gitlab_project*`, `gitlab_projects`), keyed by name and labels. The
/// one thing GraphQL cannot say is the default branch of an empty repository (`rootRef` is null
/// until the first push; REST shows the project's setting): the `default_branch` label of the
/// projects in `empty` is left out of the key.
fn project_series(e: &Exposition, empty: &[String]) -> BTreeMap<String, f64> {
    e.samples
        .iter()
        .filter(|s| s.name.starts_with("gitlab_project"))
        .map(|s| {
            let mut labels = s.labels.clone();
            if labels.get("project").is_some_and(|p| empty.contains(p)) {
                labels.remove("default_branch");
            }
            (format!("{}{labels:?}", s.name), s.value)
        })
        .collect()
}

/// The exporter on `gitlab` with `args`, the flow collectors off: these tests count the calls
/// of the other families (tests/flow.rs has the flow collectors', over both APIs).
fn start(gitlab: &fake_gitlab::FakeGitlab, args: &[&str]) -> Exporter {
    let mut all = args.to_vec();
    all.extend(common::NO_FLOW);
    Exporter::start(gitlab, &all)
}

/// The value of a self-metric series with these labels, 0 when absent.
fn counter(e: &Exposition, name: &str, labels: &[(&str, &str)]) -> f64 {
    e.value(name, labels).unwrap_or(0.0)
}

/// Scrapes the same scope over REST and over GraphQL (two exporters, one fake GitLab) and
/// returns both expositions after checking every project series is equal.
async fn agree(args: &[&str]) -> (Exposition, Exposition) {
    let gitlab = demo_gitlab().await;
    let mut rest_args = args.to_vec();
    rest_args.extend(["--gitlab.api", "rest"]);
    let rest = start(&gitlab, &rest_args).scrape().await;
    let graphql = start(&gitlab, args).scrape().await;
    assert_eq!(rest.value("gitlab_up", &[]), Some(1.0));
    assert_eq!(graphql.value("gitlab_up", &[]), Some(1.0));
    let empty: Vec<String> = gitlab.with_instance(|i| {
        i.projects
            .iter()
            .filter(|p| p.is_empty_repo())
            .map(|p| p.path_with_namespace(i))
            .collect()
    });
    assert!(!empty.is_empty());
    let (r, g) = (
        project_series(&rest, &empty),
        project_series(&graphql, &empty),
    );
    let only_rest: Vec<_> = r.iter().filter(|(k, v)| g.get(*k) != Some(v)).collect();
    let only_graphql: Vec<_> = g.iter().filter(|(k, v)| r.get(*k) != Some(v)).collect();
    assert!(
        only_rest.is_empty() && only_graphql.is_empty(),
        "REST and GraphQL disagree on {args:?}:\nREST only: {only_rest:#?}\nGraphQL only: {only_graphql:#?}"
    );
    (rest, graphql)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_and_graphql_agree_on_the_whole_demo_in_every_scope() {
    let gitlab = demo_gitlab().await;
    let membership = gitlab.with_instance(|i| expected_membership(i));
    let acme = gitlab.with_instance(|i| expected_in_group(i, "acme"));
    drop(gitlab);
    let (_, graphql) = agree(&[]).await;
    assert_exact(&graphql, &membership);
    // acme/web/frontend: 10,000 opened, 12,345 merged, 10,001 closed: GraphQL counts stop at
    // 1,000 (it answers 1,001), so those three are counted over REST, exactly.
    assert_eq!(
        counter(
            &graphql,
            "gitlab_exporter_rest_fallbacks_total",
            &[("reason", "count_over_limit")]
        ),
        3.0
    );
    let (_, graphql) = agree(&["--gitlab.group", "acme"]).await;
    assert_exact(&graphql, &acme);
    agree(&["--gitlab.group", "acme/platform", "--gitlab.group", "labs"]).await;
    // A group named by id: its path read once (`GET /groups/:id`), then listed over GraphQL.
    let (_, graphql) = agree(&["--gitlab.group", "10"]).await;
    assert_exact(&graphql, &acme);
    agree(&["--gitlab.all-projects"]).await;
    agree(&["--gitlab.all-projects", "--gitlab.include-archived"]).await;
    agree(&[
        "--gitlab.project",
        "42",
        "--gitlab.project",
        "acme/web/frontend",
        "--gitlab.project",
        "labs/guest-public",
        "--gitlab.project",
        "nobody/nothing",
    ])
    .await;
}

/// Calls of a cold GraphQL collection of the demo's default scope: one page query (fewer than
/// 100 projects), one merge-request batch per 100 projects whose merge requests are readable,
/// and over REST only what GraphQL cannot give exactly: the three counts above 1,000, and the
/// head and commit count of each project without statistics whose code is readable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_graphql_scrape_makes_pages_batches_and_only_the_rest_it_must() {
    let gitlab = demo_gitlab().await;
    let expected = gitlab.with_instance(|i| expected_membership(i));
    let exporter = start(&gitlab, &["--cache.ttl", "1h"]);
    let metrics = exporter.scrape().await;
    assert_exact(&metrics, &expected);
    let readable = expected
        .iter()
        .filter(|e| e.merge_requests.is_some())
        .count();
    let no_statistics = expected
        .iter()
        .filter(|e| !e.statistics && e.commits.is_some_and(|c| c > 0))
        .count() as u64;
    let mut wanted = BTreeMap::new();
    wanted.insert(
        "/api/graphql".to_owned(),
        expected.len().div_ceil(100) as u64 + readable.div_ceil(100) as u64,
    );
    // opened: X-Total 10,000 (1 call); closed: 10,001, page 101 at once (1 + 1); merged:
    // 12,345, 1 + 8 search probes (see tests/calls.rs).
    wanted.insert("/projects/:id/merge_requests".to_owned(), 1 + 2 + 9);
    wanted.insert(
        "/projects/:id/repository/branches/:branch".to_owned(),
        no_statistics,
    );
    wanted.insert(
        "/projects/:id/repository/commits/:sha/sequence".to_owned(),
        no_statistics,
    );
    let made = calls_made(&gitlab);
    assert_eq!(made, wanted);
    let graphql_requests: f64 = metrics
        .series("gitlab_exporter_graphql_requests_total")
        .iter()
        .map(|s| s.value)
        .sum();
    assert_eq!(graphql_requests, wanted["/api/graphql"] as f64);
    assert_eq!(
        counter(
            &metrics,
            "gitlab_exporter_graphql_requests_total",
            &[("operation", "projects"), ("result", "success")]
        ),
        expected.len().div_ceil(100) as f64
    );
    // The scores GitLab reported are the ones the fake computed.
    let scores = gitlab.graphql_scores();
    assert_eq!(scores.len() as u64, wanted["/api/graphql"]);
    let limit = metrics.value("gitlab_exporter_graphql_complexity_limit", &[]);
    assert_eq!(limit, Some(250.0));
    let page_score = metrics.value(
        "gitlab_exporter_graphql_query_complexity",
        &[("operation", "projects")],
    );
    assert_eq!(page_score, Some(f64::from(scores[0])));
    assert!(scores.iter().all(|s| *s <= 250), "{scores:?}");
}

/// With nothing changed, a steady collection makes the page queries and the change queries
/// only: no batch, no per-project call, for projects with or without statistics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_graphql_collection_makes_page_and_change_queries_only() {
    let gitlab = demo_gitlab().await;
    let expected = gitlab.with_instance(|i| expected_membership(i));
    let exporter = start(&gitlab, &["--cache.ttl", "0s"]);
    exporter.scrape().await;
    gitlab.reset_counts();
    let metrics = exporter.scrape().await;
    assert_exact(&metrics, &expected);
    let made = calls_made(&gitlab);
    let pages = expected.len().div_ceil(100) as u64;
    assert_eq!(made.get("/api/graphql"), Some(&pages), "{made:?}");
    for route in made.keys() {
        assert!(
            route == "/api/graphql"
                || route == "/groups/:id/merge_requests"
                || route == "/projects/:id/merge_requests",
            "a per-project call in a steady collection: {made:?}"
        );
    }
    // Only the projects alone in their top-level group or namespace are asked one by one, as
    // over REST (tests/changes.rs).
    let rest = {
        let gitlab = demo_gitlab().await;
        let exporter = start(&gitlab, &["--cache.ttl", "0s", "--gitlab.api", "rest"]);
        exporter.scrape().await;
        gitlab.reset_counts();
        exporter.scrape().await;
        gitlab.requests_by_route()
    };
    for route in ["/groups/:id/merge_requests", "/projects/:id/merge_requests"] {
        assert_eq!(
            made.get(route),
            rest.get(route).filter(|n| **n > 0),
            "{route}"
        );
    }
}

/// A merge request opened and a push between collections: the next collection asks GraphQL for
/// that project's counts in one batch and reads the moved head over REST, and the values follow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_between_collections_cost_a_batch_and_show() {
    let gitlab = demo_gitlab().await;
    let exporter = start(&gitlab, &["--cache.ttl", "0s"]);
    exporter.scrape().await;
    let before = gitlab.with_instance(|i| expected_membership(i));
    // labs/guest-public (21): public, a guest: code readable, no statistics.
    assert!(gitlab.change_merge_request(42, fake_gitlab::MergeRequestChange::Open));
    gitlab.push(21, 3);
    gitlab.reset_counts();
    let metrics = exporter.scrape().await;
    let after = gitlab.with_instance(|i| expected_membership(i));
    assert_ne!(
        before.iter().find(|e| e.id == 42).unwrap().merge_requests,
        after.iter().find(|e| e.id == 42).unwrap().merge_requests
    );
    assert_exact(&metrics, &after);
    let made = gitlab.requests_by_route();
    let pages = after.len().div_ceil(100) as u64;
    assert_eq!(made["/api/graphql"], pages + 1, "{made:?}");
    assert_eq!(made["/projects/:id/repository/branches/:branch"], 1);
    assert_eq!(made["/projects/:id/repository/commits/:sha/sequence"], 1);
}

/// A project whose merge-request counts come back as field errors (a partial answer): that
/// project alone is counted over REST, the rest of the batch is used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_answer_costs_only_its_projects() {
    let gitlab = demo_gitlab().await;
    let expected = gitlab.with_instance(|i| expected_membership(i));
    gitlab.set_faults(Faults {
        graphql_field_error: Some(42),
        ..Faults::default()
    });
    let exporter = start(&gitlab, &[]);
    let metrics = exporter.scrape().await;
    assert_exact(&metrics, &expected);
    // acme/api's four states over REST, plus frontend's three over 1,000 (12 calls).
    assert_eq!(gitlab.requests("/projects/:id/merge_requests"), 4 + 12);
    assert_eq!(
        counter(
            &metrics,
            "gitlab_exporter_graphql_requests_total",
            &[("operation", "merge_requests"), ("result", "partial")]
        ),
        1.0
    );
    assert_eq!(
        counter(
            &metrics,
            "gitlab_exporter_rest_fallbacks_total",
            &[("reason", "partial")]
        ),
        1.0
    );
}

/// A project whose page fields come back with an error (its `lastCommit`, a Gitaly shard
/// down): that project alone is read over REST (`GET /projects/:id`, its families' REST calls),
/// the rest of the page is used, and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_page_costs_only_its_project() {
    let gitlab = demo_gitlab().await;
    let expected = gitlab.with_instance(|i| expected_membership(i));
    gitlab.set_faults(Faults {
        graphql_last_commit_error: Some(42),
        ..Faults::default()
    });
    let exporter = start(&gitlab, &[]);
    let metrics = exporter.scrape().await;
    assert_exact(&metrics, &expected);
    assert_eq!(gitlab.requests("/projects/:id"), 1);
    // acme/api's four states over REST, plus frontend's three over 1,000 (12 calls).
    assert_eq!(gitlab.requests("/projects/:id/merge_requests"), 4 + 12);
    assert_eq!(
        counter(
            &metrics,
            "gitlab_exporter_rest_fallbacks_total",
            &[("reason", "partial")]
        ),
        1.0
    );
}

/// GitLab timing out on big queries (the fake's work: project nodes plus counts): pages and
/// batches are halved until they pass, the values stay exact, and the sizes found are reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_that_time_out_are_halved_until_they_pass() {
    let gitlab = demo_gitlab().await;
    let expected = gitlab.with_instance(|i| expected_membership(i));
    let size = |metrics: &Exposition, operation| {
        metrics.value(
            "gitlab_exporter_graphql_batch_size",
            &[("operation", operation)],
        )
    };
    // Pages of 100 projects pass; batches of 100 (100 nodes, 400 counts) and 50 do not; 25 do
    // (halves of the page's projects with readable merge requests, so just under).
    gitlab.set_faults(Faults {
        graphql_timeout_above: Some(150),
        ..Faults::default()
    });
    let exporter = start(&gitlab, &[]);
    let metrics = exporter.scrape().await;
    assert_exact(&metrics, &expected);
    assert_eq!(size(&metrics, "projects"), Some(100.0));
    let batch = size(&metrics, "merge_requests").unwrap();
    assert!(
        (15.0..=30.0).contains(&batch),
        "{batch}\n{}",
        exporter.logs()
    );
    assert!(
        exporter.logs().contains("asking again in halves"),
        "{}",
        exporter.logs()
    );
    drop(exporter);
    // Pages of 100 and 50 projects do not pass either: 25 do.
    gitlab.set_faults(Faults {
        graphql_timeout_above: Some(30),
        ..Faults::default()
    });
    let exporter = start(&gitlab, &[]);
    let metrics = exporter.scrape().await;
    assert_exact(&metrics, &expected);
    assert_eq!(size(&metrics, "projects"), Some(25.0));
    assert!(
        exporter.logs().contains("asking again at half the size"),
        "{}",
        exporter.logs()
    );
}

/// A complexity limit lower than GitLab's usual 250: the page query is refused as too complex
/// and asked again at half the size; the limit GitLab reports is the one shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lower_complexity_limit_shrinks_the_pages() {
    let gitlab = demo_gitlab().await;
    let expected = gitlab.with_instance(|i| expected_membership(i));
    // What the page query scores at 100 projects, then at 50: a limit between the two.
    let full = {
        let exporter = start(&gitlab, &[]);
        exporter.scrape().await;
        gitlab.graphql_scores()[0]
    };
    gitlab.reset_counts();
    gitlab.set_faults(Faults {
        graphql_max_complexity: Some(full - 1),
        ..Faults::default()
    });
    let exporter = start(&gitlab, &[]);
    let metrics = exporter.scrape().await;
    assert_exact(&metrics, &expected);
    assert_eq!(
        metrics.value(
            "gitlab_exporter_graphql_batch_size",
            &[("operation", "projects")]
        ),
        Some(50.0)
    );
    assert_eq!(
        metrics.value("gitlab_exporter_graphql_complexity_limit", &[]),
        Some(f64::from(full - 1))
    );
    assert_eq!(
        counter(
            &metrics,
            "gitlab_exporter_graphql_requests_total",
            &[("operation", "projects"), ("result", "refused")]
        ),
        1.0
    );
}

/// A GitLab (or proxy) without GraphQL: one warning, REST from then on, the same values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_graphql_the_exporter_falls_back_to_rest_once() {
    let gitlab = demo_gitlab().await;
    let expected = gitlab.with_instance(|i| expected_membership(i));
    gitlab.set_faults(Faults {
        graphql_disabled: true,
        ..Faults::default()
    });
    let exporter = start(&gitlab, &["--cache.ttl", "0s"]);
    let metrics = exporter.scrape().await;
    assert_exact(&metrics, &expected);
    assert_eq!(gitlab.requests("/api/graphql"), 1);
    exporter.scrape().await;
    assert_eq!(gitlab.requests("/api/graphql"), 1, "asked once only");
    let metrics = exporter.scrape().await;
    assert_eq!(
        counter(
            &metrics,
            "gitlab_exporter_rest_fallbacks_total",
            &[("reason", "unavailable")]
        ),
        1.0
    );
    let logs = exporter.logs();
    assert_eq!(logs.matches("no GraphQL API").count(), 1, "{logs}");
}

/// A token GitLab rejects on GraphQL: 401, `gitlab_up 0`, the log says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_on_graphql_is_gitlab_up_0() {
    let gitlab = demo_gitlab().await;
    let exporter = Exporter::start_with_env(
        &gitlab.url(),
        &[("GITLAB_TOKEN", "glpat-wrong-wrong-wrong")],
        &[],
    );
    let metrics = exporter.scrape().await;
    assert_eq!(metrics.value("gitlab_up", &[]), Some(0.0));
    assert_eq!(gitlab.requests("/api/graphql"), 1);
    assert_eq!(
        metrics.value(
            "gitlab_exporter_api_requests_total",
            &[("endpoint", "/api/graphql"), ("code", "401")]
        ),
        Some(1.0)
    );
    let logs = exporter.logs_once("collection failed");
    assert!(logs.contains("401 Unauthorized on /api/graphql"), "{logs}");
    assert!(!logs.contains("glpat-wrong"), "{logs}");
}

/// A GitLab without a field the exporter asks (an older version): the query is refused as
/// invalid, logged once as an error with GitLab's message, and what it was for goes over REST
/// for the collection: the merge-request batches (`mergeRequests`), or the whole listing (a field
/// of the page query). The values stay exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_refused_as_invalid_falls_back_to_rest_for_the_collection() {
    let gitlab = demo_gitlab().await;
    let expected = gitlab.with_instance(|i| expected_membership(i));
    let readable = expected
        .iter()
        .filter(|e| e.merge_requests.is_some())
        .count() as u64;

    gitlab.set_faults(Faults {
        graphql_unknown_field: Some("mergeRequests"),
        ..Faults::default()
    });
    let exporter = start(&gitlab, &["--cache.ttl", "0s"]);
    let metrics = exporter.scrape().await;
    assert_exact(&metrics, &expected);
    // Over REST: 4 counts per project with readable merge requests (frontend's 3 over 10,000
    // cost their searches, 1 + 9 calls more).
    assert_eq!(
        gitlab.requests("/projects/:id/merge_requests"),
        4 * readable + 1 + 8
    );
    let logs = exporter.logs_once("batches are collected over REST");
    assert_eq!(
        logs.matches("refused a GraphQL query as invalid").count(),
        1,
        "{logs}"
    );
    // (logfmt escapes the quotes)
    assert!(
        logs.contains(r"Field \'mergeRequests\' doesn\'t exist"),
        "{logs}"
    );
    assert!(logs.contains("level=error"), "{logs}");
    assert!(
        counter(
            &metrics,
            "gitlab_exporter_rest_fallbacks_total",
            &[("reason", "refused")]
        ) >= 1.0
    );
    drop(exporter);

    gitlab.reset_counts();
    gitlab.set_faults(Faults {
        graphql_unknown_field: Some("readMergeRequest"),
        ..Faults::default()
    });
    let exporter = start(&gitlab, &[]);
    let metrics = exporter.scrape().await;
    assert_exact(&metrics, &expected);
    assert_eq!(gitlab.requests("/api/graphql"), 1, "one refused page query");
    assert_eq!(
        gitlab.requests("/projects"),
        expected.len().div_ceil(100) as u64 + 1
    );
    let logs = exporter.logs_once("this collection lists over REST");
    assert!(
        logs.contains(r"Field \'readMergeRequest\' doesn\'t exist on type \'ProjectPermissions\'"),
        "{logs}"
    );
}

/// A group named by id costs one `GET /groups/:id` per collection for its path, then the same
/// as a group named by path: no per-project call in a steady collection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_named_by_id_is_listed_over_graphql_too() {
    let gitlab = demo_gitlab().await;
    let expected = gitlab.with_instance(|i| expected_in_group(i, "acme"));
    let exporter = start(&gitlab, &["--cache.ttl", "0s", "--gitlab.group", "10"]);
    assert_exact(&exporter.scrape().await, &expected);
    assert_eq!(gitlab.requests("/groups/:id"), 1);
    assert_eq!(gitlab.requests("/groups/:id/projects"), 0);
    gitlab.reset_counts();
    assert_exact(&exporter.scrape().await, &expected);
    let made = calls_made(&gitlab);
    for route in made.keys() {
        assert!(
            [
                "/api/graphql",
                "/groups/:id",
                "/groups/:id/merge_requests",
                "/projects/:id/merge_requests"
            ]
            .contains(&route.as_str()),
            "a per-project call in a steady collection: {made:?}"
        );
    }
}
