//! Exact values through GitLab's less common answers, each as GitLab's source has it: keyset
//! walks that end on an empty page, roles inherited from a group (`permissions.group_access`),
//! merge requests open to members only (`merge_requests_access_level: private`), an empty
//! repository whose `default_branch` is `null`, and times in a self-managed instance's zone with
//! real milliseconds.

mod common;

use common::{Exporter, Exposition, assert_exact, expected, expected_membership};
use fake_gitlab::{
    FakeGitlab, FakeProject, Instance, MergeRequestChange, MergeRequestCounts, Namespace, Role,
    Timestamps, Visibility,
};

/// An instance of the given projects, user `u`, no group.
fn instance(projects: Vec<FakeProject>) -> Instance {
    let mut instance = Instance::new("u", "glpat-realism-000000000000");
    instance.projects = projects;
    instance
}

/// A project of the user's namespace with some merge requests in every state.
fn project(id: u64, path: &str) -> FakeProject {
    let mut p = FakeProject::new(id, path, Namespace::User);
    p.merge_requests = MergeRequestCounts {
        opened: 3,
        merged: 17,
        closed: 4,
        locked: 1,
    };
    p
}

/// `gitlab_project_merge_requests` of a project in a state.
fn merge_requests(metrics: &Exposition, project: &str, state: &str) -> Option<f64> {
    metrics.value(
        "gitlab_project_merge_requests",
        &[("project", project), ("state", state)],
    )
}

/// Keyset pages each carry `Link: rel="next"`, the last full-or-short one included; the walk ends
/// on the empty page after it. 250 projects: three pages, then the empty one, every project there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyset_walk_ends_on_the_empty_page() {
    for (projects, calls) in [(250, 4), (200, 3)] {
        let gitlab = FakeGitlab::start(Instance::generated(projects).with_merge_requests(false))
            .await
            .unwrap();
        let exporter = Exporter::start(&gitlab, &["--gitlab.api", "rest"]);
        let metrics = exporter.scrape().await;
        assert_exact(&metrics, &gitlab.with_instance(|i| expected_membership(i)));
        assert_eq!(
            gitlab.requests("/projects"),
            calls,
            "{projects} projects: full and short pages, then the empty one"
        );
        assert_eq!(gitlab.total_requests(), calls, "statistics: nothing else");
        gitlab.shutdown().await;
    }
}

/// Roles that come from a group membership: GitLab lists them under `group_access` with
/// `project_access: null`. An inherited Guest on a private project costs one merge-request
/// call (answered 403), as a direct Guest does; an inherited Reporter gets statistics; a
/// promotion in the group shows at the next collection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_inherited_from_a_group() {
    let mut instance = instance(Vec::new());
    instance.groups.push(fake_gitlab::FakeGroup {
        id: 10,
        full_path: "team".into(),
        name: "Team".into(),
        parent_id: None,
    });
    let mut guest = project(1, "guest");
    let mut reporter = project(2, "reporter");
    let mut maintainer = project(3, "maintainer");
    for (p, role) in [
        (&mut guest, Role::Guest),
        (&mut reporter, Role::Reporter),
        (&mut maintainer, Role::Maintainer),
    ] {
        p.namespace = Namespace::Group(10);
        p.role = Some(role);
        p.role_inherited = true;
    }
    instance.projects = vec![guest, reporter, maintainer];
    let gitlab = FakeGitlab::start(instance).await.unwrap();
    let listed: serde_json::Value = serde_json::from_str(
        &common::http_get_fake(
            &gitlab,
            "/api/v4/projects?membership=true&order_by=id&sort=asc",
        )
        .await,
    )
    .unwrap();
    assert_eq!(
        listed[0]["permissions"],
        serde_json::json!({"project_access": null, "group_access": {"access_level": 10, "notification_level": 3}})
    );
    let exporter = Exporter::start(&gitlab, &["--gitlab.api", "rest", "--cache.ttl", "0s"]);
    let metrics = exporter.scrape().await;
    assert_exact(&metrics, &gitlab.with_instance(|i| expected_membership(i)));
    assert_eq!(
        metrics.project("gitlab_project_commits", "team/guest"),
        None
    );
    assert_eq!(
        metrics.project("gitlab_project_commits", "team/reporter"),
        Some(10.0)
    );
    assert_eq!(
        gitlab.requests("/projects/:id/merge_requests"),
        1 + 4 + 4,
        "the guest's first state is refused, the others are not asked"
    );
    // Promoted in the group: the access the exporter remembers changes, so the counts it had
    // found unreadable are read now.
    gitlab.with_instance(|i| i.project_mut(1).unwrap().role = Some(Role::Reporter));
    let metrics = exporter.scrape().await;
    assert_exact(&metrics, &gitlab.with_instance(|i| expected_membership(i)));
    assert_eq!(merge_requests(&metrics, "team/guest", "merged"), Some(17.0));
    gitlab.shutdown().await;
}

/// `merge_requests_access_level: private`: members from the Reporter role read merge requests,
/// a Guest or a non-member does not (GitLab then says `merge_requests_enabled: false` to them,
/// so no call is spent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_requests_for_members_only() {
    let mut developer = project(1, "developer");
    let mut guest = project(2, "guest");
    let mut outsider = project(3, "outsider");
    guest.role = Some(Role::Guest);
    guest.visibility = Visibility::Public;
    outsider.role = None;
    outsider.visibility = Visibility::Public;
    for p in [&mut developer, &mut guest, &mut outsider] {
        p.merge_requests_private = true;
    }
    let gitlab = FakeGitlab::start(instance(vec![developer, guest, outsider]))
        .await
        .unwrap();
    let exporter = Exporter::start(&gitlab, &["--gitlab.api", "rest", "--gitlab.all-projects"]);
    let metrics = exporter.scrape().await;
    let expected: Vec<_> =
        gitlab.with_instance(|i| i.projects.iter().map(|p| expected(i, p)).collect());
    assert_exact(&metrics, &expected);
    let merged = |p| merge_requests(&metrics, p, "merged");
    assert_eq!(merged("u/developer"), Some(17.0));
    assert_eq!(merged("u/guest"), None);
    assert_eq!(merged("u/outsider"), None);
    assert_eq!(gitlab.requests("/projects/:id/merge_requests"), 4);
    gitlab.shutdown().await;
}

/// An empty repository that older GitLab describes with `default_branch: null` (newer GitLab
/// says `main`): 0 commits, an empty `default_branch` label, and no call about its branch, for
/// a member (statistics) and a non-member (no statistics) alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_repository_without_a_default_branch() {
    let mut member = project(1, "member");
    let mut public = project(2, "public");
    public.role = None;
    public.visibility = Visibility::Public;
    for p in [&mut member, &mut public] {
        p.commits = 0;
        p.default_branch = None;
        p.null_default_branch = true;
    }
    let gitlab = FakeGitlab::start(instance(vec![member, public]))
        .await
        .unwrap();
    let answer: serde_json::Value =
        serde_json::from_str(&common::http_get_fake(&gitlab, "/api/v4/projects/2").await).unwrap();
    assert!(answer["default_branch"].is_null(), "{answer}");
    assert_eq!(answer["empty_repo"], true);
    let exporter = Exporter::start(&gitlab, &["--gitlab.all-projects"]);
    let metrics = exporter.scrape().await;
    let expected: Vec<_> =
        gitlab.with_instance(|i| i.projects.iter().map(|p| expected(i, p)).collect());
    assert_exact(&metrics, &expected);
    for p in ["u/member", "u/public"] {
        assert_eq!(
            metrics.project("gitlab_project_commits", p),
            Some(0.0),
            "{p}"
        );
        assert_eq!(
            metrics.value(
                "gitlab_project_info",
                &[("project", p), ("default_branch", "")]
            ),
            Some(1.0),
            "{p}"
        );
    }
    assert_eq!(
        gitlab.requests("/projects/:id/repository/branches/:branch"),
        0
    );
    assert_eq!(
        gitlab.requests("/projects/:id/repository/commits/:sha/sequence"),
        0
    );
    gitlab.shutdown().await;
}

/// A self-managed instance in New York (`-05:00`) and one in India (`+05:30`), both writing
/// real milliseconds: every `gitlab_project_last_activity_timestamp_seconds` is the exact
/// instant, milliseconds included (over REST; GraphQL writes whole seconds), and merge requests changed in such an instance show at the
/// next collection (the change windows read GitLab's times right).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_managed_times_with_zone_and_milliseconds() {
    for offset in [-300, 330] {
        let mut instance = Instance::demo();
        instance.timestamps = Timestamps::self_managed(offset);
        let gitlab = FakeGitlab::start(instance).await.unwrap();
        let sample: serde_json::Value =
            serde_json::from_str(&common::http_get_fake(&gitlab, "/api/v4/projects/42").await)
                .unwrap();
        let written = sample["last_activity_at"].as_str().unwrap().to_owned();
        let zone = if offset < 0 { "-05:00" } else { "+05:30" };
        assert!(written.ends_with(zone), "{written}");

        let exporter = Exporter::start(&gitlab, &["--gitlab.api", "rest", "--cache.ttl", "0s"]);
        let metrics = exporter.scrape().await;
        assert_exact(&metrics, &gitlab.with_instance(|i| expected_membership(i)));
        let activity: Vec<(String, i64, u16)> = gitlab.with_instance(|i| {
            i.projects
                .iter()
                .filter(|p| p.role.is_some() && !p.archived)
                .map(|p| {
                    let secs = p.last_activity_at;
                    (p.path_with_namespace(i), secs, i.timestamps.millis(secs))
                })
                .collect()
        });
        assert!(activity.iter().filter(|(_, _, ms)| *ms != 0).count() > 100);
        for (path, secs, ms) in &activity {
            let exact: f64 = format!("{secs}.{ms:03}").parse().unwrap();
            assert_eq!(
                metrics.project("gitlab_project_last_activity_timestamp_seconds", path),
                Some(exact),
                "{path}"
            );
        }
        // GraphQL's `Time` is written to the second (GitLab's `iso8601`): over GraphQL, the
        // same instants without their milliseconds, the one value REST says more precisely.
        let graphql = Exporter::start(&gitlab, &[]).scrape().await;
        for (path, secs, _) in &activity {
            assert_eq!(
                graphql.project("gitlab_project_last_activity_timestamp_seconds", path),
                Some(*secs as f64),
                "{path} over GraphQL"
            );
        }

        assert!(gitlab.change_merge_request(42, MergeRequestChange::Merge));
        assert!(gitlab.change_merge_request(2, MergeRequestChange::Open));
        let metrics = exporter.scrape().await;
        assert_exact(&metrics, &gitlab.with_instance(|i| expected_membership(i)));
        assert_eq!(merge_requests(&metrics, "acme/api", "merged"), Some(313.0));
        gitlab.shutdown().await;
    }
}
