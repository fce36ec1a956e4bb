//! Command-line flags and their validation: everything the exporter is told at start, including
//! the GitLab token, which is only ever read from the environment or a file.
//!
//! Parsing is clap's; this file adds the Prometheus-style values (durations, listen addresses)
//! and the checks that need more than one flag. Every error names the flag it is about and makes
//! the process exit with status 2, like clap's own.

use crate::collect::Scope;
use crate::collect::families::deployments::parse_selectors;
use crate::collect::families::events::parse_buckets;
use crate::redact::Secret;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{CommandFactory, FromArgMatches, Parser, ValueEnum};

/// Environment variable holding the GitLab token itself.
pub const TOKEN_ENV: &str = "GITLAB_TOKEN";

/// The flags, as clap parses them. [`Config::from_args`] turns them into a validated [`Config`].
#[derive(Debug, Parser)]
#[command(
    name = "gitlab-api-exporter",
    version = crate::LONG_VERSION,
    about = "Prometheus exporter for GitLab projects, commits and merge requests.",
    after_help = "The token is read from the GITLAB_TOKEN environment variable or from --gitlab.token-file; \
                  it is never accepted as a flag value."
)]
struct Cli {
    /// GitLab base URL (the API is at <URL>/api/v4).
    #[arg(long = "gitlab.url", env = "GITLAB_URL", value_name = "URL", default_value = "https://gitlab.com",
          value_parser = parse_gitlab_url)]
    gitlab_url: String,

    /// File holding the GitLab token (read at start and on SIGHUP; surrounding whitespace is
    /// ignored).
    #[arg(long = "gitlab.token-file", value_name = "PATH")]
    token_file: Option<PathBuf>,

    /// PEM file of CA certificates trusted for GitLab's TLS certificate, in addition to the
    /// system's roots (for a GitLab behind a private CA).
    #[arg(long = "gitlab.ca-file", value_name = "PATH")]
    ca_file: Option<PathBuf>,

    /// Most GitLab API calls started per second (fractions allowed: 0.5 is one call every 2 s).
    /// 0: no fixed cap; calls are still paced by GitLab's RateLimit-* headers.
    #[arg(long = "gitlab.max-requests-per-second", value_name = "RATE", default_value = "0",
          value_parser = parse_rate)]
    max_requests_per_second: f64,

    /// Address to listen on: host:port, [v6]:port, or :port for every interface.
    #[arg(long = "web.listen-address", value_name = "ADDRESS", default_value = ":9835",
          value_parser = ListenAddress::parse)]
    listen_address: ListenAddress,

    /// Web configuration in the Prometheus exporter-toolkit format: TLS, basic auth, headers.
    #[arg(long = "web.config.file", value_name = "PATH")]
    web_config_file: Option<PathBuf>,

    /// Most connections served at once. At the limit, the connection idle the longest is closed
    /// to make room for a new one; it is lowered at start to what the descriptor limit allows.
    #[arg(long = "web.max-connections", value_name = "N", default_value_t = 512,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections: u32,

    /// Path under which to expose metrics.
    #[arg(long = "web.telemetry-path", value_name = "PATH", default_value = "/metrics",
          value_parser = parse_telemetry_path)]
    telemetry_path: String,

    /// How long a collection is reused (Prometheus duration: 500ms, 30s, 2m). 0s: no reuse,
    /// concurrent scrapes still share one collection.
    #[arg(long = "cache.ttl", value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    cache_ttl: Duration,

    /// Serve the last collected data for at most this long when collections fail or cannot
    /// finish in time; after it, the per-project series are left out rather than shown stale.
    #[arg(long = "cache.max-stale", value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    max_stale: Duration,

    /// Subtracted from the scraper's X-Prometheus-Scrape-Timeout-Seconds: the time left to
    /// encode and send the answer.
    #[arg(long = "web.timeout-offset", value_name = "DURATION", default_value = "500ms", value_parser = parse_duration)]
    timeout_offset: Duration,

    /// Longest a scrape waits for a collection before answering with the last data (also the
    /// wait of scrapers that send no X-Prometheus-Scrape-Timeout-Seconds, such as curl).
    #[arg(long = "web.max-timeout", value_name = "DURATION", default_value = "2m",
          value_parser = parse_positive_duration)]
    max_timeout: Duration,

    /// Most GitLab API calls in flight at once.
    #[arg(long = "gitlab.concurrency", value_name = "N", default_value_t = 16,
          value_parser = clap::value_parser!(u16).range(1..=512))]
    concurrency: u16,

    /// Which GitLab API collects: graphql (one query per page of 100 projects, plus batched
    /// queries for merge-request counts; REST only where GraphQL cannot give a value exactly)
    /// or rest (REST only, for instances or proxies that block GraphQL). A GitLab answering
    /// 404 or 405 on /api/graphql is collected over REST, with one warning.
    #[arg(long = "gitlab.api", value_name = "API", default_value = "graphql",
          value_parser = ["graphql", "rest"])]
    api: String,

    /// Projects per batched GraphQL query (merge-request counts); lowered at run time while
    /// GitLab finds a batch too complex or too slow.
    #[arg(long = "gitlab.graphql.batch-size", value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u16).range(1..=100))]
    batch_size: u16,

    /// Upper bounds (seconds, comma-separated, increasing) of the buckets of
    /// gitlab_project_pipeline_duration_seconds; +Inf is always there.
    #[arg(long = "collector.pipelines.duration-buckets", value_name = "SECONDS,...",
          default_value = "60,300,600,1800,3600", value_parser = parse_buckets)]
    pipeline_duration_buckets: &'static [f64],

    /// Upper bounds (seconds, comma-separated, increasing) of the buckets of
    /// gitlab_project_merge_request_time_to_merge_seconds; +Inf is always there.
    #[arg(long = "collector.merge_request_flow.time-to-merge-buckets", value_name = "SECONDS,...",
          default_value = "3600,86400,259200,604800,2419200", value_parser = parse_buckets)]
    time_to_merge_buckets: &'static [f64],

    /// The environments whose deployments are exported: comma-separated `tier:<tier>`
    /// (production, staging, testing, development, other) and `name:<environment name>`.
    #[arg(long = "collector.deployments.environments", value_name = "SELECTORS",
          default_value = "tier:production", value_parser = parse_selectors)]
    deployment_environments: &'static [crate::collect::families::deployments::Selector],

    /// Upper bounds (seconds, comma-separated, increasing) of the buckets of
    /// gitlab_project_lead_time_for_changes_seconds; +Inf is always there.
    #[arg(long = "collector.deployments.lead-time-buckets", value_name = "SECONDS,...",
          default_value = "3600,14400,86400,259200,604800", value_parser = parse_buckets)]
    lead_time_buckets: &'static [f64],

    /// Timeout of one GitLab API call.
    #[arg(long = "gitlab.request-timeout", value_name = "DURATION", default_value = "15s",
          value_parser = parse_positive_duration)]
    request_timeout: Duration,

    /// Count every project from scratch at least this often, spread over the interval (what no
    /// change signal shows: merge requests deleted by an administrator). 0s: every collection
    /// counts everything.
    #[arg(long = "collect.full-refresh-interval", value_name = "DURATION", default_value = "24h",
          value_parser = parse_duration)]
    full_refresh_interval: Duration,

    /// Most projects the listings of one collection may return (a project listed twice counts
    /// twice). Past it, the collection is abandoned: a GitLab or proxy announcing pages without
    /// end must not burn the rate limit forever.
    #[arg(long = "collect.max-projects", value_name = "N", default_value_t = 500_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_projects: u64,

    /// Longest a collection may run; past it, it is abandoned (its calls end on their own)
    /// and the last good data is served.
    #[arg(long = "collect.timeout", value_name = "DURATION", default_value = "1h",
          value_parser = parse_positive_duration)]
    collect_timeout: Duration,

    /// Export the projects of this group and its subgroups (id or full path; repeatable).
    #[arg(long = "gitlab.group", value_name = "GROUP", value_parser = parse_reference)]
    groups: Vec<String>,

    /// Export this project (id or full path; repeatable).
    #[arg(long = "gitlab.project", value_name = "PROJECT", value_parser = parse_reference)]
    projects: Vec<String>,

    /// Export every project the token can see (for administrators of self-managed instances).
    #[arg(long = "gitlab.all-projects", conflicts_with_all = ["groups", "projects"])]
    all_projects: bool,

    /// Also export archived projects (left out by default).
    #[arg(long = "gitlab.include-archived")]
    include_archived: bool,

    /// Multi-target mode: serve one scope per /probe?target=<group | project> (the blackbox
    /// exporter pattern, for Prometheus to distribute); /metrics then has only the exporter's
    /// own metrics.
    #[arg(long = "multi-target", conflicts_with_all = ["groups", "projects", "all_projects"])]
    multi_target: bool,

    /// Start the built-in fake GitLab on loopback and export it (no token or URL needed).
    #[arg(long = "demo")]
    demo: bool,

    /// Only log messages of this level or above.
    #[arg(long = "log.level", value_name = "LEVEL", value_enum, default_value_t = LogLevel::Info)]
    log_level: LogLevel,

    /// Log line format.
    #[arg(long = "log.format", value_name = "FORMAT", value_enum, default_value_t = LogFormat::Logfmt)]
    log_format: LogFormat,
}

/// Log formats offered by `--log.format`, as in other Prometheus exporters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// `ts=… level=info msg="…" key=value`.
    Logfmt,
    /// One JSON object per line.
    Json,
}

/// Log levels offered by `--log.level`, as in other Prometheus exporters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    /// Everything, including each API call.
    Debug,
    /// Start, stop and collection failures.
    Info,
    /// Problems only.
    Warn,
    /// Failures only.
    Error,
}

impl From<LogLevel> for tracing::Level {
    fn from(level: LogLevel) -> Self {
        match level {
            LogLevel::Debug => tracing::Level::DEBUG,
            LogLevel::Info => tracing::Level::INFO,
            LogLevel::Warn => tracing::Level::WARN,
            LogLevel::Error => tracing::Level::ERROR,
        }
    }
}

/// The validated configuration of one exporter process.
#[derive(Debug, Clone)]
pub struct Config {
    /// GitLab base URL without a trailing slash, e.g. `https://gitlab.com`.
    pub(crate) gitlab_url: String,
    /// The token, if one was given.
    pub(crate) token: Option<Secret>,
    /// The file the token was read from, re-read on SIGHUP.
    pub(crate) token_file: Option<PathBuf>,
    /// Extra CA certificates trusted for GitLab, with the system's (`--gitlab.ca-file`, read
    /// and checked once, here).
    pub(crate) ca_certs: Vec<ureq::tls::Certificate<'static>>,
    /// Most calls started per second (0: no fixed cap).
    pub(crate) max_requests_per_second: f64,
    /// Longest the last data is served when collections fail or run late.
    pub(crate) max_stale: Duration,
    /// Subtracted from the scraper's timeout.
    pub(crate) timeout_offset: Duration,
    /// Longest a scrape waits for a collection.
    pub(crate) max_timeout: Duration,
    /// Where to serve.
    pub(crate) listen_address: ListenAddress,
    /// Path of the metrics page.
    pub(crate) telemetry_path: String,
    /// Most connections served at once (`--web.max-connections`), before the descriptor limit.
    pub(crate) max_connections: usize,
    /// TLS, basic auth and headers for the server (`--web.config.file`), loaded and checked.
    pub(crate) web_config: Option<std::sync::Arc<web_config::WebConfig>>,
    /// How long a collection is reused.
    pub(crate) cache_ttl: Duration,
    /// Most API calls in flight.
    pub(crate) concurrency: usize,
    /// Which API collects (`--gitlab.api`).
    pub(crate) api: crate::collect::Api,
    /// Projects per batched GraphQL query (`--gitlab.graphql.batch-size`).
    pub(crate) batch_size: usize,
    /// Timeout of one API call.
    pub(crate) request_timeout: Duration,
    /// Every project is counted from scratch at least this often (zero: at every collection).
    pub(crate) full_refresh_interval: Duration,
    /// The projects to export.
    pub(crate) scope: Scope,
    /// What one collection may cost at most.
    pub(crate) limits: crate::collect::Limits,
    /// The metric families collected (`--collector.<name>`, `--no-collector.<name>`).
    pub(crate) collectors: crate::collect::Collectors,
    /// The families' own flags (`--collector.<name>.<option>`).
    pub(crate) family_options: crate::collect::families::Options,
    /// Run against the built-in fake GitLab.
    #[cfg_attr(not(feature = "demo"), allow(dead_code))]
    pub(crate) demo: bool,
    /// Serve scopes per /probe target; /metrics only the exporter's own metrics.
    pub(crate) multi_target: bool,
    /// Log verbosity.
    pub(crate) log_level: LogLevel,
    /// Log line format.
    pub(crate) log_format: LogFormat,
}

impl Config {
    /// Log verbosity (`--log.level`).
    pub fn log_level(&self) -> LogLevel {
        self.log_level
    }

    /// Log line format (`--log.format`).
    pub fn log_format(&self) -> LogFormat {
        self.log_format
    }

    /// Most GitLab API calls in flight (`--gitlab.concurrency`).
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// Parses and validates the process's arguments and environment. On error, the returned
    /// clap error prints a message naming the flag and exits with status 2 (`err.exit()`).
    pub fn from_args<I, T>(args: I) -> Result<Config, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = command().try_get_matches_from(args)?;
        let cli = Cli::from_arg_matches(&matches)?;
        let collectors = collectors(&matches);
        let token = match &cli.token_file {
            Some(path) => Some(read_token_file(path).map_err(|msg| {
                invalid(format!(
                    "invalid value for '--gitlab.token-file <PATH>': {msg}"
                ))
            })?),
            None => match std::env::var(TOKEN_ENV) {
                Ok(value) if !value.trim().is_empty() => {
                    check_token(value.trim())
                        .map_err(|msg| invalid(format!("invalid {TOKEN_ENV}: {msg}")))?;
                    Some(Secret::new(value.trim()))
                }
                _ => None,
            },
        };
        let ca_certs = match &cli.ca_file {
            Some(path) => crate::gitlab::tls::read_ca_file(path).map_err(|msg| {
                invalid(format!(
                    "invalid value for '--gitlab.ca-file <PATH>': {msg}"
                ))
            })?,
            None => Vec::new(),
        };
        let web_config = match &cli.web_config_file {
            Some(path) => Some(std::sync::Arc::new(
                web_config::WebConfig::load(path).map_err(|msg| {
                    invalid(format!(
                        "invalid value for '--web.config.file <PATH>': {msg}"
                    ))
                })?,
            )),
            None => None,
        };
        let scope = Scope {
            groups: cli.groups,
            projects: cli.projects,
            all_projects: cli.all_projects,
            include_archived: cli.include_archived,
        };
        if cli.demo && !cfg!(feature = "demo") {
            return Err(invalid(
                "--demo: this build has no built-in fake GitLab (built without the cargo feature `demo`)"
                    .to_owned(),
            ));
        }
        let needs_token = !cli.multi_target && (scope.is_membership() || scope.all_projects);
        if token.is_none() && !cli.demo && needs_token {
            return Err(invalid(format!(
                "no GitLab token: set {TOKEN_ENV} or '--gitlab.token-file <PATH>'; without one, \
                 name the public projects or groups to export with '--gitlab.project' or '--gitlab.group'"
            )));
        }
        Ok(Config {
            gitlab_url: cli.gitlab_url,
            token,
            token_file: cli.token_file,
            ca_certs,
            max_requests_per_second: cli.max_requests_per_second,
            max_stale: cli.max_stale,
            timeout_offset: cli.timeout_offset,
            max_timeout: cli.max_timeout,
            listen_address: cli.listen_address,
            telemetry_path: cli.telemetry_path,
            max_connections: cli.max_connections as usize,
            web_config,
            cache_ttl: cli.cache_ttl,
            concurrency: usize::from(cli.concurrency),
            api: if cli.api == "rest" {
                crate::collect::Api::Rest
            } else {
                crate::collect::Api::Graphql
            },
            batch_size: usize::from(cli.batch_size),
            request_timeout: cli.request_timeout,
            full_refresh_interval: cli.full_refresh_interval,
            scope,
            limits: crate::collect::Limits {
                max_projects: cli.max_projects,
                timeout: cli.collect_timeout,
            },
            collectors,
            family_options: crate::collect::families::Options {
                pipeline_duration_buckets: cli.pipeline_duration_buckets,
                time_to_merge_buckets: cli.time_to_merge_buckets,
                deployment_environments: cli.deployment_environments,
                lead_time_buckets: cli.lead_time_buckets,
            },
            demo: cli.demo,
            multi_target: cli.multi_target,
            log_level: cli.log_level,
            log_format: cli.log_format,
        })
    }
}

/// A validation error in clap's format (exit status 2).
fn invalid(message: String) -> clap::Error {
    command().error(ErrorKind::ValueValidation, message)
}

/// The command line: the flags of [`Cli`], and `--collector.<name>` / `--no-collector.<name>`
/// for every metric family, as node_exporter has them (the last one given wins).
fn command() -> clap::Command {
    crate::collect::Collectors::known().fold(Cli::command(), |command, (name, about, on)| {
        let (enable, disable) = (format!("collector.{name}"), format!("no-collector.{name}"));
        command
            .arg(
                clap::Arg::new(enable.clone())
                    .long(enable.clone())
                    .action(clap::ArgAction::SetTrue)
                    .overrides_with(disable.clone())
                    .help_heading("Collectors")
                    .help(format!(
                        "Enable the {name} collector (default: {}): {about}",
                        if on { "enabled" } else { "disabled" }
                    )),
            )
            .arg(
                clap::Arg::new(disable.clone())
                    .long(disable)
                    .action(clap::ArgAction::SetTrue)
                    .overrides_with(enable)
                    .help_heading("Collectors")
                    .help(format!("Disable the {name} collector")),
            )
    })
}

/// The collectors switched on and off in `matches`, from their defaults.
fn collectors(matches: &clap::ArgMatches) -> crate::collect::Collectors {
    crate::collect::Collectors::known().fold(
        crate::collect::Collectors::default(),
        |collectors, (name, _, _)| {
            let on = matches.get_flag(&format!("collector.{name}"));
            let off = matches.get_flag(&format!("no-collector.{name}"));
            if on == off {
                return collectors;
            }
            // A name from the list itself: always known.
            collectors.switched(name, on).unwrap_or(collectors)
        },
    )
}

/// Reads the token file (at start, and again on SIGHUP). The error names the file, never its
/// content.
pub fn read_token_file(path: &Path) -> Result<Secret, String> {
    let content = web_config::files::read_text(path, web_config::files::MAX_SMALL)
        .map_err(|e| e.to_string())?;
    let token = content.trim();
    if token.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    check_token(token)?;
    Ok(Secret::new(token))
}

/// A token must fit in an HTTP header. The message never repeats the token.
fn check_token(token: &str) -> Result<(), String> {
    if token.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err("the token has characters that cannot be sent in an HTTP header (spaces, control or non-ASCII characters)".to_owned())
    }
}

/// Parses a Prometheus duration: one or more `<integer><unit>` with units in the order
/// y, w, d, h, m, s, ms, each at most once (`1h30m`, `500ms`), or a bare `0`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    const UNITS: [(&str, u64); 7] = [
        ("y", 365 * 24 * 3600 * 1000),
        ("w", 7 * 24 * 3600 * 1000),
        ("d", 24 * 3600 * 1000),
        ("h", 3600 * 1000),
        ("m", 60 * 1000),
        ("s", 1000),
        ("ms", 1),
    ];
    let bad = || format!("'{s}' is not a duration (examples: 500ms, 30s, 2m, 1h30m)");
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(bad());
    }
    let mut rest = s;
    let mut next_unit = 0;
    let mut millis: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let value: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..letters];
        rest = &rest[letters..];
        let index = UNITS[next_unit..]
            .iter()
            .position(|(name, _)| *name == unit)
            .map(|i| i + next_unit)
            .ok_or_else(bad)?;
        next_unit = index + 1;
        millis = value
            .checked_mul(UNITS[index].1)
            .and_then(|v| v.checked_add(millis))
            .ok_or_else(bad)?;
    }
    Ok(Duration::from_millis(millis))
}

fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        Duration::ZERO => Err("must be more than 0s".to_owned()),
        d => Ok(d),
    }
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate >= 0.0 => Ok(rate),
        _ => Err(format!(
            "'{s}' is not a rate: a number of calls per second, 0 or more (0.5, 10)"
        )),
    }
}

fn parse_gitlab_url(s: &str) -> Result<String, String> {
    let url = s.trim().trim_end_matches('/');
    let url = url.strip_suffix("/api/v4").unwrap_or(url);
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("'{s}' must start with https:// or http://"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("'{s}' has no host"));
    }
    if rest.contains('@') {
        // Not repeated: the part before '@' may be a password.
        return Err("the URL must not contain credentials; give the token with GITLAB_TOKEN or --gitlab.token-file".to_owned());
    }
    if rest.contains(['?', '#', ' ']) {
        return Err(format!(
            "'{s}' must be a plain base URL (no query or fragment)"
        ));
    }
    // As the HTTP client will read it: a URL it cannot use is refused now, not at every scrape.
    let uri: ureq::http::Uri = url
        .parse()
        .map_err(|e| format!("'{s}' is not a valid URL: {e}"))?;
    let authority = uri
        .authority()
        .ok_or_else(|| format!("'{s}' has no host"))?;
    if authority.host().is_empty() {
        return Err(format!("'{s}' has no host"));
    }
    // The parser takes any digits for a port (and then has none).
    let port = match authority.as_str().rsplit_once(':') {
        Some((_, port)) if !authority.as_str().ends_with(']') => Some(port),
        _ => None,
    };
    if let Some(port) = port {
        if !port.parse::<u16>().is_ok_and(|p| p > 0) {
            return Err(format!("'{s}': port {port} is not a port (1 to 65535)"));
        }
    }
    if uri
        .path()
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err(format!("'{s}' has '.' or '..' in its path"));
    }
    Ok(url.to_owned())
}

/// A path requests can match exactly: it starts with `/`, is not a route of its own (`/`,
/// `/probe`, anything under `/-/`), and holds only what a request path sends as it is (RFC 3986
/// path characters, `%XX` escapes), no query or fragment, and no `.` or `..` segment (clients
/// resolve those before sending).
fn parse_telemetry_path(s: &str) -> Result<String, String> {
    if !s.starts_with('/') || s == "/" || s.starts_with("/-/") || s == "/probe" {
        return Err(format!(
            "'{s}' must start with '/' and not be '/', '/probe' or under '/-/'"
        ));
    }
    if s.contains(['?', '#']) {
        return Err(format!(
            "'{s}' must be a path only, without a query ('?') or fragment ('#')"
        ));
    }
    let bytes = s.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let allowed = b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b);
        let escape = b == b'%'
            && bytes.len() > i + 2
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit();
        if !allowed && !escape {
            return Err(format!(
                "'{s}' has characters a request path cannot carry as they are; percent-encode them"
            ));
        }
    }
    if s.split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err(format!(
            "'{s}' has a '.' or '..' segment, which clients resolve before sending"
        ));
    }
    Ok(s.to_owned())
}

/// A group or project reference: a numeric id or a full path such as `acme/platform`.
fn parse_reference(s: &str) -> Result<String, String> {
    let s = s.trim().trim_matches('/');
    if s.is_empty() || s.contains(char::is_whitespace) {
        return Err("expected a numeric id or a full path such as 'group/project'".to_owned());
    }
    Ok(s.to_owned())
}

/// An address to listen on. `host` is `None` for `:port` (every interface).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenAddress {
    /// Host name or IP address, without brackets.
    pub host: Option<String>,
    /// TCP port.
    pub port: u16,
}

impl ListenAddress {
    /// Parses `host:port`, `[v6]:port` or `:port`.
    pub fn parse(s: &str) -> Result<ListenAddress, String> {
        let bad = || format!("'{s}' is not host:port, [v6-address]:port or :port");
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let host = match host {
            "" => None,
            h if h.starts_with('[') && h.ends_with(']') && h.len() > 2 => {
                Some(h[1..h.len() - 1].to_owned())
            }
            h if h.contains([':', '[', ']', '/', ' ']) => return Err(bad()),
            h => Some(h.to_owned()),
        };
        Ok(ListenAddress { host, port })
    }
}

impl fmt::Display for ListenAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            None => write!(f, ":{}", self.port),
            Some(h) if h.contains(':') => write!(f, "[{h}]:{}", self.port),
            Some(h) => write!(f, "{h}:{}", self.port),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_follow_prometheus() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1d2h"), Ok(Duration::from_secs(93_600)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in [
            "",
            "5",
            "s",
            "1x",
            "30m1h",
            "1s1s",
            "-1s",
            "1.5s",
            "1 s",
            "99999999999999999y",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn listen_addresses() {
        let any = ListenAddress::parse(":9835").unwrap();
        assert_eq!((any.host, any.port), (None, 9835));
        let v6 = ListenAddress::parse("[::1]:80").unwrap();
        assert_eq!(v6.host.as_deref(), Some("::1"));
        assert_eq!(v6.to_string(), "[::1]:80");
        assert_eq!(
            ListenAddress::parse("localhost:1").unwrap().to_string(),
            "localhost:1"
        );
        for bad in ["9835", ":", ":99999", "::1:80", "[]:80", "a b:1"] {
            assert!(
                ListenAddress::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn gitlab_url_is_normalised() {
        assert_eq!(
            parse_gitlab_url("https://gitlab.com/").unwrap(),
            "https://gitlab.com"
        );
        assert_eq!(
            parse_gitlab_url("https://example.com/gitlab/api/v4").unwrap(),
            "https://example.com/gitlab"
        );
        for bad in [
            "gitlab.com",
            "ftp://x",
            "https://",
            "https://u:p@x",
            "https:///x",
            "http://[::1",
            "http://gitlab.example.com:99999",
            "http://gitlab.example.com:0",
            "http://gitlab.example.com:http",
            "https://example.com/a/../gitlab",
            "https://exa\u{7f}mple.com",
        ] {
            assert!(parse_gitlab_url(bad).is_err(), "{bad:?} should be rejected");
        }
        for good in [
            "http://[::1]:8080",
            "https://gitlab.example.com:65535/gitlab",
            "http://127.0.0.1",
        ] {
            assert_eq!(parse_gitlab_url(good).as_deref(), Ok(good));
        }
        let err = parse_gitlab_url("http://gitlab.example.com:99999").unwrap_err();
        assert!(err.contains("port 99999"), "{err}");
    }

    #[test]
    fn telemetry_paths_that_requests_can_match() {
        for good in [
            "/metrics",
            "/gitlab/metrics",
            "/metrics/",
            "/m%20etrics",
            "/a:b@c",
        ] {
            assert_eq!(parse_telemetry_path(good).as_deref(), Ok(good));
        }
        for bad in [
            "metrics",
            "/",
            "/probe",
            "/-/healthy",
            "/-/ready",
            "/metrics?x=1",
            "/metrics#top",
            "/me trics",
            "/métriques",
            "/100%",
            "/a/../metrics",
            "/./metrics",
            "/metrics/..",
        ] {
            assert!(
                parse_telemetry_path(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn url_credentials_are_not_echoed() {
        let err = parse_gitlab_url("https://user:hunter2@gitlab.example.com").unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn secret_debug_hides_the_value() {
        let s = Secret::new("glpat-very-secret");
        assert!(!format!("{s:?}").contains("very-secret"));
        let config = Config::from_args(["x", "--demo"]).unwrap();
        let config = Config {
            token: Some(s),
            ..config
        };
        assert!(!format!("{config:?}").contains("very-secret"));
        assert!(!format!("{config:#?}").contains("very-secret"));
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = Config::from_args(["x", "--demo"]).unwrap();
        assert_eq!(c.listen_address.to_string(), ":9835");
        assert_eq!(c.telemetry_path, "/metrics");
        assert_eq!(c.max_connections, 512);
        assert_eq!(c.cache_ttl, Duration::from_secs(60));
        assert_eq!(c.concurrency, 16);
        assert_eq!(c.request_timeout, Duration::from_secs(15));
        assert_eq!(c.full_refresh_interval, Duration::from_secs(24 * 3600));
        assert!(c.scope.is_membership() && !c.scope.include_archived);
        assert_eq!(c.log_level, LogLevel::Info);
        assert_eq!(c.max_stale, Duration::from_secs(600));
        assert_eq!(c.timeout_offset, Duration::from_millis(500));
        assert_eq!(c.max_timeout, Duration::from_secs(120));
        assert_eq!(c.max_requests_per_second, 0.0);
        assert_eq!(c.limits, crate::collect::Limits::default());
        assert!(c.ca_certs.is_empty());
    }

    #[test]
    fn errors_name_the_flag() {
        let err = Config::from_args(["x", "--demo", "--cache.ttl", "soon"]).unwrap_err();
        assert!(err.to_string().contains("--cache.ttl"), "{err}");
        assert_eq!(err.exit_code(), 2);
        let err = Config::from_args(["x", "--demo", "--gitlab.token-file", "/nonexistent/token"])
            .unwrap_err();
        assert!(err.to_string().contains("--gitlab.token-file"), "{err}");
        assert_eq!(err.exit_code(), 2);
        for (flag, value) in [
            ("--gitlab.max-requests-per-second", "-1"),
            ("--gitlab.max-requests-per-second", "fast"),
            ("--gitlab.ca-file", "/nonexistent/ca.pem"),
            ("--cache.max-stale", "long"),
            ("--web.timeout-offset", "1"),
            ("--web.max-timeout", "0s"),
        ] {
            let err = Config::from_args(["x", "--demo", &format!("{flag}={value}")]).unwrap_err();
            assert!(err.to_string().contains(flag), "{flag}: {err}");
            assert_eq!(err.exit_code(), 2);
        }
        let c = Config::from_args(["x", "--demo", "--gitlab.max-requests-per-second", "0.5"]);
        assert_eq!(c.map(|c| c.max_requests_per_second).ok(), Some(0.5));
        let err = Config::from_args(["x", "--demo", "--gitlab.token", "abc"]).unwrap_err();
        assert!(err.to_string().contains("--gitlab.token"), "{err}");
        assert_eq!(err.exit_code(), 2);
    }
}
