//! The CI/CD model: a project's pipelines, environments and deployments (a deterministic
//! synthesised history before `DEMO_NOW`, frozen at the first change, and what the change API
//! adds on top), the merge requests each deployment shipped, and the mutations the test hooks and
//! the lively demo share ([`Instance::run_pipeline`], [`Instance::finish_pipeline`],
//! [`Instance::create_environment`], [`Instance::deploy`], [`Instance::finish_deployment`]).
//!
//! # Synthesised history
//!
//! A project with `pipeline_history` and CI/CD enabled and a non-empty repository gets 4 to 12
//! pipelines spread over the 30 days before the end of its merge request baseline (at the latest
//! [`HISTORY_HORIZON`](crate::HISTORY_HORIZON)), every one finished before it: mostly pushes to the
//! default branch, some merge request pipelines (`refs/merge-requests/N/head`), feature branches,
//! schedules and web runs, mostly `success`, some `failed`, `canceled`, `skipped`, `manual`.
//! Pipeline ids are `project_id * 1000 + iid`; those made by the change API count from
//! 1,000,000,000 across the instance, so ids are unique and newer pipelines have larger ids.
//!
//! With `environment_history`, the project also has `production` and `staging`: every finished
//! default-branch pipeline deployed to staging (status as the pipeline's), every other successful
//! one to production too, through a job of that pipeline. A successful deployment shipped the
//! merge requests merged since the previous successful deployment to the same environment (the
//! first one: the last three merged before it).
//!
//! Nothing is stored for a project until its first CI change: the history is synthesised on each
//! read (a few dozen records), so a 100,000-project instance costs nothing more.

use std::borrow::Cow;

use super::common::splitmix64;
use super::history::HISTORY_HORIZON;
use super::instance::{FakeProject, Instance};

/// Ids of pipelines, environments, deployments and jobs made by the change API start here
/// (synthesised ones are below: `project_id * 1000 + n`).
pub(crate) const LIVE_ID_BASE: u64 = 1_000_000_000;
/// Length of the synthesised pipeline history.
const HISTORY_SPAN: i64 = 30 * 86_400;
/// The synthesised pipelines all finish this long before the end of the baseline.
const HISTORY_MARGIN: i64 = 2 * 3_600;

/// A pipeline's status, GitLab's `Ci::HasStatus::AVAILABLE_STATUSES`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PipelineStatus {
    /// `created`.
    Created,
    /// `waiting_for_resource`.
    WaitingForResource,
    /// `preparing`.
    Preparing,
    /// `pending`: waiting for a runner.
    Pending,
    /// `running`.
    Running,
    /// `success`.
    Success,
    /// `failed`.
    Failed,
    /// `canceled`.
    Canceled,
    /// `skipped`.
    Skipped,
    /// `manual`: blocked on a manual job.
    Manual,
    /// `scheduled`: waiting for a delayed job.
    Scheduled,
}

impl PipelineStatus {
    pub(crate) const ALL: [PipelineStatus; 11] = [
        PipelineStatus::Created,
        PipelineStatus::WaitingForResource,
        PipelineStatus::Preparing,
        PipelineStatus::Pending,
        PipelineStatus::Running,
        PipelineStatus::Success,
        PipelineStatus::Failed,
        PipelineStatus::Canceled,
        PipelineStatus::Skipped,
        PipelineStatus::Manual,
        PipelineStatus::Scheduled,
    ];

    /// The API spelling (`waiting_for_resource`).
    pub fn as_str(self) -> &'static str {
        match self {
            PipelineStatus::Created => "created",
            PipelineStatus::WaitingForResource => "waiting_for_resource",
            PipelineStatus::Preparing => "preparing",
            PipelineStatus::Pending => "pending",
            PipelineStatus::Running => "running",
            PipelineStatus::Success => "success",
            PipelineStatus::Failed => "failed",
            PipelineStatus::Canceled => "canceled",
            PipelineStatus::Skipped => "skipped",
            PipelineStatus::Manual => "manual",
            PipelineStatus::Scheduled => "scheduled",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<PipelineStatus> {
        PipelineStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// GitLab's `finished` scope (`Ci::HasStatus`: `with_status(:success, :failed,
    /// :canceled)`): not `skipped`, though skipped is a completed status.
    pub(crate) fn in_finished_scope(self) -> bool {
        matches!(
            self,
            PipelineStatus::Success | PipelineStatus::Failed | PipelineStatus::Canceled
        )
    }

    /// `Ci::HasStatus::COMPLETED_STATUSES`: the statuses a pipeline finishes with.
    pub fn is_completed(self) -> bool {
        matches!(
            self,
            PipelineStatus::Success
                | PipelineStatus::Failed
                | PipelineStatus::Canceled
                | PipelineStatus::Skipped
        )
    }
}

/// A deployment's status (`Deployment.statuses`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeploymentStatus {
    /// `created`.
    Created,
    /// `running`.
    Running,
    /// `success`.
    Success,
    /// `failed`.
    Failed,
    /// `canceled`.
    Canceled,
    /// `skipped`.
    Skipped,
    /// `blocked`: waiting for an approval.
    Blocked,
}

impl DeploymentStatus {
    pub(crate) const ALL: [DeploymentStatus; 7] = [
        DeploymentStatus::Created,
        DeploymentStatus::Running,
        DeploymentStatus::Success,
        DeploymentStatus::Failed,
        DeploymentStatus::Canceled,
        DeploymentStatus::Skipped,
        DeploymentStatus::Blocked,
    ];

    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentStatus::Created => "created",
            DeploymentStatus::Running => "running",
            DeploymentStatus::Success => "success",
            DeploymentStatus::Failed => "failed",
            DeploymentStatus::Canceled => "canceled",
            DeploymentStatus::Skipped => "skipped",
            DeploymentStatus::Blocked => "blocked",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<DeploymentStatus> {
        DeploymentStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
    }

    /// `Deployment::FINISHED_STATUSES`: success, failed, canceled.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            DeploymentStatus::Success | DeploymentStatus::Failed | DeploymentStatus::Canceled
        )
    }

    /// `Deployment::UPCOMING_STATUSES`: created, blocked, running.
    pub(crate) fn is_upcoming(self) -> bool {
        matches!(
            self,
            DeploymentStatus::Created | DeploymentStatus::Blocked | DeploymentStatus::Running
        )
    }
}

/// An environment's deployment tier (`Environment.tiers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tier {
    /// `production`.
    Production,
    /// `staging`.
    Staging,
    /// `testing`.
    Testing,
    /// `development`.
    Development,
    /// `other`.
    Other,
}

impl Tier {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Production => "production",
            Tier::Staging => "staging",
            Tier::Testing => "testing",
            Tier::Development => "development",
            Tier::Other => "other",
        }
    }

    /// GitLab's `Environment#guess_tier` from the name.
    pub(crate) fn guess(name: &str) -> Tier {
        let n = name.to_ascii_lowercase();
        let has = |words: &[&str]| words.iter().any(|w| n.contains(w));
        if has(&["prod", "live"]) {
            Tier::Production
        } else if has(&["stag", "model", "pre", "demo"]) {
            Tier::Staging
        } else if has(&["test", "qa", "uat", "acc"]) {
            Tier::Testing
        } else if has(&["dev", "review", "trunk"]) {
            Tier::Development
        } else {
            Tier::Other
        }
    }
}

/// One pipeline (times Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pipeline {
    pub(crate) id: u64,
    pub(crate) iid: u64,
    pub(crate) reference: String,
    pub(crate) sha: String,
    pub(crate) status: PipelineStatus,
    pub(crate) source: &'static str,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
    pub(crate) started_at: Option<i64>,
    pub(crate) finished_at: Option<i64>,
    /// Running time in whole seconds, set when the pipeline completes.
    pub(crate) duration: Option<i64>,
}

impl Pipeline {
    /// `Ci::Pipeline#queued_duration`: from creation to start, in seconds.
    pub(crate) fn queued_duration(&self) -> Option<i64> {
        self.started_at.map(|s| (s - self.created_at).max(0))
    }
}

/// One environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Environment {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) tier: Tier,
    /// `available`, `stopping` or `stopped`.
    pub(crate) state: &'static str,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
}

impl Environment {
    /// GitLab's slug: lowercase, non-alphanumerics to `-`, at most 24 characters.
    pub(crate) fn slug(&self) -> String {
        let mut s: String = self
            .name
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        s.truncate(24);
        s.trim_matches('-').to_string()
    }
}

/// One deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Deployment {
    pub(crate) id: u64,
    pub(crate) iid: u64,
    pub(crate) environment: u64,
    pub(crate) status: DeploymentStatus,
    pub(crate) reference: String,
    pub(crate) sha: String,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
    pub(crate) finished_at: Option<i64>,
    /// The pipeline and job that deployed (`deployable`), if any.
    pub(crate) pipeline: Option<u64>,
    pub(crate) job: Option<u64>,
    /// The merge requests it shipped (`deployment_merge_requests`), by iid.
    pub(crate) merge_requests: Vec<u64>,
}

/// A project's CI/CD records: pipelines by iid, environments by id, deployments by iid.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Ci {
    pub(crate) pipelines: Vec<Pipeline>,
    pub(crate) environments: Vec<Environment>,
    pub(crate) deployments: Vec<Deployment>,
}

/// A deterministic fake SHA for a ref that is not the default branch.
fn other_sha(seed: u64) -> String {
    let a = splitmix64(seed ^ 0x5A5A_0001);
    let b = splitmix64(a);
    let c = splitmix64(b) as u32;
    format!("{a:016x}{b:016x}{c:08x}")
}

impl Ci {
    /// The synthesised history of `p` (see the module docs).
    fn synthesise(p: &FakeProject) -> Ci {
        let mut ci = Ci::default();
        if !p.pipeline_history || !p.builds_enabled || p.is_empty_repo() {
            return ci;
        }
        let branch = p.default_branch.clone().unwrap_or_else(|| "main".into());
        let view = p.merge_request_view();
        let baseline = view.baseline;
        let end = baseline.end.min(HISTORY_HORIZON);
        let start = p.created_at().min(end);
        let span = (end - start - HISTORY_MARGIN).clamp(0, HISTORY_SPAN);
        let first = end - HISTORY_MARGIN - span;
        let h = splitmix64(p.id ^ 0xC1C1_0000);
        let n = 4 + h % 9;
        for k in 1..=n {
            let hk = splitmix64(h ^ k.wrapping_mul(0x9E37));
            let created = first
                + i64::try_from(i128::from(span) * i128::from(k) / i128::from(n + 1)).unwrap_or(0);
            let total = baseline.total();
            let (reference, source, on_branch) = match hk % 10 {
                0 | 1 if total > 0 => (
                    format!("refs/merge-requests/{}/head", 1 + (hk >> 8) % total),
                    "merge_request_event",
                    false,
                ),
                2 => (format!("feature/{}", (hk >> 16) % 50), "push", false),
                3 => (branch.clone(), "schedule", true),
                4 => (branch.clone(), "web", true),
                _ => (branch.clone(), "push", true),
            };
            let status = match (hk >> 24) % 20 {
                13..=15 => PipelineStatus::Failed,
                16 => PipelineStatus::Canceled,
                17 => PipelineStatus::Skipped,
                18 => PipelineStatus::Manual,
                _ => PipelineStatus::Success,
            };
            let queued = 3 + ((hk >> 32) % 120) as i64;
            let run = 60 + ((hk >> 40) % 1_500) as i64;
            let (started, finished) = match status {
                PipelineStatus::Skipped => (None, Some(created)),
                PipelineStatus::Manual => (Some(created + queued), None),
                PipelineStatus::Canceled => {
                    (Some(created + queued), Some(created + queued + run / 3))
                }
                _ => (Some(created + queued), Some(created + queued + run)),
            };
            let duration = match (started, finished) {
                (Some(s), Some(f)) => Some(f - s),
                _ => None,
            };
            let sha = if on_branch {
                p.commit_at(created)
                    .and_then(|c| p.commit_sha(c))
                    .unwrap_or_else(|| other_sha(hk))
            } else {
                other_sha(hk)
            };
            ci.pipelines.push(Pipeline {
                id: p.id * 1_000 + k,
                iid: k,
                reference,
                sha,
                status,
                source,
                created_at: created,
                updated_at: finished.or(started).unwrap_or(created),
                started_at: started,
                finished_at: finished,
                duration,
            });
        }
        if p.environment_history && p.environments_enabled {
            ci.synthesise_deployments(p, &branch, first);
        }
        ci
    }

    /// Production and staging, deployed by the default branch's finished pipelines.
    fn synthesise_deployments(&mut self, p: &FakeProject, branch: &str, since: i64) {
        let created = since - 86_400;
        for (n, (name, tier)) in [("production", Tier::Production), ("staging", Tier::Staging)]
            .into_iter()
            .enumerate()
        {
            self.environments.push(Environment {
                id: p.id * 10 + 1 + n as u64,
                name: name.into(),
                tier,
                state: "available",
                created_at: created,
                updated_at: created,
            });
        }
        let (production, staging) = (p.id * 10 + 1, p.id * 10 + 2);
        let baseline = p.merge_request_view().baseline;
        let mut iid = 0;
        let mut last_success: [Option<i64>; 2] = [None, None];
        let pipelines = self.pipelines.clone();
        for pl in pipelines.iter().filter(|pl| pl.reference == branch) {
            let status = match pl.status {
                PipelineStatus::Success => DeploymentStatus::Success,
                PipelineStatus::Failed => DeploymentStatus::Failed,
                PipelineStatus::Canceled => DeploymentStatus::Canceled,
                _ => continue,
            };
            let to_production =
                status == DeploymentStatus::Success && splitmix64(pl.id ^ 0xDE91) % 2 == 0;
            let targets: &[(u64, usize)] = if to_production {
                &[(staging, 0), (production, 1)]
            } else {
                &[(staging, 0)]
            };
            for &(env, slot) in targets {
                iid += 1;
                let mut shipped = Vec::new();
                if status == DeploymentStatus::Success {
                    let range = match last_success[slot] {
                        Some(prev) => baseline.merged_between(prev + 1, pl.created_at),
                        None => {
                            let r = baseline.merged_between(i64::MIN, pl.created_at);
                            r.end.saturating_sub(3).max(r.start)..r.end
                        }
                    };
                    shipped.extend(range);
                    last_success[slot] = Some(pl.created_at);
                }
                self.deployments.push(Deployment {
                    id: p.id * 1_000 + iid,
                    iid,
                    environment: env,
                    status,
                    reference: pl.reference.clone(),
                    sha: pl.sha.clone(),
                    created_at: pl.created_at,
                    updated_at: pl.updated_at,
                    finished_at: pl.finished_at,
                    pipeline: Some(pl.id),
                    job: Some(pl.id * 10 + 1 + slot as u64),
                    merge_requests: shipped,
                });
            }
        }
    }

    pub(crate) fn pipeline(&self, id: u64) -> Option<&Pipeline> {
        self.pipelines.iter().find(|p| p.id == id)
    }

    pub(crate) fn environment(&self, id: u64) -> Option<&Environment> {
        self.environments.iter().find(|e| e.id == id)
    }

    pub(crate) fn environment_named(&self, name: &str) -> Option<&Environment> {
        self.environments.iter().find(|e| e.name == name)
    }

    fn next_pipeline_iid(&self) -> u64 {
        self.pipelines.last().map_or(1, |p| p.iid + 1)
    }

    fn next_deployment_iid(&self) -> u64 {
        self.deployments.last().map_or(1, |d| d.iid + 1)
    }
}

impl FakeProject {
    /// The project's CI/CD records: the recorded ones after a first change, else the
    /// synthesised history.
    pub(crate) fn ci(&self) -> Cow<'_, Ci> {
        match &self.ci {
            Some(ci) => Cow::Borrowed(ci),
            None => Cow::Owned(Ci::synthesise(self)),
        }
    }

    /// The recorded CI/CD records, frozen from the synthesised history at the first change.
    fn ci_mut(&mut self) -> &mut Ci {
        if self.ci.is_none() {
            self.ci = Some(Box::new(Ci::synthesise(self)));
        }
        self.ci.get_or_insert_default()
    }

    /// The number of the newest commit of the default branch at time `t` (at least the first).
    pub(crate) fn commit_at(&self, t: i64) -> Option<u64> {
        if self.is_empty_repo() {
            return None;
        }
        let (mut lo, mut hi) = (1, self.commits);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if self.commit_time(mid) <= t {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        Some(lo)
    }

    /// Freezes the CI/CD history (a feature switched off keeps what it had, as in GitLab).
    pub(crate) fn freeze_ci(&mut self) {
        self.ci_mut();
    }
}

impl Instance {
    fn next_live_id(&mut self) -> u64 {
        self.live_ids += 1;
        LIVE_ID_BASE + self.live_ids
    }

    /// Starts a pipeline on `reference` of project `project_id` at `now` (Unix seconds; the
    /// hooks pass the fake's clock): status `status` (`running` gets `started_at = now`, any
    /// other status is still queued), source `push`, the default branch's head SHA (another
    /// ref gets a SHA of its own). Returns its id, or `None` (nothing changed) for an unknown or
    /// archived project, CI/CD disabled or an empty repository.
    pub fn run_pipeline(
        &mut self,
        project_id: u64,
        reference: &str,
        status: PipelineStatus,
        now: i64,
    ) -> Option<u64> {
        let id = self.next_live_id();
        let p = self.project_mut(project_id)?;
        if p.archived || !p.builds_enabled || p.is_empty_repo() {
            return None;
        }
        let sha = if p.default_branch.as_deref() == Some(reference) {
            p.head_sha()
        } else {
            None
        }
        .unwrap_or_else(|| other_sha(id));
        let ci = p.ci_mut();
        let iid = ci.next_pipeline_iid();
        ci.pipelines.push(Pipeline {
            id,
            iid,
            reference: reference.to_string(),
            sha,
            status,
            source: "push",
            created_at: now,
            updated_at: now,
            started_at: (status == PipelineStatus::Running).then_some(now),
            finished_at: None,
            duration: None,
        });
        Some(id)
    }

    /// Finishes pipeline `pipeline_id` of project `project_id` at `now` with `status` after
    /// `duration` seconds of running: `finished_at` and `updated_at` are `now`, `started_at`
    /// `now - duration` if it had not started (never before its creation), `duration` as given
    /// (GitLab's is the jobs' running time, which need not be `finished_at - started_at`) and
    /// `queued_duration` the time from creation to start. False (nothing
    /// changed) for an unknown project or pipeline, or a status that is not a completed one
    /// (`success`, `failed`, `canceled`, `skipped`).
    pub fn finish_pipeline(
        &mut self,
        project_id: u64,
        pipeline_id: u64,
        status: PipelineStatus,
        duration: i64,
        now: i64,
    ) -> bool {
        if !status.is_completed() {
            return false;
        }
        let Some(p) = self.project_mut(project_id) else {
            return false;
        };
        if p.ci().pipeline(pipeline_id).is_none() {
            return false;
        }
        let ci = p.ci_mut();
        let Some(pl) = ci.pipelines.iter_mut().find(|pl| pl.id == pipeline_id) else {
            return false;
        };
        let started = pl
            .started_at
            .unwrap_or_else(|| (now - duration.max(0)).max(pl.created_at));
        pl.status = status;
        pl.started_at = Some(started);
        pl.finished_at = Some(now);
        // GitLab's duration is the jobs' running time, not `finished_at - started_at`.
        pl.duration = Some(duration.max(0));
        pl.updated_at = now;
        true
    }

    /// Creates environment `name` (tier `tier`, state `available`) in project `project_id` at
    /// `now`; returns its id (the existing one's if the name is taken). `None` for an unknown
    /// project.
    pub fn create_environment(
        &mut self,
        project_id: u64,
        name: &str,
        tier: Tier,
        now: i64,
    ) -> Option<u64> {
        let id = self.next_live_id();
        let p = self.project_mut(project_id)?;
        if let Some(e) = p.ci().environment_named(name) {
            return Some(e.id);
        }
        p.ci_mut().environments.push(Environment {
            id,
            name: name.to_string(),
            tier,
            state: "available",
            created_at: now,
            updated_at: now,
        });
        Some(id)
    }

    /// Deploys project `project_id` to `environment` (created with the tier GitLab guesses from
    /// its name if missing) at `now` with `status`; a finished status (success, failed,
    /// canceled) sets `finished_at = now`. `merge_requests`: the iids it ships (the merged ones
    /// are linked, as GitLab links only merged merge requests). `pipeline`: the pipeline whose
    /// job deploys: the deployment takes its ref and SHA, and the pipeline's `updated_at` moves
    /// to `now` (its job changed status); without one, the default branch's head. Returns the
    /// deployment's id, or `None` (nothing changed) for an unknown or archived project, CI/CD
    /// or environments disabled, or an unknown pipeline.
    pub fn deploy(
        &mut self,
        project_id: u64,
        environment: &str,
        status: DeploymentStatus,
        merge_requests: &[u64],
        pipeline: Option<u64>,
        now: i64,
    ) -> Option<u64> {
        let id = self.next_live_id();
        let job = self.next_live_id();
        let env_id = self.next_live_id();
        let p = self.project_mut(project_id)?;
        if p.archived || !p.builds_enabled || !p.environments_enabled {
            return None;
        }
        let (reference, sha) = match pipeline {
            Some(pid) => {
                let ci = p.ci();
                let pl = ci.pipeline(pid)?;
                (pl.reference.clone(), pl.sha.clone())
            }
            None => (
                p.default_branch.clone().unwrap_or_else(|| "main".into()),
                p.head_sha().unwrap_or_else(|| other_sha(id)),
            ),
        };
        let view = p.merge_request_view();
        let shipped: Vec<u64> = merge_requests
            .iter()
            .copied()
            .filter(|&iid| {
                view.get(iid)
                    .is_some_and(|m| m.state == super::history::MrState::Merged)
            })
            .collect();
        let ci = p.ci_mut();
        let env = match ci.environment_named(environment).map(|e| e.id) {
            Some(e) => e,
            None => {
                ci.environments.push(Environment {
                    id: env_id,
                    name: environment.to_string(),
                    tier: Tier::guess(environment),
                    state: "available",
                    created_at: now,
                    updated_at: now,
                });
                env_id
            }
        };
        if let Some(pl) = pipeline.and_then(|pid| ci.pipelines.iter_mut().find(|pl| pl.id == pid)) {
            pl.updated_at = now;
        }
        let iid = ci.next_deployment_iid();
        ci.deployments.push(Deployment {
            id,
            iid,
            environment: env,
            status,
            reference,
            sha,
            created_at: now,
            updated_at: now,
            finished_at: status.is_finished().then_some(now),
            pipeline,
            job: pipeline.map(|_| job),
            merge_requests: shipped,
        });
        Some(id)
    }

    /// Moves deployment `deployment_id` of project `project_id` to `status` at `now`
    /// (`updated_at`, and `finished_at` for a finished status); its pipeline's `updated_at`
    /// moves too. False (nothing changed) for an unknown project or deployment.
    pub fn finish_deployment(
        &mut self,
        project_id: u64,
        deployment_id: u64,
        status: DeploymentStatus,
        now: i64,
    ) -> bool {
        let Some(p) = self.project_mut(project_id) else {
            return false;
        };
        if !p.ci().deployments.iter().any(|d| d.id == deployment_id) {
            return false;
        }
        let ci = p.ci_mut();
        let Some(d) = ci.deployments.iter_mut().find(|d| d.id == deployment_id) else {
            return false;
        };
        d.status = status;
        d.updated_at = now;
        if status.is_finished() {
            d.finished_at = Some(now);
        }
        let pipeline = d.pipeline;
        if let Some(pl) = pipeline.and_then(|pid| ci.pipelines.iter_mut().find(|pl| pl.id == pid)) {
            pl.updated_at = now;
        }
        true
    }

    /// Switches a project's CI/CD feature (`builds_access_level`) on or off, keeping its
    /// pipelines, environments and deployments. False for an unknown project.
    pub fn set_builds_enabled(&mut self, project_id: u64, enabled: bool) -> bool {
        self.project_mut(project_id).is_some_and(|p| {
            p.freeze_ci();
            p.builds_enabled = enabled;
            true
        })
    }

    /// Switches a project's environments feature (`environments_access_level`) on or off,
    /// keeping its records. False for an unknown project.
    pub fn set_environments_enabled(&mut self, project_id: u64, enabled: bool) -> bool {
        self.project_mut(project_id).is_some_and(|p| {
            p.freeze_ci();
            p.environments_enabled = enabled;
            true
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthesised_history_is_deterministic_and_before_the_horizon() {
        let d = Instance::demo();
        let api = d
            .project(42)
            .map(|p| p.ci().into_owned())
            .unwrap_or_default();
        assert!(
            (4..=12).contains(&api.pipelines.len()),
            "{}",
            api.pipelines.len()
        );
        let again = Instance::demo();
        assert_eq!(
            again.project(42).map(|p| p.ci().into_owned()),
            Some(api.clone())
        );
        for pl in &api.pipelines {
            assert!(pl.created_at <= pl.updated_at && pl.updated_at <= HISTORY_HORIZON);
            assert!(pl.id < LIVE_ID_BASE && pl.id / 1_000 == 42);
            if let (Some(s), Some(f)) = (pl.started_at, pl.finished_at) {
                assert_eq!(pl.duration, Some(f - s));
            }
        }
        assert_eq!(api.environments.len(), 2);
        assert!(!api.deployments.is_empty());
        let shipped: usize = api.deployments.iter().map(|d| d.merge_requests.len()).sum();
        assert!(shipped > 0);
        let docs = d
            .project(29)
            .map(|p| p.ci().into_owned())
            .unwrap_or_default();
        assert!(docs.pipelines.is_empty(), "CI/CD disabled");
    }

    #[test]
    fn mutations_freeze_then_change() {
        let mut d = Instance::demo();
        let now = HISTORY_HORIZON + 100;
        let before = d.project(42).map(|p| p.ci().pipelines.len()).unwrap_or(0);
        let id = d.run_pipeline(42, "main", PipelineStatus::Running, now);
        let id = id.unwrap_or(0);
        assert!(id > LIVE_ID_BASE);
        assert!(d.finish_pipeline(42, id, PipelineStatus::Success, 50, now + 60));
        let p = d
            .project(42)
            .map(|p| p.ci().into_owned())
            .unwrap_or_default();
        assert_eq!(p.pipelines.len(), before + 1);
        let pl = p.pipeline(id).cloned();
        assert_eq!(pl.as_ref().map(|p| p.duration), Some(Some(50)));
        assert_eq!(pl.as_ref().map(|p| p.finished_at), Some(Some(now + 60)));
        assert!(!d.finish_pipeline(42, id, PipelineStatus::Running, 1, now));
        assert_eq!(
            d.run_pipeline(3, "main", PipelineStatus::Pending, now),
            None,
            "archived"
        );
        let dep = d.deploy(
            42,
            "review/x",
            DeploymentStatus::Running,
            &[1, 99_999],
            Some(id),
            now + 70,
        );
        let dep = dep.unwrap_or(0);
        assert!(d.finish_deployment(42, dep, DeploymentStatus::Success, now + 80));
        let ci = d
            .project(42)
            .map(|p| p.ci().into_owned())
            .unwrap_or_default();
        let made = ci.deployments.iter().find(|x| x.id == dep).cloned();
        assert_eq!(
            made.as_ref().map(|x| x.merge_requests.clone()),
            Some(vec![1])
        );
        assert_eq!(made.as_ref().map(|x| x.finished_at), Some(Some(now + 80)));
        assert_eq!(ci.pipeline(id).map(|p| p.updated_at), Some(now + 80));
        let env = ci.environment_named("review/x").map(|e| e.tier);
        assert_eq!(env, Some(Tier::Development));
        assert!(d.set_builds_enabled(42, false));
        assert_eq!(
            d.run_pipeline(42, "main", PipelineStatus::Pending, now),
            None
        );
        assert_eq!(
            d.project(42).map(|p| p.ci().pipelines.len()),
            Some(before + 1)
        );
    }
}
