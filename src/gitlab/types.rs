//! The JSON the exporter reads from GitLab: only the fields it uses, each optional where GitLab
//! may leave it out (`statistics` below the Reporter role, `open_issues_count` when issues are
//! off, `default_branch` without code access, most fields with `simple=true`).
//!
//! One bad record costs only itself: a list is read record by record ([`Page`]), and a
//! project's fields one by one, so a field of the wrong type or out of range (a negative
//! storage size, an integer above `u64`, a number for a string) leaves out only that field,
//! listed in [`Project::problems`]; text with a lone surrogate escape (or, replaced by the
//! client before decoding, bytes that are not UTF-8) is kept with U+FFFD in place of the bad
//! part, also listed. A record without a usable `id` or `path_with_namespace` is left out of its
//! page ([`Page::dropped`]). Label values are cut at [`MAX_LABEL_BYTES`].

use std::borrow::Cow;
use std::sync::OnceLock;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use time::format_description::BorrowedFormatItem;
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, PrimitiveDateTime};

/// Longest label value taken from GitLab, in bytes: GitLab allows 20 nested groups of paths of
/// at most 255 characters (about 5 KiB); a longer value is cut, with a problem listed, rather
/// than repeated on every series of the project.
pub const MAX_LABEL_BYTES: usize = 8 << 10;

/// A project, as `GET /projects`, `GET /groups/:id/projects` and `GET /projects/:id` return it.
/// A field GitLab sent but that could not be used is `None`, and said why in `problems`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(try_from = "RawProject")]
pub struct Project {
    pub id: u64,
    /// `group/subgroup/project`.
    pub path_with_namespace: String,
    /// The owning group or user namespace.
    pub namespace: Option<Namespace>,
    /// `private`, `internal` or `public`.
    pub visibility: Option<String>,
    /// Absent without code access, null for an empty repository.
    pub default_branch: Option<String>,
    /// Archived projects are read-only.
    pub archived: Option<bool>,
    /// True when the repository has no commit.
    pub empty_repo: Option<bool>,
    pub star_count: Option<u64>,
    /// Hidden without code access.
    pub forks_count: Option<u64>,
    /// Open issues; absent when issues are disabled or invisible to the token.
    pub open_issues_count: Option<u64>,
    /// Last activity, RFC 3339; GitLab updates it at most once an hour.
    pub last_activity_at: Option<String>,
    /// Deprecated boolean form of the merge-request feature switch.
    pub merge_requests_enabled: Option<bool>,
    /// `disabled`, `private` or `enabled`.
    pub merge_requests_access_level: Option<String>,
    /// Whether CI/CD is on for the token user (`jobs_enabled`, GraphQL `jobsEnabled`).
    pub jobs_enabled: Option<bool>,
    /// Present with `statistics=true` for Reporter and above.
    pub statistics: Option<Statistics>,
    /// The token user's access, in `GET /projects` and `GET /projects/:id` answers.
    pub permissions: Option<Permissions>,
    /// GraphQL only: the last commit of the default branch's tree (`repository.tree.lastCommit`),
    /// a sign that the branch moved.
    pub head: Option<String>,
    /// GraphQL only: whether the token may read the project's merge requests
    /// (`userPermissions.readMergeRequest`); REST tells that only by answering 403.
    pub merge_requests_readable: Option<bool>,
    /// The fields GitLab sent that could not be used as they were, and why (`field: why`).
    pub problems: Vec<String>,
}

impl Project {
    /// What could not be used of this project, for a log line; `None` when everything could.
    pub fn problems_report(&self) -> Option<String> {
        (!self.problems.is_empty()).then(|| {
            format!(
                "project {} ({}): {}",
                self.id,
                self.path_with_namespace,
                self.problems.join("; ")
            )
        })
    }

    /// False when CI/CD is off for the project (or for the token user): its pipelines are not
    /// readable then.
    pub fn jobs_enabled(&self) -> bool {
        self.jobs_enabled != Some(false)
    }

    /// False when the project's merge-request feature is off (the list answers 403 then).
    pub fn merge_requests_enabled(&self) -> bool {
        self.merge_requests_access_level.as_deref() != Some("disabled")
            && self.merge_requests_enabled != Some(false)
    }

    /// The token user's access level (the higher of project and group membership), when the
    /// answer says (`GET /projects` and `GET /projects/:id` do).
    pub fn access_level(&self) -> Option<u32> {
        self.permissions.as_ref().map(|p| {
            let level = |a: &Option<Access>| a.as_ref().map_or(0, |a| a.access_level);
            level(&p.project_access).max(level(&p.group_access))
        })
    }

    /// True when the token user is known to have less than the Reporter role on a private
    /// project: GitLab then forbids its code and, unless a custom role allows them, its merge
    /// requests.
    pub fn below_reporter_on_private(&self) -> bool {
        self.visibility.as_deref() == Some("private")
            && self.access_level().is_some_and(|level| level < 20)
    }

    /// True when the project lives in a user's personal namespace rather than a group.
    pub fn in_user_namespace(&self) -> bool {
        self.namespace.as_ref().and_then(|ns| ns.kind.as_deref()) == Some("user")
    }

    /// The namespace's full path, or the project path's parent when GitLab left it out.
    pub fn namespace_path(&self) -> &str {
        match &self.namespace {
            Some(ns) if !ns.full_path.is_empty() => &ns.full_path,
            _ => self
                .path_with_namespace
                .rsplit_once('/')
                .map_or("", |(parent, _)| parent),
        }
    }
}

/// A project's namespace.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Namespace {
    /// `group/subgroup` or a username.
    #[serde(default)]
    pub full_path: String,
    /// `group` or `user`.
    #[serde(default)]
    pub kind: Option<String>,
}

/// `permissions` of a project: the token user's access through the project and its group.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Permissions {
    /// Direct membership.
    #[serde(default)]
    pub project_access: Option<Access>,
    /// Membership through the group.
    #[serde(default)]
    pub group_access: Option<Access>,
}

/// An access level: 10 Guest, 20 Reporter, 30 Developer, 40 Maintainer, 50 Owner.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Access {
    /// The numeric level.
    pub access_level: u32,
}

/// `statistics` of a project: stored counters that GitLab refreshes in the background.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Statistics {
    /// Commits on the default branch.
    #[serde(default)]
    pub commit_count: Option<u64>,
    /// Bytes of the Git repository.
    #[serde(default)]
    pub repository_size: Option<u64>,
    /// Bytes of LFS objects.
    #[serde(default)]
    pub lfs_objects_size: Option<u64>,
    /// Bytes of CI job artifacts.
    #[serde(default)]
    pub job_artifacts_size: Option<u64>,
    /// Bytes of pipeline artifacts.
    #[serde(default)]
    pub pipeline_artifacts_size: Option<u64>,
    /// Bytes of packages.
    #[serde(default)]
    pub packages_size: Option<u64>,
    /// Bytes of the wiki.
    #[serde(default)]
    pub wiki_size: Option<u64>,
    /// Bytes of snippets.
    #[serde(default)]
    pub snippets_size: Option<u64>,
    /// Bytes of uploads.
    #[serde(default)]
    pub uploads_size: Option<u64>,
    /// Bytes of the container registry.
    #[serde(default)]
    pub container_registry_size: Option<u64>,
}

/// The sizes of [`Statistics`], kept compact (no allocation): a big instance holds 100,000.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sizes {
    values: [u64; 9],
    present: u16,
}

impl Sizes {
    /// The `storage` label of each size, in order.
    pub const KINDS: [&'static str; 9] = [
        "repository",
        "lfs_objects",
        "job_artifacts",
        "pipeline_artifacts",
        "packages",
        "wiki",
        "snippets",
        "uploads",
        "container_registry",
    ];

    /// Each size GitLab reported, with its `storage` label.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Self::KINDS
            .iter()
            .zip(self.values)
            .enumerate()
            .filter(|(i, _)| self.present & (1 << i) != 0)
            .map(|(_, (kind, value))| (*kind, value))
    }
}

impl From<&Statistics> for Sizes {
    fn from(s: &Statistics) -> Sizes {
        let reported = [
            s.repository_size,
            s.lfs_objects_size,
            s.job_artifacts_size,
            s.pipeline_artifacts_size,
            s.packages_size,
            s.wiki_size,
            s.snippets_size,
            s.uploads_size,
            s.container_registry_size,
        ];
        let mut sizes = Sizes::default();
        for (i, value) in reported.into_iter().enumerate() {
            if let Some(value) = value {
                sizes.values[i] = value;
                sizes.present |= 1 << i;
            }
        }
        sizes
    }
}

// ---------------------------------------------------------------------------------------------
// Lenient decoding.

/// A field decoded on its own, so that a bad value costs only this field.
#[derive(Debug, Clone, Default)]
enum Lenient<T> {
    /// Absent or null.
    #[default]
    Absent,
    Value(T),
    /// Present but unusable: why.
    Bad(String),
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        if raw.get().trim() == "null" {
            return Ok(Lenient::Absent);
        }
        Ok(match serde_json::from_str::<T>(raw.get()) {
            Ok(value) => Lenient::Value(value),
            Err(e) => Lenient::Bad(why(&e)),
        })
    }
}

/// serde_json's message without its position (which is within the field's own text),
/// redacted and cut to one line of 300 characters: serde quotes the offending value, whatever
/// its length.
fn why(e: &serde_json::Error) -> String {
    let message = e.to_string();
    let message = match message.rfind(" at line ") {
        Some(at) => &message[..at],
        None => &message,
    };
    crate::redact::log_line(message, 300)
}

/// A text field: like [`Lenient`], but a string holding a lone surrogate escape is kept, with
/// U+FFFD in its place, and noted. (Bytes that are not UTF-8 are replaced before decoding, and
/// noted, by the client.)
#[derive(Debug, Clone, Default)]
struct Text(Lenient<String>, bool);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        let raw = raw.get().trim();
        if raw == "null" {
            return Ok(Text(Lenient::Absent, false));
        }
        Ok(match serde_json::from_str::<String>(raw) {
            Ok(text) => Text(Lenient::Value(text), false),
            Err(e) if raw.starts_with('"') => match lossy_string(raw) {
                Some(text) => Text(Lenient::Value(text), true),
                None => Text(Lenient::Bad(why(&e)), false),
            },
            Err(e) => Text(Lenient::Bad(why(&e)), false),
        })
    }
}

/// A JSON string with lone surrogate escapes, as text with U+FFFD in their place.
fn lossy_string(raw: &str) -> Option<String> {
    struct Bytes;
    impl serde::de::Visitor<'_> for Bytes {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string")
        }
        fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
    }
    // serde_json gives the bytes of a string with lone surrogates as WTF-8: each surrogate is
    // `ED A0..BF 80..BF`, which becomes one U+FFFD.
    let bytes =
        serde::Deserializer::deserialize_bytes(&mut serde_json::Deserializer::from_str(raw), Bytes)
            .ok()?;
    let mut text = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if let [0xED, 0xA0..=0xBF, 0x80..=0xBF, ..] = bytes[i..] {
            text.extend_from_slice("\u{FFFD}".as_bytes());
            i += 3;
        } else {
            text.push(bytes[i]);
            i += 1;
        }
    }
    Some(String::from_utf8_lossy(&text).into_owned())
}

/// What a field gave: its value, if usable; its problem, if any, goes to `problems`.
struct Fields<'a> {
    problems: &'a mut Vec<String>,
    prefix: &'static str,
}

impl Fields<'_> {
    fn take<T>(&mut self, name: &str, field: Lenient<T>) -> Option<T> {
        match field {
            Lenient::Absent => None,
            Lenient::Value(value) => Some(value),
            Lenient::Bad(why) => {
                self.problems.push(format!("{}{name}: {why}", self.prefix));
                None
            }
        }
    }

    /// A text field, cut to [`MAX_LABEL_BYTES`] when `label`.
    fn text(&mut self, name: &str, field: Text, label: bool) -> Option<String> {
        let Text(field, lossy) = field;
        let mut text = self.take(name, field)?;
        if lossy {
            self.problems.push(format!(
                "{}{name}: a lone surrogate escape, replaced by U+FFFD",
                self.prefix
            ));
        }
        if label && text.len() > MAX_LABEL_BYTES {
            let mut cut = MAX_LABEL_BYTES;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            self.problems.push(format!(
                "{}{name}: {} bytes long, cut to {cut} for labels",
                self.prefix,
                text.len()
            ));
            text.truncate(cut);
        }
        Some(text)
    }
}

/// A project as sent, each field on its own.
#[derive(Deserialize)]
struct RawProject {
    #[serde(default)]
    id: Lenient<u64>,
    #[serde(default)]
    path_with_namespace: Text,
    #[serde(default)]
    namespace: Lenient<RawNamespace>,
    #[serde(default)]
    visibility: Text,
    #[serde(default)]
    default_branch: Text,
    #[serde(default)]
    archived: Lenient<bool>,
    #[serde(default)]
    empty_repo: Lenient<bool>,
    #[serde(default)]
    star_count: Lenient<u64>,
    #[serde(default)]
    forks_count: Lenient<u64>,
    #[serde(default)]
    open_issues_count: Lenient<u64>,
    #[serde(default)]
    last_activity_at: Text,
    #[serde(default)]
    merge_requests_enabled: Lenient<bool>,
    #[serde(default)]
    merge_requests_access_level: Text,
    #[serde(default)]
    jobs_enabled: Lenient<bool>,
    #[serde(default)]
    statistics: Lenient<RawStatistics>,
    #[serde(default)]
    permissions: Lenient<RawPermissions>,
}

#[derive(Deserialize)]
struct RawNamespace {
    #[serde(default)]
    full_path: Text,
    #[serde(default)]
    kind: Text,
}

#[derive(Deserialize)]
struct RawPermissions {
    #[serde(default)]
    project_access: Lenient<RawAccess>,
    #[serde(default)]
    group_access: Lenient<RawAccess>,
}

#[derive(Deserialize)]
struct RawAccess {
    #[serde(default)]
    access_level: Lenient<u32>,
}

#[derive(Deserialize)]
struct RawStatistics {
    #[serde(default)]
    commit_count: Lenient<u64>,
    #[serde(default)]
    repository_size: Lenient<u64>,
    #[serde(default)]
    lfs_objects_size: Lenient<u64>,
    #[serde(default)]
    job_artifacts_size: Lenient<u64>,
    #[serde(default)]
    pipeline_artifacts_size: Lenient<u64>,
    #[serde(default)]
    packages_size: Lenient<u64>,
    #[serde(default)]
    wiki_size: Lenient<u64>,
    #[serde(default)]
    snippets_size: Lenient<u64>,
    #[serde(default)]
    uploads_size: Lenient<u64>,
    #[serde(default)]
    container_registry_size: Lenient<u64>,
}

impl TryFrom<RawProject> for Project {
    type Error = String;

    /// The project, unless it has no usable `id` or `path_with_namespace` (it could not be
    /// labelled): then why.
    fn try_from(raw: RawProject) -> Result<Project, String> {
        let mut problems = Vec::new();
        let mut top = Fields {
            problems: &mut problems,
            prefix: "",
        };
        let id = match raw.id {
            Lenient::Value(id) => id,
            Lenient::Absent => return Err("missing field `id`".to_owned()),
            Lenient::Bad(why) => return Err(format!("id: {why}")),
        };
        let path_with_namespace = match raw.path_with_namespace {
            Text(Lenient::Absent, _) => {
                return Err(format!("project {id}: missing field `path_with_namespace`"));
            }
            Text(Lenient::Bad(why), _) => {
                return Err(format!("project {id}: path_with_namespace: {why}"));
            }
            text => top
                .text("path_with_namespace", text, true)
                .unwrap_or_default(),
        };
        let visibility = top.text("visibility", raw.visibility, true);
        let default_branch = top.text("default_branch", raw.default_branch, true);
        let archived = top.take("archived", raw.archived);
        let empty_repo = top.take("empty_repo", raw.empty_repo);
        let star_count = top.take("star_count", raw.star_count);
        let forks_count = top.take("forks_count", raw.forks_count);
        let open_issues_count = top.take("open_issues_count", raw.open_issues_count);
        let last_activity_at = top.text("last_activity_at", raw.last_activity_at, false);
        let merge_requests_enabled = top.take("merge_requests_enabled", raw.merge_requests_enabled);
        let merge_requests_access_level = top.text(
            "merge_requests_access_level",
            raw.merge_requests_access_level,
            false,
        );
        let jobs_enabled = top.take("jobs_enabled", raw.jobs_enabled);
        let namespace = top.take("namespace", raw.namespace);
        let statistics = top.take("statistics", raw.statistics);
        let permissions = top.take("permissions", raw.permissions);
        let namespace = namespace.map(|ns| {
            let mut f = Fields {
                problems: &mut problems,
                prefix: "namespace.",
            };
            Namespace {
                full_path: f.text("full_path", ns.full_path, true).unwrap_or_default(),
                kind: f.text("kind", ns.kind, false),
            }
        });
        let statistics = statistics.map(|s| {
            let mut f = Fields {
                problems: &mut problems,
                prefix: "statistics.",
            };
            Statistics {
                commit_count: f.take("commit_count", s.commit_count),
                repository_size: f.take("repository_size", s.repository_size),
                lfs_objects_size: f.take("lfs_objects_size", s.lfs_objects_size),
                job_artifacts_size: f.take("job_artifacts_size", s.job_artifacts_size),
                pipeline_artifacts_size: f
                    .take("pipeline_artifacts_size", s.pipeline_artifacts_size),
                packages_size: f.take("packages_size", s.packages_size),
                wiki_size: f.take("wiki_size", s.wiki_size),
                snippets_size: f.take("snippets_size", s.snippets_size),
                uploads_size: f.take("uploads_size", s.uploads_size),
                container_registry_size: f
                    .take("container_registry_size", s.container_registry_size),
            }
        });
        let permissions = permissions.map(|p| {
            let mut access = |name: &'static str, field: Lenient<RawAccess>| {
                let mut f = Fields {
                    problems: &mut problems,
                    prefix: "permissions.",
                };
                match f.take(name, field)?.access_level {
                    Lenient::Value(access_level) => Some(Access { access_level }),
                    Lenient::Absent => None,
                    Lenient::Bad(why) => {
                        problems.push(format!("permissions.{name}.access_level: {why}"));
                        None
                    }
                }
            };
            Permissions {
                project_access: access("project_access", p.project_access),
                group_access: access("group_access", p.group_access),
            }
        });
        Ok(Project {
            id,
            path_with_namespace,
            namespace,
            visibility,
            default_branch,
            archived,
            empty_repo,
            star_count,
            forks_count,
            open_issues_count,
            last_activity_at,
            merge_requests_enabled,
            merge_requests_access_level,
            jobs_enabled,
            statistics,
            permissions,
            head: None,
            merge_requests_readable: None,
            problems,
        })
    }
}

impl Project {
    /// A project node of a GraphQL answer, read with the same rules as a REST record: it is
    /// put in the REST shape first (`fullPath` as `path_with_namespace`, `repository.rootRef` as
    /// `default_branch`, ...) and decoded field by field, so a bad field costs only itself and
    /// is listed under its REST name. GraphQL's statistics are Floats: an integral value up to
    /// 2^53 is the exact count; a fractional, negative or larger one is a bad field.
    ///
    /// What GraphQL says differently: `forksCount` is given whatever the caller's access, while
    /// REST shows it only with code access (`repository` non-null), so it is kept only then;
    /// `mergeRequests` answers 0 rather than 403 when the caller may not read them, so
    /// `userPermissions.readMergeRequest` false counts as the feature being off; a project in a
    /// personal namespace has `group: null`.
    pub fn from_graphql(node: &serde_json::Value) -> Result<Project, String> {
        use serde_json::{Map, Value};
        let field = |path: &[&str]| -> Option<&Value> {
            let mut v = node;
            for key in path {
                v = v.get(key)?;
            }
            (!v.is_null()).then_some(v)
        };
        let id = match field(&["id"]) {
            Some(Value::String(gid)) => super::graphql::gid_number(gid).ok_or_else(|| {
                format!(
                    "id: not a project global id: {}",
                    crate::redact::log_line(gid, 100)
                )
            })?,
            Some(other) => {
                return Err(format!(
                    "id: not a string: {}",
                    crate::redact::log_line(&other.to_string(), 100)
                ));
            }
            None => return Err("missing field `id`".to_owned()),
        };
        let mut rest = Map::new();
        let mut put = |key: &str, value: Option<&Value>| {
            if let Some(v) = value {
                rest.insert(key.to_owned(), v.clone());
            }
        };
        put("id", Some(&Value::from(id)));
        put("path_with_namespace", field(&["fullPath"]));
        put("visibility", field(&["visibility"]));
        put("archived", field(&["archived"]));
        put("star_count", field(&["starCount"]));
        put("open_issues_count", field(&["openIssuesCount"]));
        put("last_activity_at", field(&["lastActivityAt"]));
        let code = field(&["repository"]).is_some();
        if code {
            put("forks_count", field(&["forksCount"]));
        }
        put("default_branch", field(&["repository", "rootRef"]));
        put("empty_repo", field(&["repository", "empty"]));
        if node.get("namespace").is_some() {
            let mut namespace = Map::new();
            if let Some(path) = field(&["namespace", "fullPath"]) {
                namespace.insert("full_path".to_owned(), path.clone());
            }
            if node.get("group").is_some() {
                let kind = if field(&["group"]).is_some() {
                    "group"
                } else {
                    "user"
                };
                namespace.insert("kind".to_owned(), Value::from(kind));
            }
            put("namespace", Some(&Value::Object(namespace)));
        }
        let readable = field(&["userPermissions", "readMergeRequest"]).and_then(Value::as_bool);
        match (field(&["mergeRequestsEnabled"]), readable) {
            (_, Some(false)) => put("merge_requests_enabled", Some(&Value::Bool(false))),
            (enabled, _) => put("merge_requests_enabled", enabled),
        }
        put("jobs_enabled", field(&["jobsEnabled"]));
        if let Some(level) = field(&["maxAccessLevel", "integerValue"]) {
            put(
                "permissions",
                Some(&serde_json::json!({ "project_access": { "access_level": level } })),
            );
        }
        if let Some(Value::Object(stats)) = field(&["statistics"]) {
            const NAMES: [(&str, &str); 10] = [
                ("commitCount", "commit_count"),
                ("repositorySize", "repository_size"),
                ("lfsObjectsSize", "lfs_objects_size"),
                ("buildArtifactsSize", "job_artifacts_size"),
                ("pipelineArtifactsSize", "pipeline_artifacts_size"),
                ("packagesSize", "packages_size"),
                ("wikiSize", "wiki_size"),
                ("snippetsSize", "snippets_size"),
                ("uploadsSize", "uploads_size"),
                ("containerRegistrySize", "container_registry_size"),
            ];
            let mut converted = Map::new();
            for (graphql, name) in NAMES {
                if let Some(v) = stats.get(graphql).filter(|v| !v.is_null()) {
                    converted.insert(name.to_owned(), exact_count(v));
                }
            }
            put("statistics", Some(&Value::Object(converted)));
        }
        let mut project: Project = serde_json::from_value(Value::Object(rest))
            .map_err(|e| format!("project {id}: {}", why(&e)))?;
        project.head = field(&["repository", "tree", "lastCommit", "sha"])
            .and_then(Value::as_str)
            .map(str::to_owned);
        project.merge_requests_readable = readable;
        Ok(project)
    }
}

/// A GraphQL Float that counts something, as an exact JSON integer when it is one (integral,
/// 0 to 2^53); otherwise the value as it was, which decoding refuses.
fn exact_count(v: &serde_json::Value) -> serde_json::Value {
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 && (0.0..=9_007_199_254_740_992.0).contains(&f) => {
            serde_json::Value::from(f as u64)
        }
        _ => v.clone(),
    }
}

/// A list answer read record by record: the records that could be read, and why the others
/// could not (the record's index and id, when it has one). Whether a page of unreadable
/// records means the answer is wrong is the caller's to judge.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The records read, in order.
    pub items: Vec<T>,
    /// The records left out, and why.
    pub dropped: Vec<String>,
    /// The `id` of the last record that has a readable one, read or left out (a cursor).
    pub last_id: Option<u64>,
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Page<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Named {
            #[serde(default)]
            id: Lenient<u64>,
        }
        let records = Vec::<Box<RawValue>>::deserialize(deserializer)?;
        let id_of = |record: &RawValue| match serde_json::from_str::<Named>(record.get()) {
            Ok(Named {
                id: Lenient::Value(id),
            }) => Some(id),
            _ => None,
        };
        let mut page = Page {
            items: Vec::with_capacity(records.len()),
            dropped: Vec::new(),
            last_id: records.iter().rev().find_map(|r| id_of(r)),
        };
        for (i, record) in records.iter().enumerate() {
            match serde_json::from_str::<T>(record.get()) {
                Ok(item) => page.items.push(item),
                Err(e) => {
                    let id = id_of(record).map_or_else(String::new, |id| format!(" (id {id})"));
                    page.dropped
                        .push(format!("record {}{id}: {}", i + 1, why(&e)));
                }
            }
        }
        Ok(page)
    }
}

/// `GET /projects/:id/repository/branches/:branch`.
#[derive(Debug, Clone, Deserialize)]
pub struct Branch {
    /// The branch's head commit.
    pub commit: Commit,
}

/// A commit, reduced to its id.
#[derive(Debug, Clone, Deserialize)]
pub struct Commit {
    /// Full SHA.
    pub id: String,
}

/// `GET /projects/:id/repository/commits/:sha/sequence`.
#[derive(Debug, Clone, Deserialize)]
pub struct Sequence {
    /// Commits reachable from the given commit, itself included (`git rev-list --count`).
    pub count: u64,
}

/// A merge request, reduced to the project it belongs to.
#[derive(Debug, Clone, Deserialize)]
pub struct MergeRequestRef {
    /// The (target) project's id.
    pub project_id: u64,
}

/// Any item when only the number of items, or that there is an answer, matters.
pub type Ignored = serde::de::IgnoredAny;

/// Parses an RFC 3339 timestamp as GitLab writes them (`2026-11-20T10:15:00.123Z`,
/// `2024-03-01T09:15:27.913-05:00`, a space for the `T` allowed) to Unix seconds: the `f64`
/// nearest to the exact instant, fraction included.
pub fn parse_timestamp(s: &str) -> Option<f64> {
    // RFC 3339 allows a space for the `T`; `time` takes any byte there.
    if !matches!(s.as_bytes().get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    // The instant written out in decimal and read back: one rounding, to the nearest f64.
    let nanos = t.unix_timestamp_nanos();
    let sign = if nanos < 0 { "-" } else { "" };
    let (secs, fraction) = (
        nanos.unsigned_abs() / 1_000_000_000,
        nanos.unsigned_abs() % 1_000_000_000,
    );
    format!("{sign}{secs}.{fraction:09}").parse().ok()
}

/// `t` in Unix seconds (0 before 1970).
pub fn unix_seconds(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// This host's clock, Unix seconds (when GitLab's `Date` is missing, a proxy having stripped it).
pub fn host_time() -> i64 {
    unix_seconds(std::time::SystemTime::now())
}

/// The first and last second RFC 3339 can write (0000-01-01T00:00:00Z, 9999-12-31T23:59:59Z).
const RFC3339_SECONDS: std::ops::RangeInclusive<i64> = -62_167_219_200..=253_402_300_799;

/// Formats Unix seconds as RFC 3339 UTC (`2026-11-25T09:13:32Z`), as GitLab's `*_after`
/// parameters take it; a time outside RFC 3339's years (0000–9999) is written as the nearest
/// one inside.
pub fn format_timestamp(unix: i64) -> String {
    let unix = unix.clamp(*RFC3339_SECONDS.start(), *RFC3339_SECONDS.end());
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// Parses an HTTP date (`Wed, 25 Nov 2026 09:13:32 GMT`, RFC 9110 IMF-fixdate) to Unix seconds.
/// Strict: the fixed-width IMF-fixdate only (not RFC 850's nor asctime's form), nothing after
/// `GMT`; a leap second (`23:59:60`) is read as the second after `23:59:59`.
pub fn parse_http_date(s: &str) -> Option<i64> {
    static FORMAT: OnceLock<Vec<BorrowedFormatItem<'static>>> = OnceLock::new();
    let format = FORMAT.get_or_init(|| {
        time::format_description::parse(
            "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT",
        )
        .unwrap_or_default()
    });
    // 29 bytes with the year's four digits at 12..16: `time` would also take `-2026` there.
    if s.len() != 29 || !s.as_bytes().get(12).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    // `time` takes a leap second only in RFC 3339 (RFC 9110 allows one, as `60`).
    let leap = s.get(23..25) == Some("60");
    let text = match (leap, s.get(..23), s.get(25..)) {
        (true, Some(head), Some(tail)) => Cow::Owned(format!("{head}59{tail}")),
        _ => Cow::Borrowed(s),
    };
    let t = PrimitiveDateTime::parse(&text, format).ok()?.assume_utc();
    Some(t.unix_timestamp() + i64::from(leap))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_and_formatted_timestamps() {
        assert_eq!(
            parse_http_date("Wed, 25 Nov 2026 09:13:32 GMT"),
            Some(1_795_598_012)
        );
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        for bad in [
            "",
            "Wed, 25 Nov 2026 09:13:32",
            "Wed, 25 Foo 2026 09:13:32 GMT",
            "Wed, 25 Nov 2026 09:13 GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad:?}");
        }
        assert_eq!(format_timestamp(1_795_598_012), "2026-11-25T09:13:32Z");
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_timestamp(1_709_164_800), "2024-02-29T00:00:00Z");
        for t in [0, 951_782_400, 1_795_598_012, 4_102_444_800] {
            assert_eq!(parse_timestamp(&format_timestamp(t)), Some(t as f64));
        }
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(
            parse_timestamp("2013-09-30T13:46:02Z"),
            Some(1_380_548_762.0)
        );
        assert_eq!(
            parse_timestamp("2013-09-30T13:46:02.500Z"),
            Some(1_380_548_762.5)
        );
        assert_eq!(
            parse_timestamp("2013-09-30T15:46:02.000+02:00"),
            Some(1_380_548_762.0)
        );
        assert_eq!(
            parse_timestamp("2024-02-29T00:00:00Z"),
            Some(1_709_164_800.0)
        );
        // A self-managed instance's zone and milliseconds: the exact instant, as a decimal reads.
        for zoned in [
            "2024-03-01T09:15:27.913-05:00",
            "2024-03-01T19:45:27.913+05:30",
            "2024-03-01T14:15:27.913Z",
            "2024-03-01T14:15:27.913+00:00",
        ] {
            assert_eq!(parse_timestamp(zoned), Some(1_709_302_527.913), "{zoned}");
        }
        for bad in [
            "",
            "2013-09-30",
            "2013-13-30T13:46:02Z",
            "2013-09-30T13:46:02",
            "2013-09-30T13:46:02.Z",
            "x013-09-30T13:46:02Z",
            "2013-09-30X13:46:02Z",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn project_without_statistics_or_issues() {
        let p: Project = serde_json::from_str(
            r#"{"id":4,"path_with_namespace":"diaspora/diaspora-client","default_branch":"main",
                "archived":false,"star_count":0,"forks_count":0,"namespace":{"id":3,"full_path":"diaspora","kind":"group"},
                "merge_requests_access_level":"disabled","unknown_field":[1,2]}"#,
        )
        .unwrap();
        assert_eq!(p.statistics, None);
        assert_eq!(p.open_issues_count, None);
        assert!(!p.merge_requests_enabled());
        assert_eq!(p.namespace_path(), "diaspora");
    }

    #[test]
    fn a_bad_field_costs_only_itself() {
        let p: Project = serde_json::from_str(
            r#"{"id":42,"path_with_namespace":"acme/api","star_count":18446744073709551616,
                "forks_count":-1,"open_issues_count":"3","archived":"no","default_branch":42,
                "namespace":"acme","visibility":"private",
                "statistics":{"commit_count":347,"repository_size":-1234,"wiki_size":1.5,"lfs_objects_size":7},
                "permissions":{"project_access":{"access_level":"forty"},"group_access":{"access_level":30}}}"#,
        )
        .unwrap();
        assert_eq!((p.id, p.path_with_namespace.as_str()), (42, "acme/api"));
        assert_eq!(
            (p.star_count, p.forks_count, p.open_issues_count),
            (None, None, None)
        );
        assert_eq!((p.archived, p.default_branch.as_deref()), (None, None));
        assert_eq!(p.visibility.as_deref(), Some("private"));
        assert_eq!(p.namespace, None);
        assert_eq!(p.namespace_path(), "acme", "from the path");
        let s = p.statistics.as_ref().unwrap();
        assert_eq!((s.commit_count, s.repository_size), (Some(347), None));
        assert_eq!((s.wiki_size, s.lfs_objects_size), (None, Some(7)));
        assert_eq!(p.access_level(), Some(30));
        let problems = p.problems.join("\n");
        for field in [
            "star_count",
            "forks_count: invalid value: integer `-1`, expected u64",
            "open_issues_count: invalid type: string",
            "archived",
            "default_branch: invalid type: integer `42`, expected a string",
            "namespace: invalid type: string",
            "statistics.repository_size: invalid value: integer `-1234`",
            "statistics.wiki_size: invalid type: floating point `1.5`",
            "permissions.project_access.access_level",
        ] {
            assert!(problems.contains(field), "{field} not in:\n{problems}");
        }
        assert_eq!(p.problems.len(), 9, "{problems}");
        assert!(
            p.problems_report()
                .unwrap()
                .starts_with("project 42 (acme/api): ")
        );
    }

    #[test]
    fn text_with_lone_surrogates_or_too_long_is_kept_and_noted() {
        let long = "x".repeat(MAX_LABEL_BYTES + 10);
        let p: Project = serde_json::from_str(&format!(
            r#"{{"id":1,"path_with_namespace":"acme/docs\ud800","default_branch":"ü{long}"}}"#
        ))
        .unwrap();
        assert_eq!(p.path_with_namespace, "acme/docs\u{FFFD}");
        let branch = p.default_branch.as_deref().unwrap();
        assert!(branch.len() <= MAX_LABEL_BYTES && branch.len() >= MAX_LABEL_BYTES - 1);
        assert!(branch.starts_with('ü'));
        assert_eq!(p.problems.len(), 2, "{:?}", p.problems);
        assert!(p.problems[0].contains("lone surrogate"));
        assert!(p.problems[1].contains("cut to"));
    }

    #[test]
    fn a_page_keeps_the_records_it_can_read() {
        let page: Page<Project> = serde_json::from_str(
            r#"[{"id":1,"path_with_namespace":"a/one"}, null, {"id":-3,"path_with_namespace":"a/x"},
                {"id":4}, {"path_with_namespace":"a/y"}, {"id":6,"path_with_namespace":"a/six"}, 7]"#,
        )
        .unwrap();
        let ids: Vec<u64> = page.items.iter().map(|p| p.id).collect();
        assert_eq!(ids, [1, 6]);
        assert_eq!(page.dropped.len(), 5, "{:?}", page.dropped);
        assert!(
            page.dropped[0].starts_with("record 2: "),
            "{:?}",
            page.dropped
        );
        assert!(
            page.dropped[1].starts_with("record 3: id: invalid value"),
            "{:?}",
            page.dropped
        );
        assert!(
            page.dropped[2]
                .contains("record 4 (id 4): project 4: missing field `path_with_namespace`"),
            "{:?}",
            page.dropped
        );
        assert!(
            page.dropped[3].contains("missing field `id`"),
            "{:?}",
            page.dropped
        );
        assert_eq!(page.last_id, Some(6));
        let bad: Page<Project> =
            serde_json::from_str(r#"[{"id":3,"name":"x"},{"id":"y"}]"#).unwrap();
        assert!(bad.items.is_empty() && bad.dropped.len() == 2);
        assert_eq!(
            bad.last_id,
            Some(3),
            "the last readable id, of a record left out"
        );
        let empty: Page<Project> = serde_json::from_str("[]").unwrap();
        assert!(empty.items.is_empty() && empty.dropped.is_empty());
        assert!(
            serde_json::from_str::<Page<Project>>(r#"{"id":1}"#).is_err(),
            "not a list"
        );
    }

    #[test]
    fn graphql_nodes_read_as_rest_projects() {
        let node = serde_json::json!({
            "id": "gid://gitlab/Project/42",
            "fullPath": "acme/api",
            "namespace": { "fullPath": "acme" },
            "group": { "id": "gid://gitlab/Group/10" },
            "archived": false,
            "visibility": "private",
            "starCount": 3,
            "forksCount": 2,
            "openIssuesCount": null,
            "lastActivityAt": "2026-11-20T10:15:00Z",
            "repository": { "rootRef": "main", "empty": false, "tree": { "lastCommit": { "sha": "abc" } } },
            "statistics": { "commitCount": 347.0, "repositorySize": 9007199254740992.0, "lfsObjectsSize": 0 },
            "mergeRequestsEnabled": true,
            "userPermissions": { "readMergeRequest": true },
            "maxAccessLevel": { "integerValue": 40 }
        });
        let p = Project::from_graphql(&node).unwrap();
        assert_eq!(p.id, 42);
        assert_eq!(p.path_with_namespace, "acme/api");
        assert_eq!(p.namespace_path(), "acme");
        assert!(!p.in_user_namespace());
        assert_eq!(p.default_branch.as_deref(), Some("main"));
        assert_eq!(p.empty_repo, Some(false));
        assert_eq!(p.forks_count, Some(2));
        assert_eq!(p.open_issues_count, None);
        assert_eq!(p.head.as_deref(), Some("abc"));
        assert_eq!(p.access_level(), Some(40));
        assert!(p.merge_requests_enabled());
        assert_eq!(p.merge_requests_readable, Some(true));
        let s = p.statistics.as_ref().unwrap();
        assert_eq!(s.commit_count, Some(347));
        assert_eq!(s.repository_size, Some(1 << 53), "exact up to 2^53");
        assert_eq!(s.lfs_objects_size, Some(0));
        assert!(p.problems.is_empty(), "{:?}", p.problems);

        // No code access: no repository, so no branch and no forks (as REST); a personal
        // namespace; merge requests the caller may not read count as off.
        let node = serde_json::json!({
            "id": "gid://gitlab/Project/7",
            "fullPath": "someone/dotfiles",
            "namespace": { "fullPath": "someone" },
            "group": null,
            "forksCount": 5,
            "repository": null,
            "statistics": null,
            "mergeRequestsEnabled": true,
            "userPermissions": { "readMergeRequest": false }
        });
        let p = Project::from_graphql(&node).unwrap();
        assert!(p.in_user_namespace());
        assert_eq!(
            (&p.default_branch, p.forks_count, &p.head),
            (&None, None, &None)
        );
        assert!(p.statistics.is_none());
        assert!(!p.merge_requests_enabled());
    }

    #[test]
    fn graphql_floats_that_are_not_exact_counts_are_bad_fields() {
        let node = serde_json::json!({
            "id": "gid://gitlab/Project/1",
            "fullPath": "a/b",
            "statistics": {
                "commitCount": 12.5,
                "repositorySize": 1.0e300,
                "lfsObjectsSize": -1.0,
                "packagesSize": 9007199254740994.0,
                "wikiSize": 4096.0
            }
        });
        let p = Project::from_graphql(&node).unwrap();
        let s = p.statistics.as_ref().unwrap();
        assert_eq!(
            (
                s.commit_count,
                s.repository_size,
                s.lfs_objects_size,
                s.packages_size
            ),
            (None, None, None, None)
        );
        assert_eq!(s.wiki_size, Some(4096));
        assert_eq!(p.problems.len(), 4, "{:?}", p.problems);
        assert!(
            p.problems[0].starts_with("statistics.commit_count"),
            "{:?}",
            p.problems
        );
        // Without a usable id or path, the record is left out.
        assert!(Project::from_graphql(&serde_json::json!({ "fullPath": "a/b" })).is_err());
        assert!(
            Project::from_graphql(&serde_json::json!({ "id": "gid://gitlab/Project/x" })).is_err()
        );
        assert!(
            Project::from_graphql(&serde_json::json!({ "id": "gid://gitlab/Project/3" })).is_err()
        );
    }

    #[test]
    fn statistics_sizes_in_label_order() {
        let s: Statistics = serde_json::from_str(
            r#"{"commit_count":37,"storage_size":1038090,"repository_size":1038090,"wiki_size":0,
                "lfs_objects_size":0,"job_artifacts_size":0,"packages_size":5}"#,
        )
        .unwrap();
        let sizes: Vec<_> = Sizes::from(&s).iter().collect();
        assert_eq!(
            sizes,
            [
                ("repository", 1_038_090),
                ("lfs_objects", 0),
                ("job_artifacts", 0),
                ("packages", 5),
                ("wiki", 0)
            ]
        );
        assert_eq!(Sizes::default().iter().count(), 0);
    }
}
