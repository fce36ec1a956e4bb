//! Multi-target mode, in the blackbox/snmp exporter pattern: `/probe?target=<group | project>`
//! exports one scope per target, each with its own collector (and its memory of what changed),
//! cache and single flight, all sharing the one GitLab client (its concurrency limit, pacing and
//! counters). Prometheus distributes the targets (service discovery, relabelling, `hashmod`
//! across servers); exporter replicas hold no state that matters beyond a cache.
//!
//! A target is `group:<path or id>`, `project:<path or id>`, a numeric project id, a top-level
//! path (a group), or a deeper path, which is a group if GitLab has a group of that path and a
//! project otherwise (asked once per target).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt as _;
use tokio::sync::OnceCell;
use tracing::info;

use crate::cache::Cache;
use crate::collect::Scope;
use crate::collect::{Collector, Snapshot};
use crate::gitlab::{Client, Error, encode_segment, endpoint, types::Ignored};
use crate::metrics::ExporterMetrics;
use crate::render::Rendered;

/// Most targets kept at once; the least recently probed goes first. Bounds the memory a
/// scraper asking for arbitrary targets can take.
pub const MAX_TARGETS: usize = 4096;

/// What a target names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A group (id or full path) and its subgroups.
    Group(String),
    /// One project (id or full path).
    Project(String),
    /// A path that may be either; GitLab is asked.
    GroupOrProject(String),
}

/// Parses a `target` parameter.
pub fn parse_target(target: &str) -> Result<Kind, String> {
    let trimmed = target.trim();
    let (forced, reference) = match trimmed.split_once(':') {
        Some(("group", rest)) => (Some(true), rest),
        Some(("project", rest)) => (Some(false), rest),
        _ => (None, trimmed),
    };
    let reference = reference.trim().trim_matches('/');
    if reference.is_empty()
        || reference.len() > 512
        || reference.contains(|c: char| c.is_whitespace() || c.is_control())
        || reference
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(format!(
            "invalid target {target:?}: expected a group or project path (acme/platform), a project id, or group:<path or id> / project:<path or id>"
        ));
    }
    let reference = reference.to_owned();
    Ok(match forced {
        Some(true) => Kind::Group(reference),
        Some(false) => Kind::Project(reference),
        None if reference.bytes().all(|b| b.is_ascii_digit()) => Kind::Project(reference),
        None if !reference.contains('/') => Kind::Group(reference),
        None => Kind::GroupOrProject(reference),
    })
}

/// How every target's collections are run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `--cache.ttl`.
    pub ttl: Duration,
    /// `--gitlab.include-archived`.
    pub include_archived: bool,
    /// How each target's collections run.
    pub collect: crate::collect::Settings,
}

/// The targets probed so far.
#[derive(Debug)]
pub struct Probes {
    client: Client,
    settings: Settings,
    metrics: ExporterMetrics,
    targets: Mutex<HashMap<Kind, (Arc<Target>, u64)>>,
    clock: AtomicU64,
}

/// One target: its cache, in front of its collector.
#[derive(Debug)]
pub struct Target {
    /// The target as first asked for (trimmed).
    pub name: String,
    /// Its cache and single flight.
    pub cache: Cache,
}

impl Probes {
    /// No target yet.
    pub fn new(client: Client, settings: Settings, metrics: ExporterMetrics) -> Probes {
        Probes {
            client,
            settings,
            metrics,
            targets: Mutex::default(),
            clock: AtomicU64::new(0),
        }
    }

    /// The target named by `raw` (made on first use), or why `raw` is not a target.
    pub fn target(&self, raw: &str) -> Result<Arc<Target>, String> {
        let kind = parse_target(raw)?;
        let now = self.clock.fetch_add(1, Ordering::Relaxed);
        let mut targets = self.targets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((target, used)) = targets.get_mut(&kind) {
            *used = now;
            return Ok(Arc::clone(target));
        }
        if targets.len() >= MAX_TARGETS {
            let oldest = targets
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(kind, _)| kind.clone());
            if let Some(oldest) = oldest {
                targets.remove(&oldest);
            }
        }
        let target = Arc::new(self.new_target(raw.trim().to_owned(), kind.clone()));
        targets.insert(kind, (Arc::clone(&target), now));
        Ok(target)
    }

    /// Targets held now.
    pub fn len(&self) -> usize {
        self.targets.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Up to `n` targets, most recently probed first.
    pub fn recent(&self, n: usize) -> Vec<Arc<Target>> {
        let targets = self.targets.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<_> = targets.values().collect();
        all.sort_by_key(|(_, used)| std::cmp::Reverse(*used));
        all.into_iter()
            .take(n)
            .map(|(target, _)| Arc::clone(target))
            .collect()
    }

    fn new_target(&self, name: String, kind: Kind) -> Target {
        let collector: Arc<OnceCell<Collector>> = Arc::default();
        let (client, settings, metrics) = (
            self.client.clone(),
            self.settings.clone(),
            self.metrics.clone(),
        );
        let cache = Cache::new(
            self.settings.ttl,
            self.settings.collect.max_stale,
            move || {
                let (collector, client, settings, metrics, kind) = (
                    Arc::clone(&collector),
                    client.clone(),
                    settings.clone(),
                    metrics.clone(),
                    kind.clone(),
                );
                async move {
                let made = collector
                    .get_or_try_init(|| async {
                        let scope = resolve(&client, &kind, settings.include_archived).await?;
                        info!(target = ?kind, ?scope, "probe target resolved");
                        Ok::<_, Error>(Collector::new(client.clone(), scope, settings.collect))
                    })
                    .await;
                let snapshot = match made {
                    Ok(collector) => collector.collect().await,
                    Err(e) => {
                        tracing::warn!(target = ?kind, error = %e, "probe target cannot be resolved");
                        Snapshot::failed(e.to_string())
                    }
                };
                metrics.collection_finished(&snapshot);
                Rendered::prepared(snapshot).await
            }
            .boxed()
            },
        );
        Target { name, cache }
    }
}

/// The scope a target stands for, once GitLab confirmed it exists (one call per target, at
/// its first collection): a group's project listing, one item, or the project itself. A path
/// that may name either is a group if that listing answers, else a project. A target that
/// does not exist, or that the token cannot see, fails its collections (`gitlab_up 0`).
async fn resolve(client: &Client, kind: &Kind, include_archived: bool) -> Result<Scope, Error> {
    let scope = |groups: Vec<String>, projects: Vec<String>| Scope {
        groups,
        projects,
        all_projects: false,
        include_archived,
    };
    let group = |path: String| async move {
        client
            .get::<Vec<Ignored>>(
                endpoint::GROUP_PROJECTS,
                format!("/groups/{}/projects", encode_segment(&path)),
                vec![("per_page", "1".to_owned())],
            )
            .await
    };
    let project = |path: String| async move {
        client
            .get::<Ignored>(
                endpoint::PROJECT,
                format!("/projects/{}", encode_segment(&path)),
                Vec::new(),
            )
            .await
    };
    let not_found = |e: &Error| e.status() == Some(404);
    Ok(match kind {
        Kind::Group(path) => {
            group(path.clone()).await?;
            scope(vec![path.clone()], Vec::new())
        }
        Kind::Project(path) => {
            project(path.clone()).await?;
            scope(Vec::new(), vec![path.clone()])
        }
        Kind::GroupOrProject(path) => match group(path.clone()).await {
            Ok(_) => scope(vec![path.clone()], Vec::new()),
            Err(e) if not_found(&e) => {
                project(path.clone()).await?;
                scope(Vec::new(), vec![path.clone()])
            }
            Err(e) => return Err(e),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        let ok = |s: &str| parse_target(s).unwrap();
        assert_eq!(ok("acme"), Kind::Group("acme".into()));
        assert_eq!(
            ok("/acme/platform/"),
            Kind::GroupOrProject("acme/platform".into())
        );
        assert_eq!(ok("42"), Kind::Project("42".into()));
        assert_eq!(ok("group:10"), Kind::Group("10".into()));
        assert_eq!(ok("project:acme/api"), Kind::Project("acme/api".into()));
        assert_eq!(ok("group:acme/web"), Kind::Group("acme/web".into()));
        for bad in ["", " ", "group:", "a b", "acme//api", "acme/../x", "x\u{7}"] {
            assert!(parse_target(bad).is_err(), "{bad:?}");
        }
        assert!(parse_target(&"a".repeat(600)).is_err());
    }
}
