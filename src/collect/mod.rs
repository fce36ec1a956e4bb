//! One collection: the projects in scope ([`scope`]), then for each project, concurrently, the
//! calls of every enabled metric family ([`families`]), gathered into a [`Snapshot`] of data.
//!
//! A project that disappears between the listing and its own calls is left out. A family's
//! call that fails for another reason keeps that family's last good values for the project
//! ([`stale`]: for up to `--cache.max-stale`, then they are left out), is logged, and fails
//! nothing else. Only a failed listing fails the collection (`gitlab_up 0`); the last good
//! projects are then served again, for up to `--cache.max-stale`.

pub(crate) mod families;
pub(crate) mod graphql;
mod memory;
mod scope;
pub(crate) mod stale;

pub use graphql::Api;
pub use scope::Scope;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::gitlab::types::{Project, host_time};
use crate::gitlab::{Client, Error, encode_segment, endpoint};
use crate::redact::redact;
use families::{Batched, Clients, Context, Found, Id, Interner, Report, Row, Set, Signals, Tally};
use memory::{Memory, OVERLAP, Remembered};
use scope::Candidate;
use stale::LastGood;

/// When a collection finished, on both clocks.
#[derive(Debug, Clone, Copy)]
pub struct Stamp {
    /// For ages and the cache's TTL.
    pub at: Instant,
    /// For `gitlab_exporter_last_success_timestamp_seconds`.
    pub wall: SystemTime,
}

impl Stamp {
    /// Now.
    pub fn now() -> Stamp {
        Stamp {
            at: Instant::now(),
            wall: SystemTime::now(),
        }
    }
}

/// The outcome of one collection: what GitLab said, when, and at what cost.
#[derive(Debug, Clone, Default)]
pub struct Collected {
    /// Why the collection failed (`gitlab_up 0`); `None` when it succeeded.
    pub error: Option<String>,
    /// The projects served, by id: this collection's or, when it failed, the last successful
    /// one's (while younger than `--cache.max-stale`).
    pub(crate) projects: Arc<Vec<Row>>,
    /// When the collection that listed `projects` finished; `None` when there is no data to
    /// serve (no success yet, or too old): the per-project families are then left out.
    pub projects_from: Option<Stamp>,
    /// The families enabled.
    pub(crate) enabled: Set,
    /// How each enabled family fared.
    pub(crate) families: Vec<Report>,
    /// Wall time of the collection.
    pub duration: Duration,
    /// API calls it made, retries included.
    pub api_calls: u64,
    /// Projects exported with an earlier collection's values or none for some family, because
    /// a call failed.
    pub incomplete_projects: u64,
    /// Not a collection: what is served while the first one is still running.
    pub pending: bool,
    /// The limit that made the collection give up (`max_projects`, `timeout`), if one did.
    pub aborted: Option<&'static str>,
}

/// A collection: its data, and when it finished.
#[derive(Debug)]
pub struct Snapshot {
    /// The collection.
    pub data: Arc<Collected>,
    /// When it finished, for the cache's TTL and the served data's age.
    pub finished: Instant,
    /// The oldest `kept_since` of its projects: kept values to leave out after max-stale.
    kept_since: Option<Instant>,
}

impl Snapshot {
    /// A collection that just finished.
    pub fn new(data: Collected) -> Snapshot {
        Snapshot::finished_at(data, Instant::now())
    }

    /// A collection that finished at `finished`.
    fn finished_at(data: Collected, finished: Instant) -> Snapshot {
        Snapshot {
            kept_since: data.projects.iter().filter_map(|p| p.kept_since).min(),
            data: Arc::new(data),
            finished,
        }
    }

    /// A collection that could not run at all.
    pub fn failed(reason: String) -> Snapshot {
        Snapshot::new(Collected {
            error: Some(reason),
            ..Collected::default()
        })
    }

    /// What a scrape serves when the first collection has not finished in its time: no data.
    pub fn pending() -> Snapshot {
        Snapshot::new(Collected {
            pending: true,
            ..Collected::default()
        })
    }

    /// True when the collection succeeded.
    pub fn is_success(&self) -> bool {
        self.data.error.is_none() && !self.data.pending
    }

    /// Age of the project data served, if any.
    pub fn data_age(&self) -> Option<Duration> {
        self.data.projects_from.map(|s| s.at.elapsed())
    }
}

/// What one collection may cost at most: past either, it is abandoned (a failure, the last
/// good data kept), so that a GitLab or proxy announcing pages without end cannot make a
/// collection that never ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Projects the listings may return (`--collect.max-projects`).
    pub max_projects: u64,
    /// Wall time (`--collect.timeout`).
    pub timeout: Duration,
}

impl Default for Limits {
    /// The flags' defaults.
    fn default() -> Limits {
        Limits {
            max_projects: 500_000,
            timeout: Duration::from_secs(3600),
        }
    }
}

/// How collections run, from the flags.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// The client's limit on calls in flight; about as many projects are worked on at once,
    /// so that the limit, not the fan-out, is what binds.
    pub concurrency: usize,
    /// Every project is counted from scratch at least once per this interval (zero: at every
    /// collection).
    pub full_refresh_interval: Duration,
    /// Values whose calls fail are kept for up to this long.
    pub max_stale: Duration,
    /// A collection past these is abandoned.
    pub limits: Limits,
    /// The metric families collected (`--collector.<name>`).
    pub families: Collectors,
    /// Which API collects (`--gitlab.api`).
    pub api: Api,
    /// Projects per batched GraphQL query (`--gitlab.graphql.batch-size`).
    pub batch_size: usize,
    /// The families' own flags.
    pub(crate) options: families::Options,
}

/// Which metric families are collected: `--collector.<name>` / `--no-collector.<name>`, and
/// which of them were asked for by name (over REST, those that cost calls per project at
/// every collection run only then: [`families::Family::REST_BY_DEFAULT`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Collectors(pub(crate) Set, pub(crate) Set);

impl Default for Collectors {
    /// Those on by default.
    fn default() -> Collectors {
        Collectors(Set::defaults(), Set::EMPTY)
    }
}

impl Collectors {
    /// Every family's name, what it exports, and whether it is on by default.
    pub fn known() -> impl Iterator<Item = (&'static str, &'static str, bool)> {
        Id::ALL
            .into_iter()
            .map(|id| (id.name(), id.about(), id.default_enabled()))
    }

    /// The same with the family `name` switched on or off; `None` for an unknown name.
    pub fn switched(self, name: &str, on: bool) -> Option<Collectors> {
        let id = Id::ALL.into_iter().find(|id| id.name() == name)?;
        Some(if on {
            Collectors(self.0.with(id), self.1.with(id))
        } else {
            Collectors(self.0.without(id), self.1.without(id))
        })
    }

    /// The families a collection runs: over REST, without those whose REST calls grow with
    /// the projects at every collection, unless they were asked for by name.
    pub(crate) fn for_api(self, over_rest: bool) -> Set {
        if !over_rest {
            return self.0;
        }
        self.0
            .iter()
            .filter(|id| id.rest_by_default() || self.1.contains(*id))
            .fold(Set::EMPTY, Set::with)
    }

    /// The names of the families on.
    pub fn names(self) -> Vec<&'static str> {
        self.0.iter().map(Id::name).collect()
    }
}

/// Runs collections for one scope through one client, each re-reading only what changed since
/// the last (see [`memory`]).
#[derive(Debug, Clone)]
pub struct Collector {
    client: Client,
    scope: Scope,
    settings: Settings,
    fan_out: usize,
    memory: Arc<Mutex<Arc<Memory>>>,
    /// The last successful collection's projects, for failures to fall back on.
    last_good: Arc<Mutex<Option<LastGood>>>,
    /// What the GraphQL path learned (sizes GitLab accepts, whether it has GraphQL at all).
    graphql: Arc<graphql::State>,
}

impl Collector {
    /// A collector for `scope`.
    pub fn new(client: Client, scope: Scope, settings: Settings) -> Collector {
        Collector {
            client,
            scope,
            fan_out: settings.concurrency.max(1) * 2,
            settings,
            memory: Arc::default(),
            last_good: Arc::default(),
            graphql: Arc::new(graphql::State::new(settings.batch_size)),
        }
    }

    /// Runs one collection. Never fails: a failure is a snapshot with `gitlab_up 0` and a log
    /// line saying why.
    pub async fn collect(&self) -> Snapshot {
        let started = Instant::now();
        let settings = self.settings;
        let client = self.client.for_collection();
        let enabled = settings
            .families
            .for_api(settings.api == Api::Rest || client.graphql_unavailable());
        let tally = Tally::default();
        let clients = tally.clients(&client);
        // Kept even with re-reads at every collection: the counting families go on from it.
        let memory = Arc::clone(&self.memory.lock().unwrap_or_else(|e| e.into_inner()));
        // Pages of candidates: a few ahead of the work on them.
        let (sink, mut pages) = tokio::sync::mpsc::channel::<Vec<Candidate>>(4);
        let mut known_ids: Vec<u64> = memory.projects.keys().copied().collect();
        known_ids.sort_unstable();
        let run = (settings.api == Api::Graphql && !client.graphql_unavailable())
            .then(|| graphql::Run::new(&client, &self.graphql));
        let fields = graphql::page_fields(enabled);
        let listing = scope::resolve(
            &client,
            &self.scope,
            &known_ids,
            settings.limits.max_projects,
            run.as_ref().map(|run| (run, fields.as_str())),
            sink,
        );
        let last_good = self
            .last_good
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let work = async {
            // The change signals are asked while the listing starts; the projects' calls wait
            // for them, the listing does not.
            let remembered = memory
                .projects
                .iter()
                .filter(|(_, r)| r.complete)
                .map(|(id, r)| (*id, &r.memos));
            // Nothing is reused when every collection re-reads everything: no signal to ask.
            let since = memory
                .since
                .filter(|_| !settings.full_refresh_interval.is_zero());
            let signals = Signals::ask(&clients, enabled, since, remembered).await;
            let shared = Shared {
                client: &client,
                clients: &clients,
                tally: &tally,
                started,
                enabled,
                memory: &memory,
                signals: &signals,
                // The detail call is counted as the first family's that needs it.
                detail_client: enabled
                    .iter()
                    .find(|id| id.needs_statistics())
                    .map(|id| clients.of(id)),
                now: Instant::now(),
                interval: settings.full_refresh_interval,
                graphql: run.as_ref(),
                options: &settings.options,
            };
            // Each page's batched GraphQL queries, a few pages at a time; then each project's
            // own calls (none, mostly, over GraphQL).
            let projects = futures::stream::poll_fn(|cx| pages.poll_recv(cx))
                .map(|page| prefetch(&shared, page))
                .buffer_unordered(settings.concurrency.clamp(1, PAGES_AHEAD))
                .flat_map(futures::stream::iter)
                .map(|(candidate, batched)| collect_project(&shared, candidate, batched))
                .buffer_unordered(self.fan_out);
            let fallback = stale::Fallback {
                last_good: last_good.as_ref(),
                max_stale: settings.max_stale,
            };
            (
                Gathered::from_stream(projects, &memory, fallback).await,
                signals.changed(),
            )
        };
        let only_named =
            !self.scope.is_membership() && !self.scope.all_projects && self.scope.groups.is_empty();
        let timeout = settings.limits.timeout;
        let outcome =
            match tokio::time::timeout(timeout, async { futures::join!(listing, work) }).await {
                Ok((listed, (gathered, changed))) => listed
                    .and_then(|()| gathered.into_result(only_named))
                    .map(|gathered| (gathered, changed)),
                // The calls still out end on their own (each within --gitlab.request-timeout).
                Err(_) => Err(Error::Limit {
                    endpoint: "",
                    limit: "timeout",
                    detail: format!(
                        "the collection ran longer than --collect.timeout ({timeout:?}) and was \
                     abandoned"
                    ),
                }),
            };
        let duration = started.elapsed();
        let api_calls = client.calls();
        let data = match outcome {
            Ok((mut gathered, changed)) => {
                if let Some(first) = &gathered.first_error {
                    warn!(
                        incomplete_projects = gathered.incomplete,
                        first_error = %first,
                        "collection finished with project calls failing; the series they feed are left out"
                    );
                }
                info!(
                    projects = gathered.projects.len(),
                    changed_since_last = changed,
                    api_calls,
                    unusable_records = client.bad_records(),
                    duration = ?duration,
                    "collection finished"
                );
                let since = client.gitlab_time().unwrap_or_else(|| {
                    warn!("GitLab sent no Date header (a proxy may strip it): change queries use the clock of this host");
                    host_time()
                }) - OVERLAP.as_secs() as i64;
                let next = Memory {
                    since: Some(since),
                    projects: std::mem::take(&mut gathered.remembered),
                };
                *self.memory.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
                gathered.projects.sort_by_key(|p| p.id);
                let projects = Arc::new(gathered.projects);
                let stamp = Stamp::now();
                *self.last_good.lock().unwrap_or_else(|e| e.into_inner()) = Some(LastGood {
                    projects: Arc::clone(&projects),
                    stamp,
                });
                Collected {
                    error: None,
                    projects,
                    projects_from: Some(stamp),
                    enabled,
                    families: tally.reports(enabled, true),
                    duration,
                    api_calls,
                    incomplete_projects: gathered.incomplete,
                    pending: false,
                    aborted: None,
                }
            }
            Err(e) => {
                let kept = stale::last_good_to_serve(last_good, settings.max_stale);
                warn!(
                    error = %e,
                    api_calls,
                    serving_data_from = ?kept.as_ref().map(|(_, stamp)| stamp.at.elapsed()),
                    "collection failed"
                );
                let (projects, projects_from) =
                    kept.map_or((Arc::default(), None), |(p, s)| (p, Some(s)));
                Collected {
                    error: Some(e.to_string()),
                    projects,
                    projects_from,
                    enabled,
                    families: tally.reports(enabled, false),
                    duration,
                    api_calls,
                    incomplete_projects: 0,
                    pending: false,
                    aborted: e.limit(),
                }
            }
        };
        Snapshot::new(data)
    }
}

/// Pages whose batched GraphQL queries run at once: a page's answer holds every family's
/// fields of its 100 projects until they are collected, and a few pages ahead are enough to
/// keep the calls in flight.
const PAGES_AHEAD: usize = 4;

/// What every project's calls share within one collection.
struct Shared<'a> {
    client: &'a Client,
    clients: &'a Clients,
    tally: &'a Tally,
    started: Instant,
    enabled: Set,
    memory: &'a Memory,
    signals: &'a Signals,
    /// The client of projects' detail calls, when an enabled family needs their statistics.
    detail_client: Option<&'a Client>,
    now: Instant,
    interval: Duration,
    /// The collection's GraphQL, unless it runs over REST.
    graphql: Option<&'a graphql::Run<'a>>,
    options: &'a families::Options,
}

/// The GraphQL batches of one page of candidates: for each enabled family with batch fields,
/// the projects that need them, asked `--gitlab.graphql.batch-size` at a time, all at once.
/// Over REST, or for a family GitLab refused, nothing: its calls are then REST calls.
async fn prefetch(shared: &Shared<'_>, page: Vec<Candidate>) -> Vec<(Candidate, Batched)> {
    let mut out: Vec<(Candidate, Batched)> =
        page.into_iter().map(|c| (c, Batched::default())).collect();
    let Some(run) = shared.graphql else {
        return out;
    };
    // Feeds start OVERLAP before GitLab's clock for projects seen for the first time.
    let asked_at = shared.client.gitlab_time().unwrap_or_else(host_time);
    let first_after = families::events::overlapped(asked_at);
    let wanted: Vec<(Id, Vec<(u64, i64)>)> = shared
        .enabled
        .iter()
        .filter(|id| !id.batch_fields().is_empty() && run.batches(*id))
        .map(|id| {
            let ids = out
                .iter()
                .filter_map(|(candidate, _)| match candidate {
                    Candidate::Listed(p) | Candidate::FromGroup(p) => {
                        let plan = shared.memory.plan(p.id, shared.now);
                        id.wants_batch(p, shared.signals, plan.memos, plan.carried)
                            .then(|| (p.id, id.batch_after(plan.carried).unwrap_or(first_after)))
                    }
                    Candidate::Named(_) => None,
                })
                .collect();
            (id, ids)
        })
        .filter(|(_, ids): &(Id, Vec<(u64, i64)>)| !ids.is_empty())
        .collect();
    // All the families' batches of the page in one query when GitLab takes it; else each
    // family's on its own.
    let parts: Vec<(Id, &[(u64, i64)])> = wanted.iter().map(|(id, ids)| (*id, &ids[..])).collect();
    let combined = match parts.first() {
        Some((first, _)) if parts.len() > 1 => {
            run.combined(shared.clients.of(*first), &parts).await
        }
        _ => None,
    };
    let answers = match combined {
        Some(answers) => answers,
        None => {
            futures::future::join_all(
                wanted
                    .iter()
                    .map(|(id, ids)| run.batch(shared.clients.of(*id), *id, ids)),
            )
            .await
        }
    };
    for ((id, ids), mut nodes) in wanted.into_iter().zip(answers) {
        for (candidate, batched) in &mut out {
            if let Candidate::Listed(p) | Candidate::FromGroup(p) = candidate {
                batched.nodes[id as usize] = nodes.remove(&p.id);
                batched.asked_at = Some(asked_at);
                if ids.iter().any(|(asked, _)| *asked == p.id) {
                    batched.asked = batched.asked.with(id);
                }
            }
        }
    }
    out
}

/// The projects of a collection, what went wrong on the way, and what to remember.
struct Gathered<'a> {
    fallback: stale::Fallback<'a>,
    /// The last collection's memory: a named project kept whole keeps it too.
    memory: &'a Memory,
    projects: Vec<Row>,
    remembered: HashMap<u64, Remembered>,
    seen: std::collections::HashSet<u64>,
    strings: Interner,
    /// Exported projects with a family left out by a failed call.
    incomplete: u64,
    /// Named projects whose detail call failed (other than not found).
    failed_named: u64,
    /// Named projects exported with the last good values only (their detail call failed).
    kept_named: u64,
    /// The first failure, to say why in the log.
    first_error: Option<Error>,
    /// A call was answered 401: the token was rejected.
    unauthorized: Option<Error>,
}

impl<'a> Gathered<'a> {
    async fn from_stream(
        mut outcomes: impl futures::Stream<Item = Outcome> + Unpin,
        memory: &'a Memory,
        fallback: stale::Fallback<'a>,
    ) -> Gathered<'a> {
        let expected = memory.projects.len();
        // Sized for about as many projects as last time: no growth on the way at 100,000.
        let mut gathered = Gathered {
            fallback,
            memory,
            projects: Vec::with_capacity(expected),
            remembered: HashMap::with_capacity(expected),
            seen: std::collections::HashSet::with_capacity(expected),
            strings: Interner::default(),
            incomplete: 0,
            failed_named: 0,
            kept_named: 0,
            first_error: None,
            unauthorized: None,
        };
        while let Some(outcome) = outcomes.next().await {
            match outcome {
                // A named project may also have been listed under another reference.
                Outcome::Exported(exported) if !gathered.seen.insert(exported.id) => {}
                Outcome::Exported(exported) => gathered.add(*exported),
                Outcome::Gone => {}
                Outcome::Failed(reference, error) => {
                    gathered.failed_named += 1;
                    gathered.keep_named(&reference);
                    gathered.note(error);
                }
            }
        }
        gathered
    }

    /// Keeps an exported project, and remembers it; when a call failed, it is counted from
    /// scratch next time (but for the counting families' memos), and the failed families keep
    /// their last good values.
    fn add(&mut self, exported: Exported) {
        let Exported {
            id,
            path,
            found,
            statistics_hidden,
            refresh_at,
        } = exported;
        let Found {
            mut values,
            mut memos,
            failed,
            error,
            gone: _,
        } = found;
        values.share(&mut self.strings);
        let mut row = Row {
            id,
            path,
            values,
            kept: Set::EMPTY,
            kept_since: None,
        };
        memos.share(&mut self.strings);
        self.remembered.insert(
            id,
            Remembered {
                memos,
                statistics_hidden,
                refresh_at,
                complete: failed.is_empty(),
            },
        );
        if !failed.is_empty() {
            self.incomplete += 1;
            if let Some(error) = error {
                self.note(error);
            }
            self.fallback.keep_last_good(&mut row, failed);
        }
        self.projects.push(row);
    }

    /// A named project whose own detail call failed: its last good row, whole, while it is
    /// younger than `--cache.max-stale`.
    fn keep_named(&mut self, reference: &str) {
        let Some(row) = self.fallback.named_row(reference) else {
            return;
        };
        if !self.seen.insert(row.id) {
            return;
        }
        // Its counting families go on from what they remembered (read from scratch next time).
        if let Some(known) = self.memory.projects.get(&row.id) {
            self.remembered.insert(
                row.id,
                Remembered {
                    complete: false,
                    ..known.clone()
                },
            );
        }
        self.projects.push(row);
        self.incomplete += 1;
        self.kept_named += 1;
    }

    fn note(&mut self, error: Error) {
        if matches!(error, Error::Unauthorized { .. }) {
            self.unauthorized.get_or_insert(error);
        } else {
            self.first_error.get_or_insert(error);
        }
    }

    /// Whether the collection as a whole succeeded: not when GitLab rejected the token, nor when
    /// the scope is only named projects and none of them could be read (GitLab unreachable).
    fn into_result(mut self, only_named: bool) -> Result<Gathered<'a>, Error> {
        if let Some(error) = self.unauthorized.take() {
            return Err(error);
        }
        let fresh = self.projects.len() as u64 - self.kept_named;
        if only_named && fresh == 0 && self.failed_named > 0 {
            if let Some(error) = self.first_error.take() {
                return Err(error);
            }
        }
        Ok(self)
    }
}

/// What became of one project.
enum Outcome {
    /// Exported (some families may have failed).
    Exported(Box<Exported>),
    /// Not found: deleted after the listing, or a named project that does not exist.
    Gone,
    /// A named project that could not be read.
    Failed(String, Error),
}

/// What one project's calls found.
struct Exported {
    id: u64,
    path: Box<str>,
    found: Found,
    statistics_hidden: bool,
    /// When its counts are next due for a re-read from scratch.
    refresh_at: Instant,
}

/// The calls of one project, as few as the memory allows: its detail call when a family needs
/// statistics the listing did not give, then every enabled family's. A 404 "Project Not
/// Found" on any of them means the project disappeared after the listing: it is left out.
async fn collect_project(shared: &Shared<'_>, candidate: Candidate, batched: Batched) -> Outcome {
    let (listed, from_group) = match candidate {
        Candidate::Listed(project) => (project, false),
        Candidate::FromGroup(listed) => (listed, true),
        Candidate::Named(reference) => match project_detail(shared.client, reference.clone()).await
        {
            Ok(project) => (project, false),
            Err(e) if e.is_project_not_found() => {
                warn!(
                    project = reference,
                    "project not found or not visible to the token; left out"
                );
                return Outcome::Gone;
            }
            Err(e) => return Outcome::Failed(reference, e),
        },
    };
    let plan = shared.memory.plan(listed.id, shared.now);
    // A group listing has no statistics: they only come with the project itself, unless it is
    // known to hide them. The families that do not use them go at once.
    let detail = shared
        .detail_client
        .filter(|_| from_group && !plan.statistics_hidden)
        .map(|client| project_detail(client, listed.id.to_string()));
    let mut found = Found::default();
    let early = Context {
        clients: shared.clients,
        tally: shared.tally,
        started: shared.started,
        enabled: shared.enabled,
        project: &listed,
        detail_failed: false,
        late: false,
        batched: &batched,
        carried: plan.carried,
        options: shared.options,
    };
    let detail = match detail {
        Some(detail) => {
            let (detail, ()) = futures::join!(
                detail,
                families::fetch(&early, shared.signals, plan.memos, &mut found)
            );
            Some(detail)
        }
        None => {
            families::fetch(&early, shared.signals, plan.memos, &mut found).await;
            None
        }
    };
    if found.gone {
        return Outcome::Gone;
    }
    let (detailed, detail_failed) = match detail {
        None => (None, false),
        Some(Ok(project)) => (Some(project), false),
        Some(Err(e)) if e.is_project_not_found() => return Outcome::Gone,
        // The listing has everything but statistics: the families that need them keep their
        // last values.
        Some(Err(e)) => {
            found.error.get_or_insert(e);
            (None, true)
        }
    };
    let project = detailed.as_ref().unwrap_or(&listed);
    let late = Context {
        project,
        detail_failed,
        late: true,
        ..early
    };
    families::fetch(&late, shared.signals, plan.memos, &mut found).await;
    if found.gone {
        return Outcome::Gone;
    }
    let refresh_at = plan.refresh_at.unwrap_or_else(|| {
        let first_sight = !shared.memory.projects.contains_key(&project.id);
        memory::refresh_at(project.id, shared.now, shared.interval, first_sight)
    });
    Outcome::Exported(Box::new(Exported {
        id: project.id,
        // Label values are redacted, should a secret ever come back in GitLab's data.
        path: redact(&project.path_with_namespace).into(),
        statistics_hidden: project.statistics.is_none(),
        found,
        refresh_at,
    }))
}

/// `GET /projects/:id?statistics=true`, by id or full path.
async fn project_detail(client: &Client, reference: String) -> Result<Project, Error> {
    let path = format!("/projects/{}", encode_segment(&reference));
    let query = vec![("statistics", "true".to_owned())];
    let project = client
        .get::<Project>(endpoint::PROJECT, path, query)
        .await?
        .body;
    if let Some(report) = project.problems_report() {
        client.bad_record(endpoint::PROJECT, &report);
    }
    Ok(project)
}
