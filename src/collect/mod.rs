//! One collection: the projects in scope ([`scope`]), then for each project, concurrently, the
//! calls its metric families need ([`commits`], [`merge_requests`]; [`projects`] needs none),
//! gathered into a [`Snapshot`] that is encoded once, in both text formats.
//!
//! A project that disappears between the listing and its own calls is left out. A project call
//! that fails for another reason keeps that family's last good values for the project (for up
//! to `--cache.max-stale`, then they are left out), is logged, and fails nothing else. Only a
//! failed listing fails the collection (`gitlab_up 0`); the last good projects are then served
//! again, for up to `--cache.max-stale`.

pub mod commits;
pub mod memory;
pub mod merge_requests;
pub mod projects;
pub mod scope;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use futures::StreamExt;
use prometheus_client::collector::Collector as PromCollector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use tracing::{info, warn};

use crate::config::Scope;
use crate::exposition::Compressed;
use crate::gitlab::types::{Project, Sizes, host_time, parse_timestamp};
use crate::gitlab::{Client, Error, encode_segment, endpoint};
use crate::metrics::Format;
use crate::redact::redact;
use memory::{Dirty, Gate, Memory, OVERLAP, Plan, Remembered};
use scope::Candidate;

/// What one project contributes to a snapshot, kept compact: a big instance holds 100,000 of
/// them, and strings that repeat (namespaces, branch names, visibilities) are shared.
#[derive(Debug, Clone)]
pub struct ProjectMetrics {
    /// Numeric id.
    pub id: u64,
    /// `path_with_namespace`.
    pub path: Box<str>,
    /// The namespace's full path.
    pub namespace: Arc<str>,
    /// `private`, `internal` or `public` (empty when GitLab did not say).
    pub visibility: Arc<str>,
    /// The default branch, when shown.
    pub default_branch: Option<Arc<str>>,
    /// Archived.
    pub archived: bool,
    /// Stars.
    pub stars: Option<u64>,
    /// Forks, when shown.
    pub forks: Option<u64>,
    /// Open issues, when shown.
    pub open_issues: Option<u64>,
    /// Last activity, Unix seconds.
    pub last_activity: Option<f64>,
    /// Storage sizes by kind, from the statistics (none without them).
    pub storage: Sizes,
    /// Commits on the default branch, when they could be counted.
    pub commits: Option<u64>,
    /// Merge requests per state, when the project's merge requests are readable.
    pub merge_requests: Option<merge_requests::Counts>,
    /// Since when some of these values are an earlier collection's, kept because the calls
    /// that would renew them failed; `None` when all are this collection's.
    pub stale_since: Option<Instant>,
    /// The families whose values are kept from an earlier collection (since `stale_since`).
    pub(crate) kept: Families,
}

impl ProjectMetrics {
    /// True when it holds kept values older than `max_stale`.
    fn kept_too_long(&self, max_stale: Duration) -> bool {
        self.stale_since
            .is_some_and(|since| since.elapsed() > max_stale)
    }

    /// Leaves out the kept values (grown older than `--cache.max-stale`).
    fn drop_kept(&mut self) {
        if self.kept.merge_requests {
            self.merge_requests = None;
        }
        if self.kept.commits || self.kept.statistics {
            self.commits = None;
        }
        if self.kept.statistics {
            self.storage = Sizes::default();
        }
        self.kept = Families::default();
        self.stale_since = None;
    }
}

/// `projects` without the kept values older than `max_stale`; `None` when there are none.
fn expire_kept(projects: &[ProjectMetrics], max_stale: Duration) -> Option<Vec<ProjectMetrics>> {
    if !projects.iter().any(|p| p.kept_too_long(max_stale)) {
        return None;
    }
    Some(
        projects
            .iter()
            .cloned()
            .map(|mut p| {
                if p.kept_too_long(max_stale) {
                    p.drop_kept();
                }
                p
            })
            .collect(),
    )
}

/// Shares the strings that repeat across projects.
#[derive(Debug, Default)]
struct Interner(std::collections::HashSet<Arc<str>>);

impl Interner {
    fn get(&mut self, s: &str) -> Arc<str> {
        match self.0.get(s) {
            Some(shared) => Arc::clone(shared),
            None => {
                let shared: Arc<str> = s.into();
                self.0.insert(Arc::clone(&shared));
                shared
            }
        }
    }
}

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
    pub projects: Arc<Vec<ProjectMetrics>>,
    /// When the collection that listed `projects` finished; `None` when there is no data to
    /// serve (no success yet, or too old): the per-project families are then left out.
    pub projects_from: Option<Stamp>,
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

/// A collection, and its exposition encoded at most once per format.
#[derive(Debug)]
pub struct Snapshot {
    /// The collection.
    pub data: Arc<Collected>,
    /// When it finished, for the cache's TTL and the served data's age.
    pub finished: Instant,
    /// The oldest `stale_since` of its projects: kept values to leave out after max-stale.
    kept_since: Option<Instant>,
    openmetrics: OnceLock<Compressed>,
    text: OnceLock<Compressed>,
}

impl Snapshot {
    /// A collection that just finished.
    pub fn new(data: Collected) -> Snapshot {
        Snapshot {
            kept_since: data.projects.iter().filter_map(|p| p.stale_since).min(),
            data: Arc::new(data),
            finished: Instant::now(),
            openmetrics: OnceLock::new(),
            text: OnceLock::new(),
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

    /// The same collection with `data` in place of its own (the same finish time, encoded anew).
    fn with_data(&self, data: Collected) -> Snapshot {
        Snapshot {
            finished: self.finished,
            ..Snapshot::new(data)
        }
    }

    /// The same collection without its project data (grown older than `--cache.max-stale`).
    pub fn without_projects(&self) -> Snapshot {
        self.with_data(Collected {
            projects: Arc::default(),
            projects_from: None,
            incomplete_projects: 0,
            ..(*self.data).clone()
        })
    }

    /// The same collection without the kept values older than `max_stale`, if it has any.
    pub fn without_expired_kept(&self, max_stale: Duration) -> Option<Snapshot> {
        if self.kept_since.is_none_or(|t| t.elapsed() <= max_stale) {
            return None;
        }
        let projects = expire_kept(&self.data.projects, max_stale)?;
        Some(self.with_data(Collected {
            projects: Arc::new(projects),
            ..(*self.data).clone()
        }))
    }

    /// True when the collection succeeded.
    pub fn is_success(&self) -> bool {
        self.data.error.is_none() && !self.data.pending
    }

    /// Age of the project data served, if any.
    pub fn data_age(&self) -> Option<Duration> {
        self.data.projects_from.map(|s| s.at.elapsed())
    }

    /// The collection's families in `format` (OpenMetrics without its `# EOF`), compressed.
    /// Encoded on first use, once: CPU-bound for a big instance, so call it on the blocking
    /// pool unless [`Snapshot::is_encoded`].
    pub fn encoded(&self, format: Format) -> &Compressed {
        self.cell(format).get_or_init(|| {
            let mut registry = Registry::default();
            registry.register_collector(Box::new(SnapshotMetrics(Arc::clone(&self.data))));
            Compressed::encode(|w| match format {
                Format::OpenMetrics => {
                    prometheus_client::encoding::text::encode_registry(w, &registry)
                }
                Format::Text => prometheus_client::encoding::prometheus_text::encode(w, &registry),
            })
        })
    }

    /// The snapshot with its OpenMetrics exposition (what Prometheus asks for) encoded, on the
    /// blocking pool, as part of the collection: a scrape then never spends its time budget
    /// encoding (a second or more at 100,000 projects). Other formats are encoded on demand.
    pub async fn prepared(self) -> Snapshot {
        let encoding = tokio::task::spawn_blocking(move || {
            self.encoded(Format::OpenMetrics);
            self
        });
        match encoding.await {
            Ok(snapshot) => snapshot,
            Err(e) => Snapshot::failed(format!("encoding the collection failed: {e}")),
        }
    }

    /// True when [`Snapshot::encoded`] would not have to encode.
    pub fn is_encoded(&self, format: Format) -> bool {
        self.cell(format).get().is_some()
    }

    fn cell(&self, format: Format) -> &OnceLock<Compressed> {
        match format {
            Format::OpenMetrics => &self.openmetrics,
            Format::Text => &self.text,
        }
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

/// Runs collections for one scope through one client, each re-reading only what changed since
/// the last (see [`memory`]).
#[derive(Debug, Clone)]
pub struct Collector {
    client: Client,
    scope: Scope,
    fan_out: usize,
    full_refresh_interval: Duration,
    max_stale: Duration,
    limits: Limits,
    memory: Arc<Mutex<Arc<Memory>>>,
    /// The last successful collection's projects, for failures to fall back on.
    last_good: Arc<Mutex<Option<LastGood>>>,
}

/// The projects of the last successful collection.
#[derive(Debug, Clone)]
struct LastGood {
    projects: Arc<Vec<ProjectMetrics>>,
    stamp: Stamp,
}

impl LastGood {
    /// The project's row, if it was there and younger than `max_stale` (counted from when its
    /// values were first kept for lack of new ones).
    fn fresh_row(&self, id: u64, max_stale: Duration) -> Option<(&ProjectMetrics, Instant)> {
        let i = self.projects.binary_search_by_key(&id, |p| p.id).ok()?;
        let row = &self.projects[i];
        let since = row.stale_since.unwrap_or(self.stamp.at);
        (since.elapsed() <= max_stale).then_some((row, since))
    }
}

impl Collector {
    /// A collector for `scope`. `concurrency` is the client's limit on calls in flight; about
    /// as many projects are worked on at once, so that the limit, not the fan-out, is what
    /// binds. Every project is counted from scratch at least once per `full_refresh_interval`
    /// (zero: at every collection). Values whose calls fail are kept for up to `max_stale`. A
    /// collection past `limits` is abandoned.
    pub fn new(
        client: Client,
        scope: Scope,
        concurrency: usize,
        full_refresh_interval: Duration,
        max_stale: Duration,
        limits: Limits,
    ) -> Collector {
        Collector {
            client,
            scope,
            fan_out: concurrency.max(1) * 2,
            full_refresh_interval,
            max_stale,
            limits,
            memory: Arc::default(),
            last_good: Arc::default(),
        }
    }

    /// Runs one collection. Never fails: a failure is a snapshot with `gitlab_up 0` and a log
    /// line saying why.
    pub async fn collect(&self) -> Snapshot {
        let started = Instant::now();
        let client = self.client.for_collection();
        let memory = if self.full_refresh_interval.is_zero() {
            Arc::default()
        } else {
            Arc::clone(&self.memory.lock().unwrap_or_else(|e| e.into_inner()))
        };
        let (sink, mut candidates) = tokio::sync::mpsc::channel(self.fan_out * 4);
        let mut known_ids: Vec<u64> = memory.projects.keys().copied().collect();
        known_ids.sort_unstable();
        let listing = scope::resolve(
            &client,
            &self.scope,
            &known_ids,
            self.limits.max_projects,
            sink,
        );
        let last_good = self
            .last_good
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let work = async {
            // Which remembered projects changed is asked while the listing starts; their calls
            // wait for the answer, the listing does not.
            let dirty = merge_requests::changed_since(&client, &memory).await;
            let context = Context {
                client: &client,
                memory: &memory,
                dirty: &dirty,
                now: Instant::now(),
                interval: self.full_refresh_interval,
            };
            let projects = futures::stream::poll_fn(|cx| candidates.poll_recv(cx))
                .map(|candidate| collect_project(&context, candidate))
                .buffer_unordered(self.fan_out);
            let fallback = Fallback {
                last_good: last_good.as_ref(),
                max_stale: self.max_stale,
            };
            (
                Gathered::from_stream(projects, memory.projects.len(), fallback).await,
                dirty.len(),
            )
        };
        let only_named =
            !self.scope.is_membership() && !self.scope.all_projects && self.scope.groups.is_empty();
        let timeout = self.limits.timeout;
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
                if !self.full_refresh_interval.is_zero() {
                    let since =
                        client.gitlab_time().unwrap_or_else(|| {
                            warn!("GitLab sent no Date header (a proxy may strip it): change queries use the clock of this host");
                            host_time()
                        }) - OVERLAP.as_secs() as i64;
                    let remembered = std::mem::take(&mut gathered.remembered);
                    let next = Memory {
                        since: Some(since),
                        projects: remembered,
                    };
                    *self.memory.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
                }
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
                    duration,
                    api_calls,
                    incomplete_projects: gathered.incomplete,
                    pending: false,
                    aborted: None,
                }
            }
            Err(e) => {
                // The last good data is served again while it is young enough.
                let kept = last_good.filter(|g| g.stamp.at.elapsed() <= self.max_stale);
                warn!(
                    error = %e,
                    api_calls,
                    serving_data_from = ?kept.as_ref().map(|g| g.stamp.at.elapsed()),
                    "collection failed"
                );
                Collected {
                    error: Some(e.to_string()),
                    projects: kept.as_ref().map_or_else(Arc::default, |g| {
                        expire_kept(&g.projects, self.max_stale)
                            .map_or_else(|| Arc::clone(&g.projects), Arc::new)
                    }),
                    projects_from: kept.map(|g| g.stamp),
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

/// What every project's calls share within one collection.
struct Context<'a> {
    client: &'a Client,
    memory: &'a Memory,
    dirty: &'a Dirty,
    now: Instant,
    interval: Duration,
}

/// Where the values of failed calls come from: the last successful collection.
#[derive(Clone, Copy, Default)]
struct Fallback<'a> {
    last_good: Option<&'a LastGood>,
    max_stale: Duration,
}

/// The projects of a collection, what went wrong on the way, and what to remember.
#[derive(Default)]
struct Gathered<'a> {
    fallback: Fallback<'a>,
    projects: Vec<ProjectMetrics>,
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
        expected: usize,
        fallback: Fallback<'a>,
    ) -> Gathered<'a> {
        // Sized for about as many projects as last time: no growth on the way at 100,000.
        let mut gathered = Gathered {
            fallback,
            projects: Vec::with_capacity(expected),
            remembered: HashMap::with_capacity(expected),
            seen: std::collections::HashSet::with_capacity(expected),
            ..Gathered::default()
        };
        while let Some(outcome) = outcomes.next().await {
            match outcome {
                // A named project may also have been listed under another reference.
                Outcome::Exported(exported, _) if !gathered.seen.insert(exported.project.id) => {}
                Outcome::Exported(exported, failure) => gathered.add(*exported, failure),
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

    /// Keeps an exported project, and remembers it unless a call failed (it is then counted
    /// from scratch next time, and the failed families keep their last good values).
    fn add(&mut self, exported: Exported, failure: Option<Failure>) {
        let Exported {
            project,
            commits,
            merge_requests,
            refresh_at,
        } = exported;
        let namespace = self.strings.get(project.namespace_path());
        let failed = failure.as_ref().map(|f| f.families);
        match failure {
            Some(failure) => {
                self.incomplete += 1;
                self.note(failure.error);
            }
            None => {
                let remembered = Remembered {
                    merge_requests,
                    gate: Gate::of(&project),
                    namespace: Arc::clone(&namespace),
                    user_namespace: project.in_user_namespace(),
                    head: commits
                        .as_ref()
                        .and_then(|c| Some((c.head.clone()?, c.commits))),
                    statistics_hidden: project.statistics.is_none(),
                    refresh_at,
                };
                self.remembered.insert(project.id, remembered);
            }
        }
        // Label values are redacted, should a secret ever come back in GitLab's data.
        let row = ProjectMetrics {
            id: project.id,
            visibility: self
                .strings
                .get(&redact(project.visibility.as_deref().unwrap_or(""))),
            default_branch: project
                .default_branch
                .as_deref()
                .map(|b| self.strings.get(&redact(b))),
            archived: project.archived == Some(true),
            stars: project.star_count,
            forks: project.forks_count,
            open_issues: project.open_issues_count,
            last_activity: project
                .last_activity_at
                .as_deref()
                .and_then(parse_timestamp),
            storage: project
                .statistics
                .as_ref()
                .map(Sizes::from)
                .unwrap_or_default(),
            commits: commits.map(|c| c.commits),
            merge_requests,
            namespace: self.strings.get(&redact(&namespace)),
            path: redact(&project.path_with_namespace).into(),
            stale_since: None,
            kept: Families::default(),
        };
        let mut row = row;
        if let Some(failed) = failed {
            self.keep_last_good(&mut row, failed);
        }
        self.projects.push(row);
    }

    /// Fills the families whose calls failed with the last good collection's values, while they
    /// are younger than `--cache.max-stale`.
    fn keep_last_good(&self, row: &mut ProjectMetrics, failed: Families) {
        let Some(last_good) = self.fallback.last_good else {
            return;
        };
        let Some((old, since)) = last_good.fresh_row(row.id, self.fallback.max_stale) else {
            return;
        };
        if failed.merge_requests {
            row.merge_requests.clone_from(&old.merge_requests);
        }
        if failed.commits {
            row.commits = old.commits;
        }
        if failed.statistics {
            row.storage.clone_from(&old.storage);
            row.commits = row.commits.or(old.commits);
        }
        row.stale_since = Some(since);
        row.kept = failed;
    }

    /// A named project whose own detail call failed: its last good row, whole, while it is
    /// younger than `--cache.max-stale`.
    fn keep_named(&mut self, reference: &str) {
        let Some(last_good) = self.fallback.last_good else {
            return;
        };
        let id = match reference.parse::<u64>() {
            Ok(id) => Some(id),
            Err(_) => last_good
                .projects
                .iter()
                .find(|p| p.path.eq_ignore_ascii_case(reference))
                .map(|p| p.id),
        };
        let Some((old, since)) = id.and_then(|id| last_good.fresh_row(id, self.fallback.max_stale))
        else {
            return;
        };
        if !self.seen.insert(old.id) {
            return;
        }
        let mut row = old.clone();
        row.stale_since = Some(since);
        row.kept = Families {
            statistics: true,
            merge_requests: true,
            commits: true,
        };
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
    /// Exported; with the failure when calls for some families failed.
    Exported(Box<Exported>, Option<Failure>),
    /// Not found: deleted after the listing, or a named project that does not exist.
    Gone,
    /// A named project that could not be read.
    Failed(String, Error),
}

/// Calls of one project that failed: the first error, and the families left without values.
struct Failure {
    error: Error,
    families: Families,
}

/// Which families of a project lack values because a call failed.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Families {
    /// The project's own detail, with its statistics (storage, often commits).
    statistics: bool,
    merge_requests: bool,
    commits: bool,
}

/// What one project's calls found.
struct Exported {
    project: Project,
    commits: Option<commits::Counted>,
    merge_requests: Option<merge_requests::Counts>,
    /// When its counts are next due for a re-read from scratch.
    refresh_at: Instant,
}

/// The calls of one project, as few as the memory allows. A 404 "Project Not Found" on any of
/// them means the project disappeared after the listing: it is left out.
async fn collect_project(context: &Context<'_>, candidate: Candidate) -> Outcome {
    let Context {
        client,
        memory,
        dirty,
        now,
        ..
    } = *context;
    let mut error = None;
    let mut failed = Families::default();
    let counts = |project, plan: &Plan| {
        merge_requests::count_unless_known(client, project, plan.merge_requests)
    };
    let (project, plan, merge_requests) = match candidate {
        Candidate::Listed(project) => {
            let plan = memory.plan(&project, dirty, now);
            let counts = counts(&project, &plan).await;
            (project, plan, counts)
        }
        Candidate::FromGroup(listed) => {
            let plan = memory.plan(&listed, dirty, now);
            if plan.statistics_hidden {
                let counts = counts(&listed, &plan).await;
                (listed, plan, counts)
            } else {
                // Statistics (commits, storage) only come with the project itself; merge
                // requests need nothing from it, so both go at once.
                let id = listed.id.to_string();
                let (detail, counts) =
                    futures::join!(project_detail(client, &id), counts(&listed, &plan));
                match detail {
                    Ok(project) => (project, plan, counts),
                    Err(e) if e.is_project_not_found() => return Outcome::Gone,
                    // The listing has everything but statistics: export that much.
                    Err(e) => {
                        error = Some(e);
                        failed.statistics = true;
                        (listed, plan, counts)
                    }
                }
            }
        }
        Candidate::Named(reference) => match project_detail(client, &reference).await {
            Ok(project) => {
                let plan = memory.plan(&project, dirty, now);
                let counts = counts(&project, &plan).await;
                (project, plan, counts)
            }
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
    let merge_requests = match merge_requests {
        Ok(counts) => counts,
        Err(e) if e.is_project_not_found() => return Outcome::Gone,
        Err(e) => {
            error.get_or_insert(e);
            failed.merge_requests = true;
            None
        }
    };
    let commits = match commits::count(client, &project, plan.head.as_ref()).await {
        Ok(count) => count,
        Err(e) if e.is_project_not_found() => return Outcome::Gone,
        Err(e) => {
            error.get_or_insert(e);
            failed.commits = true;
            None
        }
    };
    let refresh_at = match (plan.fresh, memory.projects.get(&project.id)) {
        (false, Some(known)) => known.refresh_at,
        (_, known) => memory::refresh_at(project.id, now, context.interval, known.is_none()),
    };
    let exported = Exported {
        project,
        commits,
        merge_requests,
        refresh_at,
    };
    let failure = error.map(|error| Failure {
        error,
        families: failed,
    });
    Outcome::Exported(Box::new(exported), failure)
}

/// `GET /projects/:id?statistics=true`, by id or full path.
async fn project_detail(client: &Client, reference: &str) -> Result<Project, Error> {
    let path = format!("/projects/{}", encode_segment(reference));
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

/// The snapshot as a prometheus-client collector: each metric family file encodes its own.
#[derive(Debug)]
struct SnapshotMetrics(Arc<Collected>);

impl PromCollector for SnapshotMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let data = &self.0;
        if data.projects_from.is_some() {
            let projects = &data.projects;
            let labels = Labels::new(projects);
            projects::encode(projects, &labels, &mut encoder)?;
            commits::encode(projects, &labels, &mut encoder)?;
            merge_requests::encode(projects, &labels, &mut encoder)?;
        }
        if data.pending {
            return Ok(());
        }
        encode_gauge(
            &mut encoder,
            (
                "gitlab_exporter_collect_duration",
                "Wall time of the collection whose data is served.",
                Some(&Unit::Seconds),
            ),
            data.duration.as_secs_f64(),
        )?;
        encode_gauge(
            &mut encoder,
            (
                "gitlab_exporter_collect_api_requests",
                "GitLab API calls made by the collection whose data is served, retries included.",
                None,
            ),
            data.api_calls,
        )?;
        encode_gauge(
            &mut encoder,
            (
                "gitlab_exporter_collect_incomplete_projects",
                "Projects whose calls failed in the collection whose data is served: some of their series keep an earlier collection's values (up to --cache.max-stale old) or are left out.",
                None,
            ),
            data.incomplete_projects,
        )
    }
}

/// Encodes a gauge family of one unlabelled sample.
pub fn encode_gauge<V: EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder,
    (name, help, unit): (&str, &str, Option<&Unit>),
    value: V,
) -> Result<(), std::fmt::Error> {
    encoder
        .encode_descriptor(name, help, unit, MetricType::Gauge)?
        .encode_gauge(&value)
}

/// Encodes a gauge family with one sample per project that has a value, labelled
/// `project_id` and `project`.
pub fn encode_per_project<V: EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder,
    (name, help, unit): (&str, &str, Option<&Unit>),
    projects: &[ProjectMetrics],
    labels: &Labels,
    value: impl Fn(&ProjectMetrics) -> Option<V>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    for (i, p) in projects.iter().enumerate() {
        if let Some(v) = value(p) {
            family.encode_family(&labels.of(i, p))?.encode_gauge(&v)?;
        }
    }
    Ok(())
}

/// The `project_id` and `project` label values of every project, formatted once per encoding.
#[derive(Debug)]
pub struct Labels {
    ids: Vec<String>,
}

impl Labels {
    fn new(projects: &[ProjectMetrics]) -> Labels {
        Labels {
            ids: projects.iter().map(|p| p.id.to_string()).collect(),
        }
    }

    /// `[("project_id", ..), ("project", ..)]` of the `i`-th project.
    pub fn of<'a>(&'a self, i: usize, project: &'a ProjectMetrics) -> [(&'static str, &'a str); 2] {
        [
            ("project_id", self.ids[i].as_str()),
            ("project", &project.path),
        ]
    }
}
