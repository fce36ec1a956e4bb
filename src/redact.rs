//! Secrets kept out of everything the exporter shows: the value of every [`Secret`] made in the
//! process (the GitLab token, and earlier tokens after a reload) and passwords in URLs are
//! replaced by `<redacted>` in any text, once it has been decoded, before it is logged, put on
//! the status page, in an error message or in a label.
//!
//! [`redact`] is applied where text from the network becomes something shown (error messages,
//! after JSON decoding and before shortening; label values; the status page) and, as a last
//! line, to every log line ([`Stderr`]), where the token is also looked for as JSON escapes it.
//!
//!
use std::borrow::Cow;
use std::fmt;
use std::io::Write;
use std::sync::{Arc, RwLock};

/// What replaces a secret.
pub const REDACTED: &str = "<redacted>";

/// A secret string (the GitLab token). It has no `Display`, and its `Debug` never shows the value,
/// so it cannot end up in a log line or an error message by accident; and its value is
/// redacted from everything the exporter shows (this module), should it come back from
/// the network.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        let value = value.into();
        register(&value);
        Self(value)
    }

    /// The secret itself, for the one place that must send it (the GitLab client).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Secrets remembered: enough for the current token and a few rotated ones.
const REMEMBERED: usize = 16;

/// The secrets to look for, as they may appear: each value, and its JSON-escaped form when that
/// differs (a log line in JSON shows `"` and `\` escaped).
static SECRETS: RwLock<Vec<Box<str>>> = RwLock::new(Vec::new());

/// Adds a secret to look for (called by `Secret::new`). Empty values are ignored.
pub(crate) fn register(secret: &str) {
    if secret.is_empty() {
        return;
    }
    let escaped = serde_json::to_string(secret).unwrap_or_default();
    let escaped = escaped.trim_start_matches('"').trim_end_matches('"');
    let mut secrets = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    for form in [secret, escaped] {
        if !form.is_empty() && !secrets.iter().any(|s| **s == *form) {
            secrets.push(form.into());
        }
    }
    let excess = secrets.len().saturating_sub(2 * REMEMBERED);
    secrets.drain(..excess);
}

/// `text` with every secret replaced (ASCII case ignored, so an upper-cased token is caught
/// too) and the password of every URL (`scheme://user:password@host`; the whole user part when
/// there is no password, since it may be a token) replaced by [`REDACTED`]. Borrowed when there
/// is nothing to replace.
pub fn redact(text: &str) -> Cow<'_, str> {
    let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    let mut out = Cow::Borrowed(text);
    for secret in secrets.iter() {
        if let Some(replaced) = replace_ignoring_case(&out, secret) {
            out = Cow::Owned(replaced);
        }
    }
    drop(secrets);
    match redact_userinfo(&out) {
        Some(replaced) => Cow::Owned(replaced),
        None => out,
    }
}

/// `text` with each occurrence of `needle` (ASCII case ignored) replaced, if there is one.
fn replace_ignoring_case(text: &str, needle: &str) -> Option<String> {
    let (hay, pattern) = (text.as_bytes(), needle.as_bytes());
    if pattern.is_empty() || hay.len() < pattern.len() {
        return None;
    }
    let mut out: Option<String> = None;
    let (mut copied, mut i) = (0, 0);
    while i + pattern.len() <= hay.len() {
        if hay[i..i + pattern.len()].eq_ignore_ascii_case(pattern) {
            let out = out.get_or_insert_with(|| String::with_capacity(text.len()));
            // Both ends are on character boundaries: the pattern starts and ends with whole
            // characters, and ASCII case folding maps only ASCII bytes.
            out.push_str(&text[copied..i]);
            out.push_str(REDACTED);
            i += pattern.len();
            copied = i;
        } else {
            i += 1;
        }
    }
    let mut out = out?;
    out.push_str(&text[copied..]);
    Some(out)
}

/// `text` with the user part of every URL's authority redacted, if there is one: the password
/// after `user:`, or the whole user part without a colon.
fn redact_userinfo(text: &str) -> Option<String> {
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut search = 0;
    while let Some(found) = text[search..].find("://") {
        let start = search + found + 3;
        search = start;
        let authority_len = text[start..]
            .find(|c: char| {
                matches!(c, '/' | '?' | '#' | '"' | '\'' | '<' | '>' | '`') || c.is_whitespace()
            })
            .unwrap_or(text.len() - start);
        let authority = &text[start..start + authority_len];
        let Some(at) = authority.rfind('@') else {
            continue;
        };
        let userinfo = &authority[..at];
        let hidden_from = match userinfo.find(':') {
            Some(colon) => start + colon + 1,
            None => start,
        };
        if hidden_from == start + at {
            continue; // `user:@host`: nothing to hide
        }
        let out = out.get_or_insert_with(|| String::with_capacity(text.len()));
        out.push_str(&text[copied..hidden_from]);
        out.push_str(REDACTED);
        copied = start + at;
        search = start + authority_len;
    }
    let mut out = out?;
    out.push_str(&text[copied..]);
    Some(out)
}

/// Standard error for the log, each line redacted before it is written (the last line of
/// defence: every field of every event, however it was formatted).
#[derive(Debug, Clone, Copy, Default)]
pub struct Stderr;

/// One log line, written redacted when dropped.
#[derive(Debug, Default)]
pub struct Line(Vec<u8>);

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Stderr {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line::default()
    }
}

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        let _ = std::io::stderr().lock().write_all(redact(&text).as_bytes());
    }
}

/// `text` redacted, then as one safe log line of at most `max` characters (see [`one_line`]).
pub(crate) fn log_line(text: &str, max: usize) -> String {
    one_line(&redact(text), max)
}

/// `text` as one safe log line of at most `max` characters: characters that would break or
/// disguise it become spaces, trailing space is cut. Redact before: a cut through a secret
/// would leave its first part.
pub(crate) fn one_line(text: &str, max: usize) -> String {
    let mut line: String = text
        .chars()
        .map(|c| if is_unsafe_in_a_log_line(c) { ' ' } else { c })
        .take(max)
        .collect();
    line.truncate(line.trim_end().len());
    line
}

/// Characters that would break or disguise a log line: controls, Unicode line and paragraph
/// separators, and bidirectional overrides (which reorder what a terminal shows).
pub(crate) fn is_unsafe_in_a_log_line(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
        )
        || ('\u{202A}'..='\u{202E}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_replaced_whatever_their_case() {
        register("glpat-redact-me-0123456789");
        assert_eq!(
            redact("token glpat-redact-me-0123456789 and GLPAT-REDACT-ME-0123456789!"),
            "token <redacted> and <redacted>!"
        );
        assert!(matches!(redact("nothing here"), Cow::Borrowed(_)));
        assert_eq!(
            redact("glpat-redact-me-012345678"),
            "glpat-redact-me-012345678"
        );
        assert_eq!(redact("ü glpat-redact-me-0123456789 ü"), "ü <redacted> ü");
        register("");
        assert_eq!(redact("x"), "x");
    }

    #[test]
    fn json_escaped_forms_are_replaced_too() {
        register("tok\"en\\with-quotes-42");
        assert_eq!(
            redact(r#"{"message":"tok\"en\\with-quotes-42"}"#),
            r#"{"message":"<redacted>"}"#
        );
        assert_eq!(redact("tok\"en\\with-quotes-42"), "<redacted>");
    }

    #[test]
    fn passwords_in_urls() {
        assert_eq!(
            redact("redirected to https://user:hunter2@gitlab.example.com/api/v4"),
            "redirected to https://user:<redacted>@gitlab.example.com/api/v4"
        );
        assert_eq!(
            redact("http://glpat-abc@proxy:3128 failed"),
            "http://<redacted>@proxy:3128 failed"
        );
        assert_eq!(
            redact("a http://x:y@h, b https://p:q@r/s?u=v@w"),
            "a http://x:<redacted>@h, b https://p:<redacted>@r/s?u=v@w"
        );
        assert_eq!(redact("http://user:@h"), "http://user:@h");
        for plain in [
            "https://gitlab.com/api/v4",
            "mail me@example.com",
            "://@",
            "a://b",
        ] {
            assert_eq!(redact(plain), plain);
        }
    }
}
