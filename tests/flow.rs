//! The flow families (`pipelines`, `deployments`, `merge_request_flow`) end to end against the
//! fake GitLab: counters count what happens after the first collection, once each however the
//! windows overlap, across a failed collection, whatever GitLab's clock says, over GraphQL and
//! REST; disabled features export nothing and cost nothing; a restart starts from zero; and a
//! steady collection costs no call per project.

mod common;

use common::{Exporter, Exposition, calls_made, demo_gitlab};
use fake_gitlab::{DeploymentStatus, FakeGitlab, Faults, MergeRequestChange, PipelineStatus, Tier};

/// A project of the demo with CI/CD on, commits, and the token a Developer or more on it: its
/// id, path and default branch.
fn ci_project(gitlab: &FakeGitlab) -> (u64, String, String) {
    gitlab.with_instance(|i| {
        let p = i
            .projects
            .iter()
            .find(|p| {
                p.builds_enabled
                    && p.environments_enabled
                    && !p.archived
                    && p.commits > 0
                    && p.default_branch.is_some()
                    && p.merge_requests_enabled
                    && !p.merge_requests_private
                    && p.role.is_some_and(|r| r.access_level() >= 30)
            })
            .expect("the demo has a CI project");
        (
            p.id,
            p.path_with_namespace(i),
            p.default_branch.clone().unwrap_or_default(),
        )
    })
}

/// The flags for `api`: over REST the flow collectors run only when asked for by name.
fn flags<'a>(api: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut flags = vec!["--gitlab.api", api];
    if api == "rest" {
        flags.extend([
            "--collector.pipelines",
            "--collector.deployments",
            "--collector.merge_request_flow",
        ]);
    }
    flags.extend_from_slice(extra);
    flags
}

fn value(e: &Exposition, name: &str, project: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut all = vec![("project", project)];
    all.extend_from_slice(labels);
    e.value(name, &all)
}

/// The counter of pipelines of `project` finished with `status` (0 when absent).
fn finished(e: &Exposition, project: &str, status: &str) -> f64 {
    value(
        e,
        "gitlab_project_pipelines_finished_total",
        project,
        &[("status", status)],
    )
    .unwrap_or(f64::NAN)
}

/// Moves GitLab's clock `secs` on.
fn advance(gitlab: &FakeGitlab, secs: i64) {
    let host = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64;
    gitlab.set_clock_offset(gitlab.now() - host + secs);
}

/// Runs a pipeline on `reference` that finishes `secs` of GitLab's clock later.
fn pipeline(
    gitlab: &FakeGitlab,
    id: u64,
    reference: &str,
    status: PipelineStatus,
    secs: i64,
) -> u64 {
    let pipeline = gitlab
        .run_pipeline(id, reference, PipelineStatus::Running)
        .expect("pipeline runs");
    advance(gitlab, secs);
    assert!(gitlab.finish_pipeline(id, pipeline, status, secs));
    pipeline
}

async fn pipelines_counted_after_the_first_collection(api: &str) {
    let gitlab = demo_gitlab().await;
    let (id, path, branch) = ci_project(&gitlab);
    let exporter = Exporter::start(&gitlab, &flags(api, &["--cache.ttl", "0s"]));
    let first = exporter.scrape().await;
    // The synthesised history is not counted: the first collection counts nothing.
    for status in ["success", "failed", "canceled", "skipped"] {
        assert_eq!(finished(&first, &path, status), 0.0, "{api} {status}");
    }
    // A histogram appears with its first observation.
    assert_eq!(
        value(
            &first,
            "gitlab_project_pipeline_duration_seconds_count",
            &path,
            &[]
        ),
        None
    );
    // The latest pipeline's status is there, one series.
    let statuses = first
        .series("gitlab_project_pipeline_status")
        .into_iter()
        .filter(|s| s.labels.get("project") == Some(&path))
        .count();
    assert_eq!(statuses, 1, "{api}");

    pipeline(&gitlab, id, &branch, PipelineStatus::Success, 300);
    pipeline(&gitlab, id, &branch, PipelineStatus::Failed, 42);
    // Another ref's pipelines are not the default branch's.
    pipeline(&gitlab, id, "feature/x", PipelineStatus::Success, 900);
    let running = gitlab
        .run_pipeline(id, &branch, PipelineStatus::Running)
        .expect("runs");
    let second = exporter.scrape().await;
    assert_eq!(finished(&second, &path, "success"), 1.0, "{api}");
    assert_eq!(finished(&second, &path, "failed"), 1.0, "{api}");
    assert_eq!(
        value(
            &second,
            "gitlab_project_pipeline_duration_seconds_count",
            &path,
            &[]
        ),
        Some(2.0)
    );
    assert_eq!(
        value(
            &second,
            "gitlab_project_pipeline_duration_seconds_sum",
            &path,
            &[]
        ),
        Some(342.0)
    );
    assert_eq!(
        value(
            &second,
            "gitlab_project_pipeline_duration_seconds_bucket",
            &path,
            &[("le", "60")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &second,
            "gitlab_project_pipeline_status",
            &path,
            &[("status", "running")]
        ),
        Some(1.0),
        "{api}: the latest pipeline is running"
    );
    // The latest finished one is the failed one.
    assert_eq!(
        value(
            &second,
            "gitlab_project_pipeline_last_duration_seconds",
            &path,
            &[]
        ),
        Some(42.0)
    );

    // The next windows overlap the last: nothing counts twice.
    let third = exporter.scrape().await;
    assert_eq!(finished(&third, &path, "success"), 1.0, "{api}");
    assert_eq!(finished(&third, &path, "failed"), 1.0, "{api}");

    advance(&gitlab, 120);
    assert!(gitlab.finish_pipeline(id, running, PipelineStatus::Success, 120));
    let fourth = exporter.scrape().await;
    assert_eq!(finished(&fourth, &path, "success"), 2.0, "{api}");
    assert_eq!(
        value(
            &fourth,
            "gitlab_project_pipeline_status",
            &path,
            &[("status", "success")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &fourth,
            "gitlab_project_pipeline_last_duration_seconds",
            &path,
            &[]
        ),
        Some(120.0)
    );
    // A restart starts from zero: the first collection counts nothing historical.
    drop(exporter);
    let restarted = Exporter::start(&gitlab, &flags(api, &[]));
    let after = restarted.scrape().await;
    assert_eq!(finished(&after, &path, "success"), 0.0, "{api}");
    assert_eq!(
        value(
            &after,
            "gitlab_project_pipeline_last_duration_seconds",
            &path,
            &[]
        ),
        Some(120.0),
        "{api}: the latest finished pipeline is read from scratch"
    );
    gitlab.shutdown().await;
}

/// A project's deployment call that fails, while the collection succeeds, keeps its counters
/// and its window: the deployment made meanwhile is counted at the next collection, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_call_keeps_its_window() {
    for api in ["graphql", "rest"] {
        let gitlab = demo_gitlab().await;
        let (id, path, branch) = ci_project(&gitlab);
        gitlab.create_environment(id, "live", Tier::Production);
        let only = id.to_string();
        let exporter = Exporter::start(
            &gitlab,
            &flags(api, &["--cache.ttl", "0s", "--gitlab.project", &only]),
        );
        let live = [("environment", "live"), ("status", "success")];
        let first = exporter.scrape().await;
        assert_eq!(
            value(&first, "gitlab_project_deployments_total", &path, &live),
            Some(0.0)
        );
        let by = pipeline(&gitlab, id, &branch, PipelineStatus::Success, 30);
        gitlab
            .deploy(id, "live", DeploymentStatus::Success, &[], Some(by))
            .expect("deploys");
        advance(&gitlab, 120);
        gitlab.set_faults(Faults {
            route: Some("/projects/:id/deployments".to_owned()),
            server_error_rate: 1.0,
            ..Faults::default()
        });
        let failing = exporter.scrape().await;
        assert_eq!(failing.value("gitlab_up", &[]), Some(1.0), "{api}");
        assert_eq!(
            failing.value(
                "gitlab_exporter_collector_success",
                &[("collector", "deployments")]
            ),
            Some(0.0),
            "{api}"
        );
        // Its last values, kept.
        assert_eq!(
            value(&failing, "gitlab_project_deployments_total", &path, &live),
            Some(0.0)
        );
        gitlab.set_faults(Faults::default());
        let next = exporter.scrape().await;
        assert_eq!(
            value(&next, "gitlab_project_deployments_total", &path, &live),
            Some(1.0),
            "{api}"
        );
        let again = exporter.scrape().await;
        assert_eq!(
            value(&again, "gitlab_project_deployments_total", &path, &live),
            Some(1.0),
            "{api}"
        );
        gitlab.shutdown().await;
    }
}

/// In multi-target mode each target has its own counters: a pipeline of a project probed as
/// two targets (by id and by path) counts once in each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_target_counts_on_its_own() {
    let gitlab = demo_gitlab().await;
    let (id, path, branch) = ci_project(&gitlab);
    // The project by id and by path: two targets, two collectors.
    let group = id.to_string();
    let exporter = Exporter::start(&gitlab, &["--multi-target", "--cache.ttl", "0s"]);
    let by_path = path.replace('/', "%2F");
    for target in [&group, &by_path] {
        let response = exporter.get(&format!("/probe?target={target}"), &[]).await;
        let metrics = Exposition::parse(&response.text());
        assert_eq!(finished(&metrics, &path, "success"), 0.0, "{target}");
    }
    pipeline(&gitlab, id, &branch, PipelineStatus::Success, 30);
    for target in [&group, &by_path, &group] {
        let response = exporter.get(&format!("/probe?target={target}"), &[]).await;
        let metrics = Exposition::parse(&response.text());
        assert_eq!(finished(&metrics, &path, "success"), 1.0, "{target}");
    }
    gitlab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_over_graphql() {
    pipelines_counted_after_the_first_collection("graphql").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_over_rest() {
    pipelines_counted_after_the_first_collection("rest").await;
}

/// A collection that fails keeps the events for the next; a scrape served from the cache
/// counts nothing again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_collection_loses_nothing_and_the_cache_counts_nothing_twice() {
    let gitlab = demo_gitlab().await;
    let (id, path, branch) = ci_project(&gitlab);
    let exporter = Exporter::start(&gitlab, &["--cache.ttl", "0s"]);
    exporter.scrape().await;
    pipeline(&gitlab, id, &branch, PipelineStatus::Success, 60);
    gitlab.change_merge_request(id, MergeRequestChange::Open);
    gitlab.change_merge_request(id, MergeRequestChange::Merge);
    // Every call fails: the collection fails (gitlab_up 0).
    gitlab.set_faults(Faults {
        server_error_rate: 1.0,
        ..Faults::default()
    });
    let failed = exporter.scrape().await;
    assert_eq!(failed.value("gitlab_up", &[]), Some(0.0));
    gitlab.set_faults(Faults::default());
    let next = exporter.scrape().await;
    assert_eq!(next.value("gitlab_up", &[]), Some(1.0));
    assert_eq!(finished(&next, &path, "success"), 1.0);
    assert_eq!(
        value(
            &next,
            "gitlab_project_merge_requests_merged_total",
            &path,
            &[]
        ),
        Some(1.0)
    );
    let again = exporter.scrape().await;
    assert_eq!(finished(&again, &path, "success"), 1.0);
    gitlab.shutdown().await;

    // Cached: two scrapes within the TTL serve one collection.
    let gitlab = demo_gitlab().await;
    let (id, path, branch) = ci_project(&gitlab);
    let exporter = Exporter::start(&gitlab, &["--cache.ttl", "1h"]);
    exporter.scrape().await;
    pipeline(&gitlab, id, &branch, PipelineStatus::Success, 60);
    let cached = exporter.scrape().await;
    assert_eq!(finished(&cached, &path, "success"), 0.0);
    gitlab.shutdown().await;
}

/// GitLab's clock is what counts: an hour ahead of this host's or an hour behind, every event
/// is counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_skew_changes_nothing() {
    for offset in [3600, -3600] {
        let gitlab = demo_gitlab().await;
        gitlab.set_clock_offset(offset);
        let (id, path, branch) = ci_project(&gitlab);
        for api in ["graphql", "rest"] {
            let exporter = Exporter::start(&gitlab, &flags(api, &["--cache.ttl", "0s"]));
            exporter.scrape().await;
            pipeline(&gitlab, id, &branch, PipelineStatus::Canceled, 5);
            gitlab.change_merge_request(id, MergeRequestChange::Open);
            gitlab.change_merge_request(id, MergeRequestChange::Merge);
            let next = exporter.scrape().await;
            assert_eq!(finished(&next, &path, "canceled"), 1.0, "{offset} {api}");
            assert_eq!(
                value(
                    &next,
                    "gitlab_project_merge_requests_merged_total",
                    &path,
                    &[]
                ),
                Some(1.0),
                "{offset} {api}"
            );
            let again = exporter.scrape().await;
            assert_eq!(finished(&again, &path, "canceled"), 1.0, "{offset} {api}");
        }
        gitlab.shutdown().await;
    }
}

/// A merge request merged after the first collection is counted, with its time to merge; the
/// oldest open one's creation time follows what is open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_request_flow() {
    for api in ["graphql", "rest"] {
        let gitlab = demo_gitlab().await;
        let (id, path, _) = ci_project(&gitlab);
        let exporter = Exporter::start(&gitlab, &flags(api, &["--cache.ttl", "0s"]));
        let first = exporter.scrape().await;
        assert_eq!(
            value(
                &first,
                "gitlab_project_merge_requests_merged_total",
                &path,
                &[]
            ),
            Some(0.0),
            "{api}"
        );
        assert!(gitlab.change_merge_request(id, MergeRequestChange::Open));
        assert!(gitlab.change_merge_request(id, MergeRequestChange::Merge));
        assert!(gitlab.change_merge_request(id, MergeRequestChange::Open));
        assert!(gitlab.change_merge_request(id, MergeRequestChange::Merge));
        let second = exporter.scrape().await;
        assert_eq!(
            value(
                &second,
                "gitlab_project_merge_requests_merged_total",
                &path,
                &[]
            ),
            Some(2.0),
            "{api}"
        );
        assert_eq!(
            value(
                &second,
                "gitlab_project_merge_request_time_to_merge_seconds_count",
                &path,
                &[]
            ),
            Some(2.0),
            "{api}"
        );
        let third = exporter.scrape().await;
        assert_eq!(
            value(
                &third,
                "gitlab_project_merge_requests_merged_total",
                &path,
                &[]
            ),
            Some(2.0),
            "{api}"
        );
        gitlab.shutdown().await;
    }
}

/// A deployment by a pipeline's job to a production environment is counted with the lead time
/// of the merge requests it shipped; one to staging is not exported by default, and is with
/// `--collector.deployments.environments`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_and_lead_time() {
    for api in ["graphql", "rest"] {
        let gitlab = demo_gitlab().await;
        let (id, path, branch) = ci_project(&gitlab);
        gitlab.create_environment(id, "live", Tier::Production);
        gitlab.create_environment(id, "stage", Tier::Staging);
        let exporter = Exporter::start(&gitlab, &flags(api, &["--cache.ttl", "0s"]));
        let first = exporter.scrape().await;
        assert_eq!(
            value(
                &first,
                "gitlab_project_deployments_total",
                &path,
                &[("environment", "live"), ("status", "success")]
            ),
            Some(0.0),
            "{api}"
        );
        assert!(gitlab.change_merge_request(id, MergeRequestChange::Open));
        assert!(gitlab.change_merge_request(id, MergeRequestChange::Merge));
        let pipeline = gitlab
            .run_pipeline(id, &branch, PipelineStatus::Running)
            .expect("runs");
        // The merge request just merged: the newest iid.
        let iid = gitlab.with_instance(|i| newest_merged_iid(i, id));
        let deployment = gitlab
            .deploy(
                id,
                "live",
                DeploymentStatus::Running,
                &[iid],
                Some(pipeline),
            )
            .expect("deploys");
        gitlab
            .deploy(
                id,
                "stage",
                DeploymentStatus::Success,
                &[iid],
                Some(pipeline),
            )
            .expect("deploys");
        // GitLab's clock moves on ten minutes: the deployment has settled.
        gitlab.set_clock_offset(300);
        assert!(gitlab.finish_deployment(id, deployment, DeploymentStatus::Success));
        assert!(gitlab.finish_pipeline(id, pipeline, PipelineStatus::Success, 60));
        gitlab.set_clock_offset(600);
        let second = exporter.scrape().await;
        assert_eq!(
            value(
                &second,
                "gitlab_project_deployments_total",
                &path,
                &[("environment", "live"), ("status", "success")]
            ),
            Some(1.0),
            "{api}"
        );
        assert_eq!(
            value(
                &second,
                "gitlab_project_lead_time_for_changes_seconds_count",
                &path,
                &[("environment", "live")]
            ),
            Some(1.0),
            "{api}"
        );
        let lead = value(
            &second,
            "gitlab_project_lead_time_for_changes_seconds_sum",
            &path,
            &[("environment", "live")],
        )
        .expect("lead time");
        assert!((300.0..=310.0).contains(&lead), "{api}: lead time {lead}");
        assert!(
            value(
                &second,
                "gitlab_project_deployment_last_success_timestamp_seconds",
                &path,
                &[("environment", "live")]
            )
            .is_some()
        );
        assert_eq!(
            value(
                &second,
                "gitlab_project_deployments_total",
                &path,
                &[("environment", "stage"), ("status", "success")]
            ),
            None,
            "{api}: staging is not chosen"
        );
        let third = exporter.scrape().await;
        assert_eq!(
            value(
                &third,
                "gitlab_project_deployments_total",
                &path,
                &[("environment", "live"), ("status", "success")]
            ),
            Some(1.0),
            "{api}"
        );
        drop(exporter);
        // A restart counts from zero; staging chosen by tier.
        let restarted = Exporter::start(
            &gitlab,
            &flags(
                api,
                &[
                    "--collector.deployments.environments",
                    "tier:production,name:stage",
                ],
            ),
        );
        let after = restarted.scrape().await;
        assert_eq!(
            value(
                &after,
                "gitlab_project_deployments_total",
                &path,
                &[("environment", "live"), ("status", "success")]
            ),
            Some(0.0),
            "{api}"
        );
        assert_eq!(
            value(
                &after,
                "gitlab_project_deployments_total",
                &path,
                &[("environment", "stage"), ("status", "success")]
            ),
            Some(0.0),
            "{api}"
        );
        assert!(
            value(
                &after,
                "gitlab_project_deployment_last_success_timestamp_seconds",
                &path,
                &[("environment", "stage")]
            )
            .is_some(),
            "{api}: the last success is read from scratch"
        );
        gitlab.shutdown().await;
    }
}

/// The iid of the newest merged merge request of a project.
fn newest_merged_iid(instance: &fake_gitlab::Instance, id: u64) -> u64 {
    let p = instance.project(id).expect("project");
    let counts = &p.merge_requests;
    counts.merged + counts.closed + counts.locked + counts.opened
}

/// CI/CD or environments off: nothing exported for the family, and no call for it once the
/// listing says so (CI/CD) or GitLab once refused (environments).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_features_export_nothing_and_cost_nothing() {
    for api in ["graphql", "rest"] {
        let gitlab = demo_gitlab().await;
        let (id, path, _) = ci_project(&gitlab);
        assert!(gitlab.set_builds_enabled(id, false));
        let only = id.to_string();
        let args = ["--cache.ttl", "0s", "--gitlab.project", &only];
        let exporter = Exporter::start(&gitlab, &flags(api, &args));
        let metrics = exporter.scrape().await;
        assert_eq!(metrics.value("gitlab_up", &[]), Some(1.0));
        for name in [
            "gitlab_project_pipeline_status",
            "gitlab_project_pipelines_finished_total",
            "gitlab_project_deployments_total",
        ] {
            assert!(
                metrics
                    .series(name)
                    .iter()
                    .all(|s| s.labels.get("project") != Some(&path)),
                "{api}: {name}"
            );
        }
        // The merge-request flow is not CI's.
        assert!(
            value(
                &metrics,
                "gitlab_project_merge_requests_merged_total",
                &path,
                &[]
            )
            .is_some()
        );
        let calls = calls_made(&gitlab);
        for route in [
            "/projects/:id/pipelines",
            "/projects/:id/pipelines/:pipeline_id",
            "/projects/:id/deployments",
            "/projects/:id/environments",
        ] {
            assert_eq!(calls.get(route), None, "{api}: {route}");
        }
        gitlab.shutdown().await;

        // Environments off: GitLab refuses once, and is not asked again.
        let gitlab = demo_gitlab().await;
        let (id, path, branch) = ci_project(&gitlab);
        assert!(gitlab.set_environments_enabled(id, false));
        let only = id.to_string();
        let args = ["--cache.ttl", "0s", "--gitlab.project", &only];
        let exporter = Exporter::start(&gitlab, &flags(api, &args));
        let metrics = exporter.scrape().await;
        assert!(
            metrics
                .series("gitlab_project_deployments_total")
                .iter()
                .all(|s| s.labels.get("project") != Some(&path)),
            "{api}"
        );
        assert!(
            value(
                &metrics,
                "gitlab_project_pipelines_finished_total",
                &path,
                &[("status", "success")]
            )
            .is_some()
        );
        pipeline(&gitlab, id, &branch, PipelineStatus::Success, 30);
        gitlab.reset_counts();
        exporter.scrape().await;
        let calls = calls_made(&gitlab);
        for route in ["/projects/:id/deployments", "/projects/:id/environments"] {
            assert_eq!(calls.get(route), None, "{api}: {route}");
        }
        gitlab.shutdown().await;
    }
}

/// Nothing changed: a steady collection over GraphQL costs the listing's pages and one batched
/// query per page for the three families together; no call per project (the merge-request
/// change queries are the `merge_requests` family's, by group).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_collection_costs_no_call_per_project() {
    let gitlab = demo_gitlab().await;
    let exporter = Exporter::start(&gitlab, &["--cache.ttl", "0s"]);
    exporter.scrape().await;
    exporter.scrape().await;
    gitlab.reset_counts();
    let metrics = exporter.scrape().await;
    assert_eq!(metrics.value("gitlab_up", &[]), Some(1.0));
    let queries = gitlab.graphql_queries();
    let pages = queries
        .iter()
        .filter(|q| q.contains("membership: true"))
        .count();
    let batches = queries
        .iter()
        .filter(|q| q.contains("projects(ids:"))
        .count();
    assert!(pages >= 1);
    assert_eq!(batches, pages, "one batch per page: {queries:#?}");
    assert_eq!(queries.len(), pages + batches, "{queries:#?}");
    let calls = calls_made(&gitlab);
    let per_project: Vec<_> = calls
        .keys()
        .filter(|route| {
            route.starts_with("/projects/:id/") && *route != "/projects/:id/merge_requests"
        })
        .collect();
    assert!(per_project.is_empty(), "{calls:?}");
    gitlab.shutdown().await;
}

/// Over REST, where they would cost calls per project at every collection, the flow
/// collectors run only when asked for by name; asked for, they count as over GraphQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_rest_the_flow_collectors_run_only_when_asked_for() {
    let gitlab = demo_gitlab().await;
    let exporter = Exporter::start(&gitlab, &["--gitlab.api", "rest"]);
    let text = exporter.get("/metrics", &[]).await.text();
    for name in [
        "gitlab_project_pipeline_status",
        "gitlab_project_deployments_total",
        "gitlab_project_merge_requests_merged_total",
    ] {
        assert!(
            !text.contains(name),
            "{name} is exported over REST by default"
        );
    }
    let calls = calls_made(&gitlab);
    for route in ["/projects/:id/pipelines", "/projects/:id/deployments"] {
        assert_eq!(calls.get(route), None, "{route}");
    }
    let reported: Vec<String> = Exposition::parse(&text)
        .series("gitlab_exporter_collector_success")
        .iter()
        .map(|s| s.labels["collector"].clone())
        .collect();
    assert_eq!(
        reported,
        ["projects", "storage", "commits", "merge_requests"]
    );
    drop(exporter);
    let exporter = Exporter::start(&gitlab, &["--gitlab.api", "rest", "--collector.pipelines"]);
    let metrics = exporter.scrape().await;
    assert!(!metrics.series("gitlab_project_pipeline_status").is_empty());
    assert!(
        metrics
            .series("gitlab_project_deployments_total")
            .is_empty()
    );
    gitlab.shutdown().await;
}

/// The deployments' signal covers the time since the last collection, not since the project's
/// deployment feed was last read: a pipeline an hour ago costs one deployment feed call, once,
/// even though the other projects of its batch have not read their feeds for hours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_costs_one_deployment_call_once() {
    let gitlab = demo_gitlab().await;
    let (id, _, branch) = ci_project(&gitlab);
    let exporter = Exporter::start(&gitlab, &["--cache.ttl", "0s"]);
    exporter.scrape().await;
    exporter.scrape().await;
    advance(&gitlab, 3600);
    pipeline(&gitlab, id, &branch, PipelineStatus::Success, 30);
    advance(&gitlab, 600);
    gitlab.reset_counts();
    exporter.scrape().await;
    assert_eq!(
        gitlab.requests("/projects/:id/deployments"),
        1,
        "{:?}",
        calls_made(&gitlab)
    );
    advance(&gitlab, 3600);
    gitlab.reset_counts();
    exporter.scrape().await;
    assert_eq!(
        gitlab.requests("/projects/:id/deployments"),
        0,
        "{:?}",
        calls_made(&gitlab)
    );
    gitlab.shutdown().await;
}
