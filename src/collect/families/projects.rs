//! The `projects` family: `gitlab_projects`, `gitlab_project_info`, stars, forks, open issues
//! and last activity, all read from the project as the listing (or `GET /projects/:id`)
//! returned it, so it costs no call of its own.

use std::sync::Arc;

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use super::{Current, Family, Fetched, Interner, Rows, encode_gauge};
use crate::gitlab::Error;
use crate::gitlab::types::parse_timestamp;
use crate::redact::redact;

/// The `projects` family (see the module's docs).
#[derive(Debug)]
pub(crate) struct Projects;

/// A project's metadata. Strings that repeat across projects are shared.
#[derive(Debug, Clone)]
pub(crate) struct Info {
    /// The namespace's full path.
    namespace: Arc<str>,
    /// `private`, `internal` or `public` (empty when GitLab did not say).
    visibility: Arc<str>,
    /// Shown only to those who can read the code.
    default_branch: Option<Arc<str>>,
    archived: bool,
    stars: Option<u64>,
    /// Hidden without code access.
    forks: Option<u64>,
    /// Absent with issues disabled or not visible.
    open_issues: Option<u64>,
    /// Unix seconds.
    last_activity: Option<f64>,
}

impl Family for Projects {
    const ABOUT: &'static str = "project metadata: gitlab_projects, gitlab_project_info, stars, forks, open issues, last activity (no API call of its own)";

    const PAGE_FIELDS: &'static str =
        "visibility starCount forksCount openIssuesCount lastActivityAt repository { rootRef }";

    type Value = Info;
    type Memo = ();
    type Signal = ();

    async fn fetch<'a>(
        current: Current<'a>,
        _: &'a (),
        _: Option<&'a ()>,
    ) -> Result<Fetched<Projects>, Error> {
        let project = current.project;
        // Label values are redacted, should a secret ever come back in GitLab's data.
        Ok(Fetched::value(Some(Info {
            namespace: redact(project.namespace_path()).into(),
            visibility: redact(project.visibility.as_deref().unwrap_or("")).into(),
            default_branch: project.default_branch.as_deref().map(|b| redact(b).into()),
            archived: project.archived == Some(true),
            stars: project.star_count,
            forks: project.forks_count,
            open_issues: project.open_issues_count,
            last_activity: project
                .last_activity_at
                .as_deref()
                .and_then(parse_timestamp),
        })))
    }

    fn share(info: &mut Info, strings: &mut Interner) {
        info.namespace = strings.get(&info.namespace);
        info.visibility = strings.get(&info.visibility);
        if let Some(branch) = &mut info.default_branch {
            *branch = strings.get(branch);
        }
    }

    fn encode(rows: Rows<'_, Info>, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        encode_gauge(
            encoder,
            ("gitlab_projects", "Projects in scope.", None),
            rows.projects() as u64,
        )?;
        // An OpenMetrics info family (a gauge named `gitlab_project_info` in the text format).
        let mut info = encoder.encode_descriptor(
            "gitlab_project",
            "Project metadata; the value is always 1.",
            None,
            MetricType::Info,
        )?;
        for ([id, path], p) in rows.iter() {
            info.encode_info(&[
                id,
                path,
                ("namespace", &*p.namespace),
                ("visibility", &*p.visibility),
                ("default_branch", p.default_branch.as_deref().unwrap_or("")),
                ("archived", if p.archived { "true" } else { "false" }),
            ])?;
        }
        rows.gauge(
            encoder,
            ("gitlab_project_stars", "Stars of the project.", None),
            |p| p.stars,
        )?;
        rows.gauge(
            encoder,
            (
                "gitlab_project_forks",
                "Forks of the project; absent where GitLab hides them (no code access).",
                None,
            ),
            |p| p.forks,
        )?;
        rows.gauge(
            encoder,
            (
                "gitlab_project_open_issues",
                "Open issues of the project; absent where GitLab reports none (issues disabled or not visible).",
                None,
            ),
            |p| p.open_issues,
        )?;
        rows.gauge(
            encoder,
            (
                "gitlab_project_last_activity_timestamp",
                "Last activity on the project, as GitLab records it (at most hourly), in Unix seconds.",
                Some(&Unit::Seconds),
            ),
            |p| p.last_activity,
        )
    }
}
