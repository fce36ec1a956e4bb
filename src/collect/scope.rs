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

use tracing::warn;

use crate::config::Scope;
use crate::gitlab::types::Project;
use crate::gitlab::{Client, Error, encode_segment, endpoint};

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

impl Candidate {
    /// The project's id when already known.
    pub fn id(&self) -> Option<u64> {
        match self {
            Candidate::Listed(p) | Candidate::FromGroup(p) => Some(p.id),
            Candidate::Named(_) => None,
        }
    }
}

/// Where a listing comes from.
#[derive(Clone, Copy)]
enum Source<'a> {
    /// `GET /projects` (membership or every project).
    Projects,
    /// `GET /groups/:id/projects`.
    Group(&'a str),
}

/// Lists the projects in scope, each once. A group or project that does not exist (or that
/// the token cannot see) is logged and left out; any other failure fails the collection, since
/// a partial list would make projects vanish from the metrics.
pub async fn resolve(client: &Client, scope: &Scope) -> Result<Vec<Candidate>, Error> {
    let mut filters: Vec<(&'static str, String)> = vec![("statistics", "true".into())];
    if !scope.include_archived {
        filters.push(("archived", "false".into()));
    }
    let mut sources = Vec::new();
    let mut listings = Vec::new();
    if scope.is_membership() || scope.all_projects {
        let mut query = filters.clone();
        if !scope.all_projects {
            query.push(("membership", "true".into()));
        }
        sources.push(Source::Projects);
        listings.push(list(
            client,
            endpoint::PROJECTS,
            "/projects".to_owned(),
            query,
            Walk::Keyset,
        ));
    }
    for group in &scope.groups {
        let mut query = vec![
            ("include_subgroups", "true".into()),
            // Shared-in projects belong to other groups; counting them here would count them twice.
            ("with_shared", "false".into()),
        ];
        if !scope.include_archived {
            query.push(("archived", "false".into()));
        }
        let path = format!("/groups/{}/projects", encode_segment(group));
        sources.push(Source::Group(group));
        listings.push(list(
            client,
            endpoint::GROUP_PROJECTS,
            path,
            query,
            Walk::IdAfter,
        ));
    }
    let results = futures::future::join_all(listings).await;

    let mut seen = std::collections::HashSet::new();
    let mut candidates = Vec::new();
    for (source, result) in sources.into_iter().zip(results) {
        let projects = match (result, source) {
            (Ok(projects), _) => projects,
            (Err(e @ Error::Status { status: 404, .. }), Source::Group(group)) => {
                warn!(group, error = %e, "group not found or not visible to the token; its projects are left out");
                continue;
            }
            (Err(e), _) => return Err(e),
        };
        for project in projects {
            if seen.insert(project.id) {
                candidates.push(match source {
                    Source::Projects => Candidate::Listed(project),
                    Source::Group(_) => Candidate::FromGroup(project),
                });
            }
        }
    }
    for reference in &scope.projects {
        let known = candidates.iter().any(|c| match c {
            Candidate::Listed(p) | Candidate::FromGroup(p) => {
                p.id.to_string() == *reference
                    || p.path_with_namespace.eq_ignore_ascii_case(reference)
            }
            Candidate::Named(r) => r.eq_ignore_ascii_case(reference),
        });
        if !known {
            candidates.push(Candidate::Named(reference.clone()));
        }
    }
    Ok(candidates)
}

/// How a listing is walked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Walk {
    /// Keyset pagination (`GET /projects`).
    Keyset,
    /// Page 1 after `id_after` (`GET /groups/:id/projects`, which has no keyset pagination).
    IdAfter,
}

/// Every project of a listing, in id order.
async fn list(
    client: &Client,
    endpoint: &'static str,
    path: String,
    filters: Vec<(&'static str, String)>,
    walk: Walk,
) -> Result<Vec<Project>, Error> {
    let mut projects: Vec<Project> = Vec::new();
    let mut id_after: Option<u64> = None;
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
        let reply = client
            .get::<Vec<Project>>(endpoint, path.clone(), query)
            .await?;
        let last = reply.body.last().map(|p| p.id);
        projects.extend(reply.body);
        if !reply.page.has_next() {
            return Ok(projects);
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
