//! The one max-stale policy: when a family's calls fail, its last good values for the project
//! are served instead, and when a whole collection fails, the last good projects are; either
//! for at most `--cache.max-stale` after they were collected, and then left out. The cache
//! asks [`expire`] before serving a snapshot, so values grown too old in the cache go too.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::families::{Row, Set};
use super::{Collected, Snapshot, Stamp};

/// The projects of the last successful collection.
#[derive(Debug, Clone)]
pub(crate) struct LastGood {
    pub(crate) projects: Arc<Vec<Row>>,
    pub(crate) stamp: Stamp,
}

impl LastGood {
    /// The project's row, if it was there and younger than `max_stale` (counted from when its
    /// values were first kept for lack of new ones).
    fn fresh_row(&self, id: u64, max_stale: Duration) -> Option<(&Row, Instant)> {
        let i = self.projects.binary_search_by_key(&id, |p| p.id).ok()?;
        let row = &self.projects[i];
        let since = row.kept_since.unwrap_or(self.stamp.at);
        (since.elapsed() <= max_stale).then_some((row, since))
    }
}

/// Where the values of failed calls come from: the last successful collection.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Fallback<'a> {
    pub(crate) last_good: Option<&'a LastGood>,
    pub(crate) max_stale: Duration,
}

impl Fallback<'_> {
    /// Fills the families whose calls failed with the last good collection's values, while
    /// they are younger than `--cache.max-stale`.
    pub(crate) fn keep_last_good(&self, row: &mut Row, failed: Set) {
        let Some((old, since)) = self
            .last_good
            .and_then(|g| g.fresh_row(row.id, self.max_stale))
        else {
            return;
        };
        row.values.keep_from(&old.values, failed);
        row.kept = failed;
        row.kept_since = Some(since);
    }

    /// The last good row, whole, of a named project (by id or path) whose own detail call
    /// failed, while it is younger than `--cache.max-stale`.
    pub(crate) fn named_row(&self, reference: &str) -> Option<Row> {
        let last_good = self.last_good?;
        let id = match reference.parse::<u64>() {
            Ok(id) => id,
            Err(_) => {
                last_good
                    .projects
                    .iter()
                    .find(|p| p.path.eq_ignore_ascii_case(reference))?
                    .id
            }
        };
        let (old, since) = last_good.fresh_row(id, self.max_stale)?;
        let mut row = old.clone();
        row.kept = Set::all();
        row.kept_since = Some(since);
        Some(row)
    }
}

/// What a failed collection serves: the last good projects while younger than `max_stale`,
/// without their kept values grown older than that.
pub(crate) fn last_good_to_serve(
    last_good: Option<LastGood>,
    max_stale: Duration,
) -> Option<(Arc<Vec<Row>>, Stamp)> {
    let g = last_good.filter(|g| g.stamp.at.elapsed() <= max_stale)?;
    let projects = expire_kept(&g.projects, max_stale).map_or(g.projects, Arc::new);
    Some((projects, g.stamp))
}

/// `snapshot` as it may still be served `max_stale` after its data was collected: without its
/// project data once that is older, and without the values kept from earlier collections once
/// those are; `None` when it may be served as it is.
pub(crate) fn expire(snapshot: &Snapshot, max_stale: Duration) -> Option<Snapshot> {
    let data = &snapshot.data;
    let replaced = if snapshot.data_age().is_some_and(|age| age > max_stale) {
        // Once, for good: the snapshot then has no data to age.
        Collected {
            projects: Arc::default(),
            projects_from: None,
            incomplete_projects: 0,
            ..(**data).clone()
        }
    } else if snapshot.kept_since.is_some_and(|t| t.elapsed() > max_stale) {
        Collected {
            projects: Arc::new(expire_kept(&data.projects, max_stale)?),
            ..(**data).clone()
        }
    } else {
        return None;
    };
    Some(Snapshot::finished_at(replaced, snapshot.finished))
}

/// `projects` without the kept values older than `max_stale`; `None` when there are none.
fn expire_kept(projects: &[Row], max_stale: Duration) -> Option<Vec<Row>> {
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
