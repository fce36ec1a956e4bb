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

/// Howard Hinnant's `days_from_civil`: (year, month, day) to days since 1970-01-01.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Reads exactly `n` ASCII digits at the start of `s`.
fn digits(s: &[u8], n: usize) -> Option<(i64, &[u8])> {
    let head = s.get(..n)?;
    if !head.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = head
        .iter()
        .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0'));
    Some((v, &s[n..]))
}

/// An ISO 8601 / RFC 3339 time as GitLab's `DateTime` parameters take it: `2026-11-20`,
/// `2026-11-20T10:15`, `2026-11-20T10:15:00`, with optional fraction and zone (`Z`, `+01:00`,
/// `-0500`; none = UTC). A space before the offset is read as `+` (an unencoded `+` in a query
/// string arrives as a space). Returns Unix seconds (fraction dropped) and whether a non-zero
/// fraction was given, or `None` when it is not a time.
pub(crate) fn parse_datetime(s: &str) -> Option<(i64, bool)> {
    let b = s.trim().as_bytes();
    let (year, b) = digits(b, 4)?;
    let b = b.strip_prefix(b"-")?;
    let (month, b) = digits(b, 2)?;
    let b = b.strip_prefix(b"-")?;
    let (day, b) = digits(b, 2)?;
    let month = u32::try_from(month).ok().filter(|m| (1..=12).contains(m))?;
    let day = u32::try_from(day).ok().filter(|d| *d >= 1)?;
    let days = days_from_civil(year, month, day);
    // Reject 2026-02-30 and the like: the day must survive the round trip.
    if civil_from_days(days) != (year, month, day) {
        return None;
    }
    let date = days * 86_400;
    let Some((&sep, b)) = b.split_first() else {
        return Some((date, false));
    };
    if !matches!(sep, b'T' | b't' | b' ') {
        return None;
    }
    let (hour, b) = digits(b, 2)?;
    let b = b.strip_prefix(b":")?;
    let (minute, mut b) = digits(b, 2)?;
    let mut second = 0;
    if let Some(rest) = b.strip_prefix(b":") {
        (second, b) = digits(rest, 2)?;
    }
    let mut fraction = false;
    if let Some(rest) = b.strip_prefix(b".").or_else(|| b.strip_prefix(b",")) {
        let n = rest.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        fraction = rest[..n].iter().any(|c| *c != b'0');
        b = &rest[n..];
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let offset = match b.split_first() {
        None => 0,
        Some((b'Z' | b'z', [])) => 0,
        Some((&sign @ (b'+' | b'-' | b' '), rest)) => {
            let (oh, rest) = digits(rest, 2)?;
            let rest = rest.strip_prefix(b":").unwrap_or(rest);
            let (om, rest) = if rest.is_empty() {
                (0, rest)
            } else {
                digits(rest, 2)?
            };
            if !rest.is_empty() || oh > 23 || om > 59 {
                return None;
            }
            let secs = oh * 3_600 + om * 60;
            if sign == b'-' { -secs } else { secs }
        }
        Some(_) => return None,
    };
    Some((
        date + hour * 3_600 + minute * 60 + second - offset,
        fraction,
    ))
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

    #[test]
    fn parses_iso_8601_times() {
        let t = 1_795_169_700; // 2026-11-20T10:15:00Z
        for s in [
            "2026-11-20T10:15:00Z",
            "2026-11-20T10:15:00.000Z",
            "2026-11-20T10:15Z",
            "2026-11-20T10:15:00",
            "2026-11-20 10:15:00",
            "2026-11-20T11:15:00+01:00",
            "2026-11-20T11:15:00 01:00",
            "2026-11-20T05:15:00-0500",
            " 2026-11-20t10:15:00z ",
        ] {
            assert_eq!(parse_datetime(s), Some((t, false)), "{s}");
        }
        assert_eq!(parse_datetime("2026-11-20T10:15:00.250Z"), Some((t, true)));
        assert_eq!(parse_datetime("2026-11-20"), Some((t - 36_900, false)));
        assert_eq!(
            parse_datetime("2000-02-29T00:00:00Z"),
            Some((951_782_400, false))
        );
        for bad in [
            "",
            "yesterday",
            "1795169700",
            "2026-02-30",
            "2026-13-01",
            "2026-11-20T25:00:00Z",
            "2026-11-20T10:15:00+",
            "2026-11-20T10:15:00Zjunk",
            "2026-11-20T10",
            "2026-11-20T10:15:00.Z",
        ] {
            assert_eq!(parse_datetime(bad), None, "{bad}");
        }
        assert_eq!(
            rfc3339_z(parse_datetime("2026-11-25T09:20:47Z").map_or(0, |t| t.0)),
            "2026-11-25T09:20:47.000Z"
        );
    }
}
