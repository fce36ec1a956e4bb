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

use super::events::{self, Histogram, Key, Window, encode_histograms, gitlab_now};
use super::{Current, Family, Fetched, Interner, Rows};
use crate::gitlab::types::{Page, Project, format_timestamp, parse_timestamp};
use crate::gitlab::{Client, Error, endpoint};

/// The `deployments` family (see the module's docs).
#[derive(Debug)]
pub(crate) struct Deployments;

/// The final statuses counted, in the order of [`Environment::finished_total`].
const FINAL: [&str; 3] = ["success", "failed", "canceled"];

/// The successful deployments read of a project with environments read from scratch: their
/// environments' last successes.
const LAST_SUCCESSES: usize = 20;

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
    /// Shared with the exported value, and from one collection to the next while unchanged.
    shipped: Arc<Shipped>,
    /// The deployment feed's: it moves only when the feed is read.
    window: Window,
    /// Where the next signal (any pipeline updated since?) starts: the last collection that
    /// asked it, minus the overlap. It moves at every collection, so that a quiet project's old
    /// feed window makes no other project of its batch look busy.
    signal_from: i64,
    /// Every environment's tier (`None`: none given), as last listed.
    tiers: Vec<(Arc<str>, Option<Arc<str>>)>,
    /// GitLab refused the project's deployments (environments or CI/CD off, or not allowed):
    /// no call until its next re-read from scratch.
    unreadable: bool,
}

/// One deployment of a list, with only the fields read (GitLab's deployment embeds its job,
/// pipeline, user and commit: decoded as they stream past, never kept).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(try_from = "RawDeployment")]
struct Deployment {
    id: u64,
    status: String,
    environment: String,
    /// When it finished: its job's finish, or (made through the API, without a job) its last
    /// update once final.
    finished_at: Option<String>,
}

#[derive(serde::Deserialize)]
struct RawDeployment {
    id: u64,
    status: String,
    environment: Named,
    #[serde(default)]
    deployable: Option<Finish>,
    #[serde(default)]
    updated_at: Option<String>,
}

#[derive(serde::Deserialize)]
struct Named {
    name: String,
}

#[derive(serde::Deserialize)]
struct Finish {
    #[serde(default)]
    finished_at: Option<String>,
}

impl TryFrom<RawDeployment> for Deployment {
    type Error = String;

    fn try_from(raw: RawDeployment) -> Result<Deployment, String> {
        let finished_at = raw
            .deployable
            .and_then(|job| job.finished_at)
            .or_else(|| raw.updated_at.filter(|_| FINAL.contains(&raw.status.as_str())));
        Ok(Deployment {
            id: raw.id,
            status: raw.status,
            environment: raw.environment.name,
            finished_at,
        })
    }
}

impl Deployment {
    fn key(&self) -> Option<Key> {
        Key::at(self.id, self.finished_at.as_deref()?)
    }
}

/// An environment of the project's list: its name and tier.
#[derive(Debug, serde::Deserialize)]
struct EnvironmentRecord {
    name: String,
    #[serde(default)]
    tier: Option<String>,
}

/// A merge request a deployment shipped: when it was merged.
#[derive(Debug, serde::Deserialize)]
struct Shipment {
    #[serde(default)]
    merged_at: Option<String>,
}

impl Family for Deployments {
    const ABOUT: &'static str = "deployments to the chosen environments (default: production tier), lead time for changes and the last successful deployment (over REST, only for projects whose pipelines moved, as GraphQL's batches say; one call per new successful deployment; with --gitlab.api rest, where it costs a call per project and collection, only when asked for by name)";
    const COUNTS_EVENTS: bool = true;
    const REST_BY_DEFAULT: bool = false;
    const PAGE_FIELDS: &'static str = "jobsEnabled";
    const BATCH_FIELDS: &'static str =
        "deployPipelines: pipelines(updatedAfter: $after, first: 1) { nodes { id } }";

    type Value = Arc<Shipped>;
    type Memo = Known;
    type Signal = ();

    fn wants_batch(project: &Project, _: &(), known: Option<&Known>) -> bool {
        project.jobs_enabled() && known.is_some_and(|k| !k.unreadable)
    }

    fn batch_after(known: Option<&Known>) -> Option<i64> {
        known.map(|k| k.signal_from)
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
        let asked_at = current.asked_at.unwrap_or_else(|| gitlab_now(client));
        if let Some(known) = known.filter(|_| !scratch) {
            if known.unreadable {
                return Ok(untouched(false));
            }
            let moved = match current.batched {
                Some(node) => node
                    .pointer("/deployPipelines/nodes")
                    .and_then(Value::as_array)
                    .is_none_or(|nodes| !nodes.is_empty()),
                // Asked in a batch GitLab did not answer: kept, not read call by call.
                None if current.batch_asked => {
                    return Err(events::unbatched("deployments"));
                }
                // Over REST: no signal.
                None => true,
            };
            if !moved {
                // No pipeline moved since the last collection: no job made a deployment. The
                // feed's window stays; the signal's moves on.
                let mut known = known.clone();
                known.signal_from = events::overlapped(asked_at);
                return Ok(Fetched {
                    value: Some(known.shipped.clone()),
                    memo: Some(known),
                });
            }
        }
        match read(client, project.id, current.options, known, scratch, asked_at).await {
            Ok(known) => Ok(Fetched {
                value: (!known.unreadable).then(|| known.shipped.clone()),
                memo: Some(known),
            }),
            Err(e) if matches!(e.status(), Some(403)) => {
                debug!(project = project.path_with_namespace, error = %e, "deployments not readable");
                let mut known = known.cloned().unwrap_or_else(|| Known {
                    shipped: Arc::default(),
                    window: Window::start(asked_at, []),
                    signal_from: asked_at,
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

    fn share_memo(known: &mut Known, strings: &mut Interner) {
        for (name, tier) in &mut known.tiers {
            *name = strings.get(name);
            if let Some(tier) = tier {
                *tier = strings.get(tier);
            }
        }
    }

    fn encode(rows: Rows<'_, Arc<Shipped>>, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
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

/// Reads the project's deployments since its window began. From scratch, its environments'
/// tiers and, when it has any, its last successful deployments (one call: their environments'
/// last successes); a project seen for the first time starts its window now (what happened
/// before is history).
async fn read(
    client: &Client,
    id: u64,
    options: &super::Options,
    known: Option<&Known>,
    scratch: bool,
    asked_at: i64,
) -> Result<Known, Error> {
    let deployments = format!("/projects/{id}/deployments");
    let mut tiers = known.map(|k| k.tiers.clone()).unwrap_or_default();
    let mut successes: Vec<Deployment> = Vec::new();
    if scratch {
        tiers = list_environments(client, id).await?;
    }
    if scratch && !tiers.is_empty() {
        // Over all environments (a deployment's record is big: it embeds its job, pipeline,
        // user and commit).
        successes = last_successes(client, id, None, LAST_SUCCESSES).await?;
    }
    // Seen for the first time: no feed, the window starts now.
    let feed: Vec<Deployment> = match known {
        Some(known) => {
            let records = events::rest_list::<Deployment>(
                client,
                endpoint::DEPLOYMENTS,
                deployments.clone(),
                vec![
                    ("updated_after", format_timestamp(known.window.from)),
                    ("order_by", "updated_at".to_owned()),
                    ("sort", "asc".to_owned()),
                ],
            )
            .await?;
            if !records.complete {
                // Counting goes on from now, the rest is not counted.
                let mut known = known.clone();
                known.window = events::after_cut(client, "deployments", asked_at);
                known.signal_from = events::overlapped(asked_at);
                return Ok(known);
            }
            records.records
        }
        None => Vec::new(),
    };
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
    let mut shipped = known.map(|k| (*k.shipped).clone()).unwrap_or_default();
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
                    environment.last_success =
                        Some(environment.last_success.map_or(finished, |t| t.max(finished)));
                    for merged in merged_at(client, id, deployment.id).await? {
                        environment.lead_time.observe((finished - merged).max(0.0));
                    }
                }
            }
            window
        }
        None => Window::from(asked_at),
    };
    if scratch {
        for environment in &mut environments {
            let latest = successes
                .iter()
                .filter(|d| *d.environment == *environment.name)
                .filter_map(|d| d.finished_at.as_deref().and_then(parse_timestamp))
                .reduce(f64::max);
            // Not among the last successes of the project: asked on its own.
            let at = match latest {
                Some(at) => Some(at),
                None if successes.len() >= LAST_SUCCESSES => {
                    last_successes(client, id, Some(&environment.name), 1)
                        .await?
                        .first()
                        .and_then(|d| d.finished_at.as_deref())
                        .and_then(parse_timestamp)
                }
                None => None,
            };
            if let Some(at) = at {
                environment.last_success = Some(environment.last_success.map_or(at, |t| t.max(at)));
            }
        }
    }
    environments.sort_by(|a, b| a.name.cmp(&b.name));
    let shipped = Shipped { environments };
    Ok(Known {
        // Unchanged: the same allocation as last time.
        shipped: match known {
            Some(known) if *known.shipped == shipped => Arc::clone(&known.shipped),
            _ => Arc::new(shipped),
        },
        window,
        signal_from: events::overlapped(asked_at),
        tiers,
        unreadable: false,
    })
}

/// The project's environments and their tiers (`GET /projects/:id/environments`).
async fn list_environments(
    client: &Client,
    id: u64,
) -> Result<Vec<(Arc<str>, Option<Arc<str>>)>, Error> {
    let records = events::rest_list::<EnvironmentRecord>(
        client,
        endpoint::ENVIRONMENTS,
        format!("/projects/{id}/environments"),
        Vec::new(),
    )
    .await?;
    // A project with more than 10,000 environments: those read.
    Ok(records
        .records
        .into_iter()
        .map(|r| (r.name.into(), r.tier.map(Into::into)))
        .collect())
}

/// The project's last `count` successful deployments, the latest finished first, to one
/// environment or to all; each bad record costs only itself.
async fn last_successes(
    client: &Client,
    id: u64,
    environment: Option<&str>,
    count: usize,
) -> Result<Vec<Deployment>, Error> {
    let mut query = vec![
        ("status", "success".to_owned()),
        ("order_by", "finished_at".to_owned()),
        ("sort", "desc".to_owned()),
        ("per_page", count.to_string()),
    ];
    if let Some(environment) = environment {
        query.push(("environment", environment.to_owned()));
    }
    let reply = client
        .get::<Page<Deployment>>(
            endpoint::DEPLOYMENTS,
            format!("/projects/{id}/deployments"),
            query,
        )
        .await?;
    for why in &reply.body.dropped {
        client.bad_record(endpoint::DEPLOYMENTS, why);
    }
    Ok(reply.body.items)
}

/// The merge times of the merge requests a deployment shipped.
async fn merged_at(client: &Client, id: u64, deployment: u64) -> Result<Vec<f64>, Error> {
    let records = events::rest_list::<Shipment>(
        client,
        endpoint::DEPLOYMENT_MERGE_REQUESTS,
        format!("/projects/{id}/deployments/{deployment}/merge_requests"),
        Vec::new(),
    )
    .await?;
    // A first deployment links every merged merge request of its branch: past 10,000, those
    // read.
    Ok(records
        .records
        .iter()
        .filter_map(|r| r.merged_at.as_deref())
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
        let d: Deployment = serde_json::from_value(by_job).unwrap();
        assert_eq!(d.finished_at.as_deref(), Some("2026-12-01T10:04:00Z"));
        let by_api = serde_json::json!({
            "id": 8, "status": "failed", "environment": { "name": "production" },
            "updated_at": "2026-12-01T10:05:00Z", "deployable": null
        });
        assert_eq!(
            serde_json::from_value::<Deployment>(by_api).unwrap().finished_at.as_deref(),
            Some("2026-12-01T10:05:00Z")
        );
        let running = serde_json::json!({
            "id": 9, "status": "running", "environment": { "name": "production" },
            "updated_at": "2026-12-01T10:05:00Z", "deployable": null
        });
        assert_eq!(
            serde_json::from_value::<Deployment>(running).unwrap().finished_at,
            None
        );
    }
}
