//! What one collection leaves to the next, so that the next re-reads only what changed: each
//! project's merge-request counts and what made them readable, the default branch's head and
//! its commit count, whether the project hides its statistics, when its counts are due for a
//! re-read from scratch; and GitLab's clock from which the next change query starts.
//!
//! Change signals ([`super::merge_requests::changed_since`]) cover merge requests created or
//! changed; pushes show in the listing's statistics or the branch head. What no signal shows (a
//! merge request deleted by an administrator) is caught by the rolling re-read: every project is
//! counted from scratch at least once per `--collect.full-refresh-interval`, spread evenly over
//! the interval so that no collection pays for all of them.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use super::merge_requests::Counts;
use crate::gitlab::types::Project;

/// How far before the last collection's start (by GitLab's clock) the next change query
/// reaches back: covers GitLab's own clock differences between nodes and the time between a
/// change's timestamp and its commit.
pub const OVERLAP: Duration = Duration::from_secs(120);

/// The memory of the last successful collection.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    /// GitLab's clock (Unix seconds) from which the next change query starts; `None` before the
    /// first collection (everything is counted).
    pub since: Option<i64>,
    /// By project id.
    pub projects: HashMap<u64, Remembered>,
}

/// One project's remembered state.
#[derive(Debug, Clone)]
pub struct Remembered {
    /// The merge-request counts, or `None` when they were not readable (disabled, forbidden).
    pub merge_requests: Option<Counts>,
    /// What decided readability; when it changes, the counts are read again.
    pub gate: Gate,
    /// The namespace the counts were read under: change queries go by group.
    pub namespace: std::sync::Arc<str>,
    /// True for a personal (user) namespace.
    pub user_namespace: bool,
    /// The default branch's head and its commit count, for projects without statistics.
    pub head: Option<(String, u64)>,
    /// `GET /projects/:id` gave no statistics: no need to ask again before the next re-read.
    pub statistics_hidden: bool,
    /// When the counts are due for a re-read from scratch.
    pub refresh_at: Instant,
}

/// The inputs that decide whether a project's merge requests are readable: the feature, the
/// visibility and the token user's access. When any changes, the counts are read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gate {
    enabled: bool,
    private: bool,
    access: Option<u32>,
}

impl Gate {
    /// The gate of a project as listed now.
    pub fn of(project: &Project) -> Gate {
        Gate {
            enabled: project.merge_requests_enabled(),
            private: project.visibility.as_deref() == Some("private"),
            access: project.access_level(),
        }
    }
}

/// What a project's calls may take from memory this time.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Merge-request counts to reuse (`Some(None)`: known unreadable); `None`: count them.
    pub merge_requests: Option<Option<Counts>>,
    /// A known head and its commit count: if the head is still the same, no sequence call.
    pub head: Option<(String, u64)>,
    /// The project is known to hide its statistics: no detail call.
    pub statistics_hidden: bool,
    /// Counted from scratch this time; the next re-read is then due a full interval later.
    pub fresh: bool,
}

impl Memory {
    /// What project `project` may reuse, given the projects whose merge requests changed (or
    /// could not be checked) since the last collection, and the time now.
    pub fn plan(&self, project: &Project, dirty: &Dirty, now: Instant) -> Plan {
        let Some(known) = self.projects.get(&project.id) else {
            return Plan {
                fresh: true,
                ..Plan::default()
            };
        };
        if self.since.is_none() || known.refresh_at <= now {
            return Plan {
                fresh: true,
                ..Plan::default()
            };
        }
        let unchanged = !dirty.contains(project.id)
            && known.gate == Gate::of(project)
            && *known.namespace == *project.namespace_path();
        Plan {
            merge_requests: unchanged.then_some(known.merge_requests),
            head: known.head.clone(),
            statistics_hidden: known.statistics_hidden,
            fresh: false,
        }
    }

    /// The projects whose merge-request counts are remembered, for the change queries.
    pub fn watched(&self) -> impl Iterator<Item = (u64, &Remembered)> {
        self.projects
            .iter()
            .filter(|(_, r)| r.merge_requests.is_some())
            .map(|(id, r)| (*id, r))
    }
}

/// When a project counted from scratch now is next due: a full interval later, except after a
/// first sight, when the due times are spread over the interval by project id, so that the
/// re-reads of a big instance are evenly spread rather than all at once.
pub fn refresh_at(project_id: u64, now: Instant, interval: Duration, first_sight: bool) -> Instant {
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

/// Projects whose merge requests changed since the last collection, or whose change query
/// failed (they are counted again, to be safe).
#[derive(Debug, Clone, Default)]
pub struct Dirty {
    ids: std::collections::HashSet<u64>,
}

impl Dirty {
    /// Marks a project.
    pub fn insert(&mut self, id: u64) {
        self.ids.insert(id);
    }

    /// True when the project is marked.
    pub fn contains(&self, id: u64) -> bool {
        self.ids.contains(&id)
    }

    /// Number of marked projects.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when no project is marked.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
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
