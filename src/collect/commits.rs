//! `gitlab_project_commits`: commits on the default branch. Free from the listing's
//! `statistics.commit_count` (Reporter role and above); otherwise exact at two calls, the default
//! branch's head and `GET /repository/commits/:sha/sequence`, or one when the head is the one
//! counted last time. Never counted by paging the commits list, which has no total and a phantom
//! last page.

use prometheus_client::encoding::DescriptorEncoder;
use tracing::debug;

use super::{Labels, ProjectMetrics, encode_per_project};
use crate::gitlab::types::{Branch, Project, Sequence};
use crate::gitlab::{Client, Error, encode_segment, endpoint};

/// A commit count, and the head it was counted from when it took the branch's head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    /// Commits on the default branch.
    pub commits: u64,
    /// The head commit, when the count came from the sequence endpoint.
    pub head: Option<String>,
}

impl Counted {
    fn stored(commits: u64) -> Option<Counted> {
        Some(Counted {
            commits,
            head: None,
        })
    }
}

/// The commits on the project's default branch; `None` when the token cannot read its code.
/// `known` is a head and its count from an earlier collection: when the head has not moved,
/// the count is reused.
pub async fn count(
    client: &Client,
    project: &Project,
    known: Option<&(String, u64)>,
) -> Result<Option<Counted>, Error> {
    if let Some(count) = project.statistics.as_ref().and_then(|s| s.commit_count) {
        return Ok(Counted::stored(count));
    }
    if project.empty_repo == Some(true) {
        // GitLab flags an empty repository whatever the caller's access: 0 commits.
        return Ok(Counted::stored(0));
    }
    let Some(branch) = project.default_branch.as_deref() else {
        // GitLab shows the default branch only to those who can read the code.
        return Ok(None);
    };
    let id = project.id;
    let head = client
        .get::<Branch>(
            endpoint::BRANCH,
            format!(
                "/projects/{id}/repository/branches/{}",
                encode_segment(branch)
            ),
            Vec::new(),
        )
        .await;
    let sha = match head {
        Ok(reply) => reply.body.commit.id,
        Err(e) if unreadable(&e) => {
            debug!(project = project.path_with_namespace, error = %e, "commits not readable");
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    if let Some((head, commits)) = known {
        if *head == sha {
            return Ok(Some(Counted {
                commits: *commits,
                head: Some(sha),
            }));
        }
    }
    let sequence = client
        .get::<Sequence>(
            endpoint::COMMIT_SEQUENCE,
            format!(
                "/projects/{id}/repository/commits/{}/sequence",
                encode_segment(&sha)
            ),
            Vec::new(),
        )
        .await?;
    Ok(Some(Counted {
        commits: sequence.body.count,
        head: Some(sha),
    }))
}

/// 403 (no code access) or a 404 about the branch or repository rather than the project.
fn unreadable(e: &Error) -> bool {
    match e.status() {
        Some(403) => true,
        Some(404) => !e.is_project_not_found(),
        _ => false,
    }
}

/// Encodes `gitlab_project_commits`.
pub fn encode(
    projects: &[ProjectMetrics],
    labels: &Labels,
    encoder: &mut DescriptorEncoder,
) -> Result<(), std::fmt::Error> {
    encode_per_project(
        encoder,
        (
            "gitlab_project_commits",
            "Commits on the project's default branch (GitLab's statistics lag pushes by up to 15 minutes).",
            None,
        ),
        projects,
        labels,
        |p| p.commits,
    )
}
