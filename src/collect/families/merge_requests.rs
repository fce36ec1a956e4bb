//! The `merge_requests` family, `gitlab_project_merge_requests{state}`: merge requests per state, one call per state reading
//! `X-Total` at `per_page=1`. Above 10,000 GitLab withholds the total; the count is then found
//! exactly by searching for the last page at `per_page=100` (a handful of calls), never by
//! guessing 0 or 10,000.
//!
//! Counts are read again only for projects whose merge requests changed since the last
//! collection ([`changed_since`]): every creation or state change of a merge request updates its
//! `updated_at`, which the group merge-request list filters on (`updated_after`), one query per
//! group rather than one per project.

use std::collections::HashSet;
use std::sync::Arc;

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;

use super::{Current, Family, Fetched, Interner, Rows};
use crate::gitlab::types::{Ignored, MergeRequestRef, Page, Project, format_timestamp};
use crate::gitlab::{Client, Error, encode_segment, endpoint};

/// The `merge_requests` family (see the module's docs).
#[derive(Debug)]
pub(crate) struct MergeRequests;

/// What is remembered of a project: its counts, and what they depend on.
#[derive(Debug, Clone)]
pub(crate) struct Known {
    /// `None` when they were not readable (disabled, forbidden).
    counts: Option<Counts>,
    /// What decided readability; when it changes, the counts are read again.
    gate: Gate,
    /// The namespace the counts were read under: change queries go by group.
    namespace: Arc<str>,
    /// A personal (user) namespace: asked about alone.
    user_namespace: bool,
}

/// The inputs that decide whether a project's merge requests are readable: the feature, the
/// visibility and the token user's access. When any changes, the counts are read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Gate {
    enabled: bool,
    private: bool,
    access: Option<u32>,
}

impl Gate {
    fn of(project: &Project) -> Gate {
        Gate {
            enabled: project.merge_requests_enabled(),
            private: project.visibility.as_deref() == Some("private"),
            access: project.access_level(),
        }
    }
}

/// Projects whose merge requests changed since the last collection, or whose change query
/// failed (they are counted again, to be safe).
#[derive(Debug, Default)]
pub(crate) struct Dirty(HashSet<u64>);

impl Family for MergeRequests {
    const ABOUT: &'static str = "merge requests of each project by state (4 calls per project read from scratch; change queries by group between re-reads)";

    const PAGE_FIELDS: &'static str = "visibility mergeRequestsEnabled \
        userPermissions { readMergeRequest } maxAccessLevel { integerValue }";
    const BATCH_FIELDS: &'static str = "opened: mergeRequests(state: opened) { count } \
        merged: mergeRequests(state: merged) { count } \
        closed: mergeRequests(state: closed) { count } \
        locked: mergeRequests(state: locked) { count }";

    type Value = Counts;
    type Memo = Known;
    type Signal = Dirty;

    /// Only for projects listed over GraphQL, which says whether the token may read them (a
    /// count there is 0, not 403, where it may not).
    fn wants_batch(project: &Project, dirty: &Dirty, known: Option<&Known>) -> bool {
        project.merge_requests_readable == Some(true)
            && project.merge_requests_enabled()
            && unchanged(project, dirty, known).is_none()
    }

    fn signal<'a>(
        client: &'a Client,
        since: Option<i64>,
        memos: Vec<(u64, &'a Known)>,
    ) -> impl std::future::Future<Output = Dirty> + Send + 'a {
        changed_since(client, since, memos)
    }

    fn changed(dirty: &Dirty) -> usize {
        dirty.0.len()
    }

    async fn fetch<'a>(
        current: Current<'a>,
        dirty: &'a Dirty,
        known: Option<&'a Known>,
    ) -> Result<Fetched<MergeRequests>, Error> {
        let project = current.project;
        let gate = Gate::of(project);
        let counts = match (unchanged(project, dirty, known), current.batched) {
            (Some(known), _) => known.counts,
            (None, Some(node)) if Self::wants_batch(project, dirty, known) => {
                from_batch(current.client, project.id, node).await?
            }
            (None, _) => count(current.client, project).await?,
        };
        Ok(Fetched {
            value: counts,
            memo: Some(Known {
                counts,
                gate,
                namespace: project.namespace_path().into(),
                user_namespace: project.in_user_namespace(),
            }),
        })
    }

    fn share_memo(known: &mut Known, strings: &mut Interner) {
        known.namespace = strings.get(&known.namespace);
    }

    fn encode(rows: Rows<'_, Counts>, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        let mut family = encoder.encode_descriptor(
            "gitlab_project_merge_requests",
            "Merge requests of the project by state (opened, merged, closed, locked).",
            None,
            MetricType::Gauge,
        )?;
        for ([id, path], counts) in rows.iter() {
            for (state, count) in STATES.iter().zip(counts) {
                family
                    .encode_family(&[id, path, ("state", *state)])?
                    .encode_gauge(count)?;
            }
        }
        Ok(())
    }
}

/// What is remembered of the project, if it still holds: its merge requests did not change
/// (by the signal), nor what made them readable, nor its namespace.
fn unchanged<'a>(project: &Project, dirty: &Dirty, known: Option<&'a Known>) -> Option<&'a Known> {
    known.filter(|known| {
        !dirty.0.contains(&project.id)
            && known.gate == Gate::of(project)
            && *known.namespace == *project.namespace_path()
    })
}

/// GraphQL's count limit: a count of `limit + 1` means "more than that".
const GRAPHQL_COUNT_LIMIT: u64 = 1000;

/// The counts of a GraphQL batch node (aliases `opened`, `merged`, ...). GitLab's merge-request
/// counts stop at 1,000 (`count` answers 1,001 for "more"): such a state is counted exactly over
/// REST, as is one whose count came back unusable (a 403 there, access lost since the listing:
/// nothing to export, as over REST).
async fn from_batch(
    client: &Client,
    id: u64,
    node: &serde_json::Value,
) -> Result<Option<Counts>, Error> {
    let exact = |state| async move {
        match count_state(client, id, state).await {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.status() == Some(403) => Ok(None),
            Err(e) => Err(e),
        }
    };
    let mut counts = [0; 4];
    for (slot, state) in counts.iter_mut().zip(STATES) {
        let count = node
            .get(state)
            .and_then(|c| c.get("count"))
            .and_then(serde_json::Value::as_u64);
        *slot = match count {
            Some(n) if n != GRAPHQL_COUNT_LIMIT + 1 => n,
            Some(_) => {
                client.rest_fallback("count_over_limit");
                match exact(state).await? {
                    Some(n) => n,
                    None => return Ok(None),
                }
            }
            None => {
                client.bad_record(
                    crate::gitlab::endpoint::GRAPHQL,
                    &format!("project {id}: {state} merge requests: no usable count"),
                );
                client.rest_fallback("partial");
                match exact(state).await? {
                    Some(n) => n,
                    None => return Ok(None),
                }
            }
        };
    }
    Ok(Some(counts))
}

/// The states GitLab knows, in the order they are exported.
const STATES: [&str; 4] = ["opened", "merged", "closed", "locked"];

/// Merge requests per state, in the order of [`STATES`].
pub(crate) type Counts = [u64; 4];

/// Items per page when searching for the last page.
const SEARCH_PER_PAGE: u64 = 100;
/// Bound on the search's calls; 40 covers any count up to 2^40 merge requests.
const SEARCH_MAX_CALLS: u32 = 40;

/// The project's merge requests per state; `None` when its merge requests are disabled or not
/// readable with the token (GitLab answers 403).
async fn count(client: &Client, project: &Project) -> Result<Option<Counts>, Error> {
    if !project.merge_requests_enabled() {
        return Ok(None);
    }
    let mut result = [0; 4];
    let mut known = 0;
    if project.below_reporter_on_private() {
        // Most likely forbidden (403), but a custom role may allow it: one call finds out before
        // three more are spent.
        match count_state(client, project.id, STATES[0]).await {
            Ok(n) => result[0] = n,
            Err(e) if e.status() == Some(403) => return Ok(None),
            Err(e) => return Err(e),
        }
        known = 1;
    }
    let counts = futures::future::join_all(
        STATES[known..]
            .iter()
            .map(|state| count_state(client, project.id, state)),
    )
    .await;
    for (slot, count) in result[known..].iter_mut().zip(counts) {
        match count {
            Ok(n) => *slot = n,
            Err(e) if e.status() == Some(403) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    Ok(Some(result))
}

/// One page of one state's list: its length and whether GitLab says another page follows.
async fn page(
    client: &Client,
    id: u64,
    state: &str,
    per_page: u64,
    page: u64,
) -> Result<(u64, Option<u64>, bool), Error> {
    let reply = client
        .get::<Vec<Ignored>>(
            endpoint::MERGE_REQUESTS,
            format!("/projects/{id}/merge_requests"),
            vec![
                ("state", state.to_owned()),
                ("view", "simple".to_owned()),
                ("per_page", per_page.to_string()),
                ("page", page.to_string()),
            ],
        )
        .await?;
    Ok((
        reply.body.len() as u64,
        reply.page.total,
        reply.page.next_page.is_some(),
    ))
}

async fn count_state(client: &Client, id: u64, state: &str) -> Result<u64, Error> {
    match page(client, id, state, 1, 1).await? {
        (_, Some(total), _) => Ok(total),
        (len, None, false) => Ok(len),
        (_, None, true) => search(client, id, state).await,
    }
}

/// Finds the last non-empty page at `per_page=100`: exponential probing, then bisection. A
/// page is past the end (empty), the last one (no next page: the count is exact), or before it.
async fn search(client: &Client, id: u64, state: &str) -> Result<u64, Error> {
    // Pages known to be full with a successor (`before`) and known to be empty (`past`).
    let mut before = 0u64;
    let mut past: Option<u64> = None;
    // GitLab withholds totals above 10,000: item 10,001 is on page 101.
    let mut probe = 10_000 / SEARCH_PER_PAGE + 1;
    for _ in 0..SEARCH_MAX_CALLS {
        let (len, _, has_next) = page(client, id, state, SEARCH_PER_PAGE, probe).await?;
        if len > 0 && (!has_next || len < SEARCH_PER_PAGE) {
            return Ok((probe - 1) * SEARCH_PER_PAGE + len);
        }
        if len == 0 {
            past = Some(probe);
        } else {
            before = probe;
        }
        probe = match past {
            Some(past) => before + (past - before) / 2,
            None => probe.saturating_mul(2),
        };
        if probe == before {
            // Nothing between a full page and an empty one: the list changed under the search.
            if before == 0 {
                return Ok(0);
            }
            break;
        }
    }
    Err(Error::Decode {
        endpoint: endpoint::MERGE_REQUESTS,
        detail: format!(
            "the number of {state} merge requests of project {id} changed during the search"
        ),
    })
}

/// The remembered projects (`known`) whose merge requests were created or changed since
/// `since`, or whose query failed. Projects of one top-level group are asked about together,
/// through their closest common group (`GET /groups/:id/merge_requests?updated_after=`);
/// a project alone in its top-level group, or in a personal namespace, is asked about alone.
async fn changed_since(client: &Client, since: Option<i64>, known: Vec<(u64, &Known)>) -> Dirty {
    let mut dirty = HashSet::new();
    let Some(since) = since else {
        return Dirty(dirty);
    };
    let after = format_timestamp(since);
    let mut by_top_group: std::collections::BTreeMap<&str, Vec<(u64, &str)>> = Default::default();
    let mut alone = Vec::new();
    // Projects whose merge requests were not readable are read again only when their gate
    // changes, which the listing shows.
    for (id, known) in known.iter().filter(|(_, k)| k.counts.is_some()) {
        let id = *id;
        if known.user_namespace {
            alone.push(id);
        } else {
            let top = known.namespace.split('/').next().unwrap_or_default();
            by_top_group
                .entry(top)
                .or_default()
                .push((id, &*known.namespace));
        }
    }
    let mut groups = Vec::new();
    for projects in by_top_group.into_values() {
        if projects.len() == 1 {
            alone.push(projects[0].0);
        } else {
            let common = common_group(projects.iter().map(|(_, ns)| *ns));
            groups.push((
                common,
                projects.into_iter().map(|(id, _)| id).collect::<Vec<_>>(),
            ));
        }
    }
    let group_queries = futures::future::join_all(
        groups
            .iter()
            .map(|(group, ids)| changed_in_group(client, group, &after, ids.len())),
    );
    let project_queries = futures::future::join_all(
        alone
            .iter()
            .map(|id| changed_in_project(client, *id, &after)),
    );
    let (group_results, project_results) = futures::join!(group_queries, project_queries);
    let mut asked_alone = Vec::new();
    for ((group, ids), result) in groups.iter().zip(group_results) {
        match result {
            Ok(Some(changed)) => ids
                .iter()
                .filter(|id| changed.contains(id))
                .for_each(|id| {
                    dirty.insert(*id);
                }),
            // Too many changes to walk, or the list shrank during the walk (an item may have
            // been skipped): count the group's projects again.
            Ok(None) => dirty.extend(ids.iter().copied()),
            // The group itself cannot be asked (not visible to the token as a group): ask its
            // projects one by one, which is still cheaper than counting them again.
            Err(e) => {
                tracing::debug!(group = %group, error = %e, "group merge-request query failed; asking project by project");
                asked_alone.extend(ids.iter().copied());
            }
        }
    }
    let fallback = futures::future::join_all(
        asked_alone
            .iter()
            .map(|id| changed_in_project(client, *id, &after)),
    )
    .await;
    for (id, result) in alone
        .iter()
        .chain(&asked_alone)
        .zip(project_results.into_iter().chain(fallback))
    {
        // A failed query counts as a change: counting again is always safe.
        if result.unwrap_or(true) {
            dirty.insert(*id);
        }
    }
    Dirty(dirty)
}

/// The longest common ancestor (by path segments) of group paths of one top-level group.
fn common_group<'a>(mut paths: impl Iterator<Item = &'a str>) -> String {
    let first: Vec<&str> = paths.next().unwrap_or_default().split('/').collect();
    let mut len = first.len();
    for path in paths {
        len = len.min(
            first
                .iter()
                .zip(path.split('/'))
                .take_while(|(a, b)| *a == b)
                .count(),
        );
    }
    first[..len.max(1)].join("/")
}

/// Ids of the projects of `group` (subgroups included) with a merge request updated after
/// `after`, walking the pages by `X-Next-Page` (newest first: a merge request created during the
/// walk only repeats an item) up to the page GitLab's total says is the last. `None` when
/// walking would cost more than counting the group's `watched` projects again, when GitLab
/// withholds the total (over 10,000 changes), or when the total shrank during the walk (a merge
/// request deleted or moved away shifts the later pages up, and an item could have been
/// skipped) or grew by more than a page (the walk could not keep up).
async fn changed_in_group(
    client: &Client,
    group: &str,
    after: &str,
    watched: usize,
) -> Result<Option<HashSet<u64>>, Error> {
    let mut changed = HashSet::new();
    let mut first_total = None;
    let mut page: u64 = 1;
    loop {
        let reply = client
            .get::<Page<MergeRequestRef>>(
                endpoint::GROUP_MERGE_REQUESTS,
                format!("/groups/{}/merge_requests", encode_segment(group)),
                vec![
                    ("state", "all".to_owned()),
                    ("scope", "all".to_owned()),
                    ("non_archived", "false".to_owned()),
                    ("view", "simple".to_owned()),
                    ("updated_after", after.to_owned()),
                    ("per_page", SEARCH_PER_PAGE.to_string()),
                    ("page", page.to_string()),
                ],
            )
            .await?;
        let Some(total) = reply.page.total else {
            return Ok(None);
        };
        match first_total {
            None if total.div_ceil(SEARCH_PER_PAGE) > 4 * watched as u64 => return Ok(None),
            None => first_total = Some(total),
            Some(first) if total < first => return Ok(None),
            // More changes during the walk than it can follow: count the group again.
            Some(first) if total > first + SEARCH_PER_PAGE => return Ok(None),
            Some(_) => {}
        }
        if !reply.body.dropped.is_empty() {
            // Which project such a merge request belongs to is unknown: count them all again.
            for why in &reply.body.dropped {
                client.bad_record(endpoint::GROUP_MERGE_REQUESTS, why);
            }
            return Ok(None);
        }
        let empty = reply.body.items.is_empty();
        changed.extend(reply.body.items.into_iter().map(|mr| mr.project_id));
        // The walk ends where GitLab's own total says, whatever `X-Next-Page` announces.
        if page.saturating_mul(SEARCH_PER_PAGE) >= total {
            return Ok(Some(changed));
        }
        match reply.page.next_page {
            Some(next) if next == page + 1 && !empty => page = next,
            // A jump would skip pages, and the changes on them: count the group again.
            Some(_) if !empty => return Ok(None),
            _ => return Ok(Some(changed)),
        }
    }
}

/// Whether a project has a merge request updated after `after`.
async fn changed_in_project(client: &Client, id: u64, after: &str) -> Result<bool, Error> {
    let reply = client
        .get::<Vec<Ignored>>(
            endpoint::MERGE_REQUESTS,
            format!("/projects/{id}/merge_requests"),
            vec![
                ("state", "all".to_owned()),
                ("view", "simple".to_owned()),
                ("updated_after", after.to_owned()),
                ("per_page", "1".to_owned()),
            ],
        )
        .await?;
    Ok(!reply.body.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_groups() {
        assert_eq!(common_group(["acme/a/b", "acme/a/c"].into_iter()), "acme/a");
        assert_eq!(common_group(["acme/a", "acme/b/c"].into_iter()), "acme");
        assert_eq!(common_group(["acme", "acme/b"].into_iter()), "acme");
        assert_eq!(common_group(["acme/x", "acme/x"].into_iter()), "acme/x");
    }
}
