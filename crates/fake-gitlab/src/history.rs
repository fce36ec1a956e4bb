//! The merge request history model: the merge requests synthesised from a project's counts (the
//! baseline), the changes recorded on top of them ([`History`]), and the view that counts and
//! lists the effective ones ([`MrView`]). It knows no project: `changes` seeds a history from one
//! and applies the change API to it.
//!
//! # Synthesised merge requests (the baseline)
//!
//! A project's merge requests are synthesised from its per-state counts: iids `1..=N` are, from
//! oldest to newest, the merged ones, then closed, locked and opened. Creation times are spread
//! evenly from the project's `created_at` to `min(last_activity_at, HISTORY_HORIZON)`, and each
//! `updated_at` falls between its own creation and the next merge request's, so **both times grow
//! with the iid** and every synthesised merge request was created and last updated **at or before
//! [`HISTORY_HORIZON`]** (2026-11-20T10:15:00Z, the built-in instances' "now", a fixed instant in
//! the past). A time window is therefore a contiguous iid range, found by binary search: counts
//! and pages are exact for any `created_*`/`updated_*` window, in O(log N).
//!
//! # Recorded changes
//!
//! A [`History`] holds a project's baseline, `created_at` and commit timeline as frozen at its
//! first change; events are recorded per iid on top of it (new merge requests take fresh iids,
//! changed ones override their baseline entry, deleted ones leave a tombstone that no query ever
//! returns), pushes as the number and time of their last commit.

use std::collections::BTreeMap;
use std::ops::Range;

use super::common::{COMMIT_SPACING, DEMO_NOW, MergeRequestCounts, splitmix64};

/// Every synthesised merge request was created and last updated at or before this instant
/// (2026-11-20T10:15:00Z, the built-in instances' "now"). Changes made through the change API are
/// stamped with the fake's clock, which is later than this for any real clock from that day on,
/// so an `updated_after` at or after the horizon matches exactly the changed merge requests.
pub const HISTORY_HORIZON: i64 = DEMO_NOW;

/// A change to one merge request of a project (see
/// [`Instance::change_merge_request`](crate::Instance::change_merge_request)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MergeRequestChange {
    /// A new merge request (the next iid), state `opened`.
    Open,
    /// The newest opened merge request is merged.
    Merge,
    /// The newest opened merge request is closed.
    Close,
    /// The newest closed merge request is reopened.
    Reopen,
    /// The newest opened merge request goes to `locked` (GitLab's transient state while merging).
    Lock,
    /// The newest merge request's title changes; its state does not.
    Edit,
    /// The newest merge request is deleted (as an administrator can): it is gone from every
    /// listing and count, and no `updated_after` query ever sees it again.
    Delete,
}

impl MergeRequestChange {
    /// Whether GitLab records a project event for it (open, close, reopen, merge), which bumps
    /// the project's `last_activity_at` at most once an hour.
    pub(crate) fn creates_event(self) -> bool {
        matches!(self, Self::Open | Self::Merge | Self::Close | Self::Reopen)
    }
}

/// The state of one merge request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum MrState {
    Opened,
    Closed,
    Locked,
    Merged,
}

impl MrState {
    const ALL: [MrState; 4] = [
        MrState::Opened,
        MrState::Closed,
        MrState::Locked,
        MrState::Merged,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            MrState::Opened => "opened",
            MrState::Closed => "closed",
            MrState::Locked => "locked",
            MrState::Merged => "merged",
        }
    }

    /// `opened`, `closed`, `locked`, `merged`; anything else (`all`) is `None`.
    pub(crate) fn parse(s: &str) -> Option<MrState> {
        MrState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    fn count(self, c: &MergeRequestCounts) -> u64 {
        match self {
            MrState::Opened => c.opened,
            MrState::Closed => c.closed,
            MrState::Locked => c.locked,
            MrState::Merged => c.merged,
        }
    }

    fn count_mut(self, c: &mut MergeRequestCounts) -> &mut u64 {
        match self {
            MrState::Opened => &mut c.opened,
            MrState::Closed => &mut c.closed,
            MrState::Locked => &mut c.locked,
            MrState::Merged => &mut c.merged,
        }
    }
}

/// The synthesised merge requests of a project: iids `1..=N` by age, merged, closed, locked,
/// then opened; creation and update times non-decreasing in the iid, all before `end`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Baseline {
    pub(crate) counts: MergeRequestCounts,
    /// Creation time of the project (iid 0 would be created then).
    pub(crate) start: i64,
    /// `min(last_activity_at, HISTORY_HORIZON)`: iid N+1 would be created then.
    pub(crate) end: i64,
    pub(crate) project_id: u64,
}

impl Baseline {
    pub(crate) fn total(&self) -> u64 {
        self.counts.total()
    }

    /// The iids of a state (`None` = all), a contiguous range.
    fn range(&self, state: Option<MrState>) -> Range<u64> {
        let c = &self.counts;
        let (first, n) = match state {
            Some(MrState::Merged) => (1, c.merged),
            Some(MrState::Closed) => (1 + c.merged, c.closed),
            Some(MrState::Locked) => (1 + c.merged + c.closed, c.locked),
            Some(MrState::Opened) => (1 + c.merged + c.closed + c.locked, c.opened),
            None => (1, c.total()),
        };
        first..first + n
    }

    fn state(&self, iid: u64) -> MrState {
        let c = &self.counts;
        if iid <= c.merged {
            MrState::Merged
        } else if iid <= c.merged + c.closed {
            MrState::Closed
        } else if iid <= c.merged + c.closed + c.locked {
            MrState::Locked
        } else {
            MrState::Opened
        }
    }

    /// Creation time of iid `iid` (1..=N+1; N+1 gives `end`).
    pub(crate) fn created(&self, iid: u64) -> i64 {
        let span = i128::from(self.end - self.start);
        let n = i128::from(self.total()) + 1;
        self.start + i64::try_from(span * i128::from(iid) / n).unwrap_or(0)
    }

    /// Last update of iid `iid`: somewhere between its creation and the next one's.
    pub(crate) fn updated(&self, iid: u64) -> i64 {
        let created = self.created(iid);
        let gap = self.created(iid + 1) - created;
        let frac =
            (splitmix64(self.project_id.wrapping_shl(24) ^ iid ^ 0x0DA7_E000) % 1_000) as i64;
        created + gap * frac / 1_000
    }

    fn merge_request(&self, iid: u64) -> Mr {
        let state = self.state(iid);
        let updated_at = self.updated(iid);
        Mr {
            iid,
            state,
            created_at: self.created(iid),
            updated_at,
            // A synthesised merged merge request was merged at its last update.
            merged_at: (state == MrState::Merged).then_some(updated_at),
            edits: 0,
        }
    }

    /// The merged iids (merge time is `updated`, non-decreasing in the iid) merged in
    /// `after..=before` (inclusive bounds).
    pub(crate) fn merged_between(&self, after: i64, before: i64) -> Range<u64> {
        let r = self.range(Some(MrState::Merged));
        let start = partition(r.clone(), |i| self.updated(i) < after);
        let end = partition(r.clone(), |i| self.updated(i) <= before);
        start..end.max(start)
    }
}

/// A merge request changed, added or deleted after the baseline was frozen.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MrRecord {
    /// `None`: deleted (never listed nor counted).
    state: Option<MrState>,
    created_at: i64,
    updated_at: i64,
    /// When it was merged (`Some` once merged).
    merged_at: Option<i64>,
    /// Title edits so far.
    edits: u32,
}

/// Everything a project went through since its first change.
#[derive(Debug, Clone)]
pub(crate) struct History {
    /// The synthesised merge requests, frozen at the first change.
    pub(crate) baseline: Baseline,
    /// The project's `created_at`, frozen.
    pub(crate) created_at: i64,
    /// Commit timeline anchor: commits and head commit time at the first change.
    pub(crate) commits_at_start: u64,
    pub(crate) head_time_at_start: i64,
    /// `(number of the last commit of the push, push time)`, oldest first.
    pub(crate) pushes: Vec<(u64, i64)>,
    /// The project's `updated_at` (touched with `last_activity_at` and `last_repository_updated_at`).
    pub(crate) updated_at: i64,
    pub(crate) last_repository_updated_at: i64,
    /// Changed (iid <= N), new (iid > N) and deleted merge requests.
    pub(crate) records: BTreeMap<u64, MrRecord>,
    pub(crate) next_iid: u64,
    /// The effective counts as last written to `FakeProject::merge_requests`.
    pub(crate) synced: MergeRequestCounts,
}

impl History {
    /// Commit time of commit number `k`: the frozen timeline, then the pushes (the commits of a
    /// push one second apart, the last at the push time).
    pub(crate) fn commit_time(&self, k: u64) -> i64 {
        if k <= self.commits_at_start {
            let behind = i64::try_from(self.commits_at_start - k).unwrap_or(i64::MAX / 2);
            return self
                .head_time_at_start
                .saturating_sub(behind.saturating_mul(COMMIT_SPACING));
        }
        match self.pushes.iter().find(|(last, _)| *last >= k) {
            Some((last, at)) => at.saturating_sub(i64::try_from(last - k).unwrap_or(0)),
            None => self.pushes.last().map_or(self.head_time_at_start, |p| p.1),
        }
    }

    /// The effective merge request `iid`, if it exists.
    fn get(&self, iid: u64) -> Option<Mr> {
        match self.records.get(&iid) {
            Some(r) => r.state.map(|state| Mr {
                iid,
                state,
                created_at: r.created_at,
                updated_at: r.updated_at,
                merged_at: r.merged_at,
                edits: r.edits,
            }),
            None => {
                (iid >= 1 && iid <= self.baseline.total()).then(|| self.baseline.merge_request(iid))
            }
        }
    }

    /// The `n` highest iids in `state` (`None`: any state), highest first.
    fn newest(&self, state: Option<MrState>, n: usize) -> Vec<u64> {
        let wanted = |s: Option<MrState>| s.is_some() && (state.is_none() || s == state);
        let mut recorded = self
            .records
            .iter()
            .rev()
            .filter(|(_, r)| wanted(r.state))
            .map(|(iid, _)| *iid)
            .peekable();
        let mut synthesised = self
            .baseline
            .range(state)
            .rev()
            .filter(|iid| !self.records.contains_key(iid))
            .peekable();
        let mut out = Vec::with_capacity(n.min(1_024));
        while out.len() < n {
            let next = match (recorded.peek(), synthesised.peek()) {
                (Some(a), Some(b)) if a > b => recorded.next(),
                (Some(_), None) => recorded.next(),
                (_, Some(_)) => synthesised.next(),
                (None, None) => None,
            };
            match next {
                Some(iid) => out.push(iid),
                None => break,
            }
        }
        out
    }

    /// The record of `iid`, created from the baseline if needed (`iid` must exist).
    fn record_mut(&mut self, iid: u64) -> &mut MrRecord {
        let baseline = self.baseline;
        self.records.entry(iid).or_insert_with(|| {
            let m = baseline.merge_request(iid);
            MrRecord {
                state: Some(m.state),
                created_at: m.created_at,
                updated_at: m.updated_at,
                merged_at: m.merged_at,
                edits: 0,
            }
        })
    }

    /// Deletes `iid` (an existing merge request) without any trace.
    fn delete(&mut self, iid: u64) {
        let record = self.record_mut(iid);
        if let Some(state) = record.state.take() {
            *state.count_mut(&mut self.synced) -= 1;
        }
    }

    fn add(&mut self, state: MrState, at: i64) -> u64 {
        let iid = self.next_iid;
        self.next_iid += 1;
        self.records.insert(
            iid,
            MrRecord {
                state: Some(state),
                created_at: at,
                updated_at: at,
                merged_at: (state == MrState::Merged).then_some(at),
                edits: 0,
            },
        );
        *state.count_mut(&mut self.synced) += 1;
        iid
    }

    /// Moves the newest merge request in `from` to `to`, updated at `now`.
    fn transition(&mut self, from: MrState, to: MrState, now: i64) -> bool {
        let Some(&iid) = self.newest(Some(from), 1).first() else {
            return false;
        };
        let record = self.record_mut(iid);
        record.state = Some(to);
        record.updated_at = now;
        if to == MrState::Merged {
            record.merged_at = Some(now);
        }
        *from.count_mut(&mut self.synced) -= 1;
        *to.count_mut(&mut self.synced) += 1;
        true
    }

    pub(crate) fn apply(&mut self, change: MergeRequestChange, now: i64) -> bool {
        use MergeRequestChange as C;
        match change {
            C::Open => {
                self.add(MrState::Opened, now);
                true
            }
            C::Merge => self.transition(MrState::Opened, MrState::Merged, now),
            C::Close => self.transition(MrState::Opened, MrState::Closed, now),
            C::Lock => self.transition(MrState::Opened, MrState::Locked, now),
            C::Reopen => self.transition(MrState::Closed, MrState::Opened, now),
            C::Edit => match self.newest(None, 1).first() {
                Some(&iid) => {
                    let record = self.record_mut(iid);
                    record.edits += 1;
                    record.updated_at = now;
                    true
                }
                None => false,
            },
            C::Delete => match self.newest(None, 1).first() {
                Some(&iid) => {
                    self.delete(iid);
                    true
                }
                None => false,
            },
        }
    }

    /// Applies a direct edit of the counts (`live` differs from `synced`) invisibly: additions
    /// are timestamped at the end of the baseline, removals leave no trace.
    pub(crate) fn reconcile(&mut self, live: MergeRequestCounts) {
        if live == self.synced {
            return;
        }
        for state in MrState::ALL {
            let (want, have) = (state.count(&live), state.count(&self.synced));
            if want > have {
                for _ in have..want {
                    self.add(state, self.baseline.end);
                }
            } else if want < have {
                let n = usize::try_from(have - want).unwrap_or(usize::MAX);
                for iid in self.newest(Some(state), n) {
                    self.delete(iid);
                }
            }
        }
    }
}

/// One effective merge request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mr {
    pub(crate) iid: u64,
    pub(crate) state: MrState,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
    /// When it was merged (merged ones only).
    pub(crate) merged_at: Option<i64>,
    /// Title edits so far (0 = the synthesised title).
    pub(crate) edits: u32,
}

/// Which merge requests a listing wants. Time bounds are inclusive whole seconds, as GitLab's
/// `created_after` (`>=`), `created_before` (`<=`) and the `updated_*` pair.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MrFilter {
    /// `None`: all states.
    pub(crate) state: Option<MrState>,
    pub(crate) created_after: Option<i64>,
    pub(crate) created_before: Option<i64>,
    pub(crate) updated_after: Option<i64>,
    pub(crate) updated_before: Option<i64>,
    /// Merged at or after / at or before (GraphQL's `mergedAfter`/`mergedBefore`): merged ones only.
    pub(crate) merged_after: Option<i64>,
    pub(crate) merged_before: Option<i64>,
    /// A scope nothing matches (`created_by_me`: the fake's merge requests are all by others).
    pub(crate) nothing: bool,
}

impl MrFilter {
    pub(crate) fn matches(
        &self,
        state: MrState,
        created: i64,
        updated: i64,
        merged: Option<i64>,
    ) -> bool {
        !self.nothing
            && self.state.is_none_or(|s| s == state)
            && self.created_after.is_none_or(|t| created >= t)
            && self.created_before.is_none_or(|t| created <= t)
            && self.updated_after.is_none_or(|t| updated >= t)
            && self.updated_before.is_none_or(|t| updated <= t)
            && self
                .merged_after
                .is_none_or(|t| merged.is_some_and(|m| m >= t))
            && self
                .merged_before
                .is_none_or(|t| merged.is_some_and(|m| m <= t))
    }

    /// Whether a merge time bound restricts the listing to merged merge requests.
    fn merged_only(&self) -> bool {
        self.merged_after.is_some() || self.merged_before.is_some()
    }
}

/// `order_by`: the time a listing is sorted on (then the id, in the same direction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MrOrder {
    Created,
    Updated,
    /// Merge time; merged merge requests only (GraphQL's `MERGED_AT_*`, nulls left out).
    Merged,
}

/// First point of `range` where `before` turns false (`before` must hold on a prefix).
fn partition(range: Range<u64>, before: impl Fn(u64) -> bool) -> u64 {
    let (mut lo, mut hi) = (range.start, range.end.max(range.start));
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if before(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// A project's effective merge requests, for counting and listing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MrView<'a> {
    pub(crate) baseline: Baseline,
    pub(crate) history: Option<&'a History>,
}

impl MrFilter {
    /// True when nothing synthesised can match (the window starts after [`HISTORY_HORIZON`]):
    /// then only projects with recorded changes need a look.
    pub(crate) fn after_horizon(&self) -> bool {
        self.nothing
            || self.created_after.is_some_and(|t| t > HISTORY_HORIZON)
            || self.updated_after.is_some_and(|t| t > HISTORY_HORIZON)
            || self.merged_after.is_some_and(|t| t > HISTORY_HORIZON)
    }
}

impl<'a> MrView<'a> {
    fn records(&self) -> Option<&'a BTreeMap<u64, MrRecord>> {
        self.history.map(|h| &h.records).filter(|r| !r.is_empty())
    }

    /// The synthesised iids the filter's state and times select, overridden ones included.
    fn baseline_window(&self, f: &MrFilter) -> Range<u64> {
        let b = &self.baseline;
        // Every synthesised time is at or before `end`: a window starting later selects none.
        if f.nothing
            || f.created_after.is_some_and(|t| t > b.end)
            || f.updated_after.is_some_and(|t| t > b.end)
            || f.merged_after.is_some_and(|t| t > b.end)
        {
            return 0..0;
        }
        let mut r = b.range(f.state);
        if f.merged_only() {
            // Only merged ones have a merge time (their `updated`): the merged range.
            let merged = b.range(Some(MrState::Merged));
            r = r.start.max(merged.start)..r.end.min(merged.end);
            if r.start >= r.end {
                return 0..0;
            }
            if let Some(t) = f.merged_after {
                r.start = partition(r.clone(), |i| b.updated(i) < t);
            }
            if let Some(t) = f.merged_before {
                r.end = partition(r.clone(), |i| b.updated(i) <= t);
            }
        }
        if let Some(t) = f.created_after {
            r.start = partition(r.clone(), |i| b.created(i) < t);
        }
        if let Some(t) = f.created_before {
            r.end = partition(r.clone(), |i| b.created(i) <= t);
        }
        if let Some(t) = f.updated_after {
            r.start = partition(r.clone(), |i| b.updated(i) < t);
        }
        if let Some(t) = f.updated_before {
            r.end = partition(r.clone(), |i| b.updated(i) <= t);
        }
        r.start..r.end.max(r.start)
    }

    /// Exact number of merge requests matching `f`.
    pub(crate) fn count(&self, f: &MrFilter) -> u64 {
        let window = self.baseline_window(f);
        let mut n = window.end - window.start;
        if let Some(records) = self.records() {
            n -= records.range(window).count() as u64;
            n += records
                .values()
                .filter(|r| {
                    r.state
                        .is_some_and(|s| f.matches(s, r.created_at, r.updated_at, r.merged_at))
                })
                .count() as u64;
        }
        n
    }

    /// The effective merge request `iid`.
    pub(crate) fn get(&self, iid: u64) -> Option<Mr> {
        match self.history {
            Some(h) => h.get(iid),
            None => {
                (iid >= 1 && iid <= self.baseline.total()).then(|| self.baseline.merge_request(iid))
            }
        }
    }

    /// The merge requests matching `f`, sorted by (`order` time, iid), descending or not.
    pub(crate) fn sorted(&self, f: &MrFilter, order: MrOrder, desc: bool) -> MrIter<'a> {
        // Only merged merge requests have a merge time to sort on.
        let merged_only;
        let f = if order == MrOrder::Merged && f.state != Some(MrState::Merged) {
            merged_only = MrFilter {
                state: Some(MrState::Merged),
                ..*f
            };
            &merged_only
        } else {
            f
        };
        let key = |m: &MrRecord| match order {
            MrOrder::Created => m.created_at,
            MrOrder::Updated => m.updated_at,
            MrOrder::Merged => m.merged_at.unwrap_or(i64::MIN),
        };
        let mut extra: Vec<(i64, u64)> = self.records().map_or(Vec::new(), |records| {
            records
                .iter()
                .filter(|(_, r)| {
                    r.state
                        .is_some_and(|s| f.matches(s, r.created_at, r.updated_at, r.merged_at))
                })
                .map(|(iid, r)| (key(r), *iid))
                .collect()
        });
        extra.sort_unstable();
        if desc {
            extra.reverse();
        }
        MrIter {
            baseline: self.baseline,
            window: self.baseline_window(f),
            order,
            desc,
            overridden: self.records(),
            extra: extra.into_iter().peekable(),
            next_base: None,
        }
    }
}

/// Sorted `(time, iid)` of one project's matching merge requests: the synthesised window (in iid
/// order, which is time order) merged with the recorded ones.
#[derive(Debug)]
pub(crate) struct MrIter<'a> {
    baseline: Baseline,
    window: Range<u64>,
    order: MrOrder,
    desc: bool,
    overridden: Option<&'a BTreeMap<u64, MrRecord>>,
    extra: std::iter::Peekable<std::vec::IntoIter<(i64, u64)>>,
    next_base: Option<(i64, u64)>,
}

impl MrIter<'_> {
    fn pull_base(&mut self) -> Option<(i64, u64)> {
        if self.next_base.is_none() {
            self.next_base = loop {
                let iid = if self.desc {
                    self.window.next_back()?
                } else {
                    self.window.next()?
                };
                if self.overridden.is_some_and(|o| o.contains_key(&iid)) {
                    continue;
                }
                let key = match self.order {
                    MrOrder::Created => self.baseline.created(iid),
                    MrOrder::Updated | MrOrder::Merged => self.baseline.updated(iid),
                };
                break Some((key, iid));
            };
        }
        self.next_base
    }

    /// Skips `n` items; O(1) when nothing was recorded.
    pub(crate) fn skip_items(&mut self, mut n: u64) {
        if self.overridden.is_none() && self.next_base.is_none() {
            let len = self.window.end - self.window.start;
            let k = n.min(len);
            if self.desc {
                self.window.end -= k;
            } else {
                self.window.start += k;
            }
            n -= k;
        }
        for _ in 0..n {
            if self.next().is_none() {
                break;
            }
        }
    }
}

impl Iterator for MrIter<'_> {
    type Item = (i64, u64);

    fn next(&mut self) -> Option<(i64, u64)> {
        let base = self.pull_base();
        let take_base = match (base, self.extra.peek()) {
            (Some(b), Some(e)) => (b > *e) == self.desc,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if take_base {
            self.next_base = None;
            base
        } else {
            self.extra.next()
        }
    }
}
