//! When each GitLab API call may start: a fixed cap (`--gitlab.max-requests-per-second`), the
//! quota GitLab announces in `RateLimit-*` headers (spread out before it runs out, rather than
//! running into 429s), and a pause for every call after a 429 that says how long to wait.
//!
//! All calls of the process share one [`Pacer`], so pacing holds across concurrent calls and
//! across collections.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::types::host_time;

/// Calls kept in hand when spreading the remaining quota: room for other clients of the same
/// user and for answers counted by GitLab after they left.
const RESERVE: u64 = 2;
/// Longest pause taken on GitLab's word (a `Retry-After` or a reset time further away is
/// capped: a broken header must not stall the exporter for hours).
pub(super) const MAX_PAUSE: Duration = Duration::from_secs(300);

/// GitLab's rate-limit headers of one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// `RateLimit-Limit`: calls allowed per window.
    pub limit: u64,
    /// `RateLimit-Remaining`: calls left in the window.
    pub remaining: u64,
    /// `RateLimit-Reset`: when the window ends, Unix seconds on GitLab's clock.
    pub reset: i64,
}

impl RateLimit {
    /// The headers of an answer, when all three are there and numbers.
    pub fn from_headers(headers: &ureq::http::HeaderMap) -> Option<RateLimit> {
        let number =
            |name: &str| -> Option<u64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
        Some(RateLimit {
            limit: number("ratelimit-limit")?,
            remaining: number("ratelimit-remaining")?,
            reset: i64::try_from(number("ratelimit-reset")?).ok()?,
        })
    }
}

/// The last rate-limit headers seen, shared with the metrics.
pub type LastRateLimit = Arc<Mutex<Option<RateLimit>>>;

/// The shared schedule of call starts.
#[derive(Debug)]
pub struct Pacer {
    /// Least time between two starts, from the fixed cap.
    interval: Duration,
    state: Mutex<State>,
    last: LastRateLimit,
}

#[derive(Debug)]
struct State {
    /// The earliest start of the next call.
    next: Instant,
    /// No call starts before this (after a 429).
    paused_until: Option<Instant>,
    /// The quota as last announced, counting down with each call started since.
    quota: Option<Quota>,
}

#[derive(Debug, Clone, Copy)]
struct Quota {
    limit: u64,
    remaining: u64,
    /// GitLab's reset time, identifying the window.
    reset: i64,
    /// The same, on this host's monotonic clock.
    reset_at: Instant,
}

impl Pacer {
    /// A pacer capping starts at `max_per_second` (0: no fixed cap).
    pub fn new(max_per_second: f64, last: LastRateLimit) -> Pacer {
        let interval = if max_per_second > 0.0 {
            Duration::from_secs_f64((1.0 / max_per_second).min(3600.0))
        } else {
            Duration::ZERO
        };
        Pacer {
            interval,
            state: Mutex::new(State {
                next: Instant::now(),
                paused_until: None,
                quota: None,
            }),
            last,
        }
    }

    /// Waits until the next call may start, and books its slot.
    pub async fn wait(&self) {
        let mut at = self.book(Instant::now());
        loop {
            tokio::time::sleep_until(at).await;
            // A 429 may have paused every call while this one waited for its slot.
            let paused = self
                .state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .paused_until;
            match paused {
                Some(until) if until > at => at = until,
                _ => return,
            }
        }
    }

    /// The start time of a call asked for at `now`, booked.
    fn book(&self, now: Instant) -> Instant {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut at = state.next.max(now);
        if let Some(until) = state.paused_until {
            if until > at {
                at = until;
            } else {
                state.paused_until = None;
            }
        }
        let mut gap = self.interval;
        if let Some(quota) = &mut state.quota {
            if quota.reset_at <= at {
                // A new window: its quota is unknown until the next answer tells.
                state.quota = None;
            } else {
                let usable = quota.remaining.saturating_sub(RESERVE);
                if usable == 0 {
                    // Out of calls: wait for the window to end (plus a second, as GitLab's
                    // reset times are whole seconds).
                    at = quota.reset_at + Duration::from_secs(1);
                    state.quota = None;
                } else {
                    if quota.remaining <= quota.limit / 2 {
                        // Below half the quota: spread what is left over what is left of the
                        // window, so that it lasts.
                        let left = quota.reset_at - at;
                        gap = gap.max(left / u32::try_from(usable).unwrap_or(u32::MAX));
                    }
                    quota.remaining -= 1;
                }
            }
        }
        state.next = at + gap;
        at
    }

    /// Takes in an answer's rate-limit headers; `date` is the answer's `Date` (GitLab's clock),
    /// to turn the reset time into a wait whatever this host's clock says. `in_flight` other
    /// calls are out: GitLab may count them after this answer, so they are counted as spent.
    pub fn observe(&self, limit: RateLimit, date: Option<i64>, in_flight: usize) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(limit);
        let now_gitlab = date.unwrap_or_else(host_time);
        let wait =
            Duration::from_secs(u64::try_from(limit.reset.saturating_sub(now_gitlab)).unwrap_or(0))
                .min(MAX_PAUSE);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let reported = limit
            .remaining
            .saturating_sub(u64::try_from(in_flight).unwrap_or(u64::MAX));
        let remaining = match state.quota {
            // Answers arrive out of order, and calls started since are already counted: within
            // one window, the lowest count wins.
            Some(q) if q.reset == limit.reset => q.remaining.min(reported),
            _ => reported,
        };
        state.quota = Some(Quota {
            limit: limit.limit,
            remaining,
            reset: limit.reset,
            reset_at: Instant::now() + wait,
        });
    }

    /// No call starts for `wait` (after a 429 with `Retry-After`).
    pub fn pause(&self, wait: Duration) {
        let until = Instant::now() + wait.min(MAX_PAUSE);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.paused_until.is_none_or(|p| p < until) {
            state.paused_until = Some(until);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pacer(rate: f64) -> Pacer {
        Pacer::new(rate, LastRateLimit::default())
    }

    #[tokio::test(start_paused = true)]
    async fn fixed_rate_spaces_starts() {
        let p = pacer(0.5);
        let t0 = Instant::now();
        let starts: Vec<Duration> = (0..4).map(|_| p.book(t0) - t0).collect();
        assert_eq!(
            starts,
            [0, 2, 4, 6].map(Duration::from_secs).to_vec(),
            "one call every 2 s"
        );
        assert_eq!(pacer(0.0).book(t0), t0, "no cap: at once");
    }

    #[tokio::test(start_paused = true)]
    async fn quota_is_spread_below_half_and_waited_out_when_spent() {
        let p = pacer(0.0);
        let t0 = Instant::now();
        // 100 per window, 60 left, 30 s to go: no pacing yet.
        let date = 1_000_000;
        p.observe(
            RateLimit {
                limit: 100,
                remaining: 60,
                reset: date + 30,
            },
            Some(date),
            0,
        );
        assert_eq!(p.book(t0), t0);
        // 40 left: spread 38 usable over 30 s.
        p.observe(
            RateLimit {
                limit: 100,
                remaining: 40,
                reset: date + 30,
            },
            Some(date),
            0,
        );
        assert_eq!(p.book(t0), t0);
        let second = p.book(t0) - t0;
        assert!(
            second >= Duration::from_millis(780) && second <= Duration::from_millis(800),
            "{second:?}"
        );
        // A late answer with a higher count does not raise it.
        p.observe(
            RateLimit {
                limit: 100,
                remaining: 90,
                reset: date + 30,
            },
            Some(date),
            0,
        );
        assert!(p.state.lock().unwrap().quota.unwrap().remaining <= 38);
        // Spent: the next call waits for the reset (+1 s).
        p.observe(
            RateLimit {
                limit: 100,
                remaining: 2,
                reset: date + 30,
            },
            Some(date),
            0,
        );
        let waited = p.book(t0) - t0;
        assert!(waited >= Duration::from_secs(31), "{waited:?}");
        assert_eq!(
            *p.last.lock().unwrap(),
            Some(RateLimit {
                limit: 100,
                remaining: 2,
                reset: date + 30
            })
        );
    }

    #[tokio::test(start_paused = true)]
    async fn pause_holds_every_call() {
        let p = pacer(0.0);
        let t0 = Instant::now();
        p.pause(Duration::from_secs(7));
        p.pause(Duration::from_secs(3));
        assert_eq!(p.book(t0) - t0, Duration::from_secs(7));
        assert_eq!(p.book(t0) - t0, Duration::from_secs(7));
        p.pause(Duration::from_secs(100_000));
        assert_eq!(p.book(t0) - t0, MAX_PAUSE);
    }

    /// Calls that booked a slot before a 429's pause wait for the pause too.
    #[tokio::test(start_paused = true)]
    async fn booked_calls_respect_a_later_pause() {
        let p = std::sync::Arc::new(pacer(2.0));
        let t0 = Instant::now();
        let calls: Vec<_> = (0..6)
            .map(|_| {
                let p = std::sync::Arc::clone(&p);
                tokio::spawn(async move {
                    p.wait().await;
                    Instant::now() - t0
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        p.pause(Duration::from_secs(60)); // the first call got a 429 with Retry-After: 60
        let mut during = Vec::new();
        for c in calls {
            let started = c.await.unwrap();
            if started > Duration::from_millis(100) && started < Duration::from_secs(60) {
                during.push(started);
            }
        }
        assert!(during.is_empty(), "started during the pause: {during:?}");
    }

    /// A spent quota's reset does not cut a longer 429 pause short.
    #[tokio::test(start_paused = true)]
    async fn spent_quota_keeps_a_longer_pause() {
        let p = pacer(0.0);
        let t0 = Instant::now();
        p.pause(Duration::from_secs(60));
        p.observe(
            RateLimit {
                limit: 100,
                remaining: 1,
                reset: 1_000_010,
            },
            Some(1_000_000),
            0,
        );
        let at = p.book(t0) - t0;
        assert!(
            at >= Duration::from_secs(60),
            "starts at {at:?}, inside the 60 s pause"
        );
    }

    /// Hostile RateLimit-Reset and Date values do not overflow the subtraction.
    #[test]
    fn reset_minus_date_does_not_overflow() {
        let p = Pacer::new(0.0, LastRateLimit::default());
        p.observe(
            RateLimit {
                limit: 1,
                remaining: 1,
                reset: i64::MAX,
            },
            Some(-62_135_596_800),
            0,
        );
    }
}
