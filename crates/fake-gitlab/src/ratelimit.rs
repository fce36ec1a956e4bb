//! Rack::Attack-style fixed-window throttle (60 s windows aligned to the minute, or shorter
//! ones for tests) and its `RateLimit-*` headers.

use std::sync::Mutex;

use super::dates::http_date;

/// Outcome of admitting one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// True when the request is over the limit and must get the 429.
    pub(crate) throttled: bool,
    /// Headers to add to the answer (the 429 ones included when throttled).
    pub(crate) headers: Vec<(&'static str, String)>,
}

/// Request counter of the current window.
#[derive(Debug, Default)]
pub(crate) struct RateLimiter {
    /// (window start, requests seen in it).
    window: Mutex<(u64, u64)>,
}

impl RateLimiter {
    /// Counts one request at `now` (Unix seconds) against `limit` per window of `period`
    /// seconds (windows aligned to multiples of the period).
    pub(crate) fn admit(&self, limit: u32, period: u64, now: u64, authenticated: bool) -> Verdict {
        let start = now - now % period;
        let observed = {
            let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
            if w.0 != start {
                *w = (start, 0);
            }
            w.1 += 1;
            w.1
        };
        let limit = u64::from(limit);
        let reset = start + period;
        let name = if authenticated {
            "throttle_authenticated_api"
        } else {
            "throttle_unauthenticated_api"
        };
        let mut headers = vec![
            ("RateLimit-Name", name.to_string()),
            ("RateLimit-Limit", limit.to_string()),
            ("RateLimit-Observed", observed.to_string()),
            (
                "RateLimit-Remaining",
                limit.saturating_sub(observed).to_string(),
            ),
            ("RateLimit-Reset", reset.to_string()),
        ];
        let throttled = observed > limit;
        if throttled {
            headers.push(("Retry-After", (reset - now).to_string()));
            headers.push((
                "RateLimit-ResetTime",
                http_date(i64::try_from(reset).unwrap_or(i64::MAX)),
            ));
        }
        Verdict { throttled, headers }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(v: &'a Verdict, name: &str) -> &'a str {
        v.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    #[test]
    fn fixed_window_throttles_and_resets() {
        let rl = RateLimiter::default();
        let t0 = 1_609_844_370; // 30 s before 11:00:00
        let first = rl.admit(2, 60, t0, true);
        assert!(!first.throttled);
        assert_eq!(get(&first, "RateLimit-Name"), "throttle_authenticated_api");
        assert_eq!(get(&first, "RateLimit-Remaining"), "1");
        assert_eq!(get(&first, "RateLimit-Reset"), "1609844400");
        assert_eq!(first.headers.len(), 5);
        assert!(!rl.admit(2, 60, t0 + 1, true).throttled);
        let third = rl.admit(2, 60, t0 + 2, false);
        assert!(third.throttled);
        assert_eq!(get(&third, "RateLimit-Observed"), "3");
        assert_eq!(get(&third, "RateLimit-Remaining"), "0");
        assert_eq!(get(&third, "Retry-After"), "28");
        assert_eq!(
            get(&third, "RateLimit-ResetTime"),
            "Tue, 05 Jan 2021 11:00:00 GMT"
        );
        assert_eq!(
            get(&third, "RateLimit-Name"),
            "throttle_unauthenticated_api"
        );
        let next_window = rl.admit(2, 60, t0 + 30, true);
        assert!(!next_window.throttled);
        assert_eq!(get(&next_window, "RateLimit-Observed"), "1");
    }
}
