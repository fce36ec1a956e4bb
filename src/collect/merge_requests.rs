//! `gitlab_project_merge_requests{state}`: merge requests per state, one call per state reading
//! `X-Total` at `per_page=1`. Above 10,000 GitLab withholds the total; the count is then found
//! exactly by searching for the last page at `per_page=100` (a handful of calls), never by
//! guessing 0 or 10,000.

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;

use super::{Labels, ProjectMetrics};
use crate::gitlab::types::{Ignored, Project};
use crate::gitlab::{Client, Error, endpoint};

/// The states GitLab knows, in the order they are exported.
pub const STATES: [&str; 4] = ["opened", "merged", "closed", "locked"];

/// Merge requests per state, in the order of [`STATES`].
pub type Counts = [u64; 4];

/// Items per page when searching for the last page.
const SEARCH_PER_PAGE: u64 = 100;
/// Bound on the search's calls; 40 covers any count up to 2^40 merge requests.
const SEARCH_MAX_CALLS: u32 = 40;

/// The project's merge requests per state; `None` when its merge requests are disabled or not
/// readable with the token (GitLab answers 403).
pub async fn count(client: &Client, project: &Project) -> Result<Option<Counts>, Error> {
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

/// Encodes `gitlab_project_merge_requests`.
pub fn encode(
    projects: &[ProjectMetrics],
    labels: &Labels,
    encoder: &mut DescriptorEncoder,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(
        "gitlab_project_merge_requests",
        "Merge requests of the project by state (opened, merged, closed, locked).",
        None,
        MetricType::Gauge,
    )?;
    for (i, p) in projects.iter().enumerate() {
        let Some(counts) = &p.merge_requests else {
            continue;
        };
        let [id, path] = labels.of(i, &p.project);
        for (state, count) in STATES.iter().zip(counts) {
            family
                .encode_family(&[id, path, ("state", *state)])?
                .encode_gauge(count)?;
        }
    }
    Ok(())
}
