//! `http_server_config.headers`: the extra response headers, limited to exporter-toolkit's
//! list, two of them to fixed values.

use hyper::header::{HeaderName, HeaderValue};

/// A header of `http_server_config.headers` that cannot be set. The message starts with the
/// header's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// The header is not one of those exporter-toolkit lets a config set.
    #[error(
        "{name}: this header cannot be configured; the ones that can are {}",
        allowed_names()
    )]
    NotAllowed {
        /// The name as written.
        name: String,
    },
    /// The header only takes some values (`X-Frame-Options`, `X-Content-Type-Options`), and this
    /// is not one of them.
    #[error("{name}: invalid value '{value}'; expected {}", expected.join(" or "))]
    InvalidValue {
        /// The header's canonical name.
        name: &'static str,
        /// The value as written.
        value: String,
        /// The values it may take (compared without regard to case).
        expected: &'static [&'static str],
    },
    /// The value has characters an HTTP header cannot carry.
    #[error("{name}: '{value}' cannot be sent in an HTTP header")]
    Unsendable {
        /// The header's canonical name.
        name: &'static str,
        /// The value as written.
        value: String,
    },
}

/// exporter-toolkit's list: only these may be set, two of them to fixed values.
const ALLOWED_HEADERS: [(&str, &[&str]); 5] = [
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

fn allowed_names() -> String {
    let names: Vec<&str> = ALLOWED_HEADERS.iter().map(|(n, _)| *n).collect();
    names.join(", ")
}

/// The headers to send, in the file's order; one set to "" is left out ("Unset if blank").
pub(crate) fn validate_headers(
    headers: Vec<(String, String)>,
) -> Result<Vec<(HeaderName, HeaderValue)>, HeaderError> {
    let mut out = Vec::new();
    for (name, value) in headers {
        let Some(&(canonical, allowed)) = ALLOWED_HEADERS
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(&name))
        else {
            return Err(HeaderError::NotAllowed { name });
        };
        if value.is_empty() {
            continue; // "Unset if blank."
        }
        if !allowed.is_empty() && !allowed.iter().any(|a| a.eq_ignore_ascii_case(&value)) {
            return Err(HeaderError::InvalidValue {
                name: canonical,
                value,
                expected: allowed,
            });
        }
        let Ok(header_value) = HeaderValue::from_str(&value) else {
            return Err(HeaderError::Unsendable {
                name: canonical,
                value,
            });
        };
        // Lowercased, as HTTP/1.1 header names are sent.
        let name = HeaderName::from_bytes(canonical.as_bytes())
            .expect("the names of ALLOWED_HEADERS are valid header names");
        out.push((name, header_value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_listed_headers_with_their_values() {
        let headers = |pairs: &[(&str, &str)]| {
            validate_headers(
                pairs
                    .iter()
                    .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                    .collect(),
            )
        };
        let every: Vec<(&str, &str)> = ALLOWED_HEADERS
            .iter()
            .map(|(n, values)| (*n, values.first().copied().unwrap_or("x")))
            .collect();
        assert_eq!(headers(&every).unwrap().len(), ALLOWED_HEADERS.len());
        let err = headers(&[("Content-Type", "text/html")]).unwrap_err();
        assert_eq!(
            err,
            HeaderError::NotAllowed {
                name: "Content-Type".to_owned()
            }
        );
        assert!(
            err.to_string()
                .starts_with("Content-Type: this header cannot be configured; the ones that can are Strict-Transport-Security, "),
            "{err}"
        );
        let err = headers(&[("x-frame-options", "allow")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "X-Frame-Options: invalid value 'allow'; expected deny or sameorigin"
        );
        let err = headers(&[("X-XSS-Protection", "1\u{7f}")]).unwrap_err();
        assert!(
            matches!(
                err,
                HeaderError::Unsendable {
                    name: "X-XSS-Protection",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(headers(&[("X-Frame-Options", "")]).unwrap().is_empty());
    }
}
