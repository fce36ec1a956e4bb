//! The project families, all read from the project entity the listing (or `GET /projects/:id`)
//! already returned, so they cost no call of their own: `gitlab_projects`, `gitlab_project_info`,
//! stars, forks, open issues, last activity and storage sizes.

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use super::{Labels, ProjectMetrics, encode_gauge, encode_per_project};

/// Encodes the project families of a successful collection.
pub fn encode(
    projects: &[ProjectMetrics],
    labels: &Labels,
    encoder: &mut DescriptorEncoder,
) -> Result<(), std::fmt::Error> {
    encode_gauge(
        encoder,
        ("gitlab_projects", "Projects in scope.", None),
        projects.len() as u64,
    )?;

    encode_info(projects, labels, encoder)?;
    encode_per_project(
        encoder,
        ("gitlab_project_stars", "Stars of the project.", None),
        projects,
        labels,
        |p| p.stars,
    )?;
    encode_per_project(
        encoder,
        (
            "gitlab_project_forks",
            "Forks of the project; absent where GitLab hides them (no code access).",
            None,
        ),
        projects,
        labels,
        |p| p.forks,
    )?;
    encode_per_project(
        encoder,
        (
            "gitlab_project_open_issues",
            "Open issues of the project; absent where GitLab reports none (issues disabled or not visible).",
            None,
        ),
        projects,
        labels,
        |p| p.open_issues,
    )?;
    encode_per_project(
        encoder,
        (
            "gitlab_project_last_activity_timestamp",
            "Last activity on the project, as GitLab records it (at most hourly), in Unix seconds.",
            Some(&Unit::Seconds),
        ),
        projects,
        labels,
        |p| p.last_activity,
    )?;

    let mut storage = encoder.encode_descriptor(
        "gitlab_project_storage",
        "Storage used by the project, by kind, from GitLab's project statistics (Reporter role and above).",
        Some(&Unit::Bytes),
        MetricType::Gauge,
    )?;
    for (i, p) in projects.iter().enumerate() {
        let [id, path] = labels.of(i, p);
        for (kind, bytes) in p.storage.iter() {
            storage
                .encode_family(&[id, path, ("storage", kind)])?
                .encode_gauge(&bytes)?;
        }
    }
    Ok(())
}

/// `gitlab_project_info`: an OpenMetrics info family (a gauge named `gitlab_project_info` in
/// the text format 0.0.4).
fn encode_info(
    projects: &[ProjectMetrics],
    labels: &Labels,
    encoder: &mut DescriptorEncoder,
) -> Result<(), std::fmt::Error> {
    let mut info = encoder.encode_descriptor(
        "gitlab_project",
        "Project metadata; the value is always 1.",
        None,
        MetricType::Info,
    )?;
    for (i, p) in projects.iter().enumerate() {
        let [id, path] = labels.of(i, p);
        info.encode_info(&[
            id,
            path,
            ("namespace", &*p.namespace),
            ("visibility", &*p.visibility),
            ("default_branch", p.default_branch.as_deref().unwrap_or("")),
            ("archived", if p.archived { "true" } else { "false" }),
        ])?;
    }
    Ok(())
}
