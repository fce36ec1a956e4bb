//! The `commits` family, `gitlab_project_commits`: commits on the default branch. Free from the listing's
//! `statistics.commit_count` (Reporter role and above); otherwise exact at two calls, the default
//! branch's head and `GET /repository/commits/:sha/sequence`, or one when the head is the one
//! counted last time. Never counted by paging the commits list, which has no total and a phantom
//! last page. Over GraphQL, every page of the listing also gives the last commit of each
//! default branch's tree: while it is the one seen last time, the count stands without a call
//! (a push that leaves the tree as it was, such as an empty commit, shows at the project's next
//! re-read from scratch); when it moved, the head and its count are read over REST as above
//! (the tree's last commit need not be the branch's head).

use prometheus_client::encoding::DescriptorEncoder;
use tracing::debug;

use super::{Current, Family, Fetched, Rows};
use crate::gitlab::types::{Branch, Sequence};
use crate::gitlab::{Error, encode_segment, endpoint};

/// The `commits` family (see the module's docs).
#[derive(Debug)]
pub(crate) struct Commits;

/// The default branch's head and the commits counted from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    sha: String,
    commits: u64,
    /// GraphQL's last commit of the branch's tree when the head was read.
    tree: Option<String>,
}

impl Family for Commits {
    const ABOUT: &'static str = "commits on each project's default branch (free from statistics, else one or two calls per project whose head moved)";
    const USES_STATISTICS: bool = true;
    const PAGE_FIELDS: &'static str =
        "statistics { commitCount } repository { rootRef empty tree { lastCommit { sha } } }";

    type Value = u64;
    /// Remembered when the count took the branch's head: while the head stays, so does the
    /// count.
    type Memo = Head;
    type Signal = ();

    fn fetch<'a>(
        current: Current<'a>,
        _: &'a (),
        known: Option<&'a Head>,
    ) -> impl std::future::Future<Output = Result<Fetched<Commits>, Error>> + Send + 'a {
        count(current, known)
    }

    fn encode(rows: Rows<'_, u64>, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        rows.gauge(
            encoder,
            (
                "gitlab_project_commits",
                "Commits on the project's default branch (GitLab's statistics lag pushes by up to 15 minutes).",
                None,
            ),
            |commits| Some(*commits),
        )
    }
}

/// The commits on the project's default branch; none when the token cannot read its code.
/// `known` is a head and its count from an earlier collection: when the head has not moved,
/// the count is reused.
async fn count(current: Current<'_>, known: Option<&Head>) -> Result<Fetched<Commits>, Error> {
    let Current {
        client, project, ..
    } = current;
    if let Some(count) = project.statistics.as_ref().and_then(|s| s.commit_count) {
        return Ok(Fetched::value(Some(count)));
    }
    if project.empty_repo == Some(true) {
        // GitLab flags an empty repository whatever the caller's access: 0 commits.
        return Ok(Fetched::value(Some(0)));
    }
    let Some(branch) = project.default_branch.as_deref() else {
        // GitLab shows the default branch only to those who can read the code.
        return Ok(Fetched::value(None));
    };
    if let Some(known) = known.filter(|k| k.tree.is_some() && k.tree == project.head) {
        return Ok(Fetched {
            value: Some(known.commits),
            memo: Some(known.clone()),
        });
    }
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
            return Ok(Fetched::value(None));
        }
        Err(e) => return Err(e),
    };
    let counted = |commits| Fetched {
        value: Some(commits),
        memo: Some(Head {
            sha: sha.clone(),
            commits,
            tree: project.head.clone(),
        }),
    };
    if let Some(known) = known.filter(|known| known.sha == sha) {
        return Ok(counted(known.commits));
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
    Ok(counted(sequence.body.count))
}

/// 403 (no code access) or a 404 about the branch or repository rather than the project.
fn unreadable(e: &Error) -> bool {
    match e.status() {
        Some(403) => true,
        Some(404) => !e.is_project_not_found(),
        _ => false,
    }
}
