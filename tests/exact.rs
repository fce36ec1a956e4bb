//! Every number exact: each undercount trap of ../shared/gitlab-api.md §10 that applies, in every
//! scope, against the fake GitLab, scraped over HTTP from the exporter binary.

mod common;

use common::{
    Exporter, assert_exact, demo_gitlab, expected, expected_in_group, expected_membership,
};
use fake_gitlab::{FakeGitlab, Instance};

/// The default scope: member projects, archived left out, every value exact. Covers: the 20-item
/// default page (25 commits, projects past the first page), more than 100 projects (two pages at
/// per_page=100), merge requests past 10,000 (no X-Total), exactly 10,000, statistics missing
/// (commits from the branch head and the sequence endpoint), open issues missing, merge requests
/// disabled or forbidden, an empty repository, a default branch with a slash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_scope_is_exact() {
    let gitlab = demo_gitlab().await;
    let exporter = Exporter::start(&gitlab, &[]);
    let metrics = exporter.scrape().await;
    let expected = gitlab.with_instance(|i| expected_membership(i));
    assert!(
        expected.len() > 100,
        "the demo needs more than one page of projects"
    );
    assert_exact(&metrics, &expected);

    // The traps, by name, so a change to the demo cannot quietly drop one.
    let commits = |p| metrics.project("gitlab_project_commits", p);
    let merged = |p| {
        metrics.value(
            "gitlab_project_merge_requests",
            &[("project", p), ("state", "merged")],
        )
    };
    let state = |p, s| {
        metrics.value(
            "gitlab_project_merge_requests",
            &[("project", p), ("state", s)],
        )
    };
    assert_eq!(commits("acme/platform/deploy"), Some(25.0));
    assert_eq!(commits("acme/empty"), Some(0.0));
    assert_eq!(
        commits("labs/guest-public"),
        Some(57.0),
        "no statistics: commits via the sequence endpoint"
    );
    assert_eq!(commits("acme/release-train"), Some(129.0));
    assert_eq!(
        commits("labs/secret"),
        None,
        "no code access: no commit series"
    );
    assert_eq!(
        merged("acme/web/frontend"),
        Some(12_345.0),
        "past 10,000: no X-Total"
    );
    assert_eq!(state("acme/web/frontend", "opened"), Some(10_000.0));
    assert_eq!(state("acme/web/frontend", "closed"), Some(10_001.0));
    assert_eq!(merged("acme/docs"), None, "merge requests disabled");
    assert_eq!(
        merged("labs/secret"),
        None,
        "merge requests forbidden to a guest"
    );
    assert_eq!(
        metrics.project("gitlab_project_open_issues", "acme/docs"),
        None,
        "issues disabled"
    );
    assert_eq!(
        metrics.project("gitlab_project_commits", "acme/legacy"),
        None,
        "archived: left out"
    );
    assert_eq!(
        metrics.project("gitlab_project_commits", "other-org/public-lib"),
        None,
        "not a member"
    );
    assert_eq!(
        metrics.value(
            "gitlab_project_info",
            &[
                ("project", "acme/release-train"),
                ("default_branch", "release/2.0")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        metrics.value(
            "gitlab_project_info",
            &[
                ("project", "demo-user/dotfiles"),
                ("namespace", "demo-user")
            ]
        ),
        Some(1.0)
    );
    let repository = gitlab
        .with_instance(|i| i.project(42).map(|p| p.storage.repository))
        .unwrap();
    assert_eq!(
        metrics.value(
            "gitlab_project_storage_bytes",
            &[("project", "acme/api"), ("storage", "repository")]
        ),
        Some(repository as f64)
    );
    gitlab.shutdown().await;
}

/// A group: its projects and its subgroups' (two levels deep), not the projects merely shared
/// into it (no double count), archived left out; statistics come from one detail call each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_scope_includes_subgroups_not_shared_projects() {
    let gitlab = demo_gitlab().await;
    let exporter = Exporter::start(&gitlab, &["--gitlab.api", "rest", "--gitlab.group", "acme"]);
    let metrics = exporter.scrape().await;
    let expected = gitlab.with_instance(|i| expected_in_group(i, "acme"));
    assert_exact(&metrics, &expected);
    assert!(
        metrics
            .project("gitlab_project_commits", "acme/platform/infra/terraform")
            .is_some()
    );
    assert_eq!(
        metrics.project("gitlab_project_stars", "other-org/public-lib"),
        None,
        "shared in, not counted"
    );
    assert_eq!(
        gitlab.requests("/groups/:id/projects"),
        expected.len().div_ceil(100) as u64
    );
    // The token user's own projects come with statistics: no detail call for them.
    let own = gitlab.with_instance(|i| expected_membership(i)).len();
    // Keyset: the walk ends on the empty page after the last one.
    assert_eq!(gitlab.requests("/projects"), own.div_ceil(100) as u64 + 1);
    assert_eq!(gitlab.requests("/projects/:id"), 0);
    gitlab.shutdown().await;
}

/// A group whose projects the token user is not a member of: their statistics can only come
/// with `GET /projects/:id` (here they are hidden: not a member), so each gets one detail call,
/// and commits come from the branch head and the sequence endpoint. The next collection knows
/// the statistics are hidden and makes no detail call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_of_non_member_projects() {
    let gitlab = demo_gitlab().await;
    let exporter = Exporter::start(
        &gitlab,
        &[
            "--gitlab.api",
            "rest",
            "--gitlab.group",
            "other-org",
            "--cache.ttl",
            "0s",
        ],
    );
    let metrics = exporter.scrape().await;
    let expected = gitlab.with_instance(|i| expected_in_group(i, "other-org"));
    assert_eq!(expected.len(), 2);
    assert_exact(&metrics, &expected);
    assert_eq!(gitlab.requests("/projects/:id"), 2);
    assert_eq!(
        gitlab.requests("/projects/:id/repository/commits/:sha/sequence"),
        2
    );
    gitlab.reset_counts();
    assert_exact(&exporter.scrape().await, &expected);
    assert_eq!(gitlab.requests("/projects/:id"), 0);
    assert_eq!(
        gitlab.requests("/projects/:id/repository/commits/:sha/sequence"),
        0
    );
    gitlab.shutdown().await;
}

/// Named projects: by path or id, archived included when named, a missing one left out without
/// failing the others; combined with a group, each project once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_projects_and_missing_ones() {
    let gitlab = demo_gitlab().await;
    let exporter = Exporter::start(
        &gitlab,
        &[
            "--gitlab.project",
            "acme/legacy",
            "--gitlab.project",
            "42",
            "--gitlab.project",
            "acme/api",
            "--gitlab.project",
            "nope/missing",
            "--gitlab.group",
            "labs",
            "--gitlab.group",
            "no-such-group",
        ],
    );
    let metrics = exporter.scrape().await;
    let expected: Vec<_> = gitlab.with_instance(|i| {
        [3, 42, 77, 21]
            .iter()
            .map(|id| expected(i, i.project(*id).unwrap()))
            .collect()
    });
    assert_exact(&metrics, &expected);
    assert_eq!(
        metrics.value(
            "gitlab_project_info",
            &[("project", "acme/legacy"), ("archived", "true")]
        ),
        Some(1.0)
    );
    let logs = exporter.logs_once("no-such-group");
    assert!(logs.contains("group not found"), "{logs}");
    gitlab.shutdown().await;
}

/// Every project the token can see: public and internal projects of other groups too, whose
/// statistics are hidden from a non-member (commits from the sequence endpoint).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_projects_scope() {
    let gitlab = demo_gitlab().await;
    let exporter = Exporter::start(
        &gitlab,
        &["--gitlab.all-projects", "--gitlab.include-archived"],
    );
    let metrics = exporter.scrape().await;
    let expected: Vec<_> =
        gitlab.with_instance(|i| i.projects.iter().map(|p| expected(i, p)).collect());
    assert_exact(&metrics, &expected);
    assert_eq!(
        metrics.project("gitlab_project_commits", "other-org/public-lib"),
        Some(512.0)
    );
    assert_eq!(
        metrics.project("gitlab_project_commits", "other-org/internal-tool"),
        Some(96.0)
    );
    assert_eq!(
        metrics.project("gitlab_project_commits", "acme/legacy"),
        Some(880.0)
    );
    gitlab.shutdown().await;
}

/// A project deleted between the listing and its own calls is left out; the others are exact
/// and gitlab_up stays 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_vanishing_mid_scrape_is_left_out() {
    let gitlab = demo_gitlab().await;
    gitlab.vanish_after_listing(42);
    let exporter = Exporter::start(&gitlab, &[]);
    let metrics = exporter.scrape().await;
    let expected = gitlab.with_instance(|i| expected_membership(i));
    assert!(expected.iter().all(|e| e.id != 42));
    assert_exact(&metrics, &expected);
    let not_found: f64 = metrics
        .series("gitlab_exporter_api_requests_total")
        .iter()
        .filter(|s| s.labels["code"] == "404")
        .map(|s| s.value)
        .sum();
    assert!(
        not_found >= 1.0,
        "the project was listed, then its calls answered 404"
    );
    assert_eq!(
        metrics.value("gitlab_exporter_collect_incomplete_projects", &[]),
        Some(0.0)
    );
    gitlab.shutdown().await;
}

/// Listings walk by id (keyset on /projects, `id_after` on groups), so an offset limit, even
/// one an administrator lowered to 100, is never reached: no 405, nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_never_meet_the_offset_limit() {
    let mut instance = Instance::demo();
    instance.offset_limit = 100;
    let gitlab = FakeGitlab::start(instance).await.unwrap();
    for (args, expected) in [
        (vec![], gitlab.with_instance(|i| expected_membership(i))),
        (
            vec!["--gitlab.group", "acme"],
            gitlab.with_instance(|i| expected_in_group(i, "acme")),
        ),
    ] {
        assert!(expected.len() > 100);
        let exporter = Exporter::start(&gitlab, &args);
        let metrics = exporter.scrape().await;
        assert_exact(&metrics, &expected);
        assert!(
            metrics
                .series("gitlab_exporter_api_requests_total")
                .iter()
                .all(|s| s.labels["code"] != "405"),
            "{args:?}"
        );
    }
    gitlab.shutdown().await;
}

/// A project deleted while its group is being walked neither hides another project (as an
/// offset walk would: the next page shifts by one) nor fails the scrape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_walk_survives_a_deletion() {
    let gitlab = demo_gitlab().await;
    let first = gitlab.with_instance(|i| expected_in_group(i, "acme")[0].id);
    gitlab.vanish_after_listing(first);
    let exporter = Exporter::start(&gitlab, &["--gitlab.group", "acme"]);
    let metrics = exporter.scrape().await;
    let expected = gitlab.with_instance(|i| expected_in_group(i, "acme"));
    assert!(expected.len() > 100 && expected.iter().all(|e| e.id != first));
    assert_exact(&metrics, &expected);
    gitlab.shutdown().await;
}

/// More than 10,000 projects: `GET /projects` is walked with keyset pagination (no totals at
/// all) to the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_past_ten_thousand_projects() {
    let gitlab = FakeGitlab::start(Instance::generated(10_050).with_merge_requests(false))
        .await
        .unwrap();
    let exporter = Exporter::start(&gitlab, &["--gitlab.api", "rest"]);
    let metrics = exporter.scrape().await;
    assert_eq!(metrics.value("gitlab_up", &[]), Some(1.0));
    assert_eq!(metrics.value("gitlab_projects", &[]), Some(10_050.0));
    assert_eq!(metrics.series("gitlab_project_commits").len(), 10_050);
    let (first, last) =
        gitlab.with_instance(|i| (i.projects[0].commits, i.projects[10_049].commits));
    assert_eq!(
        metrics.project("gitlab_project_commits", "scale/team-02/project-000001"),
        Some(first as f64)
    );
    assert_eq!(
        metrics.value("gitlab_project_commits", &[("project_id", "10050")]),
        Some(last as f64)
    );
    // 101 pages of projects, then the empty keyset page that ends the walk.
    assert_eq!(gitlab.requests("/projects"), 102);
    assert_eq!(
        gitlab.total_requests(),
        102,
        "statistics and no merge requests: the listing is all"
    );
    gitlab.shutdown().await;
}

/// A group of more than 10,000 projects: its pages carry no X-Total and no X-Total-Pages; the
/// walk follows X-Next-Page to the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_listing_past_ten_thousand_projects() {
    let gitlab = FakeGitlab::start(Instance::generated(10_050).with_merge_requests(false))
        .await
        .unwrap();
    let exporter = Exporter::start(
        &gitlab,
        &[
            "--gitlab.api",
            "rest",
            "--gitlab.group",
            "scale",
            "--gitlab.concurrency",
            "64",
        ],
    );
    let metrics = exporter.scrape().await;
    assert_eq!(metrics.value("gitlab_up", &[]), Some(1.0));
    assert_eq!(metrics.value("gitlab_projects", &[]), Some(10_050.0));
    assert_eq!(metrics.series("gitlab_project_commits").len(), 10_050);
    assert_eq!(gitlab.requests("/groups/:id/projects"), 101);
    assert_eq!(
        gitlab.requests("/projects"),
        102,
        "the user's own projects, for statistics (keyset: 101 pages and the empty one)"
    );
    assert_eq!(gitlab.requests("/projects/:id"), 0);
    gitlab.shutdown().await;
}
