//! The fake GitLab's data model (instance, groups, projects, roles) and the deterministic demo and generated instances.

use std::fmt;

use serde::Serialize;

use super::ci::Ci;
use super::common::{COMMIT_SPACING, DEMO_NOW, MergeRequestCounts, splitmix64};
use super::dates::Timestamps;
use super::history::History;

/// User id of the instance user (the owner of the valid token).
pub(crate) const USER_ID: u64 = 1;
/// Namespace id of the instance user's personal namespace (group ids should avoid it).
pub(crate) const USER_NAMESPACE_ID: u64 = 2;

/// Membership role of the token user in a project, ordered from least to most privileged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Access level 10: can see issues but not the code of private projects.
    Guest,
    /// Access level 20: the lowest role that can read code and statistics everywhere.
    Reporter,
    /// Access level 30.
    Developer,
    /// Access level 40.
    Maintainer,
    /// Access level 50.
    Owner,
}

impl Role {
    /// GitLab's numeric access level (10, 20, 30, 40, 50).
    pub fn access_level(self) -> u32 {
        match self {
            Role::Guest => 10,
            Role::Reporter => 20,
            Role::Developer => 30,
            Role::Maintainer => 40,
            Role::Owner => 50,
        }
    }
}

/// Project visibility; serialises lowercase as in the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Visible to members (and administrators) only.
    Private,
    /// Visible to every signed-in user.
    Internal,
    /// Visible to everyone, including anonymous callers.
    Public,
}

impl Visibility {
    /// The API spelling: `private`, `internal` or `public`.
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Private => "private",
            Visibility::Internal => "internal",
            Visibility::Public => "public",
        }
    }
}

/// Where a project lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Namespace {
    /// A group, by [`FakeGroup::id`].
    Group(u64),
    /// The instance user's personal namespace (`kind: "user"`, path = username).
    User,
}

/// Storage used by a project, in bytes, as reported under `statistics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Storage {
    /// `repository_size`.
    pub repository: u64,
    /// `lfs_objects_size`.
    pub lfs_objects: u64,
    /// `job_artifacts_size`.
    pub job_artifacts: u64,
    /// `pipeline_artifacts_size`.
    pub pipeline_artifacts: u64,
    /// `packages_size`.
    pub packages: u64,
    /// `wiki_size`.
    pub wiki: u64,
    /// `snippets_size`.
    pub snippets: u64,
    /// `uploads_size`.
    pub uploads: u64,
    /// `container_registry_size`.
    pub container_registry: u64,
}

impl Storage {
    /// `storage_size`: the sum of all parts.
    pub fn total(&self) -> u64 {
        self.repository
            + self.lfs_objects
            + self.job_artifacts
            + self.pipeline_artifacts
            + self.packages
            + self.wiki
            + self.snippets
            + self.uploads
            + self.container_registry
    }
}

/// A group (or subgroup) of the fake instance.
#[derive(Debug, Clone)]
pub struct FakeGroup {
    /// Namespace id.
    pub id: u64,
    /// Full path, e.g. `acme/platform`.
    pub full_path: String,
    /// Display name of this level only, e.g. `Platform`.
    pub name: String,
    /// Parent group id for subgroups.
    pub parent_id: Option<u64>,
}

/// A project of the fake instance, as seen by the instance user.
#[derive(Debug, Clone)]
pub struct FakeProject {
    /// Project id (unique).
    pub id: u64,
    /// Display name.
    pub name: String,
    /// Leaf path, e.g. `api` for `acme/api`.
    pub path: String,
    /// Owning namespace.
    pub namespace: Namespace,
    /// Visibility level.
    pub visibility: Visibility,
    /// The token user's membership role; `None` = not a member.
    pub role: Option<Role>,
    /// The role comes from a membership of the project's group (or of an ancestor group), not
    /// of the project: GitLab then reports it as `permissions.group_access`, with
    /// `project_access: null`. Ignored in the user's own namespace (no group there).
    pub role_inherited: bool,
    /// Default branch; `None` for an empty repository.
    pub default_branch: Option<String>,
    /// With no default branch, the API says `default_branch: null`, as older GitLab did,
    /// instead of `main` (`default_branch_or_main`, newer GitLab).
    pub null_default_branch: bool,
    /// Archived projects are listed unless `archived=false`.
    pub archived: bool,
    /// Commits on the default branch; 0 = empty repository.
    pub commits: u64,
    /// `star_count`.
    pub star_count: u64,
    /// `forks_count`.
    pub forks_count: u64,
    /// Whether the issues feature is enabled (`open_issues_count` is absent otherwise).
    pub issues_enabled: bool,
    /// `open_issues_count`.
    pub open_issues: u64,
    /// Whether the merge requests feature is enabled (403 on the MR list otherwise).
    pub merge_requests_enabled: bool,
    /// `merge_requests_access_level: private` ("only project members"): only members from the
    /// Reporter role up (and administrators) read merge requests; to everyone else GitLab says
    /// `merge_requests_enabled: false` and answers the MR list 403.
    pub merge_requests_private: bool,
    /// Merge requests per state.
    pub merge_requests: MergeRequestCounts,
    /// `last_activity_at`, Unix seconds.
    pub last_activity_at: i64,
    /// Storage statistics.
    pub storage: Storage,
    /// Groups this project is shared with (listed by `/groups/:id/projects` with `with_shared=true`).
    pub shared_with_groups: Vec<u64>,
    /// The CI/CD feature (`builds_access_level`, `jobs_enabled`). Off: the pipeline list, the
    /// environments and the deployments answer 403; existing pipelines stay readable one by
    /// one and over GraphQL, as in GitLab.
    pub builds_enabled: bool,
    /// The environments feature (`environments_access_level`). Off: environments and
    /// deployments answer 403 on REST, and GraphQL shows none.
    pub environments_enabled: bool,
    /// The project has a synthesised pipeline history (when CI/CD is on and the repository is
    /// not empty).
    pub pipeline_history: bool,
    /// The project has synthesised `production` and `staging` environments with deployments.
    pub environment_history: bool,
    /// CI/CD records changed through the change API; `None` until the first (the synthesised
    /// history is computed on each read until then).
    pub(crate) ci: Option<Box<Ci>>,
    /// Changes made through the change API (merge request events, pushes); `None` until the first.
    pub(crate) history: Option<Box<History>>,
}

impl FakeProject {
    /// A private project with sane defaults: the user is a Developer, branch `main` with 10 commits,
    /// issues and merge requests enabled with zero counts, 1 MiB repository.
    pub fn new(id: u64, path: &str, namespace: Namespace) -> FakeProject {
        FakeProject {
            id,
            name: path.to_string(),
            path: path.to_string(),
            namespace,
            visibility: Visibility::Private,
            role: Some(Role::Developer),
            role_inherited: false,
            default_branch: Some("main".to_string()),
            null_default_branch: false,
            archived: false,
            commits: 10,
            star_count: 0,
            forks_count: 0,
            issues_enabled: true,
            open_issues: 0,
            merge_requests_enabled: true,
            merge_requests_private: false,
            merge_requests: MergeRequestCounts::default(),
            last_activity_at: DEMO_NOW,
            storage: Storage {
                repository: 1 << 20,
                ..Storage::default()
            },
            shared_with_groups: Vec::new(),
            builds_enabled: true,
            environments_enabled: true,
            pipeline_history: true,
            environment_history: false,
            ci: None,
            history: None,
        }
    }

    /// `group/sub/project`, resolved against the instance's groups and username.
    pub fn path_with_namespace(&self, instance: &Instance) -> String {
        format!(
            "{}/{}",
            instance.namespace_full_path(self.namespace),
            self.path
        )
    }

    /// True when the repository has no commit (or no default branch).
    pub fn is_empty_repo(&self) -> bool {
        self.commits == 0 || self.default_branch.is_none()
    }

    /// SHA of the head of the default branch (commit number `commits`); `None` for an empty repository.
    pub fn head_sha(&self) -> Option<String> {
        if self.is_empty_repo() {
            return None;
        }
        self.commit_sha(self.commits)
    }

    /// Deterministic 40-hex SHA of commit number `k` (1 = root commit, `commits` = head), if it exists.
    pub fn commit_sha(&self, k: u64) -> Option<String> {
        (k >= 1 && k <= self.commits && !self.is_empty_repo()).then(|| commit_sha(self.id, k))
    }

    /// The commit number of a full 40-hex SHA of this project (the inverse of [`Self::commit_sha`]).
    pub fn commit_number(&self, sha: &str) -> Option<u64> {
        if sha.len() != 40 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let tail = u32::from_str_radix(sha.get(32..)?, 16).ok()?;
        let k = u64::from(unscramble(tail) ^ sha_mask(self.id));
        let own = self.commit_sha(k)?;
        own.eq_ignore_ascii_case(sha).then_some(k)
    }

    /// `created_at`: well before the first commit, derived from the other fields (frozen at the
    /// project's first change through the change API).
    pub(crate) fn created_at(&self) -> i64 {
        if let Some(h) = &self.history {
            return h.created_at;
        }
        let commits = i64::try_from(self.commits).unwrap_or(i64::MAX / 2);
        let spacing = commits.saturating_add(24).saturating_mul(COMMIT_SPACING);
        self.last_activity_at
            .saturating_sub(spacing)
            .saturating_sub((self.id % 997) as i64 * 60)
    }

    /// `updated_at`: `last_activity_at`, or later when a push touched the project since.
    pub(crate) fn updated_at(&self) -> i64 {
        self.history.as_ref().map_or(self.last_activity_at, |h| {
            h.updated_at.max(self.last_activity_at)
        })
    }

    /// Commit time of commit number `k` (the head commit is at `last_activity_at`; after a push,
    /// older commits keep their times and pushed ones are at the push time).
    pub(crate) fn commit_time(&self, k: u64) -> i64 {
        if let Some(h) = &self.history {
            return h.commit_time(k);
        }
        let behind = i64::try_from(self.commits.saturating_sub(k)).unwrap_or(i64::MAX / 2);
        self.last_activity_at
            .saturating_sub(behind.saturating_mul(COMMIT_SPACING))
    }
}

/// Per-project mask that hides the commit number in the last 8 hex digits of a SHA.
fn sha_mask(project_id: u64) -> u32 {
    (splitmix64(project_id ^ 0xC0FF_EE00_D15E_A5E5) >> 32) as u32
}

/// Odd multiplier of the 32-bit permutation below, and its inverse modulo 2^32.
const SCRAMBLE: u32 = 0x2C1B_3C6D;
const UNSCRAMBLE: u32 = inverse_mod_2_32(SCRAMBLE);

/// Newton's iteration for the inverse of an odd number modulo 2^32 (each step doubles the bits).
const fn inverse_mod_2_32(odd: u32) -> u32 {
    let mut inv = odd;
    let mut i = 0;
    while i < 5 {
        inv = inv.wrapping_mul(2u32.wrapping_sub(odd.wrapping_mul(inv)));
        i += 1;
    }
    inv
}

/// An invertible mix of 32 bits, so that consecutive commit numbers give unrelated SHA tails.
fn scramble(x: u32) -> u32 {
    let x = x ^ (x >> 16);
    let x = x.wrapping_mul(SCRAMBLE);
    x ^ (x >> 16)
}

fn unscramble(x: u32) -> u32 {
    // `x ^ (x >> 16)` is its own inverse on 32 bits.
    let x = x ^ (x >> 16);
    let x = x.wrapping_mul(UNSCRAMBLE);
    x ^ (x >> 16)
}

/// 40 hex digits: 32 of hash, then the commit number (masked and scrambled, invertibly) so a
/// SHA maps back to its commit in O(1).
fn commit_sha(project_id: u64, k: u64) -> String {
    let h1 = splitmix64(project_id.wrapping_mul(0x0100_0000_01B3) ^ k.rotate_left(29));
    let h2 = splitmix64(h1 ^ k);
    let tail = scramble((k as u32) ^ sha_mask(project_id));
    format!("{h1:016x}{h2:016x}{tail:08x}")
}

/// A whole fake GitLab: its groups, projects and the single user the valid token belongs to.
#[derive(Clone)]
pub struct Instance {
    /// Groups and subgroups.
    pub groups: Vec<FakeGroup>,
    /// Projects; the server keeps them sorted by id.
    pub projects: Vec<FakeProject>,
    /// The token user's username (also the path of its personal namespace).
    pub username: String,
    /// Whether the token user is an administrator (sees everything, statistics everywhere).
    pub admin: bool,
    /// The one valid token.
    pub token: String,
    /// GitLab's `offset_pagination_limit` (default 50,000; 0 disables).
    pub offset_limit: u64,
    /// Requests allowed per throttle window (a minute unless `rate_limit_period_seconds` says
    /// otherwise); `None` = no `RateLimit-*` headers and no throttling.
    pub rate_limit_per_minute: Option<u32>,
    /// Length of a throttle window in seconds (GitLab's is 60; tests shorten it). Default 60.
    pub rate_limit_period_seconds: u64,
    /// Base URL used in `Link` headers and `web_url`s instead of the server's own address.
    pub base_url_override: Option<String>,
    /// The zone and precision of the times the instance writes (default: UTC, whole seconds,
    /// as gitlab.com).
    pub timestamps: Timestamps,
    /// Ids handed out by the change API so far (pipelines, environments, deployments, jobs).
    pub(crate) live_ids: u64,
}

impl fmt::Debug for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instance")
            .field("groups", &self.groups)
            .field("projects", &self.projects)
            .field("username", &self.username)
            .field("admin", &self.admin)
            .field("token", &"<secret>")
            .field("offset_limit", &self.offset_limit)
            .field("rate_limit_per_minute", &self.rate_limit_per_minute)
            .field("rate_limit_period_seconds", &self.rate_limit_period_seconds)
            .field("base_url_override", &self.base_url_override)
            .field("timestamps", &self.timestamps)
            .finish()
    }
}

impl Instance {
    /// An instance with no group and no project.
    pub fn new(username: impl Into<String>, token: impl Into<String>) -> Instance {
        Instance {
            groups: Vec::new(),
            projects: Vec::new(),
            username: username.into(),
            admin: false,
            token: token.into(),
            offset_limit: 50_000,
            rate_limit_per_minute: None,
            rate_limit_period_seconds: 60,
            base_url_override: None,
            timestamps: Timestamps::default(),
            live_ids: 0,
        }
    }

    /// Project by id.
    pub fn project(&self, id: u64) -> Option<&FakeProject> {
        self.project_index(id).map(|i| &self.projects[i])
    }

    /// Mutable project by id.
    pub fn project_mut(&mut self, id: u64) -> Option<&mut FakeProject> {
        self.project_index(id).map(|i| &mut self.projects[i])
    }

    /// Project by full path (`acme/platform/deploy`), case-insensitive like GitLab.
    pub fn project_by_path(&self, full_path: &str) -> Option<&FakeProject> {
        let (ns_path, leaf) = full_path.rsplit_once('/')?;
        let namespace = if ns_path.eq_ignore_ascii_case(&self.username) {
            Namespace::User
        } else {
            Namespace::Group(self.group_by_path(ns_path)?.id)
        };
        self.projects
            .iter()
            .find(|p| p.namespace == namespace && p.path.eq_ignore_ascii_case(leaf))
    }

    /// Group by id.
    pub fn group(&self, id: u64) -> Option<&FakeGroup> {
        self.groups.iter().find(|g| g.id == id)
    }

    /// Group by full path, case-insensitive.
    pub fn group_by_path(&self, full_path: &str) -> Option<&FakeGroup> {
        self.groups
            .iter()
            .find(|g| g.full_path.eq_ignore_ascii_case(full_path))
    }

    /// Removes a project (its API calls then answer 404).
    pub fn remove_project(&mut self, id: u64) -> Option<FakeProject> {
        self.project_index(id).map(|i| self.projects.remove(i))
    }

    /// Enables or disables merge requests on every project (a scale test then needs no per-project MR calls).
    pub fn with_merge_requests(mut self, enabled: bool) -> Instance {
        for p in &mut self.projects {
            p.merge_requests_enabled = enabled;
        }
        self
    }

    /// Full path of a namespace (`acme/platform`, or the username).
    pub(crate) fn namespace_full_path(&self, namespace: Namespace) -> &str {
        match namespace {
            Namespace::User => &self.username,
            Namespace::Group(id) => self.group(id).map_or("", |g| g.full_path.as_str()),
        }
    }

    /// Sorts projects by id unless they already are (the listing code relies on it).
    pub(crate) fn sort_projects(&mut self) {
        if !self.projects.is_sorted_by_key(|p| p.id) {
            self.projects.sort_by_key(|p| p.id);
        }
    }

    fn project_index(&self, id: u64) -> Option<usize> {
        match self.projects.binary_search_by_key(&id, |p| p.id) {
            Ok(i) => Some(i),
            // Callers may have pushed projects out of order inside `with_instance`.
            Err(_) => self.projects.iter().position(|p| p.id == id),
        }
    }

    /// The demo instance: small, deterministic, with every project/commit/MR trap of the API reference.
    ///
    /// User `demo-user` (not admin), token `glpat-demo-0000000000000000`. 131 member projects
    /// (120 bulk `acme/services/svc-NNN` plus hand-made ones) and 4 others, listed in the crate
    /// docs.
    pub fn demo() -> Instance {
        let mut inst = Instance::new("demo-user", "glpat-demo-0000000000000000");
        let group = |id: u64, full_path: &str, name: &str, parent_id: Option<u64>| FakeGroup {
            id,
            full_path: full_path.to_string(),
            name: name.to_string(),
            parent_id,
        };
        inst.groups = vec![
            group(ACME, "acme", "Acme", None),
            group(ACME_PLATFORM, "acme/platform", "Platform", Some(ACME)),
            group(
                ACME_INFRA,
                "acme/platform/infra",
                "Infra",
                Some(ACME_PLATFORM),
            ),
            group(ACME_WEB, "acme/web", "Web", Some(ACME)),
            group(ACME_SERVICES, "acme/services", "Services", Some(ACME)),
            group(LABS, "labs", "Labs", None),
            group(OTHER_ORG, "other-org", "Other Org", None),
            group(PARTNERS, "partners", "Partners", None),
        ];
        let g = Namespace::Group;
        let mrs = |opened, merged, closed, locked| MergeRequestCounts {
            opened,
            merged,
            closed,
            locked,
        };
        let mut hand = vec![
            demo_project(
                42,
                g(ACME),
                "api",
                "API",
                Some(Role::Maintainer),
                347,
                mrs(7, 312, 41, 2),
            ),
            demo_project(
                7,
                g(ACME_PLATFORM),
                "deploy",
                "Deploy",
                Some(Role::Developer),
                25,
                mrs(2, 40, 5, 0),
            ),
            demo_project(
                88,
                g(ACME_INFRA),
                "terraform",
                "Terraform",
                Some(Role::Reporter),
                200,
                mrs(1, 19, 3, 0),
            ),
            demo_project(
                15,
                g(ACME_WEB),
                "frontend",
                "Frontend",
                Some(Role::Owner),
                4_321,
                mrs(10_000, 12_345, 10_001, 1),
            ),
            demo_project(
                3,
                g(ACME),
                "legacy",
                "Legacy",
                Some(Role::Maintainer),
                880,
                mrs(0, 57, 9, 0),
            ),
            demo_project(
                61,
                g(ACME),
                "empty",
                "Empty",
                Some(Role::Developer),
                0,
                mrs(0, 0, 0, 0),
            ),
            demo_project(
                29,
                g(ACME),
                "docs",
                "Docs",
                Some(Role::Developer),
                73,
                mrs(0, 0, 0, 0),
            ),
            demo_project(
                50,
                g(ACME),
                "release-train",
                "Release Train",
                Some(Role::Developer),
                129,
                mrs(3, 88, 6, 0),
            ),
            demo_project(
                77,
                g(LABS),
                "secret",
                "Secret",
                Some(Role::Guest),
                45,
                mrs(4, 10, 1, 0),
            ),
            demo_project(
                21,
                g(LABS),
                "guest-public",
                "Guest Public",
                Some(Role::Guest),
                57,
                mrs(2, 14, 2, 0),
            ),
            demo_project(
                9,
                g(OTHER_ORG),
                "public-lib",
                "Public Lib",
                None,
                512,
                mrs(5, 77, 12, 1),
            ),
            demo_project(
                33,
                g(OTHER_ORG),
                "internal-tool",
                "Internal Tool",
                None,
                96,
                mrs(1, 8, 0, 0),
            ),
            demo_project(
                2,
                Namespace::User,
                "dotfiles",
                "dotfiles",
                Some(Role::Owner),
                40,
                mrs(0, 1, 0, 0),
            ),
            demo_project(
                34,
                g(PARTNERS),
                "portal",
                "Portal",
                None,
                230,
                mrs(6, 52, 7, 0),
            ),
            demo_project(
                35,
                g(PARTNERS),
                "sandbox",
                "Sandbox",
                None,
                0,
                mrs(0, 0, 0, 0),
            ),
        ];
        for p in &mut hand {
            match p.path.as_str() {
                "legacy" => p.archived = true,
                "terraform" => p.role_inherited = true,
                "empty" => {
                    p.default_branch = None;
                    p.storage = Storage::default();
                }
                "docs" => {
                    p.issues_enabled = false;
                    p.open_issues = 0;
                    p.merge_requests_enabled = false;
                    p.builds_enabled = false;
                }
                "release-train" => {
                    p.default_branch = Some("release/2.0".to_string());
                    p.environment_history = true;
                }
                "api" | "deploy" | "frontend" => p.environment_history = true,
                "guest-public" => p.visibility = Visibility::Public,
                "public-lib" => {
                    p.visibility = Visibility::Public;
                    p.shared_with_groups = vec![ACME];
                }
                "internal-tool" => p.visibility = Visibility::Internal,
                "secret" => p.role_inherited = true,
                "portal" => {
                    p.visibility = Visibility::Public;
                    p.merge_requests_private = true;
                }
                "sandbox" => {
                    p.visibility = Visibility::Public;
                    p.default_branch = None;
                    p.null_default_branch = true;
                    p.storage = Storage::default();
                }
                _ => {}
            }
        }
        inst.projects = hand;
        inst.projects.extend((1..=DEMO_BULK).map(bulk_project));
        inst.sort_projects();
        inst
    }

    /// `n` projects with ids `1..=n` over 8 subgroups of `scale`, all with the user as Reporter or
    /// above (statistics visible), deterministic counts. Builds 100,000 projects in well under a second.
    pub fn generated(n: usize) -> Instance {
        let mut inst = Instance::new("scale-user", "glpat-scale-0000000000000000");
        inst.groups.push(FakeGroup {
            id: 10,
            full_path: "scale".to_string(),
            name: "Scale".to_string(),
            parent_id: None,
        });
        inst.groups.extend((1..=GENERATED_TEAMS).map(|t| FakeGroup {
            id: 10 + t,
            full_path: format!("scale/team-{t:02}"),
            name: format!("Team {t:02}"),
            parent_id: Some(10),
        }));
        inst.projects = (1..=n as u64)
            .map(|id| {
                let h = splitmix64(id ^ 0x5CA1_AB1E);
                let path = format!("project-{id:06}");
                let mut p =
                    FakeProject::new(id, &path, Namespace::Group(11 + id % GENERATED_TEAMS));
                p.role = Some(match h % 4 {
                    0 => Role::Reporter,
                    1 => Role::Developer,
                    2 => Role::Maintainer,
                    _ => Role::Owner,
                });
                p.role_inherited = id % 3 == 0;
                p.visibility = if h >> 8 & 3 == 0 {
                    Visibility::Internal
                } else {
                    Visibility::Private
                };
                p.commits = 1 + (h >> 12) % 5_000;
                p.star_count = (h >> 24) % 30;
                p.forks_count = (h >> 30) % 8;
                p.open_issues = (h >> 34) % 60;
                p.merge_requests = MergeRequestCounts {
                    opened: (h >> 40) % 20,
                    merged: (h >> 44) % 500,
                    closed: (h >> 52) % 50,
                    locked: u64::from(h % 97 == 0),
                };
                p.last_activity_at = DEMO_NOW - ((h >> 20) % (90 * 86_400)) as i64;
                p.storage = storage_for(h, p.commits);
                p.environment_history = id % 4 == 0;
                p
            })
            .collect();
        inst
    }
}

const ACME: u64 = 10;
const ACME_PLATFORM: u64 = 11;
const ACME_INFRA: u64 = 12;
const ACME_WEB: u64 = 13;
const ACME_SERVICES: u64 = 14;
const LABS: u64 = 20;
const OTHER_ORG: u64 = 30;
const PARTNERS: u64 = 40;
/// Number of `acme/services/svc-NNN` projects in the demo.
const DEMO_BULK: u64 = 120;
/// Number of team subgroups in a generated instance.
const GENERATED_TEAMS: u64 = 8;

/// Varied, deterministic storage parts for a project with `commits` commits.
fn storage_for(h: u64, commits: u64) -> Storage {
    let h2 = splitmix64(h);
    Storage {
        repository: commits * 14_336 + h2 % (1 << 20),
        lfs_objects: if h2 & 7 == 0 {
            (h2 >> 3) % (64 << 20)
        } else {
            0
        },
        job_artifacts: (h2 >> 10) % (256 << 20),
        pipeline_artifacts: (h2 >> 20) % (4 << 20),
        packages: if h2 >> 40 & 3 == 0 {
            (h2 >> 30) % (32 << 20)
        } else {
            0
        },
        wiki: (h2 >> 42) % (1 << 18),
        snippets: 0,
        uploads: (h2 >> 48) % (2 << 20),
        container_registry: 0,
    }
}

/// A hand-made demo project: private, issues and merge requests enabled, varied stars and storage.
fn demo_project(
    id: u64,
    namespace: Namespace,
    path: &str,
    name: &str,
    role: Option<Role>,
    commits: u64,
    merge_requests: MergeRequestCounts,
) -> FakeProject {
    let h = splitmix64(id ^ 0xDE30);
    let mut p = FakeProject::new(id, path, namespace);
    p.name = name.to_string();
    p.role = role;
    p.commits = commits;
    p.merge_requests = merge_requests;
    p.star_count = h % 40;
    p.forks_count = (h >> 8) % 6;
    p.open_issues = (h >> 16) % 30;
    p.last_activity_at = DEMO_NOW - ((h >> 24) % (14 * 86_400)) as i64;
    p.storage = storage_for(h, commits);
    p
}

/// Bulk demo project `acme/services/svc-NNN` number `i` (1-based). Ids are a permutation of
/// 200..320 so listing order differs from name order; a few have 21..99 commits (the
/// 20-per-page trap), a few are archived, have issues or merge requests disabled.
fn bulk_project(i: u64) -> FakeProject {
    let h = splitmix64(i ^ 0xB01C);
    let id = 200 + (i * 53) % DEMO_BULK;
    let path = format!("svc-{i:03}");
    let mut p = FakeProject::new(id, &path, Namespace::Group(ACME_SERVICES));
    p.name = format!("Service {i:03}");
    p.role = Some(match h % 10 {
        0 => Role::Reporter,
        1 | 2 => Role::Maintainer,
        3 => Role::Owner,
        _ => Role::Developer,
    });
    p.visibility = if h >> 8 & 3 == 0 {
        Visibility::Internal
    } else {
        Visibility::Private
    };
    p.commits = if i % 20 == 7 {
        21 + (h >> 12) % 79
    } else {
        100 + (h >> 12) % 2_900
    };
    p.role_inherited = i % 3 == 0;
    p.archived = i % 40 == 13;
    p.issues_enabled = i % 17 != 0;
    p.open_issues = if p.issues_enabled { (h >> 20) % 50 } else { 0 };
    p.merge_requests_enabled = i % 25 != 0;
    p.merge_requests_private = i % 7 == 3;
    if p.merge_requests_enabled {
        p.merge_requests = MergeRequestCounts {
            opened: (h >> 28) % 15,
            merged: 10 + (h >> 32) % 400,
            closed: (h >> 42) % 40,
            locked: u64::from(i % 30 == 0),
        };
    }
    p.star_count = (h >> 48) % 25;
    p.forks_count = (h >> 54) % 5;
    p.last_activity_at = DEMO_NOW - ((h >> 16) % (60 * 86_400)) as i64;
    p.storage = storage_for(h, p.commits);
    p.pipeline_history = i % 10 != 9;
    p.environment_history = i % 6 == 1;
    p.builds_enabled = i % 30 != 11;
    p.environments_enabled = i % 30 != 19;
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_is_consistent() {
        let d = Instance::demo();
        let members = d.projects.iter().filter(|p| p.role.is_some()).count();
        assert!(members > 100, "{members}");
        let mut ids: Vec<u64> = d.projects.iter().map(|p| p.id).collect();
        ids.dedup();
        assert_eq!(ids.len(), d.projects.len(), "ids are unique and sorted");
        let deploy = d.project_by_path("acme/platform/deploy").map(|p| p.commits);
        assert_eq!(deploy, Some(25));
        assert!(d.project_by_path("demo-user/dotfiles").is_some());
        assert_eq!(
            d.projects
                .iter()
                .filter(|p| p.commits > 20 && p.commits < 100)
                .count(),
            12
        );
        assert!(!format!("{d:?}").contains("glpat-demo"));
    }

    #[test]
    fn shas_are_deterministic_and_reversible() {
        let d = Instance::demo();
        let p = d.project(42).cloned().unwrap_or_else(|| panic!("acme/api"));
        let head = p.head_sha().unwrap_or_default();
        assert_eq!(head.len(), 40);
        assert_eq!(p.commit_number(&head), Some(347));
        assert_eq!(p.commit_number(&head.to_uppercase()), Some(347));
        let first = p.commit_sha(1).unwrap_or_default();
        assert_eq!(p.commit_number(&first), Some(1));
        assert_ne!(first, head);
        assert_eq!(p.commit_sha(348), None);
        for x in [0, 1, 2, 0xFFFF, 0x1_0000, u32::MAX, 0xDEAD_BEEF] {
            assert_eq!(unscramble(scramble(x)), x);
        }
        let second = p.commit_sha(2).unwrap_or_default();
        assert_ne!(first.get(34..), second.get(34..), "tails look unrelated");
        let other = d.project(7).map(|q| q.commit_number(&head));
        assert_eq!(other, Some(None), "a SHA belongs to one project");
        assert_eq!(d.project(61).and_then(FakeProject::head_sha), None);
    }

    #[test]
    fn generated_is_sorted_and_visible() {
        let g = Instance::generated(1_000);
        assert_eq!(g.projects.len(), 1_000);
        assert!(g.projects.is_sorted_by_key(|p| p.id));
        assert!(
            g.projects
                .iter()
                .all(|p| p.role >= Some(Role::Reporter) && p.merge_requests_enabled)
        );
        let no_mr = Instance::generated(10).with_merge_requests(false);
        assert!(no_mr.projects.iter().all(|p| !p.merge_requests_enabled));
        assert_eq!(
            g.project(1000).map(|p| p.path_with_namespace(&g)),
            Some("scale/team-01/project-001000".to_string())
        );
    }
}
