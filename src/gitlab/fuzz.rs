//! Fuzz tests of what the exporter parses from GitLab (JSON bodies, error bodies, pagination
//! headers, dates), with proptest, seeded by `fuzz/corpus/`, failures kept in `fuzz/regressions/`.
//!
//! Corpus layout (one answer per file, read at test time): `project/` (`GET /projects/:id`),
//! `projects/` (list pages), `merge_requests/`, `branch/`, `sequence/`, `error/` (error bodies),
//! `headers/` (`name: value` lines, raw bytes) and `dates/` (`input<TAB>expected` lines, the
//! expected value in Unix seconds or `none`). Every file is checked against what it should
//! parse to, then mutated (byte flips, insertions, deletions, truncations, splices, JSON nodes
//! replaced) to check that nothing panics and that the invariants hold.
//!
//! Case counts are kept small for debug `cargo test`; `PROPTEST_CASES=N` raises them all.

use std::path::Path;
use std::sync::OnceLock;

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::FileFailurePersistence;
use serde_json::{Map, Value, json};
use ureq::http::{HeaderMap, HeaderName, HeaderValue};

use super::client::error_message;
use super::encode_segment;
use super::pagination::{PageInfo, link_next};
use super::types::{
    Access, Branch, Ignored, MergeRequestRef, Namespace, Permissions, Project, Sequence, Sizes,
    Statistics, format_timestamp, parse_http_date, parse_timestamp,
};
use crate::redact::is_unsafe_in_a_log_line;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus");

/// The file a property's failing cases are kept in (replayed first on every later run).
macro_rules! regressions {
    ($name:literal) => {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fuzz/regressions/",
            $name,
            ".txt"
        )
    };
}

/// `cases` unless `PROPTEST_CASES` says otherwise; failures kept in `file`.
fn config(cases: u32, file: &'static str) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(file))),
        ..ProptestConfig::default()
    }
}

/// The earliest and latest times RFC 3339 can write (0000-01-01, 9999-12-31T23:59:59).
const MIN_TIME: i64 = -62_167_219_200;
const MAX_TIME: i64 = 253_402_300_799;

// ---------------------------------------------------------------------------------------------
// The corpus

/// One corpus file.
struct Seed {
    /// Path below `fuzz/corpus`, e.g. `project/with-statistics.json`.
    name: String,
    bytes: Vec<u8>,
}

impl Seed {
    fn dir(&self) -> &str {
        self.name.split_once('/').map_or("", |(dir, _)| dir)
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.bytes).unwrap_or_else(|e| panic!("{}: {e}", self.name))
    }

    /// A JSON answer (not a header set, a date list or a plain-text error body).
    fn is_json(&self) -> bool {
        self.name.ends_with(".json")
    }
}

/// Only the name: proptest prints it with the mutations, which is enough to reproduce.
impl std::fmt::Debug for Seed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

fn corpus() -> &'static [Seed] {
    static CORPUS_FILES: OnceLock<Vec<Seed>> = OnceLock::new();
    CORPUS_FILES.get_or_init(|| {
        fn walk(dir: &Path, out: &mut Vec<Seed>) {
            let mut entries: Vec<_> = std::fs::read_dir(dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .map(|e| e.unwrap().path())
                .collect();
            entries.sort();
            for path in entries {
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    let name = path.strip_prefix(CORPUS).unwrap();
                    out.push(Seed {
                        name: name.to_string_lossy().replace('\\', "/"),
                        bytes: std::fs::read(&path).unwrap(),
                    });
                }
            }
        }
        let mut seeds = Vec::new();
        walk(Path::new(CORPUS), &mut seeds);
        seeds
    })
}

fn seeds_where(keep: impl Fn(&Seed) -> bool) -> Vec<&'static Seed> {
    corpus().iter().filter(|s| keep(s)).collect()
}

// ---------------------------------------------------------------------------------------------
// What every input goes through

/// Decodes `bytes` as each type the collectors decode, using each decoded value the way the
/// collectors do. Returns which decodings succeeded.
fn decode_all(bytes: &[u8]) -> [bool; 6] {
    let project = serde_json::from_slice::<Project>(bytes).map(|p| check_project(&p));
    let projects = serde_json::from_slice::<Vec<Project>>(bytes).map(|ps| {
        ps.iter().for_each(check_project);
        ps.len()
    });
    let merge_requests = serde_json::from_slice::<Vec<MergeRequestRef>>(bytes).map(|m| m.len());
    let ignored = serde_json::from_slice::<Vec<Ignored>>(bytes).map(|i| i.len());
    let branch = serde_json::from_slice::<Branch>(bytes);
    let sequence = serde_json::from_slice::<Sequence>(bytes);
    // A list of objects is counted the same whatever the items are decoded as.
    if let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(bytes) {
        if items.iter().all(Value::is_object) {
            assert_eq!(ignored.as_ref().ok(), Some(&items.len()), "Vec<Ignored>");
            if let Ok(n) = &merge_requests {
                assert_eq!(*n, items.len());
            }
            if let Ok(n) = &projects {
                assert_eq!(*n, items.len());
            }
        }
    }
    [
        project.is_ok(),
        projects.is_ok(),
        merge_requests.is_ok(),
        ignored.is_ok(),
        branch.is_ok(),
        sequence.is_ok(),
    ]
}

/// What the projects collector calls on a decoded project, with its invariants.
fn check_project(p: &Project) {
    let _ = (p.merge_requests_enabled(), p.below_reporter_on_private());
    let _ = p.in_user_namespace();
    let path = p.namespace_path();
    match &p.namespace {
        Some(ns) if !ns.full_path.is_empty() => assert_eq!(path, ns.full_path),
        _ => assert!(
            path.is_empty() || p.path_with_namespace.starts_with(&format!("{path}/")),
            "{path:?} is not the parent of {:?}",
            p.path_with_namespace
        ),
    }
    if let Some(level) = p.access_level() {
        let permissions = p.permissions.as_ref().unwrap();
        let of = |a: &Option<Access>| a.as_ref().map(|a| a.access_level);
        assert!(of(&permissions.project_access).is_none_or(|l| l <= level));
        assert!(of(&permissions.group_access).is_none_or(|l| l <= level));
    }
    if let Some(s) = &p.statistics {
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
        let sizes: Vec<_> = Sizes::from(s).iter().collect();
        let expected: Vec<_> = Sizes::KINDS
            .iter()
            .zip(reported)
            .filter_map(|(kind, v)| v.map(|v| (*kind, v)))
            .collect();
        assert_eq!(sizes, expected);
    }
    if let Some(t) = &p.last_activity_at {
        check_timestamp(t);
    }
}

/// `error_message` gives one trimmed line of at most 200 characters, none a control character.
fn check_error_message(body: &[u8]) -> String {
    let line = error_message(body);
    assert!(!line.is_empty());
    assert!(line.chars().count() <= 200, "{line:?}");
    assert!(!line.chars().any(is_unsafe_in_a_log_line), "{line:?}");
    assert_eq!(line, line.trim_end());
    line
}

/// Reads `name: value` lines (raw bytes, optional `\r`) into a header map, skipping what
/// an HTTP parser would reject.
fn header_map(block: &[u8]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in block.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let value = &line[colon + 1..];
        let value = &value[value.iter().take_while(|b| **b == b' ').count()..];
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(line[..colon].trim_ascii()),
            HeaderValue::from_bytes(value),
        ) {
            map.append(name, value);
        }
    }
    map
}

/// `PageInfo::from_headers` and its invariants against what the headers say.
fn check_page_info(headers: &HeaderMap) -> PageInfo {
    let info = PageInfo::from_headers(headers);
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let number = |name: &str| text(name).and_then(|v| v.trim().parse::<u64>().ok());
    assert_eq!(info.next_page, number("x-next-page"));
    assert_eq!(info.total, number("x-total"));
    assert_eq!(
        info.has_next(),
        info.next_page.is_some() || info.next_link.is_some()
    );
    match &info.next_link {
        Some(params) => {
            let link = text("link").expect("a next link without a Link header");
            assert!(link.to_ascii_lowercase().contains("next"), "{link:?}");
            assert!(link_next(link).is_some());
            for (key, _) in params {
                let first = params.iter().find(|(k, _)| k == key).unwrap();
                assert_eq!(info.next_link_param(key), Some(first.1.as_str()));
            }
        }
        None => assert!(text("link").and_then(link_next).is_none()),
    }
    info
}

/// `parse_timestamp` on any text: no panic, and a finite time when it accepts.
fn check_timestamp(s: &str) -> Option<f64> {
    let t = parse_timestamp(s);
    if let Some(t) = t {
        assert!(t.is_finite(), "{s:?} -> {t}");
        assert!(s.len() >= 20, "{s:?}");
    }
    t
}

/// `parse_http_date` on any text: no panic, and a time it could have been given when it accepts.
fn check_http_date(s: &str) -> Option<i64> {
    let t = parse_http_date(s);
    if t.is_some() {
        assert!(s.contains("GMT"), "{s:?}");
    }
    t
}

/// Everything the exporter parses, applied to any bytes: nothing may panic, every invariant
/// holds.
fn exercise(bytes: &[u8]) -> [bool; 6] {
    let decoded = decode_all(bytes);
    check_error_message(bytes);
    check_page_info(&header_map(bytes));
    if let Ok(text) = std::str::from_utf8(bytes) {
        for line in std::iter::once(text).chain(text.lines()) {
            check_timestamp(line);
            check_http_date(line);
            let _ = link_next(line);
            for field in line.split('\t') {
                check_timestamp(field);
                check_http_date(field);
            }
        }
    }
    decoded
}

// ---------------------------------------------------------------------------------------------
// Each seed parses to what it says

fn project(seed: &Seed) -> Project {
    serde_json::from_slice(&seed.bytes).unwrap_or_else(|e| panic!("{seed:?}: {e}"))
}

fn projects(seed: &Seed) -> Vec<Project> {
    serde_json::from_slice(&seed.bytes).unwrap_or_else(|e| panic!("{seed:?}: {e}"))
}

fn size(p: &Project, kind: &str) -> Option<u64> {
    let sizes = Sizes::from(p.statistics.as_ref()?);
    sizes.iter().find(|(k, _)| *k == kind).map(|(_, v)| v)
}

fn check_project_seed(seed: &Seed) {
    let p = project(seed);
    check_project(&p);
    let file = seed.name.trim_start_matches("project/");
    let commits = p.statistics.as_ref().and_then(|s| s.commit_count);
    let activity = p.last_activity_at.as_deref().and_then(parse_timestamp);
    match file {
        "with-statistics.json" => {
            assert_eq!((p.id, p.path_with_namespace.as_str()), (42, "acme/api"));
            assert_eq!(p.namespace_path(), "acme");
            assert_eq!(p.default_branch.as_deref(), Some("main"));
            assert_eq!(commits, Some(347));
            assert_eq!(size(&p, "repository"), Some(5_665_166));
            assert_eq!(size(&p, "job_artifacts"), Some(190_308_002));
            assert_eq!(
                Sizes::from(p.statistics.as_ref().unwrap()).iter().count(),
                9
            );
            assert_eq!(p.access_level(), Some(40));
            assert_eq!(
                (p.star_count, p.forks_count, p.open_issues_count),
                (Some(24), Some(1), Some(16))
            );
            assert_eq!(activity, Some(1_794_862_730.0));
            assert!(p.merge_requests_enabled() && !p.below_reporter_on_private());
            assert!(!p.in_user_namespace());
        }
        "without-statistics.json" => {
            assert_eq!((p.id, p.path_with_namespace.as_str()), (77, "labs/secret"));
            assert_eq!(p.statistics, None);
            assert_eq!((p.default_branch.as_deref(), p.forks_count), (None, None));
            assert_eq!(p.access_level(), Some(10));
            assert!(p.below_reporter_on_private());
            assert_eq!(p.open_issues_count, Some(18));
        }
        "empty-repo.json" => {
            assert_eq!((p.id, p.empty_repo), (61, Some(true)));
            assert_eq!(p.default_branch.as_deref(), Some("main"));
            assert_eq!(commits, Some(0));
        }
        "user-namespace.json" => {
            assert_eq!((p.id, p.namespace_path()), (2, "demo-user"));
            assert!(p.in_user_namespace());
            assert_eq!((p.access_level(), commits), (Some(50), Some(40)));
        }
        "issues-disabled.json" => {
            assert_eq!((p.id, p.open_issues_count), (29, None));
            assert!(!p.merge_requests_enabled());
            assert_eq!(commits, Some(73));
            assert_eq!(size(&p, "lfs_objects"), Some(14_011_880));
        }
        "null-fields.json" => {
            let expected = Project {
                id: 1001,
                path_with_namespace: "acme/nulls".to_owned(),
                namespace: None,
                visibility: None,
                default_branch: None,
                archived: None,
                empty_repo: None,
                star_count: None,
                forks_count: None,
                open_issues_count: None,
                last_activity_at: None,
                merge_requests_enabled: None,
                merge_requests_access_level: None,
                jobs_enabled: None,
                statistics: None,
                permissions: None,
                head: None,
                merge_requests_readable: None,
                problems: Vec::new(),
            };
            assert_eq!(p, expected);
            assert_eq!((p.namespace_path(), p.access_level()), ("acme", None));
            assert!(p.merge_requests_enabled());
        }
        "group-access.json" => {
            assert_eq!(p.id, 88);
            assert_eq!(p.namespace_path(), "acme/platform/infra");
            assert_eq!(p.access_level(), Some(20));
            assert!(!p.merge_requests_enabled());
            let activity = activity.unwrap();
            assert!((activity - 1_795_169_700.123).abs() < 1e-3, "{activity}");
            let sizes: Vec<_> = Sizes::from(p.statistics.as_ref().unwrap()).iter().collect();
            assert_eq!(
                sizes,
                [("repository", 4096), ("container_registry", u64::MAX)]
            );
        }
        _ => {}
    }
}

fn check_seed(seed: &Seed) {
    let ids = |ps: &[Project]| ps.iter().map(|p| p.id).collect::<Vec<_>>();
    let file = seed.name.split_once('/').map_or("", |(_, f)| f);
    match seed.dir() {
        "project" => check_project_seed(seed),
        "projects" => {
            let ps = projects(seed);
            ps.iter().for_each(check_project);
            match file {
                "offset-page.json" => {
                    assert_eq!(ids(&ps), [319, 318]);
                    let commits: Vec<_> = ps
                        .iter()
                        .map(|p| p.statistics.as_ref().and_then(|s| s.commit_count))
                        .collect();
                    assert_eq!(commits, [Some(2226), Some(1045)]);
                }
                "simple.json" => {
                    assert_eq!(ids(&ps), [319, 318]);
                    assert!(ps.iter().all(|p| p.statistics.is_none()));
                    assert_eq!(ps[0].namespace_path(), "acme/services");
                }
                "keyset-page.json" => {
                    assert_eq!(ids(&ps), [2, 3]);
                    assert_eq!(ps[1].archived, Some(true));
                }
                _ => {}
            }
        }
        "merge_requests" => {
            let mrs: Vec<MergeRequestRef> = serde_json::from_slice(&seed.bytes).unwrap();
            let ignored: Vec<Ignored> = serde_json::from_slice(&seed.bytes).unwrap();
            assert_eq!(mrs.len(), ignored.len());
            let ids: Vec<_> = mrs.iter().map(|m| m.project_id).collect();
            match file {
                "project-opened.json" => assert_eq!(ids, [42, 42]),
                "group-merged.json" => assert_eq!(ids, [297, 297]),
                "empty.json" => assert!(ids.is_empty()),
                _ => {}
            }
        }
        "branch" => {
            let branch: Branch = serde_json::from_slice(&seed.bytes).unwrap();
            let expected = match file {
                "main.json" => "e1a81483f1cbbb9936538e28b9cfbe188889ae7f",
                "release-2.0.json" => "e44ab4285c23f8fd8b0b8e32693d408893bf0c00",
                _ => &branch.commit.id,
            };
            assert_eq!(branch.commit.id, expected);
            assert_eq!(branch.commit.id.len(), 40);
        }
        "sequence" => {
            let count = serde_json::from_slice::<Sequence>(&seed.bytes)
                .unwrap()
                .count;
            match file {
                "count.json" => assert_eq!(count, 347),
                "whitespace.json" => assert_eq!(count, 1_048_576),
                _ => {}
            }
        }
        "error" => {
            let line = check_error_message(&seed.bytes);
            let expected = match file {
                "message.json" => "404 Project Not Found".to_owned(),
                "message-object.json" => {
                    r#"{"name":["has already been taken"],"path":["has already been taken"]}"#
                        .to_owned()
                }
                "rate-limited.json" => r#"{"error":"This endpoint has been requested too many times. Try again later."}"#.to_owned(),
                "oauth.json" => "insufficient_scope: The request requires higher privileges than provided by the access token.".to_owned(),
                "error-only.json" => "archived is invalid".to_owned(),
                "message-null.json" => "500 Internal Server Error".to_owned(),
                "multiline.json" => {
                    format!("Validation failed:  name is too long  {}", "x".repeat(162))
                }
                "retry-later.txt" => "Retry later".to_owned(),
                "empty.txt" => "(empty body)".to_owned(),
                "bad-gateway.html" => "<html>  <head><title>502 Bad Gateway</title></head>  <body>  <center><h1>502 Bad Gateway</h1></center>  <hr><center>nginx</center>  </body>  </html>".to_owned(),
                "latin1.txt" => "Fehler: Schl\u{FFFD}ssel ung\u{FFFD}ltig [31m".to_owned(),
                _ => line.clone(),
            };
            assert_eq!(line, expected, "{seed:?}");
        }
        "headers" => {
            let info = check_page_info(&header_map(&seed.bytes));
            let link = |pairs: &[(&str, &str)]| {
                Some(
                    pairs
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect::<Vec<_>>(),
                )
            };
            let expected = match file {
                "offset-first.txt" => PageInfo {
                    next_page: Some(2),
                    total: Some(131),
                    next_link: link(&[
                        ("membership", "true"),
                        ("statistics", "true"),
                        ("per_page", "3"),
                        ("page", "2"),
                    ]),
                },
                "offset-last.txt" => PageInfo {
                    next_page: None,
                    total: Some(131),
                    next_link: None,
                },
                "keyset.txt" => PageInfo {
                    next_page: None,
                    total: None,
                    next_link: link(&[
                        ("pagination", "keyset"),
                        ("order_by", "id"),
                        ("sort", "asc"),
                        ("per_page", "2"),
                        ("id_after", "3"),
                    ]),
                },
                "no-totals.txt" => PageInfo {
                    next_page: Some(102),
                    total: None,
                    next_link: link(&[("state", "merged"), ("per_page", "100"), ("page", "102")]),
                },
                "encoded-link.txt" => PageInfo {
                    next_page: None,
                    total: Some(7),
                    next_link: link(&[
                        ("updated_after", "2026-11-20T10:15:00Z"),
                        ("labels", "a b"),
                        ("cursor", "eyJpZCI6IjQyIn0="),
                    ]),
                },
                // Numbers out of range are absent; a next link without parameters still says
                // a page follows.
                "garbage.txt" => PageInfo {
                    next_page: None,
                    total: None,
                    next_link: link(&[]),
                },
                // A Link header that is not ASCII is ignored whole (`to_str` fails).
                "non-ascii-link.txt" => PageInfo {
                    next_page: Some(3),
                    total: None,
                    next_link: None,
                },
                _ => info.clone(),
            };
            assert_eq!(info, expected, "{seed:?}");
        }
        "dates" => {
            for line in seed.text().lines() {
                let (input, expected) = line
                    .split_once('\t')
                    .unwrap_or_else(|| panic!("{seed:?}: no tab in {line:?}"));
                let expected: Option<f64> = match expected {
                    "none" => None,
                    n => Some(n.parse().unwrap()),
                };
                let got = match file {
                    "http-date.txt" => check_http_date(input).map(|t| t as f64),
                    _ => check_timestamp(input),
                };
                match (got, expected) {
                    (Some(got), Some(expected)) => {
                        assert!(
                            (got - expected).abs() < 1e-6,
                            "{input:?}: {got} != {expected}"
                        )
                    }
                    (got, expected) => assert_eq!(got, expected, "{input:?}"),
                }
            }
        }
        dir => panic!("{seed:?}: unknown corpus folder {dir:?}"),
    }
}

#[test]
fn corpus_seeds_parse_as_expected() {
    let seeds = corpus();
    let dirs: std::collections::BTreeSet<_> = seeds.iter().map(Seed::dir).collect();
    for dir in [
        "project",
        "projects",
        "merge_requests",
        "branch",
        "sequence",
        "error",
        "headers",
        "dates",
    ] {
        assert!(dirs.contains(dir), "no seed in fuzz/corpus/{dir}");
    }
    for seed in seeds {
        assert!(seed.bytes.len() <= 8 << 10, "{seed:?} is over 8 KiB");
        check_seed(seed);
        exercise(&seed.bytes);
    }
}

/// Every prefix of the small seeds (1 KiB or less), every 7th and the last 64 of the larger
/// ones: no panic, and a cut JSON document never decodes.
#[test]
fn truncated_seeds() {
    for seed in corpus() {
        let n = seed.bytes.len();
        let complete = seed.bytes.trim_ascii_end().len();
        for len in (0..n).filter(|len| n <= 1024 || len % 7 == 0 || len + 64 >= n) {
            let decoded = exercise(&seed.bytes[..len]);
            if seed.is_json() && len < complete {
                assert_eq!(decoded, [false; 6], "{seed:?} cut at {len}");
            }
        }
    }
}

#[test]
fn out_of_range_numbers_are_errors() {
    for body in [
        r#"{"count":18446744073709551616}"#,
        r#"{"count":-1}"#,
        r#"{"count":1e3}"#,
        r#"{"count":"3"}"#,
    ] {
        assert!(serde_json::from_str::<Sequence>(body).is_err(), "{body}");
    }
    assert_eq!(
        serde_json::from_str::<Sequence>(r#"{"count":18446744073709551615}"#)
            .unwrap()
            .count,
        u64::MAX
    );
    assert!(serde_json::from_str::<Project>(r#"{"id":-42,"path_with_namespace":"a/b"}"#).is_err());
    assert!(serde_json::from_str::<Project>(r#"{"id":42}"#).is_err());
}

/// `parse_http_date` overflows i64 on a 12-digit year (`days * 86_400`) or an out-of-range
/// clock field (`hour * 3600`, hours may be negative): a panic in debug builds (the call runs
/// in `Shared::fetch` on the `Date` header of every answer), a wrapped, wrong time in release.
/// Found by fuzzing: huge or signed fields overflowed (a panic in debug builds, a wrong clock
/// in release ones). IMF-fixdate has fixed-width digits; anything else is rejected.
#[test]
fn http_date_with_huge_numbers_does_not_panic() {
    for date in [
        "Wed, 25 Nov 999999999999 09:13:32 GMT",
        "Wed, 25 Nov 9223372036854775807 09:13:32 GMT",
        "Wed, 25 Nov 2026 -9223372036854775808:00:00 GMT",
        "Wed, 25 Nov 2026 00:-9223372036854775808:00 GMT",
        "Wed, 25 Nov 2026 00:00:-9223372036854775808 GMT",
        "Wed, 25 Nov 2026 -1:00:00 GMT",
        "Wed, 25 Nov 2026 +9:13:32 GMT",
        "Wed, 25 Nov 2026 09:13:32:77 GMT",
        "Wed, 25 Nov 2026 09:13:32 GMT trailing",
        "Wed, 25 Nov -2026 09:13:32 GMT",
    ] {
        assert_eq!(parse_http_date(date), None, "{date}");
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies

/// Field names the types read, so that generated objects reach the typed paths.
const FIELD_NAMES: &[&str] = &[
    "id",
    "path_with_namespace",
    "namespace",
    "full_path",
    "kind",
    "visibility",
    "default_branch",
    "archived",
    "empty_repo",
    "star_count",
    "forks_count",
    "open_issues_count",
    "last_activity_at",
    "merge_requests_enabled",
    "merge_requests_access_level",
    "statistics",
    "commit_count",
    "repository_size",
    "container_registry_size",
    "permissions",
    "project_access",
    "group_access",
    "access_level",
    "project_id",
    "commit",
    "count",
    "message",
    "error",
    "error_description",
];

/// Byte strings worth inserting into JSON, headers and dates.
const TOKENS: &[&[u8]] = &[
    b"null",
    b"true",
    b"-1",
    b"0",
    b"1.5",
    b"1e999",
    b"18446744073709551616",
    b"-9223372036854775809",
    b"99999999999",
    b"\"",
    b"\\",
    b"\\u0000",
    b"\\ud800",
    b"\\uDFFF",
    b"[",
    b"]",
    b"{",
    b"}",
    b":",
    b",",
    b"\"id\":",
    b"\"statistics\":",
    b"\"project_id\":",
    b"\"count\":",
    b"\"message\":",
    b"\xff",
    b"\xc3",
    b"\xe2\x80\xa8",
    b"\n",
    b"\r\n",
    b"\t",
    b"\x00",
    b"\x1b[2J",
    b"+",
    b"GMT",
    b"T",
    b"Z",
    b"+01:00",
    b".123",
    b";",
    b"<",
    b">",
    b"rel=\"next\"",
    b"%",
    b"%zz",
    b"%C3%A9",
];

fn json_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        select(FIELD_NAMES).prop_map(str::to_owned),
        "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})",
        select(
            &[
                "private", "internal", "public", "disabled", "enabled", "group", "user", ""
            ][..]
        )
        .prop_map(str::to_owned),
    ]
}

/// Any JSON value, biased towards the shapes and names of GitLab answers.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (0u64..100).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        json_string().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            vec(
                (
                    prop_oneof![select(FIELD_NAMES).prop_map(str::to_owned), "[a-z_]{1,10}"],
                    inner
                ),
                0..6
            )
            .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

/// Fields no type reads, with any value: GitLab sends dozens.
fn extra_fields() -> impl Strategy<Value = Vec<(String, Value)>> {
    vec(("x_[a-z_]{0,8}", json_value()), 0..3)
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(Index, u8),
    Set(Index, u8),
    Insert(Index, Vec<u8>),
    Delete(Index, usize),
    Truncate(Index),
    Repeat(Index, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let bytes = prop_oneof![
        vec(any::<u8>(), 1..8),
        select(TOKENS).prop_map(<[u8]>::to_vec),
    ];
    prop_oneof![
        (any::<Index>(), 0u8..8).prop_map(|(i, bit)| Mutation::Flip(i, bit)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<Index>(), bytes).prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<Index>(), 1usize..16).prop_map(|(i, n)| Mutation::Delete(i, n)),
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), 1usize..64).prop_map(|(i, n)| Mutation::Repeat(i, n)),
    ]
}

fn mutate(bytes: &mut Vec<u8>, mutation: &Mutation) {
    let len = bytes.len();
    let at = |i: &Index| if len == 0 { 0 } else { i.index(len) };
    match mutation {
        Mutation::Flip(i, bit) if len > 0 => bytes[at(i)] ^= 1 << bit,
        Mutation::Set(i, b) if len > 0 => bytes[at(i)] = *b,
        Mutation::Insert(i, new) => {
            let at = if len == 0 { 0 } else { i.index(len + 1) };
            bytes.splice(at..at, new.iter().copied());
        }
        Mutation::Delete(i, n) if len > 0 => {
            let at = at(i);
            bytes.drain(at..(at + n).min(len));
        }
        Mutation::Truncate(i) => bytes.truncate(at(i)),
        Mutation::Repeat(i, n) if len > 0 => {
            let at = at(i);
            let copy = bytes[at..(at + n).min(len)].to_vec();
            bytes.splice(at..at, copy);
        }
        _ => {}
    }
}

/// Replaces the `n`th node (preorder, modulo the count) of `value` with `new`.
fn replace_node(value: &mut Value, n: Index, new: Value) {
    fn count(v: &Value) -> usize {
        1 + match v {
            Value::Array(items) => items.iter().map(count).sum(),
            Value::Object(map) => map.values().map(count).sum(),
            _ => 0,
        }
    }
    fn walk(v: &mut Value, target: &mut usize, new: &mut Option<Value>) {
        if *target == 0 {
            *v = new.take().unwrap();
            return;
        }
        *target -= 1;
        let children: Vec<&mut Value> = match v {
            Value::Array(items) => items.iter_mut().collect(),
            Value::Object(map) => map.values_mut().collect(),
            _ => Vec::new(),
        };
        for child in children {
            if new.is_none() {
                return;
            }
            walk(child, target, new);
        }
    }
    let mut target = n.index(count(value));
    walk(value, &mut target, &mut Some(new));
}

fn json_seeds() -> Vec<&'static Seed> {
    seeds_where(|s| s.is_json())
}

// ---------------------------------------------------------------------------------------------
// Typed round trips: a GitLab answer built from known values decodes to exactly them

/// An optional field: absent or null when `None` (GitLab does both).
fn put<T: Into<Value>>(map: &mut Map<String, Value>, key: &str, value: Option<T>, null: bool) {
    match value {
        Some(v) => {
            map.insert(key.to_owned(), v.into());
        }
        None if null => {
            map.insert(key.to_owned(), Value::Null);
        }
        None => {}
    }
}

#[derive(Debug, Clone)]
struct ProjectCase {
    expected: Project,
    /// Bit i: write `None` field i as null rather than leave it out.
    nulls: u64,
    extra: Vec<(String, Value)>,
}

impl ProjectCase {
    fn json(&self) -> Value {
        let p = &self.expected;
        let mut bit = 0;
        let mut null = || {
            bit += 1;
            self.nulls & (1 << (bit % 64)) != 0
        };
        let mut m: Map<String, Value> = self.extra.iter().cloned().collect();
        m.insert("id".into(), p.id.into());
        m.insert(
            "path_with_namespace".into(),
            p.path_with_namespace.clone().into(),
        );
        let namespace = p.namespace.as_ref().map(|ns| {
            let mut n = Map::new();
            n.insert("id".into(), 7.into());
            n.insert("full_path".into(), ns.full_path.clone().into());
            put(&mut n, "kind", ns.kind.clone(), null());
            Value::Object(n)
        });
        put(&mut m, "namespace", namespace, null());
        put(&mut m, "visibility", p.visibility.clone(), null());
        put(&mut m, "default_branch", p.default_branch.clone(), null());
        put(&mut m, "archived", p.archived, null());
        put(&mut m, "empty_repo", p.empty_repo, null());
        put(&mut m, "star_count", p.star_count, null());
        put(&mut m, "forks_count", p.forks_count, null());
        put(&mut m, "open_issues_count", p.open_issues_count, null());
        put(
            &mut m,
            "last_activity_at",
            p.last_activity_at.clone(),
            null(),
        );
        put(
            &mut m,
            "merge_requests_enabled",
            p.merge_requests_enabled,
            null(),
        );
        put(
            &mut m,
            "merge_requests_access_level",
            p.merge_requests_access_level.clone(),
            null(),
        );
        let statistics = p.statistics.as_ref().map(|s| {
            let mut n = Map::new();
            let fields = [
                ("commit_count", s.commit_count),
                ("repository_size", s.repository_size),
                ("lfs_objects_size", s.lfs_objects_size),
                ("job_artifacts_size", s.job_artifacts_size),
                ("pipeline_artifacts_size", s.pipeline_artifacts_size),
                ("packages_size", s.packages_size),
                ("wiki_size", s.wiki_size),
                ("snippets_size", s.snippets_size),
                ("uploads_size", s.uploads_size),
                ("container_registry_size", s.container_registry_size),
            ];
            for (key, value) in fields {
                put(&mut n, key, value, null());
            }
            n.insert("storage_size".into(), 0.into());
            Value::Object(n)
        });
        put(&mut m, "statistics", statistics, null());
        let permissions = p.permissions.as_ref().map(|perm| {
            let mut n = Map::new();
            let access = |a: &Option<Access>| {
                a.as_ref()
                    .map(|a| json!({"access_level": a.access_level, "notification_level": 3}))
            };
            put(
                &mut n,
                "project_access",
                access(&perm.project_access),
                null(),
            );
            put(&mut n, "group_access", access(&perm.group_access), null());
            Value::Object(n)
        });
        put(&mut m, "permissions", permissions, null());
        Value::Object(m)
    }
}

fn access() -> impl Strategy<Value = Option<Access>> {
    option::of(
        prop_oneof![select(&[10u32, 20, 30, 40, 50][..]), any::<u32>()]
            .prop_map(|access_level| Access { access_level }),
    )
}

fn project_case() -> impl Strategy<Value = ProjectCase> {
    let names = (
        any::<u64>(),
        prop_oneof![
            "[a-z0-9_.-]{1,10}(/[a-z0-9_.-]{1,10}){0,3}",
            any::<String>()
        ],
        option::of(("[a-z0-9_./-]{0,20}", option::of(json_string()))),
        option::of(json_string()),
        option::of(any::<String>()),
        option::of(json_string()),
    );
    let flags = (
        option::of(any::<bool>()),
        option::of(any::<bool>()),
        option::of(any::<bool>()),
        option::of(select(&["disabled", "private", "enabled"][..])),
        option::of(any::<u64>()),
        option::of(any::<u64>()),
        option::of(any::<u64>()),
    );
    let statistics = option::of(vec(option::of(any::<u64>()), 10));
    let permissions = option::of((access(), access()));
    (
        names,
        flags,
        statistics,
        permissions,
        any::<u64>(),
        extra_fields(),
    )
        .prop_map(
            |(
                (id, path, namespace, visibility, default_branch, last_activity_at),
                (archived, empty_repo, mr_enabled, mr_level, stars, forks, issues),
                statistics,
                permissions,
                nulls,
                extra,
            )| {
                let statistics = statistics.map(|s| Statistics {
                    commit_count: s[0],
                    repository_size: s[1],
                    lfs_objects_size: s[2],
                    job_artifacts_size: s[3],
                    pipeline_artifacts_size: s[4],
                    packages_size: s[5],
                    wiki_size: s[6],
                    snippets_size: s[7],
                    uploads_size: s[8],
                    container_registry_size: s[9],
                });
                ProjectCase {
                    expected: Project {
                        id,
                        path_with_namespace: path,
                        namespace: namespace.map(|(full_path, kind)| Namespace { full_path, kind }),
                        visibility,
                        default_branch,
                        archived,
                        empty_repo,
                        star_count: stars,
                        forks_count: forks,
                        open_issues_count: issues,
                        last_activity_at,
                        merge_requests_enabled: mr_enabled,
                        merge_requests_access_level: mr_level.map(str::to_owned),
                        jobs_enabled: None,
                        statistics,
                        permissions: permissions.map(|(project_access, group_access)| {
                            Permissions {
                                project_access,
                                group_access,
                            }
                        }),
                        head: None,
                        merge_requests_readable: None,
                        problems: Vec::new(),
                    },
                    nulls,
                    extra,
                }
            },
        )
}

/// Header values worth trying: numbers of every size, padded, signed, non-UTF-8 bytes.
fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string().into_bytes()),
        any::<u128>().prop_map(|n| n.to_string().into_bytes()),
        "[ \t]{0,2}[+-]?[0-9]{0,30}[ \t]{0,2}".prop_map(String::into_bytes),
        vec(any::<u8>(), 0..64),
        vec(
            prop_oneof![
                select(TOKENS).prop_map(<[u8]>::to_vec),
                "[a-z=&?<>;, ]{1,4}".prop_map(String::into_bytes)
            ],
            0..12
        )
        .prop_map(|parts| parts.concat()),
    ]
}

fn header_name() -> impl Strategy<Value = &'static str> {
    select(
        &[
            "x-next-page",
            "x-total",
            "link",
            "x-page",
            "x-total-pages",
            "date",
        ][..],
    )
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Text shaped like an IMF-fixdate, each field often valid, sometimes signed, long or wrong.
fn http_date_like() -> impl Strategy<Value = String> {
    let number = |digits: &'static str| prop_oneof![3 => digits, 1 => "[+-]?[0-9]{1,6}"];
    (
        "([A-Z][a-z]{2},)?",
        number("[0-3][0-9]"),
        prop_oneof![4 => select(&MONTHS[..]).prop_map(str::to_owned), 1 => "[A-Za-z]{3}"],
        prop_oneof!["[0-9]{4}", "[+-]?[0-9]{1,11}"],
        (
            number("[0-2][0-9]"),
            number("[0-5][0-9]"),
            number("[0-6][0-9]"),
        ),
        prop_oneof![4 => Just("GMT".to_owned()), 1 => ".{0,4}"],
        "[ \t]{1,2}",
    )
        .prop_map(|(weekday, day, month, year, (h, m, s), zone, space)| {
            format!("{weekday}{space}{day} {month}{space}{year} {h}:{m}:{s} {zone}")
        })
}

/// The IMF-fixdate of Unix seconds `t`, as GitLab's `Date` header says it.
fn imf_fixdate(t: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    let rfc = format_timestamp(t);
    let month: usize = rfc[5..7].parse().unwrap();
    format!(
        "{}, {} {} {} {} GMT",
        DAYS[t.div_euclid(86_400).rem_euclid(7) as usize],
        &rfc[8..10],
        MONTHS[month - 1],
        &rfc[0..4],
        &rfc[11..19]
    )
}

// ---------------------------------------------------------------------------------------------
// Properties

proptest! {
    #![proptest_config(config(512, regressions!("mutated_seeds")))]

    /// Seeds with a few byte-level mutations: nothing panics, invariants hold.
    #[test]
    fn mutated_seeds(seed in select(corpus().iter().collect::<Vec<_>>()), mutations in vec(mutation(), 1..6)) {
        let mut bytes = seed.bytes.clone();
        for m in &mutations {
            mutate(&mut bytes, m);
        }
        exercise(&bytes);
    }
}

proptest! {
    #![proptest_config(config(256, regressions!("spliced_seeds")))]

    /// The start of one seed followed by the end of another.
    #[test]
    fn spliced_seeds(
        a in select(corpus().iter().collect::<Vec<_>>()),
        b in select(corpus().iter().collect::<Vec<_>>()),
        cut_a in any::<Index>(),
        cut_b in any::<Index>(),
    ) {
        let a = &a.bytes[..cut_a.index(a.bytes.len() + 1)];
        let b = &b.bytes[cut_b.index(b.bytes.len() + 1)..];
        exercise(&[a, b].concat());
    }
}

proptest! {
    #![proptest_config(config(512, regressions!("json_nodes_replaced")))]

    /// A JSON seed with one node (a field value, an item, the whole document) replaced by any
    /// JSON value: reaches the typed decoding past the syntax.
    #[test]
    fn json_nodes_replaced(seed in select(json_seeds()), node in any::<Index>(), new in json_value()) {
        let mut value: Value = serde_json::from_slice(&seed.bytes).unwrap();
        replace_node(&mut value, node, new);
        exercise(&serde_json::to_vec(&value).unwrap());
    }
}

proptest! {
    #![proptest_config(config(256, regressions!("arbitrary_input")))]

    #[test]
    fn arbitrary_bytes(bytes in vec(any::<u8>(), 0..512)) {
        exercise(&bytes);
    }

    #[test]
    fn arbitrary_json(value in json_value()) {
        exercise(&serde_json::to_vec(&value).unwrap());
    }
}

proptest! {
    #![proptest_config(config(256, regressions!("typed_round_trips")))]

    /// A project answer built from known values (None fields left out or null, unknown fields
    /// added) decodes to exactly those values.
    #[test]
    fn project_round_trip(case in project_case(), in_list in any::<bool>()) {
        let json = case.json();
        let bytes = if in_list {
            serde_json::to_vec(&json!([json.clone(), json])).unwrap()
        } else {
            serde_json::to_vec(&json).unwrap()
        };
        if in_list {
            let decoded: Vec<Project> = serde_json::from_slice(&bytes).unwrap();
            prop_assert_eq!(&decoded, &vec![case.expected.clone(), case.expected.clone()]);
        } else {
            let decoded: Project = serde_json::from_slice(&bytes).unwrap();
            prop_assert_eq!(&decoded, &case.expected);
        }
        let p = &case.expected;
        let level = |a: &Option<Access>| a.as_ref().map_or(0, |a| a.access_level);
        prop_assert_eq!(
            p.access_level(),
            p.permissions.as_ref().map(|perm| level(&perm.project_access).max(level(&perm.group_access)))
        );
        exercise(&bytes);
    }

    /// Merge request lists: the project ids come out in order, and counting items as
    /// `Ignored` counts them all.
    #[test]
    fn merge_requests_round_trip(items in vec((any::<u64>(), extra_fields()), 0..12)) {
        let json = Value::Array(items.iter().map(|(id, extra)| {
            let mut m: Map<String, Value> = extra.iter().cloned().collect();
            m.insert("project_id".into(), (*id).into());
            Value::Object(m)
        }).collect());
        let bytes = serde_json::to_vec(&json).unwrap();
        let decoded: Vec<MergeRequestRef> = serde_json::from_slice(&bytes).unwrap();
        let ids: Vec<u64> = decoded.iter().map(|m| m.project_id).collect();
        prop_assert_eq!(ids, items.iter().map(|(id, _)| *id).collect::<Vec<_>>());
        prop_assert_eq!(serde_json::from_slice::<Vec<Ignored>>(&bytes).unwrap().len(), items.len());
        exercise(&bytes);
    }

    /// Branch and sequence answers: the head commit's id (any string, escaped as JSON does)
    /// and the count (any u64).
    #[test]
    fn branch_and_sequence_round_trip(id in any::<String>(), count in any::<u64>(), extra in extra_fields()) {
        let mut commit: Map<String, Value> = extra.iter().cloned().collect();
        commit.insert("id".into(), id.clone().into());
        let branch = json!({"name": "main", "commit": commit, "protected": true});
        let bytes = serde_json::to_vec(&branch).unwrap();
        prop_assert_eq!(serde_json::from_slice::<Branch>(&bytes).unwrap().commit.id, id);
        let mut sequence: Map<String, Value> = extra.into_iter().collect();
        sequence.insert("count".into(), count.into());
        let bytes = serde_json::to_vec(&sequence).unwrap();
        prop_assert_eq!(serde_json::from_slice::<Sequence>(&bytes).unwrap().count, count);
        let bigger = format!(r#"{{"count":{}}}"#, u128::from(count) + u128::from(u64::MAX) + 1);
        prop_assert!(serde_json::from_str::<Sequence>(&bigger).is_err());
    }
}

proptest! {
    #![proptest_config(config(256, regressions!("error_messages")))]

    /// A `message` that is already one short clean line is kept as it is; any other is cut to
    /// one line.
    #[test]
    fn error_message_keeps_clean_messages(message in any::<String>(), error in any::<String>(), description in any::<String>()) {
        let clean = |s: &str| s.chars().filter(|c| !is_unsafe_in_a_log_line(*c)).take(90).collect::<String>().trim_end().to_owned();
        let (message_line, error_line, description_line) = (clean(&message), clean(&error), clean(&description));
        let body = serde_json::to_vec(&json!({"message": message_line})).unwrap();
        let line = check_error_message(&body);
        if !message_line.is_empty() {
            prop_assert_eq!(line, message_line);
        }
        let body = serde_json::to_vec(&json!({"error": error_line, "error_description": description_line, "scope": "api"})).unwrap();
        let line = check_error_message(&body);
        let expected = format!("{error_line}: {description_line}");
        prop_assert_eq!(line.as_str(), expected.trim_end());
        // Raw strings with controls, newlines, any length.
        for body in [json!({"message": message}), json!({"message": {"base": [error]}}), json!({"error": description})] {
            check_error_message(&serde_json::to_vec(&body).unwrap());
        }
        check_error_message(message.as_bytes());
    }
}

proptest! {
    #![proptest_config(config(256, regressions!("pagination_headers")))]

    /// Any values of the pagination headers (several of each, any bytes an HTTP parser lets
    /// through, numbers past u64): no panic, numbers exact when they fit.
    #[test]
    fn arbitrary_pagination_headers(headers in vec((header_name(), header_value()), 0..8)) {
        let mut map = HeaderMap::new();
        for (name, value) in &headers {
            if let Ok(value) = HeaderValue::from_bytes(value) {
                map.append(*name, value);
            }
        }
        check_page_info(&map);
    }

    /// Numbers: exact when they fit in u64 (whitespace around them trimmed), absent otherwise.
    #[test]
    fn pagination_numbers(n in any::<u128>(), pad in "[ \t]{0,3}", negative in any::<bool>()) {
        let text = format!("{pad}{}{n}{pad}", if negative { "-" } else { "" });
        let mut map = HeaderMap::new();
        map.insert("x-total", HeaderValue::from_str(&text).unwrap());
        map.insert("x-next-page", HeaderValue::from_str(&text).unwrap());
        let info = check_page_info(&map);
        let expected = u64::try_from(n).ok().filter(|n| !negative || *n == 0);
        prop_assert_eq!((info.total, info.next_page), (expected, expected));
    }

    /// A keyset `rel="next"` link gives back the parameters it was built from, whatever their
    /// text (encoded as the client encodes), among other links.
    #[test]
    fn keyset_link_round_trip(
        params in vec(("[a-z_]{1,10}", any::<String>()), 0..6),
        rel in select(&["rel=\"next\"", "rel=next", "REL=\"prev next\"", " rel = \"next\" "][..]),
        before in any::<bool>(),
        fragment in option::of("[a-z0-9]{0,6}"),
    ) {
        let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={}", encode_segment(v))).collect();
        let mut url = format!("https://gitlab.example.com/api/v4/projects?{}", query.join("&"));
        if let Some(fragment) = fragment {
            url = format!("{url}#{fragment}");
        }
        let first = "<https://gitlab.example.com/api/v4/projects?page=1>; rel=\"first\"";
        let link = if before { format!("{first}, <{url}>;{rel}") } else { format!("<{url}>; {rel}, {first}") };
        let mut map = HeaderMap::new();
        map.insert("link", HeaderValue::from_str(&link).unwrap());
        let info = check_page_info(&map);
        prop_assert_eq!(info.next_link, Some(params));
    }
}

proptest! {
    #![proptest_config(config(512, regressions!("dates")))]

    /// Any text, and text shaped like the two date formats: no panic.
    #[test]
    fn dates_never_panic(s in prop_oneof![
        any::<String>(),
        "[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,25})?(Z|z|[+-][0-9]{2}:[0-9]{2}|.{0,6})",
        "[0-9+-]{4}.[0-9+-]{2}.[0-9+-]{2}.{0,2}[0-9+-]{2}.[0-9+-]{2}.[0-9+-]{2}.{0,8}",
        http_date_like(),
    ]) {
        check_timestamp(&s);
        check_http_date(&s);
    }

    /// `format_timestamp` then `parse_timestamp` gives the time back in RFC 3339's years
    /// (0000–9999), and the nearest time inside them for a time outside; `parse_http_date`
    /// reads the same time as a `Date`.
    #[test]
    fn timestamps_round_trip(t in prop_oneof![MIN_TIME..=MAX_TIME, 0i64..4_102_444_800, any::<i64>()]) {
        let text = format_timestamp(t);
        let parsed = parse_timestamp(&text);
        prop_assert_eq!(parsed, Some(t.clamp(MIN_TIME, MAX_TIME) as f64), "{}", text);
        if (MIN_TIME..=MAX_TIME).contains(&t) {
            prop_assert_eq!(parse_http_date(&imf_fixdate(t)), Some(t), "{}", imf_fixdate(t));
        }
    }

    /// Local times with offsets and fractions name the same instant.
    #[test]
    fn timestamps_with_offsets(
        t in (MIN_TIME + 86_400)..=(MAX_TIME - 86_400),
        offset in -(23 * 60 + 59)..=(23 * 60 + 59i64),
        fraction in "[0-9]{1,12}",
    ) {
        let local = format_timestamp(t + offset * 60);
        let sign = if offset < 0 { '-' } else { '+' };
        let text = format!(
            "{}.{fraction}{sign}{:02}:{:02}",
            &local[..19],
            offset.abs() / 60,
            offset.abs() % 60
        );
        let expected = t as f64 + format!("0.{fraction}").parse::<f64>().unwrap();
        let parsed = parse_timestamp(&text).unwrap();
        prop_assert!((parsed - expected).abs() < 1e-3, "{} -> {} != {}", text, parsed, expected);
    }
}
