//! The metric families, and the one list that registers them ([`families!`] at the end of this
//! file). A family is one file and one line of that list: its name is the file's, the
//! `--collector.<name>` flag's and the `collector` label's of
//! `gitlab_exporter_collector_success`. It implements [`Family`]: what it asks GitLab about one
//! project, what it remembers for the next collection and which change signal lets it reuse
//! that, and how it encodes its values. Everything else (the order of the calls, keeping a
//! family's last good values when its calls fail and dropping them after `--cache.max-stale`,
//! the switches, the self-metrics, the encoding loop) is done for every family alike, by code
//! that names none of them: the list generates it.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;
use tokio::time::Instant;

use crate::gitlab::types::Project;
use crate::gitlab::{Client, Error};

/// A metric family. The compiler asks for every item without a default; the defaults are those
/// of a family that needs nothing but the project as listed.
pub(crate) trait Family: Sized + 'static {
    /// What the family exports, for `--help` of `--collector.<name>`.
    const ABOUT: &'static str;
    /// On unless `--no-collector.<name>`.
    const DEFAULT_ENABLED: bool = true;
    /// Collected over REST (`--gitlab.api rest`, or a GitLab without GraphQL) too. False for a
    /// family whose REST calls grow with the projects at every collection (no change signal
    /// over REST): over REST it then runs only when `--collector.<name>` is given.
    const REST_BY_DEFAULT: bool = true;
    /// Needs the project's statistics: a project listed without them (from a group listing)
    /// is then read with `GET /projects/:id?statistics=true`, and those calls count as this
    /// family's.
    const NEEDS_STATISTICS: bool = false;
    /// Reads the statistics when they are there: its calls wait for the project's detail call.
    const USES_STATISTICS: bool = Self::NEEDS_STATISTICS;

    /// GraphQL (`--gitlab.api graphql`): the fields of a project node it reads, added to every
    /// page of the listing and decoded into the project as listed
    /// ([`crate::gitlab::types::Project::from_graphql`]). Cheap fields only: a page costs
    /// GitLab this much for each of its 100 projects.
    const PAGE_FIELDS: &'static str = "";
    /// GraphQL: the fields of a project node it asks in batches (`projects(ids:)`, the
    /// `--gitlab.graphql.batch-size` projects of one query) for the projects that
    /// [`Family::wants_batch`] picks; empty: none. [`Current::batched`] is then the project's
    /// node, or `None` when GraphQL could not answer it (the family falls back on REST).
    const BATCH_FIELDS: &'static str = "";
    /// Counts events: its memo holds counters that must outlive everything but a restart. It is
    /// then given to [`Family::fetch`] even when the project is read from scratch
    /// ([`Current::fresh`] says so), and kept when the family's call fails.
    const COUNTS_EVENTS: bool = false;

    /// What it exports for one project.
    type Value: Clone + fmt::Debug + Send + Sync + 'static;
    /// What it remembers of one project for the next collection.
    type Memo: Clone + fmt::Debug + Send + Sync + 'static;
    /// What it learns once per collection, before the projects' calls, about which remembered
    /// projects changed since the last collection.
    type Signal: Default + Send + Sync + 'static;

    /// The change signal: which of the remembered projects (`memos`) changed since `since`
    /// (GitLab's clock, Unix seconds; `None` at the first collection). The default learns
    /// nothing.
    fn signal<'a>(
        client: &'a Client,
        since: Option<i64>,
        memos: Vec<(u64, &'a Self::Memo)>,
    ) -> impl Future<Output = Self::Signal> + Send + 'a {
        let _ = (client, since, memos);
        async { Self::Signal::default() }
    }

    /// Whether this project's [`Family::BATCH_FIELDS`] are needed in this collection (`memo`:
    /// what the last one remembered, `None` when read from scratch).
    fn wants_batch(project: &Project, signal: &Self::Signal, memo: Option<&Self::Memo>) -> bool {
        let _ = (project, signal, memo);
        false
    }

    /// GraphQL: where this project's event feed starts (GitLab's clock, Unix seconds), for a
    /// batch whose [`Family::BATCH_FIELDS`] use `$after: Time`: a chunk asks from the earliest
    /// of its projects'. `None` (a project seen for the first time): the feed starts
    /// [`crate::collect::memory::OVERLAP`] before GitLab's clock.
    fn batch_after(memo: Option<&Self::Memo>) -> Option<i64> {
        let _ = memo;
        None
    }

    /// How many projects the signal says changed, for the collection's log line.
    fn changed(signal: &Self::Signal) -> usize {
        let _ = signal;
        0
    }

    /// The values of one project. `memo` is what the last collection remembered of it (`None`
    /// when it is read from scratch). A 404 "Project Not Found" leaves the whole project out
    /// (it disappeared after the listing); any other error keeps this family's last good
    /// values for the project.
    fn fetch<'a>(
        project: Current<'a>,
        signal: &'a Self::Signal,
        memo: Option<&'a Self::Memo>,
    ) -> impl Future<Output = Result<Fetched<Self>, Error>> + Send + 'a;

    /// Shares the strings of a value that repeat across projects (namespaces, branch names).
    fn share(value: &mut Self::Value, strings: &mut Interner) {
        let _ = (value, strings);
    }

    /// Shares the strings of a memo that repeat across projects.
    fn share_memo(memo: &mut Self::Memo, strings: &mut Interner) {
        let _ = (memo, strings);
    }

    /// Encodes the family's metrics (descriptors even when no project has a value).
    fn encode(rows: Rows<'_, Self::Value>, encoder: &mut DescriptorEncoder) -> fmt::Result;
}

/// What a family's call for one project found: the values to export (`None`: nothing, e.g.
/// not readable with the token), and what to remember for the next collection.
#[derive(Debug)]
pub(crate) struct Fetched<F: Family> {
    pub(crate) value: Option<F::Value>,
    pub(crate) memo: Option<F::Memo>,
}

impl<F: Family> Fetched<F> {
    /// Values, and nothing to remember.
    pub(crate) fn value(value: Option<F::Value>) -> Fetched<F> {
        Fetched { value, memo: None }
    }
}

/// One project as a family sees it: the client its calls go through (counted as the family's),
/// and the project as listed, or as read with its statistics.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Current<'a> {
    pub(crate) client: &'a Client,
    pub(crate) project: &'a Project,
    /// The project's node of the family's GraphQL batch, when it had one and GitLab answered.
    pub(crate) batched: Option<&'a serde_json::Value>,
    /// GitLab's clock (Unix seconds) just before the project's batches were sent, when they
    /// were: a feed in the batch saw every event GitLab had committed by then.
    pub(crate) asked_at: Option<i64>,
    /// The project was in the family's batch ([`Family::wants_batch`]): with no node in
    /// [`Current::batched`], GitLab did not answer it.
    pub(crate) batch_asked: bool,
    /// Read from scratch: the memo, if any, is only a counting family's
    /// ([`Family::COUNTS_EVENTS`]), whose counters go on.
    pub(crate) fresh: bool,
    /// The families' flags.
    pub(crate) options: &'a Options,
}

/// The GraphQL batch nodes of one project, by family, which families asked for them, and when.
#[derive(Debug, Default)]
pub(crate) struct Batched {
    pub(crate) nodes: [Option<serde_json::Value>; Id::ALL.len()],
    pub(crate) asked: Set,
    pub(crate) asked_at: Option<i64>,
}

/// The flags of the families (`--collector.<name>.<option>`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    /// `--collector.pipelines.duration-buckets`.
    pub(crate) pipeline_duration_buckets: &'static [f64],
    /// `--collector.merge_request_flow.time-to-merge-buckets`.
    pub(crate) time_to_merge_buckets: &'static [f64],
    /// `--collector.deployments.environments`.
    pub(crate) deployment_environments: &'static [deployments::Selector],
    /// `--collector.deployments.lead-time-buckets`.
    pub(crate) lead_time_buckets: &'static [f64],
}

impl Default for Options {
    fn default() -> Options {
        Options {
            pipeline_duration_buckets: events::PIPELINE_DURATION_BUCKETS,
            time_to_merge_buckets: events::TIME_TO_MERGE_BUCKETS,
            deployment_environments: deployments::PRODUCTION,
            lead_time_buckets: events::LEAD_TIME_BUCKETS,
        }
    }
}

/// The projects of a snapshot as one family encodes them: each with its labels and value.
pub(crate) struct Rows<'a, V> {
    rows: &'a [Row],
    labels: &'a Labels,
    value: fn(&Values) -> Option<&V>,
}

impl<'a, V: 'a> Rows<'a, V> {
    /// Projects in the snapshot, with a value of this family or not.
    pub(crate) fn projects(&self) -> usize {
        self.rows.len()
    }

    /// `([("project_id", ..), ("project", ..)], value)` of each project with a value.
    pub(crate) fn iter(&self) -> impl Iterator<Item = ([(&'static str, &'a str); 2], &'a V)> + '_ {
        self.rows.iter().enumerate().filter_map(|(i, row)| {
            let value = (self.value)(&row.values)?;
            Some((
                [
                    ("project_id", self.labels.ids[i].as_str()),
                    ("project", &*row.path),
                ],
                value,
            ))
        })
    }

    /// Encodes a gauge with one sample per project for which `value` has one.
    pub(crate) fn gauge<G: EncodeGaugeValue>(
        &self,
        encoder: &mut DescriptorEncoder,
        (name, help, unit): (&str, &str, Option<&Unit>),
        value: impl Fn(&V) -> Option<G>,
    ) -> fmt::Result {
        let mut family = encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?;
        for (labels, v) in self.iter() {
            if let Some(g) = value(v) {
                family.encode_family(&labels)?.encode_gauge(&g)?;
            }
        }
        Ok(())
    }
}

/// Encodes a gauge family of one unlabelled sample.
pub(crate) fn encode_gauge<V: EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder,
    (name, help, unit): (&str, &str, Option<&Unit>),
    value: V,
) -> fmt::Result {
    encoder
        .encode_descriptor(name, help, unit, MetricType::Gauge)?
        .encode_gauge(&value)
}

/// One project of a snapshot: its labels and every family's values.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) id: u64,
    /// `path_with_namespace` (redacted).
    pub(crate) path: Box<str>,
    pub(crate) values: Values,
    /// The families whose values are an earlier collection's, kept because this one's calls
    /// failed, and since when.
    pub(crate) kept: Set,
    pub(crate) kept_since: Option<Instant>,
}

impl Row {
    /// True when it holds kept values older than `max_stale`.
    pub(crate) fn kept_too_long(&self, max_stale: std::time::Duration) -> bool {
        self.kept_since.is_some_and(|t| t.elapsed() > max_stale)
    }

    /// Leaves out the kept values.
    pub(crate) fn drop_kept(&mut self) {
        self.values.clear(self.kept);
        self.kept = Set::EMPTY;
        self.kept_since = None;
    }
}

/// The `project_id` label values of every row, formatted once per encoding.
#[derive(Debug)]
pub(crate) struct Labels {
    ids: Vec<String>,
}

impl Labels {
    pub(crate) fn new(rows: &[Row]) -> Labels {
        Labels {
            ids: rows.iter().map(|r| r.id.to_string()).collect(),
        }
    }
}

/// Shares the strings that repeat across projects.
#[derive(Debug, Default)]
pub(crate) struct Interner(std::collections::HashSet<Arc<str>>);

impl Interner {
    pub(crate) fn get(&mut self, s: &str) -> Arc<str> {
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

/// A set of families, by their place in the list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub(crate) struct Set(u32);

impl Set {
    pub(crate) const EMPTY: Set = Set(0);

    pub(crate) fn with(self, id: Id) -> Set {
        Set(self.0 | 1 << id as u32)
    }

    pub(crate) fn without(self, id: Id) -> Set {
        Set(self.0 & !(1 << id as u32))
    }

    pub(crate) fn contains(self, id: Id) -> bool {
        self.0 & 1 << id as u32 != 0
    }

    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The families on by default.
    pub(crate) fn defaults() -> Set {
        Id::ALL
            .iter()
            .filter(|id| id.default_enabled())
            .fold(Set::EMPTY, |s, id| s.with(*id))
    }

    /// Every family.
    pub(crate) fn all() -> Set {
        Id::ALL.iter().fold(Set::EMPTY, |s, id| s.with(*id))
    }

    /// The families of the set, in the list's order.
    pub(crate) fn iter(self) -> impl Iterator<Item = Id> {
        Id::ALL.into_iter().filter(move |id| self.contains(*id))
    }
}

/// What each family cost and how it fared in one collection.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    calls: [Arc<AtomicU64>; Id::ALL.len()],
    /// Nanoseconds from the collection's start to the end of the family's last call.
    done: [AtomicU64; Id::ALL.len()],
    failed: [AtomicU64; Id::ALL.len()],
}

impl Tally {
    /// Clients counting their calls as each family's.
    pub(crate) fn clients(&self, client: &Client) -> Clients {
        Clients(Id::ALL.map(|id| client.tallied(Arc::clone(&self.calls[id as usize]))))
    }

    fn finished(&self, id: Id, started: Instant) {
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.done[id as usize].fetch_max(nanos, Ordering::Relaxed);
    }

    fn failed(&self, id: Id) {
        self.failed[id as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The report of each enabled family; `ok` is false when the collection failed.
    pub(crate) fn reports(&self, enabled: Set, ok: bool) -> Vec<Report> {
        enabled
            .iter()
            .map(|id| {
                let i = id as usize;
                Report {
                    family: id,
                    success: ok && self.failed[i].load(Ordering::Relaxed) == 0,
                    duration: std::time::Duration::from_nanos(self.done[i].load(Ordering::Relaxed)),
                    api_calls: self.calls[i].load(Ordering::Relaxed),
                    failed_projects: self.failed[i].load(Ordering::Relaxed),
                }
            })
            .collect()
    }
}

/// One family in one collection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Report {
    pub(crate) family: Id,
    /// No call of the family failed, and the collection succeeded.
    pub(crate) success: bool,
    /// From the collection's start until the family's last value was in.
    pub(crate) duration: std::time::Duration,
    /// GitLab API calls made for the family, retries included.
    pub(crate) api_calls: u64,
    /// Projects for which a call of the family failed.
    pub(crate) failed_projects: u64,
}

/// One client per family, counting its calls (see [`Tally`]).
#[derive(Debug, Clone)]
pub(crate) struct Clients([Client; Id::ALL.len()]);

impl Clients {
    pub(crate) fn of(&self, id: Id) -> &Client {
        &self.0[id as usize]
    }
}

/// What one project's families found: their values, what they remember, and the first error
/// of those whose calls failed.
#[derive(Debug, Default)]
pub(crate) struct Found {
    pub(crate) values: Values,
    pub(crate) memos: Memos,
    pub(crate) failed: Set,
    pub(crate) error: Option<Error>,
    /// A call answered "Project Not Found": the project is gone.
    pub(crate) gone: bool,
}

impl Found {
    fn take<F: Family>(
        &mut self,
        id: Id,
        call: Option<Call<F>>,
        carried: Option<&F::Memo>,
        slot: impl for<'s> FnOnce(
            &'s mut Values,
            &'s mut Memos,
        ) -> (&'s mut Option<F::Value>, &'s mut Option<F::Memo>),
    ) {
        match call {
            None => {}
            Some(Call::Done(fetched)) => {
                let (value, memo) = slot(&mut self.values, &mut self.memos);
                *value = fetched.value;
                *memo = fetched.memo;
            }
            Some(Call::Gone) => self.gone = true,
            Some(Call::Failed(error)) => {
                if F::COUNTS_EVENTS {
                    // Its counters and feed position go on from where they were.
                    *slot(&mut self.values, &mut self.memos).1 = carried.cloned();
                }
                self.failed = self.failed.with(id);
                if let Some(e) = error {
                    self.error.get_or_insert(e);
                }
            }
        }
    }
}

/// How one family's call for one project ended.
enum Call<F: Family> {
    Done(Fetched<F>),
    /// "Project Not Found": the project disappeared after the listing.
    Gone,
    /// Failed (`None`: not made, since the detail call it needs failed; the collector has
    /// that error).
    Failed(Option<Error>),
}

/// One family's call for one project, if the family is enabled and belongs to this phase
/// (`late`: it waits for the statistics), timed into the tally.
async fn fetch_one<'a, F: Family>(
    id: Id,
    cx: &'a Context<'a>,
    signal: &'a F::Signal,
    memos: Option<&'a Memos>,
    memo: impl Fn(&'a Memos) -> Option<&'a F::Memo>,
) -> Option<Call<F>> {
    if !cx.enabled.contains(id) || F::USES_STATISTICS != cx.late {
        return None;
    }
    if F::NEEDS_STATISTICS && cx.detail_failed {
        cx.tally.failed(id);
        return Some(Call::Failed(None));
    }
    let memo = if F::COUNTS_EVENTS {
        cx.carried.and_then(&memo)
    } else {
        memos.and_then(&memo)
    };
    let current = Current {
        client: cx.clients.of(id),
        project: cx.project,
        batched: cx.batched.nodes[id as usize].as_ref(),
        asked_at: cx.batched.asked_at,
        batch_asked: cx.batched.asked.contains(id),
        fresh: memos.is_none(),
        options: cx.options,
    };
    let result = F::fetch(current, signal, memo).await;
    cx.tally.finished(id, cx.started);
    Some(match result {
        Ok(fetched) => Call::Done(fetched),
        Err(e) if e.is_project_not_found() => Call::Gone,
        Err(e) => {
            cx.tally.failed(id);
            Call::Failed(Some(e))
        }
    })
}

/// What the families' calls for one project share.
#[derive(Debug)]
pub(crate) struct Context<'a> {
    pub(crate) clients: &'a Clients,
    pub(crate) tally: &'a Tally,
    pub(crate) started: Instant,
    pub(crate) enabled: Set,
    pub(crate) project: &'a Project,
    /// The project's detail call (for its statistics) failed.
    pub(crate) detail_failed: bool,
    /// The phase: the families that use statistics (after the detail call), or the others.
    pub(crate) late: bool,
    /// The project's GraphQL batch nodes.
    pub(crate) batched: &'a Batched,
    /// What the last collection remembered of the project, even if it is read from scratch
    /// now (for the families that count events).
    pub(crate) carried: Option<&'a Memos>,
    pub(crate) options: &'a Options,
}

/// Registers the families: one line each, `file => Type`. Generates [`Id`] and the per-family
/// containers, each with one field per family ([`Values`], [`Memos`], [`Signals`]), and the
/// loops over the families: their calls, signals and encoding.
macro_rules! families {
    ($($name:ident => $family:ident,)+) => {
        $(pub(crate) mod $name;)+
        $(use $name::$family;)+

        /// A family, by its place in the list.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub(crate) enum Id {
            $($family,)+
        }

        impl Id {
            /// Every family, in the list's order.
            pub(crate) const ALL: [Id; [$(Id::$family),+].len()] = [$(Id::$family),+];

            /// The family's name: its file's.
            pub(crate) fn name(self) -> &'static str {
                match self {
                    $(Id::$family => stringify!($name),)+
                }
            }

            /// What it exports.
            pub(crate) fn about(self) -> &'static str {
                match self {
                    $(Id::$family => <$family as Family>::ABOUT,)+
                }
            }

            /// Collected over REST unless asked for by name.
            pub(crate) fn rest_by_default(self) -> bool {
                match self {
                    $(Id::$family => <$family as Family>::REST_BY_DEFAULT,)+
                }
            }

            /// On by default.
            pub(crate) fn default_enabled(self) -> bool {
                match self {
                    $(Id::$family => <$family as Family>::DEFAULT_ENABLED,)+
                }
            }

            /// GraphQL fields it adds to the listing's pages.
            pub(crate) fn page_fields(self) -> &'static str {
                match self {
                    $(Id::$family => <$family as Family>::PAGE_FIELDS,)+
                }
            }

            /// GraphQL fields of its batches (empty: it has none).
            pub(crate) fn batch_fields(self) -> &'static str {
                match self {
                    $(Id::$family => <$family as Family>::BATCH_FIELDS,)+
                }
            }

            /// Whether `project` needs its batch fields in this collection (`memos`: what the
            /// last collection remembered, `None` when it is read from scratch; `carried`: what
            /// it remembered in any case).
            pub(crate) fn wants_batch(
                self,
                project: &Project,
                signals: &Signals,
                memos: Option<&Memos>,
                carried: Option<&Memos>,
            ) -> bool {
                match self {
                    $(Id::$family => <$family as Family>::wants_batch(
                        project,
                        &signals.$name,
                        if <$family as Family>::COUNTS_EVENTS { carried } else { memos }
                            .and_then(|m| m.$name.as_ref()),
                    ),)+
                }
            }

            /// Where the project's feed in the family's batch starts (see
            /// [`Family::batch_after`]).
            pub(crate) fn batch_after(self, carried: Option<&Memos>) -> Option<i64> {
                match self {
                    $(Id::$family => <$family as Family>::batch_after(
                        carried.and_then(|m| m.$name.as_ref()),
                    ),)+
                }
            }

            /// Needs the projects' statistics.
            pub(crate) fn needs_statistics(self) -> bool {
                match self {
                    $(Id::$family => <$family as Family>::NEEDS_STATISTICS,)+
                }
            }
        }

        /// Every family's values for one project (`None`: nothing to export).
        #[derive(Debug, Clone, Default)]
        pub(crate) struct Values {
            $(pub(crate) $name: Option<<$family as Family>::Value>,)+
        }

        impl Values {
            /// Leaves out the values of the families in `set`.
            pub(crate) fn clear(&mut self, set: Set) {
                $(if set.contains(Id::$family) { self.$name = None; })+
            }

            /// Takes the values of the families in `set` from `old`.
            pub(crate) fn keep_from(&mut self, old: &Values, set: Set) {
                $(if set.contains(Id::$family) { self.$name.clone_from(&old.$name); })+
            }

            /// Shares the strings that repeat across projects.
            pub(crate) fn share(&mut self, strings: &mut Interner) {
                $(if let Some(v) = &mut self.$name { <$family as Family>::share(v, strings); })+
            }
        }

        /// What every family remembers of one project.
        #[derive(Debug, Clone, Default)]
        pub(crate) struct Memos {
            $(pub(crate) $name: Option<<$family as Family>::Memo>,)+
        }

        impl Memos {
            /// Shares the strings that repeat across projects.
            pub(crate) fn share(&mut self, strings: &mut Interner) {
                $(if let Some(m) = &mut self.$name { <$family as Family>::share_memo(m, strings); })+
            }
        }

        /// Every family's change signal for one collection.
        #[derive(Default)]
        pub(crate) struct Signals {
            $($name: <$family as Family>::Signal,)+
        }

        impl fmt::Debug for Signals {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct("Signals").finish_non_exhaustive()
            }
        }

        impl Signals {
            /// Asks each enabled family's change signal, all at once.
            pub(crate) async fn ask(
                clients: &Clients,
                enabled: Set,
                since: Option<i64>,
                known: impl Iterator<Item = (u64, &Memos)> + Clone,
            ) -> Signals {
                let ($($name,)+) = futures::join!($(async {
                    if !enabled.contains(Id::$family) {
                        return Default::default();
                    }
                    let known = known
                        .clone()
                        .filter_map(|(id, m)| Some((id, m.$name.as_ref()?)))
                        .collect();
                    <$family as Family>::signal(clients.of(Id::$family), since, known).await
                },)+);
                Signals { $($name,)+ }
            }

            /// Projects the signals say changed, summed over the families.
            pub(crate) fn changed(&self) -> usize {
                0 $(+ <$family as Family>::changed(&self.$name))+
            }
        }

        /// The calls of every enabled family of one phase for one project, all at once; `memos`
        /// is what the last collection remembered (`None`: read from scratch).
        pub(crate) async fn fetch(
            cx: &Context<'_>,
            signals: &Signals,
            memos: Option<&Memos>,
            found: &mut Found,
        ) {
            let ($($name,)+) = futures::join!($(
                fetch_one::<$family>(
                    Id::$family,
                    cx,
                    &signals.$name,
                    memos,
                    |m: &Memos| m.$name.as_ref(),
                ),
            )+);
            $(found.take(
                Id::$family,
                $name,
                cx.carried.and_then(|m| m.$name.as_ref()),
                |v, m| (&mut v.$name, &mut m.$name),
            );)+
        }

        /// Encodes the enabled families of `rows`.
        pub(crate) fn encode(
            rows: &[Row],
            enabled: Set,
            encoder: &mut DescriptorEncoder,
        ) -> fmt::Result {
            let labels = Labels::new(rows);
            $(if enabled.contains(Id::$family) {
                <$family as Family>::encode(
                    Rows { rows, labels: &labels, value: |v| v.$name.as_ref() },
                    encoder,
                )?;
            })+
            Ok(())
        }
    };
}

pub(crate) mod events;

families! {
    projects => Projects,
    storage => Storage,
    commits => Commits,
    merge_requests => MergeRequests,
    pipelines => Pipelines,
    deployments => Deployments,
    merge_request_flow => MergeRequestFlow,
}
