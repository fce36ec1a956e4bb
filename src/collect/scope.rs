//! Which projects are in scope: the listings (membership, every project, groups) walked page by
//! page, and the projects named one by one.
//!
//! Listings are walked by project id, never by page number: each request asks for the 100
//! projects after the last id seen. Unlike offset pages, such a walk neither skips nor repeats a
//! project when one is created, deleted or archived during the walk, and it never meets GitLab's
//! 50,000 offset limit. `GET /projects` is walked with keyset pagination (`pagination=keyset`,
//! more pages announced by `Link: rel="next"`); the group endpoint has no keyset pagination, so
//! it is asked for page 1 after `id_after` (more pages announced by `X-Next-Page`). Totals, which
//! GitLab may withhold, are never used.
//!
//! `GET /projects` gives `statistics` in the same call; the group endpoint never does, so its
//! projects need a detail call.
//!
//! Every walk ends: where GitLab's own total says it must (`X-Total`, when sent, whatever
//! `X-Next-Page` announces), when it stops advancing, and at the latest when the listings of
//! the collection have returned `--collect.max-projects` projects (a GitLab or proxy announcing
//! pages without end), which abandons the collection.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc::Sender;
use tracing::warn;

use super::graphql::{self, Listed, Run, Source};
use crate::gitlab::graphql::Refusal;
use crate::gitlab::types::{Page, Project};
use crate::gitlab::{Client, Error, encode_segment, endpoint};

/// Which projects a collection exports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Groups (id or full path) whose projects, subgroups included, are exported.
    pub groups: Vec<String>,
    /// Projects (id or full path) exported whatever their archived state.
    pub projects: Vec<String>,
    /// Every project the token can see.
    pub all_projects: bool,
    /// Archived projects are listed too.
    pub include_archived: bool,
}

impl Scope {
    /// True when no group, project or all-projects flag was given: the scope is then the
    /// projects the token's user is a member of.
    pub fn is_membership(&self) -> bool {
        !self.all_projects && self.groups.is_empty() && self.projects.is_empty()
    }
}

/// Projects per page: GitLab's maximum.
const PER_PAGE: u64 = 100;

/// A project in scope, before its per-project calls.
#[derive(Debug, Clone)]
pub enum Candidate {
    /// From `GET /projects`: everything the token may see is here, statistics included.
    Listed(Project),
    /// From a group listing: everything but statistics, which need `GET /projects/:id`.
    FromGroup(Project),
    /// Named with `--gitlab.project` (id or path): only `GET /projects/:id` tells.
    Named(String),
}

/// Lists the projects in scope and sends each, once, to `sink` as soon as its page arrives,
/// so that their own calls can start while the listing goes on.
///
/// - The default scope and `--gitlab.all-projects`: `GET /projects` (with `statistics`).
/// - Groups: `GET /groups/:id/projects` (subgroups included, shared-in projects left out). The
///   group endpoint has no statistics; the token user's own projects are listed too, with
///   statistics, and a group project found there needs no detail call.
/// - Named projects: sent last, unless already sent under their id or path.
///
/// A group that does not exist (or that the token cannot see) is logged and left out; any
/// other failure fails the collection, since a partial list would make projects vanish from
/// the metrics.
pub(crate) async fn resolve(
    client: &Client,
    scope: &Scope,
    known_ids: &[u64],
    max_projects: u64,
    graphql: Option<(&Run<'_>, &str)>,
    sink: Sender<Vec<Candidate>>,
) -> Result<(), Error> {
    let budget = &Budget {
        max: max_projects,
        listed: AtomicU64::new(0),
        read: AtomicU64::new(0),
        dropped: Mutex::new((0, None)),
    };
    let mut filters: Vec<(&'static str, String)> = vec![("statistics", "true".into())];
    if !scope.include_archived {
        filters.push(("archived", "false".into()));
    }
    let mut membership = filters.clone();
    membership.push(("membership", "true".into()));
    let sent = Mutex::new(Sent::new(!scope.projects.is_empty()));
    // Waits while the projects' calls are behind: the listing never runs far ahead of them.
    let (sent, sink) = (&sent, &sink);
    let send = move |page: Vec<Candidate>| async move {
        let page: Vec<Candidate> = {
            let mut sent = sent.lock().unwrap_or_else(|e| e.into_inner());
            page.into_iter().filter(|c| sent.first(c)).collect()
        };
        if !page.is_empty() {
            // The receiver only goes away when the collection is abandoned.
            let _ = sink.send(page).await;
        }
    };

    let mut listed_over_graphql = false;
    if let Some((run, fields)) = graphql {
        match over_graphql(run, fields, scope, budget, &send).await {
            Ok(()) => listed_over_graphql = true,
            Err(e) if graphql::unavailable_after(run.client, &e) => budget.restart(),
            Err(e)
                if matches!(e, Error::Refused { .. }) || e.refusal() == Some(Refusal::Invalid) =>
            {
                run.client.rest_fallback("refused");
                run.state.refused(
                    "projects",
                    &e,
                    "this collection lists over REST (refused as invalid, or as too complex even for one project)",
                );
                // What the GraphQL pages sent is not sent twice, nor counted twice.
                budget.restart();
            }
            Err(e) => return Err(e),
        }
    }
    if !listed_over_graphql && (scope.is_membership() || scope.all_projects) {
        let query = if scope.all_projects {
            filters
        } else {
            membership
        };
        let windows = windows(known_ids);
        let walks = windows.iter().map(|window| {
            // One window: keyset pages (the first collection), or page 1 after `id_after` within
            // the window of 100 projects the last collection saw there.
            let walk = if windows.len() == 1 {
                Walk::Keyset
            } else {
                Walk::IdAfter
            };
            list(
                client,
                budget,
                endpoint::PROJECTS,
                "/projects".to_owned(),
                query.clone(),
                walk,
                *window,
                move |page: Vec<Project>| send(page.into_iter().map(Candidate::Listed).collect()),
            )
        });
        for walked in futures::future::join_all(walks).await {
            walked?;
        }
    } else if !listed_over_graphql && !scope.groups.is_empty() {
        // One group: its projects are those the last collection saw, so the id windows apply
        // to both listings. Several groups: one window each.
        let windows = if scope.groups.len() == 1 {
            windows(known_ids)
        } else {
            vec![(None, None)]
        };
        let own_listing = list_windows(
            client,
            budget,
            endpoint::PROJECTS,
            "/projects",
            &membership,
            &windows,
            Walk::Keyset,
        );
        let group_listings = futures::future::join_all(scope.groups.iter().map(|group| {
            let mut query = vec![
                ("include_subgroups", "true".into()),
                // Shared-in projects belong to other groups; counting them here would count them twice.
                ("with_shared", "false".into()),
            ];
            if !scope.include_archived {
                query.push(("archived", "false".into()));
            }
            let windows = &windows;
            async move {
                let path = format!("/groups/{}/projects", encode_segment(group));
                let listed = list_windows(
                    client,
                    budget,
                    endpoint::GROUP_PROJECTS,
                    &path,
                    &query,
                    windows,
                    Walk::IdAfter,
                )
                .await;
                (group, listed)
            }
        }));
        let (own_listed, groups) = futures::join!(own_listing, group_listings);
        let own: HashMap<u64, Project> = own_listed?.into_iter().map(|p| (p.id, p)).collect();
        for (group, listed) in groups {
            let projects = match listed {
                Ok(projects) => projects,
                Err(e @ Error::Status { status: 404, .. }) => {
                    warn!(group = %group, error = %e, "group not found or not visible to the token; its projects are left out");
                    continue;
                }
                Err(e) => return Err(e),
            };
            let mut candidates = projects
                .into_iter()
                .map(|project| match own.get(&project.id) {
                    Some(with_statistics) => Candidate::Listed(with_statistics.clone()),
                    None => Candidate::FromGroup(project),
                });
            loop {
                let page: Vec<Candidate> = candidates.by_ref().take(PER_PAGE as usize).collect();
                if page.is_empty() {
                    break;
                }
                send(page).await;
            }
        }
    }
    budget.check_readable()?;
    for reference in &scope.projects {
        let known = sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .knows(reference);
        if !known {
            send(vec![Candidate::Named(reference.clone())]).await;
        }
    }
    Ok(())
}

/// The listing over GraphQL: one query per page of 100 projects, with every enabled family's
/// fields (`fields`); groups through `group(fullPath:)` (a group named by id first has its path
/// read, `GET /groups/:id`, since GraphQL finds groups by path only), named projects through
/// `projects(ids:)` and `projects(fullPaths:)`. Archived projects are left out here unless
/// included (named ones are always kept); the budget counts the projects kept (at least one per
/// page). A project whose fields came back with errors is sent to be read over REST, as the
/// named projects GraphQL did not return are (the caller sends those), which tells a missing
/// project from a failing one.
async fn over_graphql<Done>(
    run: &Run<'_>,
    fields: &str,
    scope: &Scope,
    budget: &Budget,
    send: &impl Fn(Vec<Candidate>) -> Done,
) -> Result<(), Error>
where
    Done: std::future::Future<Output = ()>,
{
    let include_archived = scope.include_archived;
    let page = |keep_archived: bool| {
        move |listed: Listed| async move {
            let Listed {
                projects,
                dropped,
                failed,
            } = listed;
            budget.read_page(
                run.client,
                endpoint::GRAPHQL,
                &projects,
                projects.len() + failed.len(),
                &dropped,
            );
            let mut page: Vec<Candidate> = projects
                .into_iter()
                .filter(|p| keep_archived || p.archived != Some(true))
                .map(Candidate::Listed)
                .collect();
            // Fields that came back with errors: the project is read over REST instead.
            page.extend(failed.iter().map(|id| Candidate::Named(id.to_string())));
            budget.take(endpoint::GRAPHQL, page.len() + dropped.len())?;
            send(page).await;
            Ok(())
        }
    };
    if scope.is_membership() {
        graphql::walk(run, Source::Membership, fields, page(include_archived)).await?;
    } else if scope.all_projects {
        graphql::walk(run, Source::All, fields, page(include_archived)).await?;
    }
    let groups = futures::future::join_all(scope.groups.iter().map(|group| async move {
        let path = if group.bytes().all(|b| b.is_ascii_digit()) {
            group_path(run.client, group).await?
        } else {
            group.clone()
        };
        graphql::walk(run, Source::Group(path), fields, page(include_archived)).await
    }));
    for (group, walked) in scope.groups.iter().zip(groups.await) {
        match walked {
            Ok(()) => {}
            // No GraphQL at all: the caller lists over REST.
            Err(e) if e.is_graphql_unavailable() => return Err(e),
            Err(e @ Error::Status { status: 404, .. }) => {
                warn!(group = %group, error = %e, "group not found or not visible to the token; its projects are left out");
            }
            Err(e) => return Err(e),
        }
    }
    let (ids, paths): (Vec<&String>, Vec<&String>) = scope
        .projects
        .iter()
        .partition(|p| p.bytes().all(|b| b.is_ascii_digit()));
    let ids: Vec<u64> = ids.iter().filter_map(|id| id.parse().ok()).collect();
    if !ids.is_empty() {
        graphql::walk(run, Source::Ids(ids), fields, page(true)).await?;
    }
    if !paths.is_empty() {
        let paths = paths.into_iter().cloned().collect();
        graphql::walk(run, Source::FullPaths(paths), fields, page(true)).await?;
    }
    Ok(())
}

/// The full path of a group named by id (`GET /groups/:id`).
async fn group_path(client: &Client, id: &str) -> Result<String, Error> {
    #[derive(serde::Deserialize)]
    struct Group {
        full_path: String,
    }
    let reply = client
        .get::<Group>(
            endpoint::GROUP,
            format!("/groups/{}", encode_segment(id)),
            vec![("with_projects", "false".to_owned())],
        )
        .await?;
    Ok(reply.body.full_path)
}

/// The candidates sent so far, by id (and, when projects are named, by lowercase path), so
/// that each goes once.
struct Sent {
    ids: HashSet<u64>,
    references: Option<HashSet<String>>,
}

impl Sent {
    fn new(named_projects: bool) -> Sent {
        Sent {
            ids: HashSet::new(),
            references: named_projects.then(HashSet::new),
        }
    }

    /// True the first time a project is offered (and records it).
    fn first(&mut self, candidate: &Candidate) -> bool {
        match candidate {
            Candidate::Listed(p) | Candidate::FromGroup(p) => {
                if !self.ids.insert(p.id) {
                    return false;
                }
                if let Some(references) = &mut self.references {
                    references.insert(p.id.to_string());
                    references.insert(p.path_with_namespace.to_lowercase());
                }
                true
            }
            Candidate::Named(reference) => self
                .references
                .as_mut()
                .is_none_or(|r| r.insert(reference.to_lowercase())),
        }
    }

    fn knows(&self, reference: &str) -> bool {
        self.references
            .as_ref()
            .is_some_and(|r| r.contains(&reference.to_lowercase()))
    }
}

/// Id windows of 100 projects each, from the ids the last collection saw (sorted): each window
/// is listed on its own, all at once. Without enough known ids, one window: everything.
fn windows(known_ids: &[u64]) -> Vec<(Option<u64>, Option<u64>)> {
    if known_ids.len() < 2 * PER_PAGE as usize {
        return vec![(None, None)];
    }
    let bounds: Vec<u64> = known_ids
        .iter()
        .skip(PER_PAGE as usize - 1)
        .step_by(PER_PAGE as usize)
        .copied()
        .collect();
    let mut windows = Vec::with_capacity(bounds.len() + 1);
    let mut after = None;
    for bound in bounds {
        windows.push((after, Some(bound)));
        after = Some(bound);
    }
    windows.push((after, None));
    windows
}

/// Every project of a listing, its id windows walked all at once (`single`: how to walk
/// when there is only one window).
async fn list_windows(
    client: &Client,
    budget: &Budget,
    endpoint: &'static str,
    path: &str,
    filters: &[(&'static str, String)],
    windows: &[(Option<u64>, Option<u64>)],
    single: Walk,
) -> Result<Vec<Project>, Error> {
    let walk = if windows.len() == 1 {
        single
    } else {
        Walk::IdAfter
    };
    let walks = windows.iter().map(|window| async move {
        let mut projects = Vec::new();
        list(
            client,
            budget,
            endpoint,
            path.to_owned(),
            filters.to_vec(),
            walk,
            *window,
            |page| {
                projects.extend(page);
                std::future::ready(())
            },
        )
        .await
        .map(|()| projects)
    });
    let mut all = Vec::new();
    for walked in futures::future::join_all(walks).await {
        all.extend(walked?);
    }
    Ok(all)
}

/// The projects the listings of one collection may return, all listings together (a project
/// listed twice counts twice), and how many of them could be read.
struct Budget {
    max: u64,
    listed: AtomicU64,
    /// Records read.
    read: AtomicU64,
    /// Records left out, and the first of them (its listing, why).
    dropped: Mutex<(u64, Option<(&'static str, String)>)>,
}

impl Budget {
    /// Starts the count again: the listing is walked anew (over REST after GraphQL failed).
    fn restart(&self) {
        self.listed.store(0, Ordering::Relaxed);
        self.read.store(0, Ordering::Relaxed);
        *self.dropped.lock().unwrap_or_else(|e| e.into_inner()) = (0, None);
    }

    /// Counts `n` more projects listed on `endpoint` (a page costs at least one, so that empty
    /// pages announcing more cannot go on for free); an error once past the cap.
    fn take(&self, endpoint: &'static str, n: usize) -> Result<(), Error> {
        let n = n.max(1);
        let listed = self.listed.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        if listed <= self.max {
            return Ok(());
        }
        Err(Error::Limit {
            endpoint,
            limit: "max_projects",
            detail: format!(
                "the listings returned more than --collect.max-projects ({}) projects, the last \
                 on {endpoint}; the collection is abandoned (does GitLab, or a proxy in front of \
                 it, announce pages without end?)",
                self.max
            ),
        })
    }

    /// A page of a listing read: its unusable records and bad fields counted and logged (a
    /// record that cannot be read costs only itself, a project's bad fields only what they
    /// feed), and noted with the `read` usable records.
    fn read_page(
        &self,
        client: &Client,
        endpoint: &'static str,
        projects: &[Project],
        read: usize,
        dropped: &[String],
    ) {
        for why in dropped {
            client.bad_record(endpoint, why);
        }
        for report in projects.iter().filter_map(Project::problems_report) {
            client.bad_record(endpoint, &report);
        }
        self.note(endpoint, read, dropped);
    }

    /// Records of a page: `read` usable ones, and those left out.
    fn note(&self, endpoint: &'static str, read: usize, dropped: &[String]) {
        self.read.fetch_add(read as u64, Ordering::Relaxed);
        if let Some(first) = dropped.first() {
            let mut noted = self.dropped.lock().unwrap_or_else(|e| e.into_inner());
            noted.0 += dropped.len() as u64;
            noted.1.get_or_insert_with(|| (endpoint, first.clone()));
        }
    }

    /// An error when the listings returned records but not one could be read: the answers
    /// themselves are wrong (a proxy's page, another API), not one odd project.
    fn check_readable(&self) -> Result<(), Error> {
        let noted = self.dropped.lock().unwrap_or_else(|e| e.into_inner());
        match (&noted.1, self.read.load(Ordering::Relaxed)) {
            (Some((endpoint, first)), 0) => Err(Error::Decode {
                endpoint,
                detail: format!(
                    "no project of the listings could be read ({} records); the first: {first}",
                    noted.0
                ),
            }),
            _ => Ok(()),
        }
    }
}

/// How a listing is walked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Walk {
    /// Keyset pagination (`GET /projects`).
    Keyset,
    /// Page 1 after `id_after` (`GET /groups/:id/projects`, which has no keyset pagination).
    IdAfter,
}

/// Every project of a listing with an id in `window` (after, up to and including), in id
/// order, page by page to `on_page`.
#[allow(clippy::too_many_arguments)]
async fn list<Done>(
    client: &Client,
    budget: &Budget,
    endpoint: &'static str,
    path: String,
    filters: Vec<(&'static str, String)>,
    walk: Walk,
    (mut id_after, last_id): (Option<u64>, Option<u64>),
    mut on_page: impl FnMut(Vec<Project>) -> Done,
) -> Result<(), Error>
where
    Done: std::future::Future<Output = ()>,
{
    loop {
        let mut query = filters.clone();
        query.extend([
            ("order_by", "id".to_owned()),
            ("sort", "asc".to_owned()),
            ("per_page", PER_PAGE.to_string()),
        ]);
        if walk == Walk::Keyset {
            query.push(("pagination", "keyset".to_owned()));
        }
        if let Some(id) = id_after {
            query.push(("id_after", id.to_string()));
        }
        if let Some(id) = last_id {
            query.push(("id_before", (id + 1).to_string()));
        }
        let reply = client
            .get::<Page<Project>>(endpoint, path.clone(), query)
            .await?;
        let Page {
            items,
            dropped,
            last_id,
        } = reply.body;
        let records = items.len() + dropped.len();
        budget.read_page(client, endpoint, &items, items.len(), &dropped);
        // The cursor: the last readable id of the page, or GitLab's own; none for an empty
        // page (which then cannot announce more).
        let cursor = reply
            .page
            .next_link_param("id_after")
            .and_then(|id| id.parse::<u64>().ok());
        let last = if records > 0 {
            last_id.max(cursor)
        } else {
            None
        };
        budget.take(endpoint, records)?;
        // Page 1 after `id_after` is a query of its own: its total is what is left. Keyset
        // pages carry no total.
        let all_here = walk == Walk::IdAfter
            && reply
                .page
                .total
                .is_some_and(|total| total <= records as u64);
        let more = reply.page.has_next() && !all_here;
        on_page(items).await;
        if !more {
            return Ok(());
        }
        match last {
            Some(last) if id_after.is_none_or(|after| last > after) => id_after = Some(last),
            _ => {
                return Err(Error::Decode {
                    endpoint,
                    detail: format!(
                        "a next page was announced after id {id_after:?}, but the walk did not advance"
                    ),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_of_a_hundred_known_ids() {
        assert_eq!(windows(&[]), vec![(None, None)]);
        assert_eq!(windows(&(1..=150).collect::<Vec<_>>()), vec![(None, None)]);
        let ids: Vec<u64> = (1..=250).map(|i| i * 10).collect();
        assert_eq!(
            windows(&ids),
            vec![
                (None, Some(1000)),
                (Some(1000), Some(2000)),
                (Some(2000), None)
            ]
        );
    }
}
