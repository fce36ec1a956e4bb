//! The REST endpoints of CI/CD: `/projects/:id/pipelines` (list, `latest`, one),
//! `/projects/:id/environments`, `/projects/:id/deployments` (list, one, its merge requests),
//! with GitLab's parameters, permissions, 400s and entities (`PipelineBasicWithMetadata`,
//! `PipelineWithMetadata`, `Environment`, `Deployment`, `MergeRequestBasic`).

use serde_json::{Value, json};

use super::api::{
    Caller, Ctx, Reply, View, find_project, merge_request_json, project_json, user_json,
};
use super::ci::{Ci, Deployment, DeploymentStatus, Environment, Pipeline, PipelineStatus};
use super::history::{MrOrder, MrState};
use super::instance::{FakeProject, Instance};
use super::paginate::{OffsetPage, PageRequest};

/// `Ci::Pipeline.sources`.
const PIPELINE_SOURCES: [&str; 19] = [
    "unknown",
    "push",
    "web",
    "trigger",
    "schedule",
    "api",
    "external",
    "pipeline",
    "chat",
    "webide",
    "merge_request_event",
    "external_pull_request_event",
    "parent_pipeline",
    "ondemand_dast_scan",
    "ondemand_dast_validation",
    "security_orchestration_policy",
    "container_registry_push",
    "duo_workflow",
    "pipeline_execution_policy_schedule",
];
const PIPELINE_STATUSES: [&str; 11] = [
    "created",
    "waiting_for_resource",
    "preparing",
    "pending",
    "running",
    "success",
    "failed",
    "canceled",
    "skipped",
    "manual",
    "scheduled",
];
const DEPLOYMENT_STATUSES: [&str; 7] = [
    "created", "running", "success", "failed", "canceled", "skipped", "blocked",
];

fn forbidden() -> Reply {
    Reply::message(403, "403 Forbidden")
}

fn not_found() -> Reply {
    Reply::message(404, "404 Not found")
}

/// `bad_request!(reason)`.
fn bad_request(reason: &str) -> Reply {
    Reply::message(400, &format!("400 Bad request - {reason}"))
}

/// A Grape `Integer` path parameter.
fn int_param(value: &str, key: &str) -> Result<u64, Reply> {
    value
        .parse()
        .map_err(|_| Reply::error(400, &format!("{key} is invalid")))
}

/// One page of `items` (already filtered and ordered), with GitLab's offset headers.
fn page_of(ctx: &Ctx<'_>, items: Vec<Value>, req: &PageRequest) -> Reply {
    let total = items.len() as u64;
    let page = OffsetPage::for_total(req, total);
    let body: Vec<Value> = items
        .into_iter()
        .skip(usize::try_from(req.offset()).unwrap_or(usize::MAX))
        .take(req.per_page as usize)
        .collect();
    Reply::json(200, &Value::Array(body)).with_headers(page.headers(ctx.query, ctx.base, ctx.path))
}

// ---------------------------------------------------------------------------------------------
// Pipelines
// ---------------------------------------------------------------------------------------------

/// The filters of `GET /projects/:id/pipelines` (`Ci::PipelinesFinder`), shared with GraphQL.
#[derive(Debug, Clone, Default)]
pub(crate) struct PipelineFilter {
    /// `running`, `pending`, `finished`, `branches`, `tags`.
    pub(crate) scope: Option<&'static str>,
    pub(crate) status: Option<PipelineStatus>,
    pub(crate) reference: Option<String>,
    pub(crate) sha: Option<String>,
    pub(crate) source: Option<String>,
    pub(crate) username: Option<String>,
    /// Inclusive bounds (`UpdatedAtFilterable`: `>=` and `<=`).
    pub(crate) updated_after: Option<i64>,
    pub(crate) updated_before: Option<i64>,
    pub(crate) created_after: Option<i64>,
    pub(crate) created_before: Option<i64>,
}

impl PipelineFilter {
    /// The matching pipelines of `p`, id descending (the finder's default order).
    pub(crate) fn apply<'c>(
        &self,
        inst: &Instance,
        p: &FakeProject,
        ci: &'c Ci,
    ) -> Vec<&'c Pipeline> {
        let empty_window =
            |a: Option<i64>, b: Option<i64>| matches!((a, b), (Some(a), Some(b)) if b < a);
        if empty_window(self.updated_after, self.updated_before)
            || empty_window(self.created_after, self.created_before)
            || self.username.as_deref().is_some_and(|u| u != inst.username)
        {
            return Vec::new();
        }
        let mut out: Vec<&Pipeline> = ci
            .pipelines
            .iter()
            .rev()
            .filter(|pl| {
                self.status.is_none_or(|s| pl.status == s)
                    && self.reference.as_deref().is_none_or(|r| pl.reference == r)
                    && self.sha.as_deref().is_none_or(|s| pl.sha == s)
                    && self.source.as_deref().is_none_or(|s| pl.source == s)
                    && self.updated_after.is_none_or(|t| pl.updated_at >= t)
                    && self.updated_before.is_none_or(|t| pl.updated_at <= t)
                    && self.created_after.is_none_or(|t| pl.created_at >= t)
                    && self.created_before.is_none_or(|t| pl.created_at <= t)
                    && match self.scope {
                        Some("running") => pl.status == PipelineStatus::Running,
                        Some("pending") => pl.status == PipelineStatus::Pending,
                        Some("finished") => pl.status.in_finished_scope(),
                        _ => true,
                    }
            })
            .collect();
        match self.scope {
            // The newest pipeline of each branch; the fake's repository has only the default
            // branch and no tags.
            Some("branches") => {
                let branch = p.default_branch.as_deref();
                out.retain(|pl| Some(pl.reference.as_str()) == branch);
                out.truncate(1);
            }
            Some("tags") => out.clear(),
            _ => {}
        }
        out
    }
}

fn pipeline_web_url(ctx: &Ctx<'_>, pwn: &str, id: u64) -> String {
    format!("{}/{pwn}/-/pipelines/{id}", ctx.base)
}

/// `PipelineBasic` (`PipelineBasicWithMetadata` adds `name`).
pub(crate) fn pipeline_basic_json(
    ctx: &Ctx<'_>,
    p: &FakeProject,
    pwn: &str,
    pl: &Pipeline,
) -> Value {
    json!({
        "id": pl.id,
        "iid": pl.iid,
        "project_id": p.id,
        "sha": pl.sha,
        "ref": pl.reference,
        "status": pl.status.as_str(),
        "source": pl.source,
        "created_at": ctx.stamps.api(pl.created_at),
        "updated_at": ctx.stamps.api(pl.updated_at),
        "web_url": pipeline_web_url(ctx, pwn, pl.id),
    })
}

/// GitLab's detailed status of a status (`Gitlab::Ci::Status`).
fn detailed_status(pwn: &str, id: u64, status: &str) -> Value {
    let (text, label) = match status {
        "success" => ("Passed", "passed"),
        "failed" => ("Failed", "failed"),
        "canceled" => ("Canceled", "canceled"),
        "skipped" => ("Skipped", "skipped"),
        "manual" => ("Blocked", "waiting for manual action"),
        "scheduled" => ("Scheduled", "waiting for delayed job"),
        "running" => ("Running", "running"),
        "pending" => ("Pending", "pending"),
        "preparing" => ("Preparing", "preparing"),
        "waiting_for_resource" => ("Waiting", "waiting for resource"),
        _ => ("Created", "created"),
    };
    json!({
        "icon": format!("status_{status}"),
        "text": text,
        "label": label,
        "group": status,
        "tooltip": label,
        "has_details": true,
        "details_path": format!("/{pwn}/-/pipelines/{id}"),
        "illustration": null,
        "favicon": format!("/assets/ci_favicons/favicon_status_{status}.png"),
    })
}

/// `PipelineWithMetadata`.
fn pipeline_json(
    inst: &Instance,
    ctx: &Ctx<'_>,
    p: &FakeProject,
    pwn: &str,
    pl: &Pipeline,
) -> Value {
    let time = |t: Option<i64>| t.map(|t| ctx.stamps.api(t));
    let mut v = pipeline_basic_json(ctx, p, pwn, pl);
    if let Some(m) = v.as_object_mut() {
        let extra = json!({
            "before_sha": "0000000000000000000000000000000000000000",
            "tag": false,
            "yaml_errors": null,
            "user": user_json(inst, ctx.base),
            "started_at": time(pl.started_at),
            "finished_at": time(pl.finished_at),
            "committed_at": null,
            "duration": pl.duration,
            "queued_duration": pl.queued_duration(),
            "coverage": null,
            "detailed_status": detailed_status(pwn, pl.id, pl.status.as_str()),
            "name": null,
        });
        if let Value::Object(extra) = extra {
            m.extend(extra);
        }
    }
    v
}

/// `GET /projects/:id/pipelines`.
pub(crate) fn pipelines(inst: &Instance, ctx: &Ctx<'_>, id: &str) -> Result<Reply, Reply> {
    let q = ctx.query;
    let req = PageRequest::from_query(q)?;
    let stamps = ctx.stamps;
    let filter = PipelineFilter {
        scope: q.choice(
            "scope",
            &["running", "pending", "finished", "branches", "tags"],
        )?,
        status: q
            .choice("status", &PIPELINE_STATUSES)?
            .and_then(PipelineStatus::parse),
        reference: q.get("ref").map(str::to_owned),
        sha: q.get("sha").map(str::to_owned),
        source: q.choice("source", &PIPELINE_SOURCES)?.map(str::to_owned),
        username: q.get("username").map(str::to_owned),
        updated_after: q.datetime("updated_after", true, stamps)?,
        updated_before: q.datetime("updated_before", false, stamps)?,
        created_after: q.datetime("created_after", true, stamps)?,
        created_before: q.datetime("created_before", false, stamps)?,
    };
    q.bool("yaml_errors")?;
    let order_by = q
        .choice(
            "order_by",
            &["id", "status", "ref", "updated_at", "user_id"],
        )?
        .unwrap_or("id");
    let asc = q.choice("sort", &["asc", "desc"])? == Some("asc");
    let p = find_project(inst, ctx.caller, id)?;
    if !ctx.caller.can_read_pipelines(p) || !ctx.caller.can_read_builds(p) {
        return Err(forbidden());
    }
    let ci = p.ci();
    let mut list = filter.apply(inst, p, &ci);
    if q.bool("yaml_errors")? == Some(true) || q.get("name").is_some() {
        list.clear();
    }
    // One key, ties by id (descending, the rows' natural order here).
    list.sort_by(|a, b| {
        let key = match order_by {
            "status" => a.status.as_str().cmp(b.status.as_str()),
            "ref" => a.reference.cmp(&b.reference),
            "updated_at" => a.updated_at.cmp(&b.updated_at),
            "user_id" => std::cmp::Ordering::Equal,
            _ => a.id.cmp(&b.id),
        };
        let key = if asc { key } else { key.reverse() };
        key.then(b.id.cmp(&a.id))
    });
    let pwn = p.path_with_namespace(inst);
    let items = list
        .into_iter()
        .map(|pl| {
            let mut v = pipeline_basic_json(ctx, p, &pwn, pl);
            if let Some(m) = v.as_object_mut() {
                m.insert("name".into(), Value::Null);
            }
            v
        })
        .collect();
    Ok(page_of(ctx, items, &req))
}

/// `GET /projects/:id/pipelines/latest?ref=`: the newest pipeline of the ref (default: the
/// default branch). Without one GitLab authorizes `read_pipeline` on nothing: 403.
pub(crate) fn latest_pipeline(inst: &Instance, ctx: &Ctx<'_>, id: &str) -> Result<Reply, Reply> {
    let p = find_project(inst, ctx.caller, id)?;
    let reference = ctx
        .query
        .get("ref")
        .map(str::to_owned)
        .or_else(|| p.default_branch.clone());
    let ci = p.ci();
    let latest = ci
        .pipelines
        .iter()
        .rev()
        .find(|pl| reference.as_deref() == Some(pl.reference.as_str()));
    match latest {
        Some(pl) if ctx.caller.can_read_pipelines(p) => {
            let pwn = p.path_with_namespace(inst);
            Ok(Reply::json(200, &pipeline_json(inst, ctx, p, &pwn, pl)))
        }
        _ => Err(forbidden()),
    }
}

/// `GET /projects/:id/pipelines/:pipeline_id`.
pub(crate) fn pipeline(
    inst: &Instance,
    ctx: &Ctx<'_>,
    id: &str,
    pid: &str,
) -> Result<Reply, Reply> {
    let pid = int_param(pid, "pipeline_id")?;
    let p = find_project(inst, ctx.caller, id)?;
    let ci = p.ci();
    let pl = ci.pipeline(pid).ok_or_else(not_found)?;
    if !ctx.caller.can_read_pipelines(p) {
        return Err(forbidden());
    }
    let pwn = p.path_with_namespace(inst);
    Ok(Reply::json(200, &pipeline_json(inst, ctx, p, &pwn, pl)))
}

// ---------------------------------------------------------------------------------------------
// Environments
// ---------------------------------------------------------------------------------------------

/// `EnvironmentBasic`.
fn environment_basic_json(ctx: &Ctx<'_>, e: &Environment) -> Value {
    json!({
        "id": e.id,
        "name": e.name,
        "slug": e.slug(),
        "external_url": null,
        "created_at": ctx.stamps.api(e.created_at),
        "updated_at": ctx.stamps.api(e.updated_at),
    })
}

/// The projects whose environments and deployments the caller reads (401 anonymous, as
/// `authenticate!`; 403 without `read_environment`).
fn deploy_project<'i>(
    inst: &'i Instance,
    ctx: &Ctx<'_>,
    id: &str,
) -> Result<&'i FakeProject, Reply> {
    if ctx.caller == Caller::Anonymous {
        return Err(Reply::message(401, "401 Unauthorized"));
    }
    let p = find_project(inst, ctx.caller, id)?;
    if ctx.caller.can_read_environments(p) {
        Ok(p)
    } else {
        Err(forbidden())
    }
}

/// `GET /projects/:id/environments` (`name`, `search` of 3 characters or more, `states`), id
/// ascending, entity `Environment` (with `tier`, `state` and the project).
pub(crate) fn environments(inst: &Instance, ctx: &Ctx<'_>, id: &str) -> Result<Reply, Reply> {
    let q = ctx.query;
    let req = PageRequest::from_query(q)?;
    let states = q.choice("states", &["available", "stopping", "stopped"])?;
    let (name, search) = (q.get("name"), q.get("search"));
    if name.is_some() && search.is_some() {
        return Err(Reply::error(400, "name, search cannot be used together"));
    }
    let p = deploy_project(inst, ctx, id)?;
    if search.is_some_and(|s| s.chars().count() < 3) {
        return Err(bad_request("Search query is less than 3 characters"));
    }
    let ci = p.ci();
    let search = search.map(str::to_lowercase);
    let project = project_json(inst, ctx, p, View::Basic);
    let items = ci
        .environments
        .iter()
        .filter(|e| {
            name.is_none_or(|n| e.name == n)
                && search
                    .as_deref()
                    .is_none_or(|s| e.name.to_lowercase().contains(s))
                && states.is_none_or(|s| e.state == s)
        })
        .map(|e| {
            let mut v = environment_basic_json(ctx, e);
            if let Some(m) = v.as_object_mut() {
                m.insert("tier".into(), json!(e.tier.as_str()));
                m.insert("project".into(), project.clone());
                m.insert("state".into(), json!(e.state));
            }
            v
        })
        .collect();
    Ok(page_of(ctx, items, &req))
}

// ---------------------------------------------------------------------------------------------
// Deployments
// ---------------------------------------------------------------------------------------------

/// The deploy job (`Entities::Ci::Job`) of a deployment.
fn job_json(
    inst: &Instance,
    ctx: &Ctx<'_>,
    p: &FakeProject,
    pwn: &str,
    ci: &Ci,
    d: &Deployment,
) -> Value {
    let (Some(job), Some(pl)) = (d.job, d.pipeline.and_then(|id| ci.pipeline(id))) else {
        return Value::Null;
    };
    let env = ci
        .environment(d.environment)
        .map_or("", |e| e.name.as_str());
    let status = match d.status {
        DeploymentStatus::Blocked => "manual",
        s => s.as_str(),
    };
    let time = |t: Option<i64>| t.map(|t| ctx.stamps.api(t));
    json!({
        "id": job,
        "status": status,
        "stage": "deploy",
        "name": format!("deploy-{env}"),
        "ref": d.reference,
        "tag": false,
        "coverage": null,
        "allow_failure": false,
        "created_at": ctx.stamps.api(d.created_at),
        "started_at": ctx.stamps.api(d.created_at),
        "finished_at": time(d.finished_at),
        "erased_at": null,
        "duration": d.finished_at.map(|f| f - d.created_at),
        "queued_duration": 0,
        "user": user_json(inst, ctx.base),
        "pipeline": pipeline_basic_json(ctx, p, pwn, pl),
        "web_url": format!("{}/{pwn}/-/jobs/{job}", ctx.base),
        "artifacts": [],
        "runner": null,
        "artifacts_expire_at": null,
        "tag_list": [],
    })
}

/// `Entities::Deployment` (no `finished_at`: GitLab's entity has none; the job has it).
fn deployment_json(
    inst: &Instance,
    ctx: &Ctx<'_>,
    p: &FakeProject,
    pwn: &str,
    ci: &Ci,
    d: &Deployment,
) -> Value {
    json!({
        "id": d.id,
        "iid": d.iid,
        "ref": d.reference,
        "sha": d.sha,
        "created_at": ctx.stamps.api(d.created_at),
        "updated_at": ctx.stamps.api(d.updated_at),
        "user": user_json(inst, ctx.base),
        "environment": ci.environment(d.environment).map(|e| environment_basic_json(ctx, e)),
        "deployable": job_json(inst, ctx, p, pwn, ci, d),
        "status": d.status.as_str(),
    })
}

/// What `DeploymentsFinder` is asked.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeploymentQuery {
    /// `id`, `iid`, `created_at`, `updated_at`, `ref`, `finished_at`.
    pub(crate) order_by: Option<&'static str>,
    pub(crate) desc: bool,
    pub(crate) updated_after: Option<i64>,
    pub(crate) updated_before: Option<i64>,
    pub(crate) finished_after: Option<i64>,
    pub(crate) finished_before: Option<i64>,
    pub(crate) environment: Option<u64>,
    /// Environment by name (REST).
    pub(crate) environment_name: Option<String>,
    pub(crate) statuses: Vec<DeploymentStatus>,
}

impl DeploymentQuery {
    /// `DeploymentsFinder#validate!`: GitLab's `InefficientQueryError` messages.
    pub(crate) fn validate(&self) -> Result<(), &'static str> {
        let updated = self.updated_after.is_some() || self.updated_before.is_some();
        let finished = self.finished_after.is_some() || self.finished_before.is_some();
        let by_finished = self.order_by == Some("finished_at");
        let finished_status = self.statuses.iter().any(|s| s.is_finished());
        let upcoming_status = self.statuses.iter().any(|s| s.is_upcoming());
        if updated && finished {
            return Err("Both `updated_at` filter and `finished_at` filter can not be specified");
        }
        if updated && self.order_by != Some("updated_at") {
            return Err("`updated_at` filter requires `updated_at` sort");
        }
        if finished && !by_finished {
            return Err("`finished_at` filter requires `finished_at` sort.");
        }
        if by_finished && !(finished || finished_status) {
            return Err(
                "`finished_at` sort requires `finished_at` filter or a filter with at least one of the finished statuses.",
            );
        }
        if finished && self.statuses != [DeploymentStatus::Success] {
            return Err("`finished_at` filter must be combined with `success` status filter.");
        }
        if finished_status && upcoming_status {
            return Err("finished statuses and upcoming statuses must be separately queried.");
        }
        Ok(())
    }

    /// The matching deployments, in the finder's order.
    pub(crate) fn apply<'c>(&self, ci: &'c Ci) -> Vec<&'c Deployment> {
        let env_by_name = self
            .environment_name
            .as_deref()
            .map(|n| ci.environment_named(n).map(|e| e.id));
        let mut out: Vec<&Deployment> = ci
            .deployments
            .iter()
            .filter(|d| {
                self.updated_after.is_none_or(|t| d.updated_at >= t)
                    && self.updated_before.is_none_or(|t| d.updated_at <= t)
                    && self
                        .finished_after
                        .is_none_or(|t| d.finished_at.is_some_and(|f| f >= t))
                    && self
                        .finished_before
                        .is_none_or(|t| d.finished_at.is_some_and(|f| f < t))
                    && self.environment.is_none_or(|e| d.environment == e)
                    && env_by_name.is_none_or(|e| e == Some(d.environment))
                    && (self.statuses.is_empty() || self.statuses.contains(&d.status))
            })
            .collect();
        let desc = self.desc;
        // `optimize_sort_params!`: created_at and iid sort as id; updated_at ties by id.
        out.sort_by(|a, b| {
            let key = match self.order_by {
                Some("updated_at") => a.updated_at.cmp(&b.updated_at).then(a.id.cmp(&b.id)),
                Some("finished_at") => a.finished_at.cmp(&b.finished_at).then(a.id.cmp(&b.id)),
                Some("ref") => a.reference.cmp(&b.reference).then(a.id.cmp(&b.id)),
                _ => a.id.cmp(&b.id),
            };
            if desc { key.reverse() } else { key }
        });
        out
    }
}

/// `GET /projects/:id/deployments`.
pub(crate) fn deployments(inst: &Instance, ctx: &Ctx<'_>, id: &str) -> Result<Reply, Reply> {
    let q = ctx.query;
    let req = PageRequest::from_query(q)?;
    let stamps = ctx.stamps;
    let order_by = q.choice(
        "order_by",
        &[
            "id",
            "iid",
            "created_at",
            "updated_at",
            "ref",
            "finished_at",
        ],
    )?;
    let desc = q.choice("sort", &["asc", "desc"])? == Some("desc");
    let dq = DeploymentQuery {
        order_by: Some(order_by.unwrap_or("id")),
        desc,
        updated_after: q.datetime("updated_after", true, stamps)?,
        updated_before: q.datetime("updated_before", false, stamps)?,
        finished_after: q.datetime("finished_after", true, stamps)?,
        // `finished_at < ?`: the written time of the bound's second is kept only if earlier.
        finished_before: q.datetime("finished_before", true, stamps)?,
        environment: None,
        environment_name: q.get("environment").map(str::to_owned),
        statuses: q
            .choice("status", &DEPLOYMENT_STATUSES)?
            .and_then(DeploymentStatus::parse)
            .into_iter()
            .collect(),
    };
    let p = deploy_project(inst, ctx, id)?;
    dq.validate().map_err(bad_request)?;
    let ci = p.ci();
    let pwn = p.path_with_namespace(inst);
    let items = dq
        .apply(&ci)
        .into_iter()
        .map(|d| deployment_json(inst, ctx, p, &pwn, &ci, d))
        .collect();
    Ok(page_of(ctx, items, &req))
}

/// `GET /projects/:id/deployments/:deployment_id` (`DeploymentExtended`).
pub(crate) fn deployment(
    inst: &Instance,
    ctx: &Ctx<'_>,
    id: &str,
    did: &str,
) -> Result<Reply, Reply> {
    let did = int_param(did, "deployment_id")?;
    let p = deploy_project(inst, ctx, id)?;
    let ci = p.ci();
    let d = ci
        .deployments
        .iter()
        .find(|d| d.id == did)
        .ok_or_else(not_found)?;
    let pwn = p.path_with_namespace(inst);
    Ok(Reply::json(
        200,
        &deployment_json(inst, ctx, p, &pwn, &ci, d),
    ))
}

/// `GET /projects/:id/deployments/:deployment_id/merge_requests`: the merge requests it
/// shipped that the caller may read (`MergeRequestBasic`), newest created first.
pub(crate) fn deployment_merge_requests(
    inst: &Instance,
    ctx: &Ctx<'_>,
    id: &str,
    did: &str,
) -> Result<Reply, Reply> {
    let did = int_param(did, "deployment_id")?;
    let q = ctx.query;
    let req = PageRequest::from_query(q)?;
    let state = q
        .choice("state", &["opened", "closed", "locked", "merged", "all"])?
        .and_then(MrState::parse);
    let order = match q.choice(
        "order_by",
        &["created_at", "updated_at", "merged_at", "title"],
    )? {
        Some("updated_at") => MrOrder::Updated,
        Some("merged_at") => MrOrder::Merged,
        _ => MrOrder::Created,
    };
    let asc = q.choice("sort", &["asc", "desc"])? == Some("asc");
    let p = deploy_project(inst, ctx, id)?;
    let ci = p.ci();
    let d = ci
        .deployments
        .iter()
        .find(|d| d.id == did)
        .ok_or_else(not_found)?;
    let view = p.merge_request_view();
    let mut mrs: Vec<_> = if ctx.caller.can_read_merge_requests(p) {
        d.merge_requests
            .iter()
            .filter_map(|&iid| view.get(iid))
            .filter(|m| state.is_none_or(|s| m.state == s))
            .collect()
    } else {
        Vec::new()
    };
    mrs.sort_by_key(|m| {
        let t = match order {
            MrOrder::Created => m.created_at,
            MrOrder::Updated => m.updated_at,
            MrOrder::Merged => m.merged_at.unwrap_or(i64::MIN),
        };
        (t, m.iid)
    });
    if !asc {
        mrs.reverse();
    }
    let pwn = p.path_with_namespace(inst);
    let items = mrs
        .iter()
        .map(|m| merge_request_json(ctx, p, &pwn, m, false, None))
        .collect();
    Ok(page_of(ctx, items, &req))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ApiRequest, Endpoint, Live, respond};
    use crate::dates::rfc3339_z;
    use crate::history::HISTORY_HORIZON;
    use crate::ratelimit::RateLimiter;

    fn call_as(live: &mut Live, target: &str, token: Option<&str>) -> (u16, Value, Reply) {
        let (path, query) = target
            .split_once('?')
            .map_or((target, None), |(p, q)| (p, Some(q)));
        let path = format!("/api/v4{path}");
        let req = ApiRequest {
            method: "GET",
            path: &path,
            query,
            token,
            now: 0,
        };
        let reply = respond(
            live,
            &RateLimiter::default(),
            "http://127.0.0.1:1",
            &req,
            &Endpoint::parse(&path),
        );
        let v = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        (reply.status, v, reply)
    }

    fn call(live: &mut Live, target: &str) -> (u16, Value) {
        let token = live.instance.token.clone();
        let (s, v, _) = call_as(live, target, Some(&token));
        (s, v)
    }

    fn total(live: &mut Live, target: &str) -> Option<String> {
        let token = live.instance.token.clone();
        let (_, _, r) = call_as(live, target, Some(&token));
        r.headers
            .iter()
            .find(|(k, _)| *k == "X-Total")
            .map(|(_, v)| v.clone())
    }

    fn ids(v: &Value) -> Vec<u64> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x["id"].as_u64())
            .collect()
    }

    #[test]
    fn pipelines_filter_order_and_paginate() {
        let mut live = Live::new(Instance::demo());
        let ci = live
            .instance
            .project(42)
            .map(|p| p.ci().into_owned())
            .unwrap_or_default();
        let n = ci.pipelines.len();
        let (s, all) = call(&mut live, "/projects/42/pipelines?per_page=100");
        assert_eq!(s, 200, "{all}");
        let listed = ids(&all);
        assert_eq!(listed.len(), n);
        assert!(listed.is_sorted_by(|a, b| a > b), "id descending");
        assert_eq!(
            total(&mut live, "/projects/acme%2Fapi/pipelines"),
            Some(n.to_string())
        );
        let first = &all[0];
        for key in [
            "id",
            "iid",
            "project_id",
            "sha",
            "ref",
            "status",
            "source",
            "created_at",
            "updated_at",
            "web_url",
            "name",
        ] {
            assert!(first.get(key).is_some(), "{key}: {first}");
        }
        assert!(
            first.get("duration").is_none(),
            "the list entity has no duration"
        );
        // Filters.
        let success = ci
            .pipelines
            .iter()
            .filter(|p| p.status == PipelineStatus::Success)
            .count();
        let (_, v) = call(
            &mut live,
            "/projects/42/pipelines?status=success&per_page=100",
        );
        assert_eq!(ids(&v).len(), success);
        let finished = ci
            .pipelines
            .iter()
            .filter(|p| p.status.in_finished_scope())
            .count();
        let (_, v) = call(
            &mut live,
            "/projects/42/pipelines?scope=finished&per_page=100",
        );
        assert_eq!(ids(&v).len(), finished);
        let (_, v) = call(&mut live, "/projects/42/pipelines?scope=branches");
        assert_eq!(ids(&v).len(), 1);
        assert_eq!(v[0]["ref"], "main");
        let (_, v) = call(&mut live, "/projects/42/pipelines?scope=tags");
        assert_eq!(ids(&v).len(), 0);
        let on_main = ci
            .pipelines
            .iter()
            .filter(|p| p.reference == "main")
            .count();
        let (_, v) = call(&mut live, "/projects/42/pipelines?ref=main&per_page=100");
        assert_eq!(ids(&v).len(), on_main);
        // `updated_after` and `updated_before` are inclusive.
        let mid = &ci.pipelines[n / 2];
        let t = rfc3339_z(mid.updated_at);
        let after = ci
            .pipelines
            .iter()
            .filter(|p| p.updated_at >= mid.updated_at)
            .count();
        let (_, v) = call(
            &mut live,
            &format!("/projects/42/pipelines?updated_after={t}&per_page=100"),
        );
        assert_eq!(ids(&v).len(), after);
        let (_, v) = call(
            &mut live,
            &format!("/projects/42/pipelines?updated_after={t}&updated_before={t}"),
        );
        assert_eq!(ids(&v), vec![mid.id]);
        // Order and pages.
        let (_, v) = call(
            &mut live,
            "/projects/42/pipelines?order_by=updated_at&sort=asc&per_page=100",
        );
        let times: Vec<String> = v
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| p["updated_at"].to_string())
            .collect();
        assert!(times.is_sorted());
        let (_, p2) = call(&mut live, "/projects/42/pipelines?per_page=2&page=2");
        assert_eq!(ids(&p2), listed[2..4].to_vec());
        let (s, v) = call(&mut live, "/projects/42/pipelines?status=done");
        assert_eq!(
            (s, v),
            (400, json!({"error": "status does not have a valid value"}))
        );
        let (s, _) = call(&mut live, "/projects/42/pipelines?order_by=created_at");
        assert_eq!(s, 400);
    }

    #[test]
    fn one_pipeline_latest_and_ci_disabled() {
        let mut live = Live::new(Instance::demo());
        let ci = live
            .instance
            .project(42)
            .map(|p| p.ci().into_owned())
            .unwrap_or_default();
        let done = ci.pipelines.iter().find(|p| p.duration.is_some()).cloned();
        let done = done.unwrap_or_else(|| panic!("a finished pipeline"));
        let (s, v) = call(&mut live, &format!("/projects/42/pipelines/{}", done.id));
        assert_eq!(s, 200);
        assert_eq!(v["duration"], json!(done.duration));
        assert_eq!(v["queued_duration"], json!(done.queued_duration()));
        assert_eq!(v["started_at"], json!(done.started_at.map(rfc3339_z)));
        assert_eq!(v["detailed_status"]["group"], done.status.as_str());
        let (s, v) = call(&mut live, "/projects/42/pipelines/1");
        assert_eq!((s, v), (404, json!({"message": "404 Not found"})));
        let (s, _) = call(&mut live, "/projects/42/pipelines/abc");
        assert_eq!(s, 400);
        let newest_main = ci
            .pipelines
            .iter()
            .rev()
            .find(|p| p.reference == "main")
            .map(|p| p.id);
        let (s, v) = call(&mut live, "/projects/42/pipelines/latest");
        assert_eq!((s, v["id"].as_u64()), (200, newest_main));
        let (s, _) = call(&mut live, "/projects/42/pipelines/latest?ref=nope");
        assert_eq!(s, 403, "no pipeline: GitLab authorizes nothing");
        // CI/CD off: the list is 403 (`read_build`), a pipeline stays readable.
        assert!(live.instance.set_builds_enabled(42, false));
        let (s, _) = call(&mut live, "/projects/42/pipelines");
        assert_eq!(s, 403);
        let (s, _) = call(&mut live, &format!("/projects/42/pipelines/{}", done.id));
        assert_eq!(s, 200);
        let (s, p) = call(&mut live, "/projects/42");
        assert_eq!(s, 200);
        assert_eq!(
            (p["jobs_enabled"].clone(), p["builds_access_level"].clone()),
            (json!(false), json!("disabled"))
        );
        assert_eq!(
            call(&mut live, "/projects/29/pipelines").0,
            403,
            "acme/docs"
        );
        assert_eq!(call(&mut live, "/projects/42/environments").0, 403);
        // Live pipelines come first and match a window on the fake's clock.
        let now = HISTORY_HORIZON + 3_600;
        let id = live
            .instance
            .run_pipeline(7, "main", PipelineStatus::Pending, now);
        let id = id.unwrap_or(0);
        assert!(
            live.instance
                .finish_pipeline(7, id, PipelineStatus::Failed, 90, now + 200)
        );
        let (_, v) = call(
            &mut live,
            &format!(
                "/projects/7/pipelines?updated_after={}",
                rfc3339_z(now + 200)
            ),
        );
        assert_eq!(ids(&v), vec![id]);
        let (_, v) = call(&mut live, &format!("/projects/7/pipelines/{id}"));
        assert_eq!(
            (
                v["status"].clone(),
                v["duration"].clone(),
                v["queued_duration"].clone()
            ),
            (json!("failed"), json!(90), json!(110))
        );
    }

    #[test]
    fn environments_and_their_refusals() {
        let mut live = Live::new(Instance::demo());
        let (s, v) = call(&mut live, "/projects/42/environments");
        assert_eq!(s, 200, "{v}");
        assert_eq!(v.as_array().map(Vec::len), Some(2));
        assert_eq!(v[0]["name"], "production");
        assert_eq!(v[0]["tier"], "production");
        assert_eq!(v[1]["state"], "available");
        assert_eq!(v[0]["project"]["id"], 42);
        let (_, v) = call(&mut live, "/projects/42/environments?search=STAG");
        assert_eq!(v.as_array().map(Vec::len), Some(1));
        let (_, v) = call(
            &mut live,
            "/projects/42/environments?name=staging&states=stopped",
        );
        assert_eq!(v.as_array().map(Vec::len), Some(0));
        let (s, v) = call(&mut live, "/projects/42/environments?search=st");
        assert_eq!(
            (s, v),
            (
                400,
                json!({"message": "400 Bad request - Search query is less than 3 characters"})
            )
        );
        let (s, _) = call(
            &mut live,
            "/projects/42/environments?search=stag&name=staging",
        );
        assert_eq!(s, 400);
        let (s, _) = call(&mut live, "/projects/42/environments?states=gone");
        assert_eq!(s, 400);
        let (s, _, _) = call_as(&mut live, "/projects/21/environments", None);
        assert_eq!(s, 401, "authenticate!");
        assert_eq!(call(&mut live, "/projects/77/environments").0, 403, "guest");
        assert!(live.instance.set_environments_enabled(42, false));
        assert_eq!(call(&mut live, "/projects/42/environments").0, 403);
        assert_eq!(call(&mut live, "/projects/42/deployments").0, 403);
        let (_, p) = call(&mut live, "/projects/42");
        assert_eq!(p["environments_access_level"], "disabled");
    }

    #[test]
    fn deployments_validate_filter_and_ship_merge_requests() {
        let mut live = Live::new(Instance::demo());
        let ci = live
            .instance
            .project(42)
            .map(|p| p.ci().into_owned())
            .unwrap_or_default();
        let (s, v) = call(&mut live, "/projects/42/deployments?per_page=100");
        assert_eq!(s, 200, "{v}");
        let listed = ids(&v);
        assert_eq!(listed.len(), ci.deployments.len());
        assert!(listed.is_sorted(), "id ascending by default");
        let d = &v[0];
        assert!(d.get("finished_at").is_none(), "GitLab's entity has none");
        assert!(
            d["environment"].get("tier").is_none(),
            "EnvironmentBasic has no tier"
        );
        assert_eq!(
            d["deployable"]["pipeline"]["id"].as_u64(),
            ci.deployments[0].pipeline
        );
        assert!(d["deployable"]["finished_at"].is_string());
        let bad = |q: &str| format!("/projects/42/deployments?{q}");
        for (q, msg) in [
            (
                "finished_after=2026-01-01T00:00:00Z",
                "`finished_at` filter requires `finished_at` sort.",
            ),
            (
                "finished_after=2026-01-01T00:00:00Z&order_by=finished_at",
                "`finished_at` filter must be combined with `success` status filter.",
            ),
            (
                "order_by=finished_at",
                "`finished_at` sort requires `finished_at` filter or a filter with at least one of the finished statuses.",
            ),
            (
                "updated_after=2026-01-01T00:00:00Z",
                "`updated_at` filter requires `updated_at` sort",
            ),
            (
                "updated_after=2026-01-01T00:00:00Z&finished_before=2026-01-01T00:00:00Z",
                "Both `updated_at` filter and `finished_at` filter can not be specified",
            ),
        ] {
            let (s, v) = call(&mut live, &bad(q));
            assert_eq!(
                (s, v),
                (400, json!({"message": format!("400 Bad request - {msg}")})),
                "{q}"
            );
        }
        // finished_after (>=) and finished_before (<), successful ones by finish time.
        let ok: Vec<&Deployment> = ci
            .deployments
            .iter()
            .filter(|d| d.status == DeploymentStatus::Success)
            .collect();
        let t = ok[ok.len() / 2].finished_at.unwrap_or(0);
        let want_after: Vec<u64> = ok
            .iter()
            .filter(|d| d.finished_at >= Some(t))
            .map(|d| d.id)
            .collect();
        let (s, v) = call(
            &mut live,
            &format!(
                "/projects/42/deployments?status=success&order_by=finished_at&finished_after={}&per_page=100",
                rfc3339_z(t)
            ),
        );
        assert_eq!(s, 200, "{v}");
        let mut got = ids(&v);
        got.sort_unstable();
        assert_eq!(got, want_after);
        let (_, v) = call(
            &mut live,
            &format!(
                "/projects/42/deployments?status=success&order_by=finished_at&finished_before={}&per_page=100",
                rfc3339_z(t)
            ),
        );
        assert!(ids(&v).iter().all(|id| !want_after.contains(id)));
        let (_, v) = call(
            &mut live,
            "/projects/42/deployments?environment=production&order_by=id&sort=desc",
        );
        assert!(
            v.as_array()
                .into_iter()
                .flatten()
                .all(|d| d["environment"]["name"] == "production")
        );
        assert!(ids(&v).is_sorted_by(|a, b| a > b));
        // The merge requests a deployment shipped.
        let shipped = ci
            .deployments
            .iter()
            .find(|d| !d.merge_requests.is_empty())
            .cloned();
        let shipped = shipped.unwrap_or_else(|| panic!("a deployment with merge requests"));
        let (s, v) = call(
            &mut live,
            &format!("/projects/42/deployments/{}/merge_requests", shipped.id),
        );
        assert_eq!(s, 200);
        assert_eq!(
            v.as_array().map(Vec::len),
            Some(shipped.merge_requests.len())
        );
        assert!(v[0]["merged_at"].is_string() && v[0]["created_at"].is_string());
        assert!(
            v[0]["merged_at"].as_str()
                <= Some(rfc3339_z(shipped.finished_at.unwrap_or(0)).as_str())
        );
        let (s, v) = call(
            &mut live,
            &format!("/projects/42/deployments/{}", shipped.id),
        );
        assert_eq!((s, v["iid"].as_u64()), (200, Some(shipped.iid)));
        assert_eq!(call(&mut live, "/projects/42/deployments/5").0, 404);
    }
}
