//! The `storage` family: `gitlab_project_storage_bytes{storage}`, from GitLab's project
//! statistics (Reporter role and above). `GET /projects` gives them with the listing; a project
//! listed in a group needs `GET /projects/:id?statistics=true`, one call, counted here (and not
//! made for a project known to hide them, until its next re-read from scratch). Over GraphQL they
//! come with every page of the listing, groups' included.

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use super::{Current, Family, Fetched, Rows};
use crate::gitlab::Error;
use crate::gitlab::types::Sizes;

/// The `storage` family (see the module's docs).
#[derive(Debug)]
pub(crate) struct Storage;

impl Family for Storage {
    const ABOUT: &'static str = "storage used by each project, by kind, from its statistics (one call per project listed in a group)";
    const NEEDS_STATISTICS: bool = true;
    const PAGE_FIELDS: &'static str = "statistics { repositorySize lfsObjectsSize \
        buildArtifactsSize pipelineArtifactsSize packagesSize wikiSize snippetsSize uploadsSize \
        containerRegistrySize }";

    type Value = Sizes;
    type Memo = ();
    type Signal = ();

    async fn fetch<'a>(
        current: Current<'a>,
        _: &'a (),
        _: Option<&'a ()>,
    ) -> Result<Fetched<Storage>, Error> {
        Ok(Fetched::value(
            current.project.statistics.as_ref().map(Sizes::from),
        ))
    }

    fn encode(rows: Rows<'_, Sizes>, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        let mut storage = encoder.encode_descriptor(
            "gitlab_project_storage",
            "Storage used by the project, by kind, from GitLab's project statistics (Reporter role and above).",
            Some(&Unit::Bytes),
            MetricType::Gauge,
        )?;
        for ([id, path], sizes) in rows.iter() {
            for (kind, bytes) in sizes.iter() {
                storage
                    .encode_family(&[id, path, ("storage", kind)])?
                    .encode_gauge(&bytes)?;
            }
        }
        Ok(())
    }
}
