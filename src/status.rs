//! The landing page `/`: a status page an operator reads at a glance (what is exported from
//! where, the last collection and each metric family's part in it, the last hour of
//! collections as a chart, the age of the data, GitLab's rate-limit budget, API errors), with
//! links to the metrics, a probe example and the health endpoints. It never starts a
//! collection.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use crate::cache::Cache;
use crate::collect::Snapshot;
use crate::gitlab::types::{format_timestamp, host_time, unix_seconds};
use crate::metrics::{CollectionPoint, ExporterMetrics};
use crate::probe::Probes;

/// Most probe targets listed.
const TARGETS_SHOWN: usize = 50;

/// What the page shows.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    /// One line describing the scope and the GitLab instance.
    pub description: &'a str,
    /// Path of the metrics page.
    pub telemetry_path: &'a str,
    /// The snapshot cache, read without collecting.
    pub cache: &'a Cache,
    /// The probe targets, in multi-target mode.
    pub probes: Option<&'a Probes>,
    /// The exporter's own metrics and recent collections.
    pub metrics: &'a ExporterMetrics,
}

/// The page, as HTML.
pub fn render(app: View<'_>) -> String {
    let mut page = String::with_capacity(8192);
    let _ = write_page(&mut page, app);
    page
}

fn write_page(out: &mut String, app: View<'_>) -> std::fmt::Result {
    let metrics = escape(app.telemetry_path);
    write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>GitLab API Exporter</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <header><h1>GitLab API Exporter</h1><span class=\"version\">{version} · {revision}</span></header>\n\
         <p class=\"scope\">{description}</p>\n",
        version = crate::VERSION,
        revision = escape(crate::REVISION),
        description = escape(app.description),
    )?;
    match app.probes {
        None => {
            out.push_str("<section><h2>Last collection</h2>\n");
            write_collection(out, app.cache.current().as_deref().map(|r| &r.snapshot))?;
            out.push_str("</section>\n");
        }
        Some(probes) => {
            let targets = probes.recent(TARGETS_SHOWN);
            write!(
                out,
                "<section><h2>Probe targets</h2>\n<p>{} target(s) held{}.</p>\n",
                probes.len(),
                if probes.len() > TARGETS_SHOWN {
                    format!(", the {TARGETS_SHOWN} most recently probed shown")
                } else {
                    String::new()
                }
            )?;
            if !targets.is_empty() {
                out.push_str(
                    "<table><thead><tr><th>target</th><th>result</th><th>projects</th>\
                     <th>finished</th><th>duration</th><th>API calls</th></tr></thead><tbody>\n",
                );
                for target in targets {
                    let snapshot = target.cache.current();
                    let (result, class, projects, finished, duration, calls) =
                        match snapshot.as_deref() {
                            None => (
                                "collecting",
                                "pending",
                                "–".to_owned(),
                                "–".to_owned(),
                                "–".to_owned(),
                                "–".to_owned(),
                            ),
                            Some(s) => (
                                if s.is_success() { "ok" } else { "failed" },
                                if s.is_success() { "ok" } else { "bad" },
                                s.data.projects_from.map_or("–".to_owned(), |_| {
                                    s.data.projects.len().to_string()
                                }),
                                format!("{} ago", human(s.finished.elapsed())),
                                human(s.data.duration),
                                s.data.api_calls.to_string(),
                            ),
                        };
                    let why = snapshot
                        .as_deref()
                        .and_then(|s| s.data.error.as_deref())
                        .unwrap_or_default();
                    writeln!(
                        out,
                        "<tr><td><a href=\"/probe?target={link}\">{name}</a></td>\
                         <td class=\"{class}\" title=\"{why}\">{result}</td><td>{projects}</td><td>{finished}</td>\
                         <td>{duration}</td><td>{calls}</td></tr>",
                        link = escape(&percent_encode(&target.name)),
                        name = escape(&target.name),
                        why = escape(why),
                    )?;
                }
                out.push_str("</tbody></table>\n");
            }
            out.push_str("</section>\n");
        }
    }
    write_history(out, &app.metrics.recent_collections())?;
    write_budget(out, app)?;
    write!(
        out,
        "<section><h2>Links</h2>\n<ul>\n<li><a href=\"{metrics}\">Metrics</a> ({metrics})</li>\n"
    )?;
    if let Some(probes) = app.probes {
        let example = probes
            .recent(1)
            .first()
            .map_or_else(|| "gitlab-org".to_owned(), |t| t.name.clone());
        writeln!(
            out,
            "<li><a href=\"/probe?target={link}\">Probe {name}</a> \
             (/probe?target=&lt;group or project path, or project id&gt;)</li>",
            link = escape(&percent_encode(&example)),
            name = escape(&example),
        )?;
    }
    out.push_str(
        "<li><a href=\"/-/healthy\">Health</a></li>\n<li><a href=\"/-/ready\">Readiness</a></li>\n\
         </ul>\n</section>\n</body>\n</html>\n",
    );
    Ok(())
}

fn write_collection(out: &mut String, snapshot: Option<&Snapshot>) -> std::fmt::Result {
    let Some(snapshot) = snapshot else {
        out.push_str(
            "<p class=\"pending\">No collection yet: the first scrape of the metrics starts one.</p>\n",
        );
        return Ok(());
    };
    let data = &snapshot.data;
    let result = match &data.error {
        None => "<span class=\"ok\">success</span>".to_owned(),
        Some(e) => format!("<span class=\"bad\">failed</span>: {}", escape(e)),
    };
    write!(
        out,
        "<dl>\n<dt>Result</dt><dd>{result}</dd>\n\
         <dt>Finished</dt><dd>{finished} ago</dd>\n\
         <dt>Duration</dt><dd>{duration}</dd>\n\
         <dt>API calls</dt><dd>{calls}</dd>\n",
        finished = human(snapshot.finished.elapsed()),
        duration = human(data.duration),
        calls = data.api_calls,
    )?;
    match data.projects_from {
        Some(stamp) => write!(
            out,
            "<dt>Projects</dt><dd>{projects}{incomplete}</dd>\n\
             <dt>Data collected</dt><dd>{age} ago ({when})</dd>\n",
            projects = data.projects.len(),
            incomplete = if data.incomplete_projects > 0 {
                format!(
                    " <span class=\"warn\">({} with failed calls)</span>",
                    data.incomplete_projects
                )
            } else {
                String::new()
            },
            age = human(stamp.at.elapsed()),
            when = rfc3339(stamp.wall),
        )?,
        None => out.push_str("<dt>Projects</dt><dd class=\"bad\">no data served</dd>\n"),
    }
    out.push_str("</dl>\n");
    if !data.families.is_empty() {
        out.push_str(
            "<table class=\"collectors\"><thead><tr><th>collector</th><th>result</th>\
             <th>duration</th><th>API calls</th></tr></thead><tbody>\n",
        );
        for report in &data.families {
            let (class, result) = match (report.success, report.failed_projects) {
                (true, _) => ("ok", "ok".to_owned()),
                (false, 0) => ("bad", "failed".to_owned()),
                (false, n) => ("bad", format!("failed for {n} project(s)")),
            };
            writeln!(
                out,
                "<tr><td>{name}</td><td class=\"{class}\">{result}</td><td>{duration}</td>\
                 <td>{calls}</td></tr>",
                name = report.family.name(),
                duration = human(report.duration),
                calls = report.api_calls,
            )?;
        }
        out.push_str("</tbody></table>\n");
    }
    Ok(())
}

/// Width and height of the chart's drawing, in SVG units.
const CHART: (f64, f64) = (600.0, 120.0);

/// The last hour of collections as an inline SVG chart: one bar per collection, its height
/// the collection's duration (red when it failed), and its API calls as a line.
fn write_history(out: &mut String, points: &[CollectionPoint]) -> std::fmt::Result {
    out.push_str("<section><h2>Last hour</h2>\n");
    if points.is_empty() {
        out.push_str("<p class=\"pending\">No collection in the last hour.</p>\n</section>\n");
        return Ok(());
    }
    let (width, height) = CHART;
    let now = SystemTime::now();
    let ago = |p: &CollectionPoint| now.duration_since(p.at).unwrap_or_default().as_secs_f64();
    let x = |p: &CollectionPoint| width * (1.0 - ago(p) / 3600.0).clamp(0.0, 1.0);
    let longest = points
        .iter()
        .map(|p| p.duration.as_secs_f64())
        .fold(0.0, f64::max)
        .max(0.001);
    let most_calls = points.iter().map(|p| p.api_calls).max().unwrap_or(0).max(1);
    let calls_y = |p: &CollectionPoint| height - height * p.api_calls as f64 / most_calls as f64;
    write!(
        out,
        "<svg class=\"history\" viewBox=\"0 0 {width} {h}\" width=\"{width}\" height=\"{h}\" \
         role=\"img\" aria-label=\"Collections of the last hour: duration and API calls\">\n\
         <rect x=\"0\" y=\"0\" width=\"{width}\" height=\"{height}\" class=\"frame\"/>\n",
        h = height + 16.0,
    )?;
    for p in points {
        let bar = (height * p.duration.as_secs_f64() / longest).max(1.0);
        writeln!(
            out,
            "<rect class=\"{class}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"3\" height=\"{bar:.1}\">\
             <title>{ago} ago: {duration}, {calls} API calls{failed}</title></rect>",
            class = if p.success {
                "duration"
            } else {
                "duration failed"
            },
            x = (x(p) - 3.0).max(0.0),
            y = height - bar,
            ago = human(Duration::from_secs_f64(ago(p))),
            duration = human(p.duration),
            calls = p.api_calls,
            failed = if p.success { "" } else { ", failed" },
        )?;
    }
    let line: Vec<String> = points
        .iter()
        .map(|p| format!("{:.1},{:.1}", x(p), calls_y(p)))
        .collect();
    writeln!(
        out,
        "<polyline class=\"calls\" points=\"{}\"/>\n\
         <text x=\"2\" y=\"{label_y}\">60 min ago</text>\
         <text x=\"{width}\" y=\"{label_y}\" text-anchor=\"end\">now</text>\n</svg>\n\
         <p class=\"legend\"><span class=\"key duration\"></span> duration (longest {longest}) \
         <span class=\"key calls\"></span> API calls (most {most_calls}), {n} collection(s)</p>",
        line.join(" "),
        label_y = height + 13.0,
        longest = human(Duration::from_secs_f64(longest)),
        n = points.len(),
    )?;
    out.push_str("</section>\n");
    Ok(())
}

fn write_budget(out: &mut String, app: View<'_>) -> std::fmt::Result {
    out.push_str("<section><h2>GitLab API</h2>\n<dl>\n");
    let limit = *app
        .metrics
        .api
        .rate_limit
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    match limit {
        Some(limit) => {
            let share = if limit.limit > 0 {
                limit.remaining as f64 / limit.limit as f64
            } else {
                0.0
            };
            let now = host_time();
            writeln!(
                out,
                "<dt>Rate-limit budget</dt><dd><meter min=\"0\" max=\"1\" low=\"0.2\" optimum=\"1\" value=\"{share:.3}\"></meter> \
                 {remaining} of {total} left, window resets in {reset}</dd>",
                remaining = limit.remaining,
                total = limit.limit,
                reset = human(Duration::from_secs(
                    u64::try_from(limit.reset - now).unwrap_or(0)
                )),
            )?;
        }
        None => out.push_str(
            "<dt>Rate-limit budget</dt><dd>GitLab sent no RateLimit headers (yet)</dd>\n",
        ),
    }
    let errors = app
        .metrics
        .api
        .errors_by_reason
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if errors.is_empty() {
        out.push_str("<dt>Failed calls</dt><dd class=\"ok\">none</dd>\n");
    } else {
        let list: Vec<String> = errors
            .iter()
            .map(|(reason, n)| format!("{n} {}", escape(reason)))
            .collect();
        writeln!(
            out,
            "<dt>Failed calls</dt><dd class=\"warn\">{} (since start, retries included)</dd>",
            list.join(", ")
        )?;
    }
    out.push_str("</dl>\n</section>\n");
    Ok(())
}

/// `1.2 s`, `3 min 4 s`, `2 h 5 min`.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 if d < Duration::from_secs(10) => format!("{:.1} s", d.as_secs_f64()),
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

/// UTC, to the second.
fn rfc3339(t: SystemTime) -> String {
    format_timestamp(unix_seconds(t))
}

/// HTML text and attribute escaping, after redacting secrets (before escaping, which would
/// change how they are written).
pub fn escape(s: &str) -> String {
    crate::redact::redact(s)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A query-string value.
fn percent_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#222}\
header{display:flex;align-items:baseline;gap:1rem}h1{margin:0}.version{color:#666}\
h2{font-size:1.1rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}\
dl{display:grid;grid-template-columns:max-content auto;gap:.3rem 1.5rem}dt{color:#555}dd{margin:0}\
table{border-collapse:collapse}td,th{padding:.2rem .8rem;border-bottom:1px solid #eee;text-align:left}\
.ok{color:#1a7f37}.bad{color:#cf222e}.warn{color:#9a6700}.pending{color:#666}.scope{color:#333}\
meter{width:8rem}.collectors{margin-top:.8rem}\
svg.history{max-width:100%;height:auto;font-size:11px;fill:#666}.history .frame{fill:#fafafa;stroke:#ddd}\
.history .duration{fill:#6e9bd1}.history .failed{fill:#cf222e}.history .calls{fill:none;stroke:#9a6700;stroke-width:1.5}\
.legend{color:#555;font-size:.9rem}.key{display:inline-block;width:.8rem;height:.8rem;vertical-align:middle}\
.key.duration{background:#6e9bd1}.key.calls{background:#9a6700}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(human(Duration::from_millis(1234)), "1.2 s");
        assert_eq!(human(Duration::from_secs(42)), "42 s");
        assert_eq!(human(Duration::from_secs(184)), "3 min 4 s");
        assert_eq!(human(Duration::from_secs(7500)), "2 h 5 min");
        assert_eq!(
            escape("<a href=\"x\">&</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
        );
    }
}
