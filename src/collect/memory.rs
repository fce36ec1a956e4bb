//! What one collection leaves to the next, so that the next re-reads only what changed: each
//! project's family memos ([`super::families::Family::Memo`]: merge-request counts and what
//! made them readable, the default branch's head and its commit count, ...), whether the project
//! hides its statistics, when it is due for a re-read from scratch; and GitLab's clock from
//! which the next change signals start.
//!
//! Change signals ([`super::families::Family::signal`]) cover what GitLab can report as
//! changed; what no signal shows (a merge request deleted by an administrator) is caught by the
//! rolling re-read: every project is counted from scratch at least once per
//! `--collect.full-refresh-interval`, spread evenly over the interval so that no collection
//! pays for all of them.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use super::families::Memos;

/// How far before the last collection's start (by GitLab's clock) the next change query
/// reaches back: covers GitLab's own clock differences between nodes and the time between a
/// change's timestamp and its commit.
pub(crate) const OVERLAP: Duration = Duration::from_secs(120);

/// The memory of the last successful collection.
#[derive(Debug, Clone, Default)]
pub(crate) struct Memory {
    /// GitLab's clock (Unix seconds) from which the next change signals start; `None` before
    /// the first collection (everything is counted).
    pub(crate) since: Option<i64>,
    /// By project id.
    pub(crate) projects: HashMap<u64, Remembered>,
}

/// One project's remembered state.
#[derive(Debug, Clone)]
pub(crate) struct Remembered {
    /// What each family remembers.
    pub(crate) memos: Memos,
    /// `GET /projects/:id` gave no statistics: no need to ask again before the next re-read.
    pub(crate) statistics_hidden: bool,
    /// When the project is due for a re-read from scratch.
    pub(crate) refresh_at: Instant,
    /// Every family's call succeeded: the memos may be reused. Otherwise the project is read
    /// from scratch next time, and only the counting families' memos go on.
    pub(crate) complete: bool,
}

/// What a project's calls may take from memory this time.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Plan<'a> {
    /// The families' memos; `None`: read from scratch.
    pub(crate) memos: Option<&'a Memos>,
    /// The project is known to hide its statistics: no detail call.
    pub(crate) statistics_hidden: bool,
    /// When it is next due for a re-read from scratch, if it is not read from scratch now.
    pub(crate) refresh_at: Option<Instant>,
    /// The memos, even when the project is read from scratch: the counting families'
    /// ([`super::families::Family::COUNTS_EVENTS`]) go on from them.
    pub(crate) carried: Option<&'a Memos>,
}

impl Memory {
    /// What project `id` may reuse at `now`: nothing when it is new, at the first collection,
    /// after a failed call, or when due for its re-read from scratch (but the counting
    /// families' memos, in `carried`).
    pub(crate) fn plan(&self, id: u64, now: Instant) -> Plan<'_> {
        match self.projects.get(&id) {
            Some(known) if self.since.is_some() && known.complete && known.refresh_at > now => {
                Plan {
                    memos: Some(&known.memos),
                    statistics_hidden: known.statistics_hidden,
                    refresh_at: Some(known.refresh_at),
                    carried: Some(&known.memos),
                }
            }
            known => Plan {
                carried: known.map(|k| &k.memos),
                ..Plan::default()
            },
        }
    }
}

/// When a project counted from scratch now is next due: a full interval later, except after a
/// first sight, when the due times are spread over the interval by project id, so that the
/// re-reads of a big instance are evenly spread rather than all at once.
pub(crate) fn refresh_at(
    project_id: u64,
    now: Instant,
    interval: Duration,
    first_sight: bool,
) -> Instant {
    if !first_sight {
        return now + interval;
    }
    // A fixed, well-mixed fraction of the interval per project (splitmix64 finaliser).
    let mut z = project_id.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let fraction = (z >> 11) as f64 / (1u64 << 53) as f64;
    now + interval.mul_f64(fraction.max(0.01))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sight_refreshes_are_spread_over_the_interval() {
        let now = Instant::now();
        let interval = Duration::from_secs(24 * 3600);
        let mut buckets = [0u32; 24];
        for id in 1..=24_000u64 {
            let due = refresh_at(id, now, interval, true) - now;
            assert!(due > Duration::ZERO && due <= interval);
            buckets[(due.as_secs() / 3600).min(23) as usize] += 1;
        }
        // About 1,000 per hour; none empty, none double.
        assert!(
            buckets.iter().all(|b| (800..1200).contains(b)),
            "{buckets:?}"
        );
        assert_eq!(refresh_at(7, now, interval, false), now + interval);
    }
}
