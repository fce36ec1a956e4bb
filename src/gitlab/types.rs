//! The JSON the exporter reads from GitLab: only the fields it uses, each optional where GitLab
//! may leave it out (`statistics` below the Reporter role, `open_issues_count` when issues are
//! off, `default_branch` without code access, most fields with `simple=true`).

use serde::Deserialize;

/// A project, as `GET /projects`, `GET /groups/:id/projects` and `GET /projects/:id` return it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Project {
    /// Numeric id.
    pub id: u64,
    /// `group/subgroup/project`.
    pub path_with_namespace: String,
    /// The owning group or user namespace.
    #[serde(default)]
    pub namespace: Option<Namespace>,
    /// `private`, `internal` or `public`.
    #[serde(default)]
    pub visibility: Option<String>,
    /// Absent without code access, null for an empty repository.
    #[serde(default)]
    pub default_branch: Option<String>,
    /// Archived projects are read-only.
    #[serde(default)]
    pub archived: Option<bool>,
    /// True when the repository has no commit.
    #[serde(default)]
    pub empty_repo: Option<bool>,
    /// Stars.
    #[serde(default)]
    pub star_count: Option<u64>,
    /// Forks.
    #[serde(default)]
    pub forks_count: Option<u64>,
    /// Open issues; absent when issues are disabled or invisible to the token.
    #[serde(default)]
    pub open_issues_count: Option<u64>,
    /// Last activity, RFC 3339; GitLab updates it at most once an hour.
    #[serde(default)]
    pub last_activity_at: Option<String>,
    /// Deprecated boolean form of the merge-request feature switch.
    #[serde(default)]
    pub merge_requests_enabled: Option<bool>,
    /// `disabled`, `private` or `enabled`.
    #[serde(default)]
    pub merge_requests_access_level: Option<String>,
    /// Present with `statistics=true` for Reporter and above.
    #[serde(default)]
    pub statistics: Option<Statistics>,
    /// The token user's access, in `GET /projects` and `GET /projects/:id` answers.
    #[serde(default)]
    pub permissions: Option<Permissions>,
}

impl Project {
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

/// Any list item when only the number of items matters.
#[derive(Debug, Clone, Deserialize)]
pub struct Ignored {}

/// Parses an RFC 3339 timestamp (`2026-11-20T10:15:00.123Z`, `...+01:00`) to Unix seconds.
pub fn parse_timestamp(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let num = |range| num_at(s, range);
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &s[19..];
    let mut fraction = 0.0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        fraction = format!("0.{}", &frac[..digits]).parse().ok()?;
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return None;
            }
            sign * (num_at(rest, 1..3)? * 3600 + num_at(rest, 4..6)? * 60)
        }
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    Some(seconds as f64 + fraction)
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

/// Formats Unix seconds as RFC 3339 UTC (`2026-11-25T09:13:32Z`), as GitLab's `*_after`
/// parameters take it.
pub fn format_timestamp(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Parses an HTTP date (`Wed, 25 Nov 2026 09:13:32 GMT`, RFC 9110 IMF-fixdate) to Unix seconds.
/// Strict: two-digit day and clock fields, a four-digit year, nothing after `GMT`.
pub fn parse_http_date(s: &str) -> Option<i64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let digits = |v: &str, n: usize| -> Option<i64> {
        (v.len() == n && v.bytes().all(|c| c.is_ascii_digit())).then(|| v.parse().ok())?
    };
    let mut parts = s.split_whitespace();
    let _weekday = parts.next()?;
    let day = digits(parts.next()?, 2)?;
    let month_name = parts.next()?;
    let month = MONTHS.iter().position(|m| *m == month_name)? as i64 + 1;
    let year = digits(parts.next()?, 4)?;
    let mut clock = parts.next()?.split(':');
    let mut field = || digits(clock.next()?, 2);
    let (hour, minute, second) = (field()?, field()?, field()?);
    if clock.next().is_some()
        || parts.next()? != "GMT"
        || parts.next().is_some()
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

fn num_at(s: &str, range: std::ops::Range<usize>) -> Option<i64> {
    let part = s.get(range)?;
    part.bytes()
        .all(|c| c.is_ascii_digit())
        .then(|| part.parse().ok())?
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
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
        for bad in [
            "",
            "2013-09-30",
            "2013-13-30T13:46:02Z",
            "2013-09-30T13:46:02",
            "2013-09-30T13:46:02.Z",
            "x013-09-30T13:46:02Z",
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
