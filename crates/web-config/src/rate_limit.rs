//! `rate_limit`: exporter-toolkit's token bucket over every request, and the Go durations its
//! `interval` is written in.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::raw::{RawRateLimit, Scalar};

/// A `rate_limit` section that cannot be used. The message starts with the key within
/// `rate_limit`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RateLimitError {
    /// `interval` is not a Go duration, or a negative one.
    #[error("interval: '{value}' is not a duration (examples: 100ms, 1s, 1m30s)")]
    Interval {
        /// The value as written.
        value: String,
    },
    /// `burst` is negative.
    #[error("burst: {value} must be 0 or more (requests saved up)")]
    Burst {
        /// The value as written.
        value: i64,
    },
}

/// exporter-toolkit's `rate_limit`: a token bucket (Go's `rate.NewLimiter(rate.Every(interval),
/// burst)`) over every request: one token per `interval`, at most `burst` saved up, full at
/// start; a request finding no token is refused. `burst: 0` refuses everything, as in Go.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    interval: Duration,
    burst: u32,
    /// Tokens left, and when they were counted.
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    /// `None` when `interval` is 0 or unset (no rate limit, as in exporter-toolkit).
    pub(crate) fn new(raw: RawRateLimit) -> Result<Option<RateLimiter>, RateLimitError> {
        let interval = match raw.interval {
            None => Duration::ZERO,
            Some(Scalar(text)) => {
                go_duration(&text).ok_or(RateLimitError::Interval { value: text })?
            }
        };
        let burst = raw.burst.unwrap_or(0);
        let burst = u32::try_from(burst).map_err(|_| RateLimitError::Burst { value: burst })?;
        if interval.is_zero() {
            return Ok(None);
        }
        Ok(Some(RateLimiter {
            interval,
            burst,
            state: Mutex::new((f64::from(burst), Instant::now())),
        }))
    }

    /// Takes a token if there is one.
    pub(crate) fn allow(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, counted) = &mut *state;
        let now = Instant::now();
        let earned = now.duration_since(*counted).as_secs_f64() / self.interval.as_secs_f64();
        *tokens = (*tokens + earned).min(f64::from(self.burst));
        *counted = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A Go duration (`time.ParseDuration`, as exporter-toolkit's YAML reads it): decimal numbers
/// with units `ns`, `us` (or `µs`), `ms`, `s`, `m`, `h`, such as `1.5s` or `1h30m`; a bare
/// integer is nanoseconds (yaml.v2's reading of an integer). Negative durations are refused.
fn go_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_nanos(text.parse().ok()?));
    }
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number = rest
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        let value: f64 = rest[..number].parse().ok()?;
        rest = &rest[number..];
        let unit = rest
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(rest.len(), |(i, _)| i);
        let seconds = match &rest[..unit] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit..];
        total += value * seconds;
    }
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    use hyper::StatusCode;
    use hyper::header;

    use crate::DeniedKind;
    use crate::test_support::parse;

    #[test]
    fn rate_limit_is_a_token_bucket() {
        let config = parse("rate_limit:\n  interval: 100ms\n  burst: 3\n").unwrap();
        let admitted = (0..10).filter(|_| config.admit().is_none()).count();
        assert_eq!(admitted, 3, "the burst, then nothing");
        let denied = config.admit().unwrap();
        assert_eq!(denied.kind(), DeniedKind::RateLimited);
        let response = denied.response(|text| text);
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        std::thread::sleep(Duration::from_millis(220));
        let refilled = (0..10).filter(|_| config.admit().is_none()).count();
        assert_eq!(refilled, 2, "one token per interval");
        // As in exporter-toolkit: burst 0 admits nothing, interval 0 turns the limit off.
        let closed = parse("rate_limit:\n  interval: 1s\n").unwrap();
        assert!(closed.admit().is_some());
        let off = parse("rate_limit:\n  interval: 0s\n  burst: 0\n").unwrap();
        assert!(off.admit().is_none());
        assert!(parse("").unwrap().admit().is_none());
    }

    #[test]
    fn go_durations() {
        let ms = Duration::from_millis;
        assert_eq!(go_duration("1s"), Some(ms(1000)));
        assert_eq!(go_duration("1.5s"), Some(ms(1500)));
        assert_eq!(go_duration("1h30m"), Some(ms(5_400_000)));
        assert_eq!(go_duration("250ms"), Some(ms(250)));
        assert_eq!(go_duration("10us"), Some(Duration::from_micros(10)));
        assert_eq!(
            go_duration("1000000000"),
            Some(ms(1000)),
            "bare integers are nanoseconds"
        );
        assert_eq!(go_duration("0"), Some(Duration::ZERO));
        for bad in ["", "s", "-1s", "1x", "1s2", "1..5s", "1d"] {
            assert_eq!(go_duration(bad), None, "{bad:?}");
        }
    }
}
