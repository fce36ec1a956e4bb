//! Change-driven refresh: after a first collection, a collection re-reads only what changed,
//! and every change shows exactly at the next collection, whatever GitLab's clock says.

mod common;

use std::collections::BTreeMap;

use common::{Exporter, assert_exact, demo_gitlab, expected_in_group, expected_membership};
use fake_gitlab::{FakeGitlab, FakeProject, MergeRequestChange, Namespace};

/// The calls of a scrape, by route.
fn calls(gitlab: &FakeGitlab) -> BTreeMap<String, u64> {
    let calls = gitlab.requests_by_route();
    gitlab.reset_counts();
    calls
}

fn routes(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(r, n)| ((*r).to_owned(), *n)).collect()
}

/// Nothing changed: the listing, one change query for the `acme` group (its projects share it),
/// one per project alone in its namespace (`labs/guest-public`, `demo-user/dotfiles`), and the
/// branch head of the one project without statistics. Values stay exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_changed_costs_the_listing_and_a_handful() {
    let gitlab = demo_gitlab().await;
    let exporter = Exporter::start(&gitlab, &["--gitlab.api", "rest", "--cache.ttl", "0s"]);
    exporter.scrape().await;
    gitlab.reset_counts();
    let metrics = exporter.scrape().await;
    assert_exact(&metrics, &gitlab.with_instance(|i| expected_membership(i)));
    assert_eq!(
        calls(&gitlab),
        routes(&[
            ("/projects", 3),
            ("/groups/:id/merge_requests", 1),
            ("/projects/:id/merge_requests", 2),
            ("/projects/:id/repository/branches/:branch", 1),
        ])
    );
    gitlab.shutdown().await;
}

/// Merge requests opened, merged, closed, reopened, locked and edited, and pushes, in group,
/// subgroup and personal projects, with and without statistics: the next collection shows each
/// exactly, re-counting only the projects concerned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_shows_at_the_next_collection() {
    let gitlab = demo_gitlab().await;
    let exporter = Exporter::start(&gitlab, &["--gitlab.api", "rest", "--cache.ttl", "0s"]);
    exporter.scrape().await;

    // acme/api 42, acme/platform/deploy 7, labs/guest-public 21, demo-user/dotfiles 2.
    for (project, change) in [
        (42, MergeRequestChange::Merge),
        (42, MergeRequestChange::Open),
        (7, MergeRequestChange::Close),
        (21, MergeRequestChange::Lock),
        (2, MergeRequestChange::Open),
        (7, MergeRequestChange::Reopen),
    ] {
        assert!(
            gitlab.change_merge_request(project, change),
            "{project} {change:?}"
        );
    }
    assert!(gitlab.push(88, 3), "terraform: statistics");
    assert!(gitlab.push(21, 2), "guest-public: no statistics");
    gitlab.reset_counts();
    let metrics = exporter.scrape().await;
    assert_exact(&metrics, &gitlab.with_instance(|i| expected_membership(i)));
    assert_eq!(
        metrics.project("gitlab_project_commits", "labs/guest-public"),
        Some(59.0)
    );
    assert_eq!(
        metrics.project("gitlab_project_commits", "acme/platform/infra/terraform"),
        Some(203.0)
    );
    // Four projects re-counted (4 calls each), the moved head counted again (sequence).
    assert_eq!(
        calls(&gitlab),
        routes(&[
            ("/projects", 3),
            ("/groups/:id/merge_requests", 1),
            ("/projects/:id/merge_requests", 2 + 4 * 4),
            ("/projects/:id/repository/branches/:branch", 1),
            ("/projects/:id/repository/commits/:sha/sequence", 1),
        ])
    );
    // An edit changes no count but is a change like any other; nothing else is re-counted.
    assert!(gitlab.change_merge_request(15, MergeRequestChange::Edit));
    let metrics = exporter.scrape().await;
    assert_exact(&metrics, &gitlab.with_instance(|i| expected_membership(i)));
    gitlab.shutdown().await;
}

/// GitLab's clock 10 minutes behind the exporter's host: changes are found by GitLab's own
/// clock (its `Date` header), so none is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_skew_loses_no_change() {
    for offset in [-600, 600] {
        let gitlab = demo_gitlab().await;
        gitlab.set_clock_offset(offset);
        let exporter = Exporter::start(&gitlab, &["--gitlab.api", "rest", "--cache.ttl", "0s"]);
        exporter.scrape().await;
        assert!(gitlab.change_merge_request(42, MergeRequestChange::Merge));
        assert!(gitlab.change_merge_request(2, MergeRequestChange::Open));
        let metrics = exporter.scrape().await;
        assert_exact(&metrics, &gitlab.with_instance(|i| expected_membership(i)));
        gitlab.shutdown().await;
    }
}

/// Projects that appear, disappear, are renamed, moved to another group or archived are right
/// at the next collection, counts included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projects_that_come_go_or_move_are_right() {
    let gitlab = demo_gitlab().await;
    let exporter = Exporter::start(&gitlab, &["--gitlab.api", "rest", "--cache.ttl", "0s"]);
    exporter.scrape().await;
    gitlab.with_instance(|i| {
        let mut new = FakeProject::new(5000, "brand-new", Namespace::Group(10));
        new.merge_requests.opened = 3;
        i.projects.push(new);
        i.remove_project(7);
        i.project_mut(42).unwrap().path = "api-renamed".to_owned();
        // acme/platform/infra/terraform moves to labs.
        i.project_mut(88).unwrap().namespace = Namespace::Group(20);
        i.project_mut(50).unwrap().archived = true;
    });
    let metrics = exporter.scrape().await;
    assert_exact(&metrics, &gitlab.with_instance(|i| expected_membership(i)));
    assert!(
        metrics
            .project("gitlab_project_commits", "acme/api-renamed")
            .is_some()
    );
    assert!(
        metrics
            .project("gitlab_project_commits", "labs/terraform")
            .is_some()
    );
    assert_eq!(
        metrics.value(
            "gitlab_project_merge_requests",
            &[("project", "acme/brand-new"), ("state", "opened")]
        ),
        Some(3.0)
    );
    // After the move, changes to the moved project are still seen.
    assert!(gitlab.change_merge_request(88, MergeRequestChange::Open));
    let metrics = exporter.scrape().await;
    assert_exact(&metrics, &gitlab.with_instance(|i| expected_membership(i)));
    gitlab.shutdown().await;
}

/// What no signal shows (a merge request deleted by an administrator) is caught by the rolling
/// re-read within `--collect.full-refresh-interval`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_refresh_catches_what_no_signal_shows() {
    let gitlab = demo_gitlab().await;
    let exporter = Exporter::start(
        &gitlab,
        &[
            "--gitlab.api",
            "rest",
            "--cache.ttl",
            "0s",
            "--collect.full-refresh-interval",
            "2s",
        ],
    );
    exporter.scrape().await;
    assert!(gitlab.change_merge_request(42, MergeRequestChange::Delete));
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let metrics = exporter.scrape().await;
    assert_exact(&metrics, &gitlab.with_instance(|i| expected_membership(i)));
    gitlab.shutdown().await;
}

/// `--collect.full-refresh-interval 0s`: every collection counts everything, as the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_interval_counts_everything_every_time() {
    let gitlab = demo_gitlab().await;
    let exporter = Exporter::start(
        &gitlab,
        &[
            "--gitlab.api",
            "rest",
            "--cache.ttl",
            "0s",
            "--collect.full-refresh-interval",
            "0s",
        ],
    );
    exporter.scrape().await;
    let first = calls(&gitlab);
    exporter.scrape().await;
    assert_eq!(calls(&gitlab), first);
    gitlab.shutdown().await;
}

/// A group scope in steady state: the group and the token user's own projects listed (the
/// latter give statistics, so no project needs a detail call), one change query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_scope_steady_state() {
    let gitlab = demo_gitlab().await;
    let exporter = Exporter::start(
        &gitlab,
        &[
            "--gitlab.api",
            "rest",
            "--cache.ttl",
            "0s",
            "--gitlab.group",
            "acme",
        ],
    );
    exporter.scrape().await;
    assert_eq!(
        gitlab.requests("/projects/:id"),
        0,
        "member projects need no detail call"
    );
    gitlab.reset_counts();
    assert!(gitlab.change_merge_request(15, MergeRequestChange::Merge));
    assert!(gitlab.push(42, 1));
    let metrics = exporter.scrape().await;
    assert_exact(
        &metrics,
        &gitlab.with_instance(|i| expected_in_group(i, "acme")),
    );
    assert_eq!(
        calls(&gitlab),
        routes(&[
            ("/groups/:id/projects", 2),
            ("/projects", 3),
            ("/groups/:id/merge_requests", 1),
            // acme/web/frontend re-counted: 4 states, plus the searches past 10,000 (closed
            // 10,001: page 101 at once; merged 12,346: 8 probes).
            ("/projects/:id/merge_requests", 4 + 1 + 8),
        ])
    );
    gitlab.shutdown().await;
}

/// Once the project ids are known, the listing goes in windows of 100 projects, all at once; a
/// window that gained projects takes a second page, nothing is lost or repeated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_in_parallel_windows_is_exact() {
    use fake_gitlab::Instance;
    let mut instance = Instance::generated(1_000).with_merge_requests(false);
    // Projects 101..=150 come later, inside a window.
    let later: Vec<FakeProject> = (101..=150)
        .filter_map(|id| instance.remove_project(id))
        .collect();
    let gitlab = FakeGitlab::start(instance).await.unwrap();
    let exporter = Exporter::start(&gitlab, &["--gitlab.api", "rest", "--cache.ttl", "0s"]);
    exporter.scrape().await;
    gitlab.reset_counts();
    let metrics = exporter.scrape().await;
    assert_eq!(metrics.value("gitlab_projects", &[]), Some(950.0));
    // 9 windows of 100 known projects and the open window after the last: no empty page.
    assert_eq!(gitlab.requests("/projects"), 10);

    gitlab.with_instance(|i| {
        i.projects.extend(later);
        for id in [300, 301, 640] {
            i.remove_project(id);
        }
        let mut p = FakeProject::new(5_000, "newest", Namespace::Group(11));
        p.merge_requests_enabled = false;
        i.projects.push(p);
    });
    gitlab.reset_counts();
    let metrics = exporter.scrape().await;
    let ids: Vec<u64> = gitlab.with_instance(|i| i.projects.iter().map(|p| p.id).collect());
    assert_eq!(ids.len(), 998);
    assert_eq!(metrics.value("gitlab_projects", &[]), Some(998.0));
    assert_eq!(metrics.series("gitlab_project_commits").len(), 998);
    for id in ids {
        let id = id.to_string();
        assert!(
            metrics
                .value("gitlab_project_commits", &[("project_id", &id)])
                .is_some(),
            "project {id}"
        );
    }
    // The window that gained 50 projects took two pages.
    assert_eq!(gitlab.requests("/projects"), 11);
    gitlab.shutdown().await;
}

/// A merge request deleted while the change query walks its pages shifts the later pages up;
/// the query sees the total shrink and counts the group's projects again, so the change that
/// would have been skipped is not lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_query_survives_a_deletion_mid_walk() {
    use fake_gitlab::Instance;
    use std::time::Duration;
    let gitlab = std::sync::Arc::new(FakeGitlab::start(Instance::generated(300)).await.unwrap());
    let exporter = Exporter::start(
        &gitlab,
        &[
            "--gitlab.api",
            "rest",
            "--cache.ttl",
            "0s",
            "--gitlab.concurrency",
            "64",
        ],
    );
    exporter.scrape().await;
    // 150 changes: two pages of the group query (newest first).
    for id in 1..=150 {
        assert!(gitlab.change_merge_request(id, MergeRequestChange::Open));
    }
    gitlab.reset_counts();
    gitlab.set_latency(Duration::from_millis(300));
    let deleter = tokio::spawn({
        let gitlab = std::sync::Arc::clone(&gitlab);
        async move {
            // Once the first page is asked for (answered 300 ms later), delete the newest
            // merge request, which is on that page.
            while gitlab.requests("/groups/:id/merge_requests") == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tokio::time::sleep(Duration::from_millis(400)).await;
            assert!(gitlab.change_merge_request(150, MergeRequestChange::Delete));
            gitlab.set_latency(Duration::ZERO);
        }
    });
    let metrics = exporter.scrape().await;
    deleter.await.unwrap();
    assert_exact(&metrics, &gitlab.with_instance(|i| expected_membership(i)));
    let metrics = exporter.scrape().await;
    assert_exact(&metrics, &gitlab.with_instance(|i| expected_membership(i)));
}

/// A project whose merge requests were forbidden (a guest on a private project) shows its
/// counts at the next collection once the token user's access changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_change_makes_merge_requests_counted() {
    use fake_gitlab::Role;
    let gitlab = demo_gitlab().await;
    let exporter = Exporter::start(&gitlab, &["--gitlab.api", "rest", "--cache.ttl", "0s"]);
    let metrics = exporter.scrape().await;
    assert_eq!(
        metrics.value(
            "gitlab_project_merge_requests",
            &[("project", "labs/secret"), ("state", "opened")]
        ),
        None
    );
    gitlab.with_instance(|i| i.project_mut(77).unwrap().role = Some(Role::Developer));
    let metrics = exporter.scrape().await;
    assert_exact(&metrics, &gitlab.with_instance(|i| expected_membership(i)));
    assert_eq!(
        metrics.value(
            "gitlab_project_merge_requests",
            &[("project", "labs/secret"), ("state", "opened")]
        ),
        Some(4.0)
    );
    gitlab.shutdown().await;
}

/// A group scope lists in parallel windows too, the group and the token user's own projects
/// alike, exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_listing_in_parallel_windows_is_exact() {
    use fake_gitlab::Instance;
    let gitlab = FakeGitlab::start(Instance::generated(1_000).with_merge_requests(false))
        .await
        .unwrap();
    let exporter = Exporter::start(
        &gitlab,
        &[
            "--gitlab.api",
            "rest",
            "--cache.ttl",
            "0s",
            "--gitlab.group",
            "scale",
        ],
    );
    exporter.scrape().await;
    gitlab.with_instance(|i| {
        i.remove_project(500);
        let mut p = FakeProject::new(2_000, "late", Namespace::Group(12));
        p.merge_requests_enabled = false;
        i.projects.push(p);
    });
    gitlab.reset_counts();
    let metrics = exporter.scrape().await;
    assert_exact(
        &metrics,
        &gitlab.with_instance(|i| expected_in_group(i, "scale")),
    );
    // 10 windows of 100 and the open one, for each listing; no detail call.
    assert_eq!(gitlab.requests("/groups/:id/projects"), 11);
    assert_eq!(gitlab.requests("/projects"), 11);
    assert_eq!(gitlab.requests("/projects/:id"), 0);
    gitlab.shutdown().await;
}
