//! The refusals of a request before it is served (401 for credentials, 429 for a busy password
//! check or the rate limit): why, and the response that says so.

use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

/// `WWW-Authenticate` of a 401.
pub(crate) const WWW_AUTHENTICATE: &str = "Basic realm=\"gitlab-api-exporter\", charset=\"UTF-8\"";

/// What [`WebConfig::admit`](crate::WebConfig::admit) and
/// [`WebConfig::authorize`](crate::WebConfig::authorize) say: `None` when the request may
/// proceed, otherwise the refusal to answer.
pub type AuthResult = Option<Denied>;

/// A request refused before it is served: answer it with [`Denied::response`], and log
/// [`Denied::reason`] or count [`Denied::kind`] if you like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Denied {
    reason: &'static str,
    kind: DeniedKind,
}

/// Why a request was refused, and so which status it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeniedKind {
    /// No, malformed or wrong credentials: 401.
    Unauthorized,
    /// Too many password checks waiting (a flood of guesses): 429, try again in a second.
    Busy,
    /// Over `rate_limit`: 429.
    RateLimited,
}

impl DeniedKind {
    /// The kind as a metric label: `unauthorized`, `auth_busy` or `rate_limited`.
    pub fn label(self) -> &'static str {
        match self {
            DeniedKind::Unauthorized => "unauthorized",
            DeniedKind::Busy => "auth_busy",
            DeniedKind::RateLimited => "rate_limited",
        }
    }
}

impl Denied {
    pub(crate) const NO_CREDENTIALS: Denied =
        Denied::unauthorized("no basic authentication credentials");
    pub(crate) const MALFORMED: Denied = Denied::unauthorized("malformed Authorization header");
    pub(crate) const WRONG: Denied = Denied::unauthorized("wrong user name or password");
    pub(crate) const BUSY: Denied = Denied {
        reason: "too many password checks waiting",
        kind: DeniedKind::Busy,
    };
    pub(crate) const RATE_LIMITED: Denied = Denied {
        reason: "over the rate_limit of the web config",
        kind: DeniedKind::RateLimited,
    };

    const fn unauthorized(reason: &'static str) -> Denied {
        Denied {
            reason,
            kind: DeniedKind::Unauthorized,
        }
    }

    /// Why, for a log line (never says which of user or password was wrong).
    pub fn reason(&self) -> &'static str {
        self.reason
    }

    /// Which kind of refusal.
    pub fn kind(&self) -> DeniedKind {
        self.kind
    }

    /// The answer: 401 with `WWW-Authenticate: Basic …`, or 429 with `Retry-After: 1`, with
    /// the plain-text body `body` makes of the message. The extra headers are the caller's to
    /// add, as on any response.
    pub fn response<B>(&self, body: impl FnOnce(&'static str) -> B) -> Response<B> {
        let (status, text) = match self.kind {
            DeniedKind::Unauthorized => (StatusCode::UNAUTHORIZED, "Unauthorized\n"),
            DeniedKind::Busy => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too Many Requests: too many password checks are waiting; try again in a second\n",
            ),
            DeniedKind::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "Too Many Requests\n"),
        };
        let mut response = Response::new(body(text));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        if self.kind == DeniedKind::Unauthorized {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(WWW_AUTHENTICATE),
            );
        } else {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response
    }
}
