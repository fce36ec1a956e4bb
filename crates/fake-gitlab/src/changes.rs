//! The change API on projects: merge request events and pushes ([`Instance::change_merge_request`],
//! [`Instance::push`] and their `FakeGitlab` wrappers), direct count edits reconciled, and how a
//! project seeds and reads its merge request [`History`].
//!
//! The first change to a project (a merge request event or a push) freezes its baseline, project
//! `created_at` and commit timeline ([`History`]); events are then recorded per iid on top of it
//! (new merge requests take fresh iids, changed ones override their baseline entry, deleted ones
//! leave a tombstone that no query ever returns). `FakeProject::merge_requests` always holds the
//! effective counts. A test that edits those counts directly (through `with_instance`) models a
//! change no signal can see: the difference is applied invisibly (new merge requests timestamped
//! at the end of the baseline, removals without trace) the next time the instance is reconciled.

use std::collections::BTreeMap;

use super::history::{Baseline, HISTORY_HORIZON, History, MergeRequestChange, MrView};
use super::instance::{FakeProject, Instance};

/// GitLab's `Event::RESET_PROJECT_ACTIVITY_INTERVAL`.
const RESET_PROJECT_ACTIVITY_INTERVAL: i64 = 3_600;
/// GitLab's `Event::REPOSITORY_UPDATED_AT_INTERVAL`.
const REPOSITORY_UPDATED_AT_INTERVAL: i64 = 300;
/// Repository bytes added per pushed commit (the same rate the instances' sizes are built with).
const BYTES_PER_COMMIT: u64 = 14_336;

impl Baseline {
    /// The baseline implied by the project's current fields (a project without changes).
    fn live(p: &FakeProject) -> Baseline {
        let end = p.last_activity_at.min(HISTORY_HORIZON);
        Baseline {
            counts: p.merge_requests,
            start: p.created_at().min(end),
            end,
            project_id: p.id,
        }
    }
}

impl History {
    fn seed(p: &FakeProject) -> History {
        let baseline = Baseline::live(p);
        History {
            baseline,
            created_at: p.created_at(),
            commits_at_start: p.commits,
            head_time_at_start: p.last_activity_at,
            pushes: Vec::new(),
            updated_at: p.last_activity_at,
            last_repository_updated_at: p.last_activity_at,
            records: BTreeMap::new(),
            next_iid: baseline.total() + 1,
            synced: p.merge_requests,
        }
    }
}

/// Whether a project has changes recorded through the change API.
pub(crate) fn has_history(p: &FakeProject) -> bool {
    p.history.is_some()
}

impl<'a> MrView<'a> {
    pub(crate) fn of(p: &'a FakeProject) -> MrView<'a> {
        match p.history.as_deref() {
            Some(h) => MrView {
                baseline: h.baseline,
                history: Some(h),
            },
            None => MrView {
                baseline: Baseline::live(p),
                history: None,
            },
        }
    }
}

impl FakeProject {
    /// The project's effective merge requests.
    pub(crate) fn merge_request_view(&self) -> MrView<'_> {
        MrView::of(self)
    }

    /// The project's history, seeded now if it has none, with direct count edits applied.
    fn take_history(&mut self) -> Box<History> {
        let mut h = self
            .history
            .take()
            .unwrap_or_else(|| Box::new(History::seed(self)));
        h.reconcile(self.merge_requests);
        h
    }

    /// Applies direct edits of `merge_requests` to the recorded merge requests (no-op for a
    /// project that never changed through the change API).
    pub(crate) fn reconcile_merge_requests(&mut self) {
        if let Some(h) = self.history.as_mut() {
            h.reconcile(self.merge_requests);
        }
    }

    /// GitLab's `Event#reset_project_activity`: `last_activity_at` (and `updated_at`, through
    /// `touch_all`) move to `now` only if `last_activity_at` is at least an hour old.
    fn reset_activity(&mut self, now: i64) {
        if self.last_activity_at <= now - RESET_PROJECT_ACTIVITY_INTERVAL {
            self.last_activity_at = now;
            if let Some(h) = self.history.as_mut() {
                h.updated_at = now;
            }
        }
    }

    fn change_merge_request(&mut self, change: MergeRequestChange, now: i64) -> bool {
        // Archived projects are read-only; a disabled feature has no merge requests to change.
        if !self.merge_requests_enabled || self.archived {
            return false;
        }
        let mut h = self.take_history();
        let done = h.apply(change, now);
        self.merge_requests = h.synced;
        self.history = Some(h);
        if done && change.creates_event() {
            self.reset_activity(now);
        }
        done
    }

    fn push(&mut self, commits: u64, now: i64) -> bool {
        // GitLab refuses pushes to archived projects.
        if commits == 0 || self.archived {
            return false;
        }
        let mut h = self.take_history();
        self.commits += commits;
        h.pushes.push((self.commits, now));
        if self.default_branch.is_none() {
            // The first push to an empty repository creates its default branch.
            self.default_branch = Some("main".to_string());
        }
        self.storage.repository += commits.saturating_mul(BYTES_PER_COMMIT);
        // `Event#set_last_repository_updated_at` (push events), also a `touch_all`.
        if h.last_repository_updated_at < now - REPOSITORY_UPDATED_AT_INTERVAL {
            h.last_repository_updated_at = now;
            h.updated_at = now;
        }
        self.history = Some(h);
        self.reset_activity(now);
        true
    }
}

impl Instance {
    /// Applies `change` to one merge request of project `project_id` at time `now` (Unix seconds;
    /// `FakeGitlab::change_merge_request` passes the fake's clock). Every change but `Delete`
    /// sets that merge request's `updated_at` to `now`; the project's `merge_requests` counts
    /// follow. Open, merge, close and reopen are project events: they move `last_activity_at`
    /// (and the project's `updated_at`) to `now` if it is at least an hour old.
    ///
    /// Returns false, changing nothing, when the change is impossible: unknown project, merge
    /// requests disabled, archived (read-only) project, or no merge request in the needed state.
    pub fn change_merge_request(
        &mut self,
        project_id: u64,
        change: MergeRequestChange,
        now: i64,
    ) -> bool {
        self.project_mut(project_id)
            .is_some_and(|p| p.change_merge_request(change, now))
    }

    /// Pushes `commits` commits to the default branch of project `project_id` at time `now`.
    ///
    /// The head SHA, the commits list, the `sequence` endpoint and `statistics.commit_count`
    /// follow at once (real GitLab refreshes `statistics` asynchronously, up to ~15 minutes
    /// later); the repository grows by 14 KiB per commit. `last_activity_at` moves to `now` only
    /// if it is at least an hour old (`RESET_PROJECT_ACTIVITY_INTERVAL`); the project's
    /// `updated_at` also moves when the repository was last updated more than 5 minutes ago
    /// (`REPOSITORY_UPDATED_AT_INTERVAL`). A push to an empty repository creates branch `main`.
    ///
    /// Returns false, changing nothing, for an unknown or archived project or 0 commits.
    pub fn push(&mut self, project_id: u64, commits: u64, now: i64) -> bool {
        self.project_mut(project_id)
            .is_some_and(|p| p.push(commits, now))
    }

    /// Applies direct edits of `merge_requests` counts of changed projects (see the module docs).
    pub(crate) fn reconcile_changes(&mut self) {
        for p in &mut self.projects {
            p.reconcile_merge_requests();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::{DEMO_NOW, MergeRequestCounts};
    use crate::history::{MrFilter, MrOrder, MrState};
    use crate::instance::Namespace;

    fn project(counts: MergeRequestCounts) -> FakeProject {
        let mut p = FakeProject::new(5, "p", Namespace::User);
        p.merge_requests = counts;
        p.last_activity_at = DEMO_NOW - 86_400;
        p
    }

    fn counts(opened: u64, merged: u64, closed: u64, locked: u64) -> MergeRequestCounts {
        MergeRequestCounts {
            opened,
            merged,
            closed,
            locked,
        }
    }

    #[test]
    fn baseline_times_grow_and_stay_before_the_horizon() {
        let mut p = project(counts(10_000, 12_345, 10_001, 1));
        p.commits = 4_321;
        // Even a project active after the horizon keeps its synthesised history before it.
        p.last_activity_at = DEMO_NOW + 30 * 86_400;
        let b = Baseline::live(&p);
        let mut prev = (i64::MIN, i64::MIN);
        for iid in 1..=b.total() {
            let (c, u) = (b.created(iid), b.updated(iid));
            assert!(c <= u && u <= HISTORY_HORIZON, "{iid}");
            assert!(c >= prev.0 && u >= prev.1, "{iid}");
            prev = (c, u);
        }
    }

    #[test]
    fn windows_count_exactly() {
        let mut p = project(counts(7, 312, 41, 2));
        let naive = |p: &FakeProject, f: &MrFilter| {
            let v = p.merge_request_view();
            (1..=p.merge_requests.total() + 20)
                .filter_map(|i| v.get(i))
                .filter(|m| f.matches(m.state, m.created_at, m.updated_at, m.merged_at))
                .count() as u64
        };
        let b = Baseline::live(&p);
        let mid = b.updated(100);
        let filters = [
            MrFilter::default(),
            MrFilter {
                updated_after: Some(mid),
                ..MrFilter::default()
            },
            MrFilter {
                state: Some(MrState::Merged),
                created_before: Some(b.created(50)),
                updated_after: Some(b.updated(10)),
                ..MrFilter::default()
            },
            MrFilter {
                updated_after: Some(HISTORY_HORIZON),
                ..MrFilter::default()
            },
        ];
        for f in &filters {
            assert_eq!(p.merge_request_view().count(f), naive(&p, f));
        }
        let now = HISTORY_HORIZON + 1_000;
        for change in [
            MergeRequestChange::Open,
            MergeRequestChange::Merge,
            MergeRequestChange::Close,
            MergeRequestChange::Reopen,
            MergeRequestChange::Edit,
            MergeRequestChange::Delete,
            MergeRequestChange::Lock,
        ] {
            assert!(p.change_merge_request(change, now));
        }
        p.merge_requests.merged -= 5; // an invisible deletion
        p.merge_requests.closed += 2; // an invisible addition
        p.reconcile_merge_requests();
        for f in &filters {
            assert_eq!(p.merge_request_view().count(f), naive(&p, f), "{f:?}");
        }
        let all = MrFilter::default();
        assert_eq!(p.merge_request_view().count(&all), p.merge_requests.total());
        // Sorted listing: every match once, in order.
        for order in [MrOrder::Created, MrOrder::Updated] {
            let listed: Vec<(i64, u64)> =
                p.merge_request_view().sorted(&all, order, true).collect();
            assert_eq!(listed.len() as u64, p.merge_requests.total());
            assert!(listed.windows(2).all(|w| w[0] > w[1]));
        }
        let recent = MrFilter {
            updated_after: Some(now),
            ..MrFilter::default()
        };
        // Repeated changes hit the newest MR: 363 opened, merged, edited, deleted; 362 closed,
        // reopened, locked.
        assert_eq!(p.merge_request_view().count(&recent), 1);
    }

    #[test]
    fn commit_times_survive_pushes() {
        let mut p = project(counts(1, 1, 0, 0));
        let (created, third) = (p.created_at(), p.commit_time(3));
        assert!(p.push(2, HISTORY_HORIZON + 50));
        assert_eq!(p.commits, 12);
        assert_eq!((p.created_at(), p.commit_time(3)), (created, third));
        assert_eq!(p.commit_time(12), HISTORY_HORIZON + 50);
        assert_eq!(p.commit_time(11), HISTORY_HORIZON + 49);
    }
}
