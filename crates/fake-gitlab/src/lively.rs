//! The lively demo: one deterministic step of background activity ([`Instance::lively_step`])
//! and the task that runs it every few seconds ([`FakeGitlab::start_lively`]), through the same
//! change API as the test hooks: pipelines started and finished on default branches (mostly
//! `success`), merge requests opened and merged, deployments to staging and production that
//! ship the merge requests merged since the previous one.

use std::sync::Arc;
use std::time::Duration;

use super::ci::{DeploymentStatus, PipelineStatus};
use super::common::splitmix64;
use super::history::{MergeRequestChange, MrFilter, MrOrder, MrState};
use super::instance::Instance;
use super::{FakeGitlab, stopped};

impl Instance {
    /// The projects the lively demo works on: member projects, not archived, with CI/CD and
    /// environments on and an environment history (in the demo: `acme/api`,
    /// `acme/platform/deploy`, `acme/web/frontend`, `acme/release-train` and some services).
    fn lively_projects(&self) -> Vec<u64> {
        self.projects
            .iter()
            .filter(|p| {
                p.role.is_some()
                    && !p.archived
                    && p.builds_enabled
                    && p.environments_enabled
                    && p.environment_history
                    && !p.is_empty_repo()
            })
            .map(|p| p.id)
            .collect()
    }

    /// The merged merge requests of a project merged after `since`, oldest first.
    fn merged_since(&self, project_id: u64, since: i64) -> Vec<u64> {
        let Some(p) = self.project(project_id) else {
            return Vec::new();
        };
        let filter = MrFilter {
            state: Some(MrState::Merged),
            merged_after: Some(since + 1),
            ..MrFilter::default()
        };
        p.merge_request_view()
            .sorted(&filter, MrOrder::Merged, false)
            .map(|(_, iid)| iid)
            .take(50)
            .collect()
    }

    /// Deploys the newest successful default-branch pipeline of a project to `environment`,
    /// shipping what was merged since that environment's last deployment.
    fn lively_deploy(&mut self, project_id: u64, environment: &str, now: i64) {
        let Some(p) = self.project(project_id) else {
            return;
        };
        let ci = p.ci();
        let branch = p.default_branch.clone().unwrap_or_default();
        let Some(pipeline) = ci
            .pipelines
            .iter()
            .rev()
            .find(|pl| pl.reference == branch && pl.status == PipelineStatus::Success)
            .map(|pl| pl.id)
        else {
            return;
        };
        let since = ci
            .environment_named(environment)
            .and_then(|e| ci.deployments.iter().rev().find(|d| d.environment == e.id))
            .map_or(now - 86_400, |d| d.created_at);
        drop(ci);
        let shipped = self.merged_since(project_id, since);
        self.deploy(
            project_id,
            environment,
            DeploymentStatus::Success,
            &shipped,
            Some(pipeline),
            now,
        );
    }

    /// One step of the lively demo at `now` (step number `tick`, from 1): on one project, the
    /// running pipeline finishes (85% success) or a push starts one; on another, a merge
    /// request is opened or the newest opened one merged; every other step a deployment to
    /// staging, every fourth to production.
    pub(crate) fn lively_step(&mut self, tick: u64, now: i64) {
        let projects = self.lively_projects();
        if projects.is_empty() {
            return;
        }
        let h = splitmix64(tick ^ 0x11FE);
        let pick = |salt: u64| projects[(splitmix64(h ^ salt) % projects.len() as u64) as usize];

        // Pipelines: finish a running one, or push and start one.
        let a = pick(1);
        let running = self.project(a).and_then(|p| {
            p.ci()
                .pipelines
                .iter()
                .rev()
                .find(|pl| pl.status == PipelineStatus::Running)
                .map(|pl| (pl.id, pl.started_at.unwrap_or(now)))
        });
        match running {
            Some((id, started)) => {
                let status = if h % 100 < 85 {
                    PipelineStatus::Success
                } else {
                    PipelineStatus::Failed
                };
                self.finish_pipeline(a, id, status, (now - started).max(1), now);
            }
            None => {
                let branch = self
                    .project(a)
                    .and_then(|p| p.default_branch.clone())
                    .unwrap_or_else(|| "main".into());
                self.push(a, 1 + h % 3, now);
                self.run_pipeline(a, &branch, PipelineStatus::Running, now);
            }
        }

        // Merge requests: open one, or merge the newest opened one.
        let b = pick(2);
        let change = if (h >> 8) % 3 == 0 {
            MergeRequestChange::Open
        } else {
            MergeRequestChange::Merge
        };
        if !self.change_merge_request(b, change, now) {
            self.change_merge_request(b, MergeRequestChange::Open, now);
        }

        // Deployments.
        if tick % 2 == 0 {
            self.lively_deploy(pick(3), "staging", now);
        }
        if tick % 4 == 0 {
            self.lively_deploy(pick(4), "production", now);
        }
    }
}

impl FakeGitlab {
    /// Makes the demo lively: from now on, every `every` (5 to 10 seconds suits a dashboard)
    /// a background task takes one step of activity on the fake's clock, through the same
    /// change API as the test hooks: pipelines start and finish on default branches (mostly
    /// `success`, some `failed`), merge requests are opened and merged, and staging (every
    /// other step) and production (every fourth) get deployments shipping the merge requests
    /// merged since their last one. Off unless called; stops with the server. Works without
    /// the `faults` feature (the exporter's `--demo`). Call it once.
    pub fn start_lively(&self, every: Duration) {
        let shared = Arc::clone(&self.shared);
        let mut stop = self.stop.subscribe();
        let every = every.max(Duration::from_millis(10));
        tokio::spawn(async move {
            let mut tick = 0u64;
            loop {
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    () = stopped(&mut stop) => break,
                }
                tick += 1;
                let now = shared.now();
                shared.live().instance.lively_step(tick, now);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_make_pipelines_merges_and_deployments() {
        let mut d = Instance::demo();
        let before: usize = d.projects.iter().map(|p| p.ci().deployments.len()).sum();
        let merged_before: u64 = d.projects.iter().map(|p| p.merge_requests.merged).sum();
        let start = crate::HISTORY_HORIZON + 1_000;
        for tick in 1..=40 {
            d.lively_step(tick, start + tick as i64 * 7);
        }
        let after: usize = d.projects.iter().map(|p| p.ci().deployments.len()).sum();
        assert!(after >= before + 20, "{before} -> {after}");
        let merged_after: u64 = d.projects.iter().map(|p| p.merge_requests.merged).sum();
        assert!(merged_after > merged_before);
        let live: Vec<_> = d
            .projects
            .iter()
            .flat_map(|p| p.ci().pipelines.clone())
            .filter(|pl| pl.id > crate::ci::LIVE_ID_BASE)
            .collect();
        assert!(live.iter().any(|pl| pl.status == PipelineStatus::Success));
        assert!(live.iter().all(|pl| pl.created_at > crate::HISTORY_HORIZON));
        let shipped = d
            .projects
            .iter()
            .flat_map(|p| p.ci().deployments.clone())
            .filter(|dep| dep.created_at > start)
            .any(|dep| !dep.merge_requests.is_empty());
        assert!(shipped, "new deployments ship the merged merge requests");
    }

    #[tokio::test]
    async fn the_task_runs_until_shutdown() {
        let fake = FakeGitlab::start(Instance::demo()).await.expect("start");
        let count = |f: &FakeGitlab| {
            f.shared
                .live()
                .instance
                .projects
                .iter()
                .map(|p| p.ci().pipelines.len())
                .sum::<usize>()
        };
        let before = count(&fake);
        fake.start_lively(Duration::from_millis(20));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(count(&fake) > before);
        fake.shutdown().await;
    }
}
