//! Calendar arithmetic for the timestamps the fake GitLab prints (RFC 3339 and HTTP dates), without a date crate.

use std::time::{SystemTime, UNIX_EPOCH};

/// A UTC instant broken into calendar fields.
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: i64,
    minute: i64,
    second: i64,
    /// 0 = Sunday.
    weekday: usize,
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn civil(secs: i64) -> Civil {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    Civil {
        year,
        month,
        day,
        hour: rem / 3_600,
        minute: rem % 3_600 / 60,
        second: rem % 60,
        // 1970-01-01 was a Thursday.
        weekday: (days + 4).rem_euclid(7) as usize,
    }
}

/// `2026-11-20T10:15:00.000Z`, the form GitLab uses for project and merge request times.
pub(crate) fn rfc3339_z(secs: i64) -> String {
    let c = civil(secs);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.000Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// `2026-11-20T10:15:00.000+00:00`, the form GitLab uses for commit times.
pub(crate) fn rfc3339_offset(secs: i64) -> String {
    let c = civil(secs);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.000+00:00",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// `Tue, 05 Jan 2021 11:00:00 GMT` (RFC 9110 IMF-fixdate), used by `RateLimit-ResetTime`.
pub(crate) fn http_date(secs: i64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let c = civil(secs);
    let month = MONTHS[(c.month as usize).saturating_sub(1) % 12];
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAYS[c.weekday], c.day, month, c.year, c.hour, c.minute, c.second
    )
}

/// Wall-clock seconds since the Unix epoch (0 if the clock is before 1970).
pub(crate) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_match_gitlab_examples() {
        assert_eq!(http_date(1_609_844_400), "Tue, 05 Jan 2021 11:00:00 GMT");
        assert_eq!(rfc3339_z(1_795_169_700), "2026-11-20T10:15:00.000Z");
        assert_eq!(rfc3339_offset(0), "1970-01-01T00:00:00.000+00:00");
        assert_eq!(rfc3339_z(951_782_400), "2000-02-29T00:00:00.000Z");
        assert_eq!(http_date(-1), "Wed, 31 Dec 1969 23:59:59 GMT");
    }
}
