//! The `deployments` family (DORA): deployments to the environments chosen by
//! `--collector.deployments.environments` (default: the production tier). Counted from the
//! exporter's first collection on: deployments that finished, by environment and status
//! (`gitlab_project_deployments_total`: deployment frequency is its rate), and for every merge
//! request a successful deployment shipped, the time from its merge to the deployment's finish
//! (`gitlab_project_lead_time_for_changes_seconds`, GitLab's definition of lead time for
//! changes, through GitLab's own link between deployments and merge requests). And the last
//! successful deployment's finish time (`gitlab_project_deployment_last_success_timestamp_seconds`).
//!
//! GitLab's GraphQL reads environments for one project per request and deployments for one
//! environment per request, so deployments are read over REST, only when they may have
//! changed. The signal: deployments are made by pipeline jobs, and a job that finishes moves
//! its pipeline; each project's node in the listing's batches says whether any of its
//! pipelines (any ref) was updated since the project's deployment window began. Only then is
//! its deployment feed read (`GET /projects/:id/deployments?updated_after=`, one call), and the
//! merge requests of each new successful deployment (one call each). A deployment made through
//! the API, without a pipeline, shows at the project's next re-read from scratch (its window
//! stays where it was until then). Each re-read from scratch lists the environments (their
//! tiers) and their last successful deployments. A successful deployment is counted once it
//! is a minute old: GitLab links its merge requests in the background.

use std::sync::Arc;

use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use serde_json::Value;
use tracing::debug;

use super::events::{self, Histogram, Key, Window, encode_histograms, field, gitlab_now, id_of};
use super::{Current, Family, Fetched, Interner, Rows};
use crate::gitlab::types::{Project, format_timestamp, parse_timestamp};
use crate::gitlab::{Client, Error, endpoint};

/// The `deployments` family (see the module's docs).
#[derive(Debug)]
pub(crate) struct Deployments;

/// The final statuses counted, in the order of [`Environment::finished_total`].
const FINAL: [&str; 3] = ["success", "failed", "canceled"];

/// How old a successful deployment must be to be counted: GitLab links its merge requests in
/// the background after it succeeds. Less than the feed's overlap, so a deployment put off is
/// still in the next window.
const SETTLE_SECONDS: i64 = 60;

/// Which environments are exported: `tier:<tier>` or `name:<name>` selectors, any matching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Selector {
    Tier(&'static str),
    Name(&'static str),
}

impl Selector {
    fn matches(&self, name: &str, tier: Option<&str>) -> bool {
        match self {
            Selector::Tier(t) => tier == Some(*t),
            Selector::Name(n) => *n == name,
        }
    }
}

/// The default selection: the production tier.
pub(crate) const PRODUCTION: &[Selector] = &[Selector::Tier("production")];

/// Parses `--collector.deployments.environments`: comma-separated `tier:<tier>` and
/// `name:<name>`.
pub(crate) fn parse_selectors(s: &str) -> Result<&'static [Selector], String> {
    const TIERS: [&str; 5] = ["production", "staging", "testing", "development", "other"];
    let mut selectors = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        selectors.push(match part.split_once(':') {
            Some(("tier", tier)) if TIERS.contains(&tier) => Selector::Tier(leak(tier)),
            Some(("tier", tier)) => {
                return Err(format!(
                    "`{tier}` is not a GitLab deployment tier (production, staging, testing, development, other)"
                ));
            }
            Some(("name", name)) if !name.is_empty() => Selector::Name(leak(name)),
            _ => {
                return Err(format!(
                    "`{part}`: expected tier:<tier> or name:<environment name>"
                ));
            }
        });
    }
    if selectors.is_empty() {
        return Err("no environment selected".to_owned());
    }
    Ok(Box::leak(selectors.into_boxed_slice()))
}

/// A flag's string, for the life of the process.
fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

/// What is exported for one project: its chosen environments.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Shipped {
    environments: Vec<Environment>,
}

/// One environment's values.
#[derive(Debug, Clone, PartialEq)]
struct Environment {
    name: Arc<str>,
    /// Deployments that reached each of [`FINAL`] since the project was first seen.
    finished_total: [u64; 3],
    /// Unix seconds.
    last_success: Option<f64>,
    lead_time: Histogram,
}

/// What is remembered.
#[derive(Debug, Clone)]
pub(crate) struct Known {
    shipped: Shipped,
    window: Window,
    /// Every environment's tier (`None`: none given), as last listed.
    tiers: Vec<(Arc<str>, Option<Arc<str>>)>,
    /// GitLab refused the project's deployments (environments or CI/CD off, or not allowed):
    /// no call until its next re-read from scratch.
    unreadable: bool,
}

/// One deployment of the feed.
#[derive(Debug, Clone)]
struct Deployment {
    id: u64,
    status: String,
    environment: String,
    /// When it finished: its job's finish, or (made through the API, without a job) its last
    /// update once final.
    finished_at: Option<String>,
}

impl Deployment {
    fn parse(record: &Value) -> Result<Deployment, String> {
        let id = id_of(record.get("id")).ok_or("deployment without a usable id")?;
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
        let status = text(record.get("status")).ok_or_else(|| format!("deployment {id}: no status"))?;
        let environment = text(record.get("environment").and_then(|e| e.get("name")))
            .ok_or_else(|| format!("deployment {id}: no environment name"))?;
        let finished_at = text(
            record
                .get("deployable")
                .and_then(|d| field(d, "finished_at", "finishedAt")),
        )
        .or_else(|| {
            FINAL
                .contains(&status.as_str())
                .then(|| text(field(record, "updated_at", "updatedAt")))
                .flatten()
        });
        Ok(Deployment {
            id,
            status,
            environment,
            finished_at,
        })
    }

    fn key(&self) -> Option<Key> {
        Key::at(self.id, self.finished_at.as_deref()?)
    }
}

impl Family for Deployments {
    const ABOUT: &'static str = "deployments to the chosen environments (default: production tier), lead time for changes and the last successful deployment (over REST, only for projects whose pipelines moved, as GraphQL's batches say; one call per new successful deployment; with --gitlab.api rest, where it costs a call per project and collection, only when asked for by name)";
    const COUNTS_EVENTS: bool = true;
    const REST_BY_DEFAULT: bool = false;
    const PAGE_FIELDS: &'static str = "jobsEnabled";
    const BATCH_FIELDS: &'static str =
        "deployPipelines: pipelines(updatedAfter: $after, first: 1) { nodes { id } }";

    type Value = Shipped;
    type Memo = Known;
    type Signal = ();

    fn wants_batch(project: &Project, _: &(), known: Option<&Known>) -> bool {
        project.jobs_enabled() && known.is_some_and(|k| !k.unreadable)
    }

    fn batch_after(known: Option<&Known>) -> Option<i64> {
        known.map(|k| k.window.from)
    }

    async fn fetch<'a>(
        current: Current<'a>,
        _: &'a (),
        known: Option<&'a Known>,
    ) -> Result<Fetched<Deployments>, Error> {
        let project = current.project;
        let client = current.client;
        let untouched = |value: bool| Fetched {
            value: known.filter(|_| value).map(|k| k.shipped.clone()),
            memo: known.cloned(),
        };
        if !project.jobs_enabled() {
            // Counters wait, should CI/CD come back.
            return Ok(untouched(false));
        }
        let scratch = current.fresh || known.is_none();
        if let Some(known) = known.filter(|_| !scratch) {
            if known.unreadable {
                return Ok(untouched(false));
            }
            // No pipeline moved since the window began: no job made a deployment.
            let moved = current.batched.is_none_or(|node| {
                node.pointer("/deployPipelines/nodes")
                    .and_then(Value::as_array)
                    .is_none_or(|nodes| !nodes.is_empty())
            });
            if !moved {
                return Ok(untouched(true));
            }
        }
        let asked_at = current.asked_at.filter(|_| !scratch).unwrap_or_else(|| gitlab_now(client));
        match read(client, project.id, current.options, known, scratch, asked_at).await {
            Ok(known) => Ok(Fetched {
                value: (!known.unreadable).then(|| known.shipped.clone()),
                memo: Some(known),
            }),
            Err(e) if matches!(e.status(), Some(403)) => {
                debug!(project = project.path_with_namespace, error = %e, "deployments not readable");
                let mut known = known.cloned().unwrap_or_else(|| Known {
                    shipped: Shipped::default(),
                    window: Window::start(asked_at, []),
                    tiers: Vec::new(),
                    unreadable: true,
                });
                known.unreadable = true;
                Ok(Fetched {
                    value: None,
                    memo: Some(known),
                })
            }
            Err(e) => Err(e),
        }
    }

    fn share(shipped: &mut Shipped, strings: &mut Interner) {
        for environment in &mut shipped.environments {
            environment.name = strings.get(&environment.name);
        }
    }

    fn share_memo(known: &mut Known, strings: &mut Interner) {
        Self::share(&mut known.shipped, strings);
        for (name, tier) in &mut known.tiers {
            *name = strings.get(name);
            if let Some(tier) = tier {
                *tier = strings.get(tier);
            }
        }
    }

    fn encode(rows: Rows<'_, Shipped>, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        let mut family = encoder.encode_descriptor(
            "gitlab_project_deployments",
            "Deployments to the environment that finished (success, failed, canceled) since the exporter first saw the project, each once; deployment frequency is the rate of status=\"success\". From zero at every restart; environments chosen by --collector.deployments.environments.",
            None,
            MetricType::Counter,
        )?;
        for ([id, path], shipped) in rows.iter() {
            for environment in &shipped.environments {
                for (status, count) in FINAL.iter().zip(environment.finished_total) {
                    family
                        .encode_family(&[
                            id,
                            path,
                            ("environment", &environment.name),
                            ("status", status),
                        ])?
                        .encode_counter::<NoLabelSet, _, u64>(&count, None)?;
                }
            }
        }
        let mut family = encoder.encode_descriptor(
            "gitlab_project_deployment_last_success_timestamp_seconds",
            "When the last successful deployment to the environment finished (Unix seconds).",
            None,
            MetricType::Gauge,
        )?;
        for ([id, path], shipped) in rows.iter() {
            for environment in &shipped.environments {
                if let Some(at) = environment.last_success {
                    family
                        .encode_family(&[id, path, ("environment", &environment.name)])?
                        .encode_gauge(&at)?;
                }
            }
        }
        encode_histograms(
            &rows,
            encoder,
            (
                "gitlab_project_lead_time_for_changes_seconds",
                "For each merge request shipped by a successful deployment counted by gitlab_project_deployments_total, the deployment's finish minus the merge (GitLab's lead time for changes, with GitLab's deployment to merge request link); buckets by --collector.deployments.lead-time-buckets.",
            ),
            |shipped| {
                shipped
                    .environments
                    .iter()
                    .map(|e| (Some(("environment", &*e.name)), &e.lead_time))
                    .collect()
            },
        )
    }
}

/// Reads the project's deployments since its window began (and, from scratch, its
/// environments and their last successes).
async fn read(
    client: &Client,
    id: u64,
    options: &super::Options,
    known: Option<&Known>,
    scratch: bool,
    asked_at: i64,
) -> Result<Known, Error> {
    let mut tiers = match known {
        Some(known) if !scratch => known.tiers.clone(),
        _ => list_environments(client, id).await?,
    };
    let from = known.map_or(asked_at - crate::collect::memory::OVERLAP.as_secs() as i64, |k| {
        k.window.from
    });
    let records = events::rest_list(
        client,
        endpoint::DEPLOYMENTS,
        format!("/projects/{id}/deployments"),
        vec![
            ("updated_after", format_timestamp(from)),
            ("order_by", "updated_at".to_owned()),
            ("sort", "asc".to_owned()),
        ],
    )
    .await?;
    let feed: Vec<Deployment> = records
        .iter()
        .filter_map(|r| match Deployment::parse(r) {
            Ok(d) => Some(d),
            Err(why) => {
                client.bad_record(endpoint::DEPLOYMENTS, &format!("project {id}: {why}"));
                None
            }
        })
        .collect();
    if feed
        .iter()
        .any(|d| !tiers.iter().any(|(name, _)| **name == *d.environment))
    {
        // A new environment: its tier decides whether it is exported.
        tiers = list_environments(client, id).await?;
    }
    let selectors = options.deployment_environments;
    let chosen = |name: &str| {
        let tier = tiers
            .iter()
            .find(|(n, _)| **n == *name)
            .and_then(|(_, t)| t.as_deref());
        selectors.iter().any(|s| s.matches(name, tier))
    };
    let settled = asked_at - SETTLE_SECONDS;
    let keys: Vec<Key> = feed
        .iter()
        .filter(|d| FINAL.contains(&d.status.as_str()) && chosen(&d.environment))
        .filter_map(Deployment::key)
        .filter(|k| k.at_ms <= settled * 1000)
        .collect();
    let mut shipped = known.map(|k| k.shipped.clone()).unwrap_or_default();
    // The chosen environments, each with its values so far.
    let mut environments: Vec<Environment> = Vec::new();
    for (name, _) in tiers.iter().filter(|(name, _)| chosen(name)) {
        let old = shipped.environments.iter().position(|e| e.name == *name);
        environments.push(match old {
            Some(i) => shipped.environments.swap_remove(i),
            None => Environment {
                name: Arc::clone(name),
                finished_total: [0; 3],
                last_success: None,
                lead_time: Histogram::new(options.lead_time_buckets),
            },
        });
    }
    // Environments gone from the list keep their counters while the project is watched.
    environments.append(&mut shipped.environments);
    let window = match known {
        Some(known) => {
            let mut window = known.window.clone();
            for key in window.advance(asked_at, keys) {
                let Some(deployment) = feed.iter().find(|d| d.key() == Some(key)) else {
                    continue;
                };
                let Some(environment) = environments
                    .iter_mut()
                    .find(|e| *e.name == *deployment.environment)
                else {
                    continue;
                };
                let Some(slot) = FINAL.iter().position(|s| *s == deployment.status) else {
                    continue;
                };
                environment.finished_total[slot] += 1;
                if deployment.status == "success" {
                    let finished = key.seconds();
                    environment.last_success = Some(environment.last_success.map_or(finished, |t| t.max(finished)));
                    for merged in merged_at(client, id, deployment.id).await? {
                        environment.lead_time.observe((finished - merged).max(0.0));
                    }
                }
            }
            window
        }
        None => Window::start(asked_at, keys),
    };
    if scratch {
        for environment in &mut environments {
            if let Some(at) = last_success(client, id, &environment.name).await? {
                environment.last_success = Some(environment.last_success.map_or(at, |t| t.max(at)));
            }
        }
    }
    environments.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Known {
        shipped: Shipped { environments },
        window,
        tiers,
        unreadable: false,
    })
}

/// The project's environments and their tiers (`GET /projects/:id/environments`).
async fn list_environments(
    client: &Client,
    id: u64,
) -> Result<Vec<(Arc<str>, Option<Arc<str>>)>, Error> {
    let records = events::rest_list(
        client,
        endpoint::ENVIRONMENTS,
        format!("/projects/{id}/environments"),
        Vec::new(),
    )
    .await?;
    Ok(records
        .iter()
        .filter_map(|r| {
            let name = r.get("name").and_then(Value::as_str)?;
            let tier = r.get("tier").and_then(Value::as_str);
            Some((name.into(), tier.map(Into::into)))
        })
        .collect())
}

/// When the environment's last successful deployment finished.
async fn last_success(client: &Client, id: u64, environment: &str) -> Result<Option<f64>, Error> {
    let reply = client
        .get::<Vec<Value>>(
            endpoint::DEPLOYMENTS,
            format!("/projects/{id}/deployments"),
            vec![
                ("environment", environment.to_owned()),
                ("status", "success".to_owned()),
                ("order_by", "finished_at".to_owned()),
                ("sort", "desc".to_owned()),
                ("per_page", "1".to_owned()),
            ],
        )
        .await?;
    Ok(reply
        .body
        .first()
        .and_then(|r| Deployment::parse(r).ok())
        .and_then(|d| d.finished_at)
        .and_then(|t| parse_timestamp(&t)))
}

/// The merge times of the merge requests a deployment shipped.
async fn merged_at(client: &Client, id: u64, deployment: u64) -> Result<Vec<f64>, Error> {
    let records = events::rest_list(
        client,
        endpoint::DEPLOYMENT_MERGE_REQUESTS,
        format!("/projects/{id}/deployments/{deployment}/merge_requests"),
        Vec::new(),
    )
    .await?;
    Ok(records
        .iter()
        .filter_map(|r| r.get("merged_at").and_then(Value::as_str))
        .filter_map(parse_timestamp)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors() {
        assert_eq!(
            parse_selectors("tier:production").unwrap(),
            &[Selector::Tier("production")]
        );
        assert_eq!(
            parse_selectors("name:live, tier:staging").unwrap(),
            &[Selector::Name("live"), Selector::Tier("staging")]
        );
        assert!(parse_selectors("tier:prod").unwrap_err().contains("not a GitLab deployment tier"));
        assert!(parse_selectors("live").unwrap_err().contains("expected tier"));
        assert!(parse_selectors("").is_err());
    }

    #[test]
    fn a_deployment_finishes_with_its_job_or_its_last_update() {
        let by_job = serde_json::json!({
            "id": 7, "status": "success", "environment": { "name": "production" },
            "updated_at": "2026-12-01T10:05:00Z",
            "deployable": { "finished_at": "2026-12-01T10:04:00Z" }
        });
        let d = Deployment::parse(&by_job).unwrap();
        assert_eq!(d.finished_at.as_deref(), Some("2026-12-01T10:04:00Z"));
        let by_api = serde_json::json!({
            "id": 8, "status": "failed", "environment": { "name": "production" },
            "updated_at": "2026-12-01T10:05:00Z", "deployable": null
        });
        assert_eq!(
            Deployment::parse(&by_api).unwrap().finished_at.as_deref(),
            Some("2026-12-01T10:05:00Z")
        );
        let running = serde_json::json!({
            "id": 9, "status": "running", "environment": { "name": "production" },
            "updated_at": "2026-12-01T10:05:00Z", "deployable": null
        });
        assert_eq!(Deployment::parse(&running).unwrap().finished_at, None);
    }
}
