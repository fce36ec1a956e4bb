//! GitLab's GraphQL API as the exporter uses it: one query sent as `POST /api/graphql`, and
//! what its answer means. GitLab answers query errors (syntax, unknown field, too complex, too
//! deep) with HTTP 200 and an `errors` array: an answer without data is [`Error::Refused`],
//! never a success; an answer with data and errors is partial ([`Answer::errors`] say where,
//! by path). The score GitLab gave the query comes back when the query asks for
//! `queryComplexity { score limit }`.

use prometheus_client::encoding::EncodeLabelSet;
use serde::Deserialize;
use serde_json::Value;

use super::{Client, Error, endpoint};
use crate::redact::log_line;

/// Labels of `gitlab_exporter_graphql_requests_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GraphqlLabels {
    /// Which query: `projects` (a page of the listing), `named_projects`, or the family whose
    /// batch it is (`merge_requests`).
    pub operation: &'static str,
    /// `success`, `partial` (data with errors), `refused` (errors only) or `error` (no usable
    /// answer: HTTP error, timeout, transport).
    pub result: &'static str,
}

/// Labels of the per-query gauges (complexity, batch size).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    /// As in [`GraphqlLabels`].
    pub operation: &'static str,
}

/// Labels of `gitlab_exporter_rest_fallbacks_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FallbackLabels {
    /// Why REST was used instead: `unavailable` (GitLab answered 404/405 on /api/graphql: REST
    /// from then on), `refused` (GitLab refused a query as invalid: REST for that query's
    /// projects for the rest of the collection), `failed` (a batch failed even for one project),
    /// `partial` (a project's fields came back with errors), `count_over_limit` (a
    /// merge-request count above GraphQL's limit of 1,000, counted exactly over REST).
    pub reason: &'static str,
}

/// A GraphQL answer with data.
#[derive(Debug)]
pub struct Answer {
    /// `data`.
    pub data: Value,
    /// The errors of a partial answer.
    pub errors: Vec<FieldError>,
}

/// One entry of `errors`.
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "RawFieldError")]
pub struct FieldError {
    /// GitLab's message.
    pub message: String,
    /// Where in `data` (field names and list indices); empty for a query-level error.
    pub path: Vec<Value>,
}

/// An entry of `errors` as sent: any field may be missing or null.
#[derive(Deserialize)]
struct RawFieldError {
    #[serde(default)]
    message: Option<Value>,
    #[serde(default)]
    path: Option<Vec<Value>>,
}

impl From<RawFieldError> for FieldError {
    fn from(raw: RawFieldError) -> FieldError {
        FieldError {
            message: match raw.message {
                Some(Value::String(m)) => m,
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            },
            path: raw.path.unwrap_or_default(),
        }
    }
}

impl FieldError {
    /// GitLab gave up on the query for time: graphql-ruby's timeout ("Timeout on Type.field",
    /// an answer with the fields not yet resolved null) or the database's ("Request timed out").
    pub fn is_timeout(&self) -> bool {
        let m = self.message.to_ascii_lowercase();
        m.starts_with("timeout on") || m.contains("timed out")
    }

    /// True when the error is about `at` or something within it (`path` starts with `at`).
    pub fn within(&self, at: &[Value]) -> bool {
        self.path.len() >= at.len() && self.path[..at.len()] == *at
    }
}

/// `queryComplexity { score limit }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Complexity {
    /// The query's score.
    pub score: u64,
    /// The most GitLab allows this caller.
    pub limit: u64,
}

/// The body of a GraphQL answer.
#[derive(Debug, Deserialize)]
struct RawAnswer {
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    errors: Vec<FieldError>,
}

/// What a refusal says about the query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Over the complexity limit, or over GitLab's time: a smaller batch may pass.
    TooBig,
    /// Anything else (syntax, unknown field or argument, depth): the query is wrong for this
    /// GitLab, which is a bug of the exporter or a GitLab that lacks a field.
    Invalid,
}

impl Answer {
    /// The answer, unless GitLab ran out of time on part of the query (a partial answer with
    /// timeout errors, the fields it had no time for null): then [`Error::Refused`] with the
    /// timeout's message, which [`Error::refusal`] reads as too big (a smaller query may pass).
    pub fn unless_timed_out(self, operation: &'static str) -> Result<Answer, Error> {
        match self.errors.iter().find(|e| e.is_timeout()) {
            Some(e) => Err(Error::Refused {
                endpoint: endpoint::GRAPHQL,
                operation,
                message: log_line(&e.message, 300),
            }),
            None => Ok(self),
        }
    }
}

impl Error {
    /// GitLab's answer says it has no GraphQL API here (404 or 405 on `/api/graphql`, as an
    /// instance or a proxy without it answers).
    pub fn is_graphql_unavailable(&self) -> bool {
        self.endpoint() == endpoint::GRAPHQL && matches!(self.status(), Some(404 | 405))
    }

    /// For a refused or failed GraphQL query, whether a smaller one may pass: refused as too
    /// complex ("exceeds max complexity") or as too slow (graphql-ruby's "Timeout on", the
    /// database's "Request timed out", answered as 503), timed out here
    /// (`--gitlab.request-timeout`), or a 5xx that outlived the retries. `None` for other errors.
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            Error::Refused { message, .. } => {
                let m = message.to_ascii_lowercase();
                let too_big = m.contains("exceeds max complexity")
                    || m.starts_with("timeout on")
                    || m.contains("timed out");
                Some(if too_big {
                    Refusal::TooBig
                } else {
                    Refusal::Invalid
                })
            }
            Error::Timeout { .. } | Error::TooLarge { .. } => Some(Refusal::TooBig),
            Error::Status {
                status: 500..=599, ..
            } => Some(Refusal::TooBig),
            // "Query too large": the text, which does not grow with the batch.
            Error::Status {
                status: 413 | 422, ..
            } => Some(Refusal::Invalid),
            _ => None,
        }
    }
}

impl Client {
    /// Runs one GraphQL query (`operation` names it in the self-metrics). An answer without
    /// data is [`Error::Refused`]; one with data and errors is returned with the errors.
    pub async fn graphql(
        &self,
        operation: &'static str,
        query: &str,
        variables: Value,
    ) -> Result<Answer, Error> {
        let body = serde_json::to_vec(&serde_json::json!({
            "query": query,
            "variables": variables,
        }))
        .unwrap_or_default();
        let counters = self.counters();
        let count = |result: &'static str| {
            counters
                .graphql
                .get_or_create(&GraphqlLabels { operation, result })
                .inc();
        };
        let raw = match self.post_graphql::<RawAnswer>(body).await {
            Ok(reply) => reply.body,
            Err(e) => {
                count("error");
                return Err(e);
            }
        };
        let data = match raw.data {
            Some(Value::Object(map)) if !map.is_empty() => Value::Object(map),
            _ => {
                count("refused");
                self.counters_error(endpoint::GRAPHQL, "refused");
                let message = raw
                    .errors
                    .first()
                    .map_or("an answer with neither data nor errors", |e| &e.message);
                return Err(Error::Refused {
                    endpoint: endpoint::GRAPHQL,
                    operation,
                    message: log_line(message, 300),
                });
            }
        };
        count(if raw.errors.is_empty() {
            "success"
        } else {
            "partial"
        });
        let complexity = data
            .get("queryComplexity")
            .and_then(|c| Complexity::deserialize(c).ok());
        if let Some(c) = complexity {
            counters
                .graphql_complexity
                .get_or_create(&OperationLabels { operation })
                .set(i64::try_from(c.score).unwrap_or(i64::MAX));
            counters
                .graphql_complexity_limit
                .set(i64::try_from(c.limit).unwrap_or(i64::MAX));
        }
        Ok(Answer {
            data,
            errors: raw.errors,
        })
    }

    /// Counts a use of REST in place of GraphQL.
    pub fn rest_fallback(&self, reason: &'static str) {
        self.counters()
            .rest_fallbacks
            .get_or_create(&FallbackLabels { reason })
            .inc();
    }

    /// Reports the batch size a query runs at.
    pub fn batch_size(&self, operation: &'static str, size: usize) {
        self.counters()
            .graphql_batch_size
            .get_or_create(&OperationLabels { operation })
            .set(i64::try_from(size).unwrap_or(i64::MAX));
    }
}

/// The numeric id of a GraphQL global id (`gid://gitlab/Project/42` → 42).
pub fn gid_number(gid: &str) -> Option<u64> {
    gid.rsplit_once('/')?.1.parse().ok()
}

/// A project's global id.
pub fn project_gid(id: u64) -> String {
    format!("gid://gitlab/Project/{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_ids() {
        assert_eq!(gid_number("gid://gitlab/Project/42"), Some(42));
        assert_eq!(gid_number("gid://gitlab/Project/x"), None);
        assert_eq!(gid_number("42"), None);
        assert_eq!(project_gid(7), "gid://gitlab/Project/7");
    }

    #[test]
    fn refusals() {
        let refused = |message: &str| Error::Refused {
            endpoint: endpoint::GRAPHQL,
            operation: "projects",
            message: message.to_owned(),
        };
        assert_eq!(
            refused("Query has complexity of 300, which exceeds max complexity of 250").refusal(),
            Some(Refusal::TooBig)
        );
        assert_eq!(
            refused("Field 'nope' doesn't exist on type 'Project'").refusal(),
            Some(Refusal::Invalid)
        );
        assert_eq!(
            refused("Field 'queryComplexity' doesn't exist on type 'Query'").refusal(),
            Some(Refusal::Invalid)
        );
        assert_eq!(
            refused("Timeout on Project.mergeRequests").refusal(),
            Some(Refusal::TooBig)
        );
        assert!(
            Error::Status {
                endpoint: endpoint::GRAPHQL,
                status: 405,
                message: String::new()
            }
            .is_graphql_unavailable()
        );
        assert!(
            !Error::Status {
                endpoint: endpoint::PROJECTS,
                status: 404,
                message: String::new()
            }
            .is_graphql_unavailable()
        );
    }

    #[test]
    fn errors_with_null_or_missing_fields() {
        let e: FieldError = serde_json::from_str(r#"{"message":null,"path":null}"#).unwrap();
        assert_eq!((e.message.as_str(), e.path.len()), ("", 0));
        let e: FieldError =
            serde_json::from_str(r#"{"message":"Timeout on Project.repository"}"#).unwrap();
        assert!(e.is_timeout());
    }

    #[test]
    fn error_paths() {
        let e: FieldError = serde_json::from_str(
            r#"{"message":"boom","path":["projects","nodes",3,"opened","count"]}"#,
        )
        .unwrap();
        assert!(e.within(&[
            Value::from("projects"),
            Value::from("nodes"),
            Value::from(3)
        ]));
        assert!(!e.within(&[
            Value::from("projects"),
            Value::from("nodes"),
            Value::from(4)
        ]));
    }
}
