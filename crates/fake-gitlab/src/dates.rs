//! The timestamps the fake GitLab writes (API times in the instance's zone, commit times, HTTP
//! dates) and reads (`DateTime` query parameters), on top of the `time` crate.

use std::sync::OnceLock;

use time::format_description::BorrowedFormatItem;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use super::common::splitmix64;

/// How an instance writes its times (`created_at`, `last_activity_at`, merge request and commit
/// times). The default is gitlab.com's: UTC, whole seconds written `.000`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timestamps {
    /// The instance's time zone (`gitlab_rails['time_zone']`), in minutes east of UTC: 0
    /// writes API times with `Z` and commit times with `+00:00`; -300 writes both with `-05:00`.
    /// Clamped to ±23:59.
    pub utc_offset_minutes: i16,
    /// Real milliseconds: each instant gets a millisecond part, [`Timestamps::millis`] of its
    /// second (so one instant always reads the same), instead of `.000`. Filters on times
    /// (`updated_after` and the like) compare with the milliseconds.
    pub milliseconds: bool,
}

impl Timestamps {
    /// A self-managed instance in a zone `utc_offset_minutes` east of UTC, writing real
    /// milliseconds (`2024-03-01T09:15:27.913-05:00`).
    pub fn self_managed(utc_offset_minutes: i16) -> Timestamps {
        Timestamps {
            utc_offset_minutes,
            milliseconds: true,
        }
    }

    /// The millisecond part written for an instant of second `secs` (Unix): 0 without
    /// [`milliseconds`](Self::milliseconds), else a varied, deterministic 0..=999.
    pub fn millis(self, secs: i64) -> u16 {
        if self.milliseconds {
            (splitmix64(secs as u64 ^ 0x05EC_02D5) % 1_000) as u16
        } else {
            0
        }
    }

    fn offset(self) -> UtcOffset {
        let minutes = self.utc_offset_minutes.clamp(-(23 * 60 + 59), 23 * 60 + 59);
        let (hours, minutes) = ((minutes / 60) as i8, (minutes % 60) as i8);
        UtcOffset::from_hms(hours, minutes, 0).unwrap_or(UtcOffset::UTC)
    }

    /// `2026-11-20T10:15:00.000Z` in UTC, `2026-11-20T05:15:00.000-05:00` elsewhere: Rails'
    /// `xmlschema(3)` in the instance's zone, as GitLab writes project and merge request times.
    pub(crate) fn api(self, secs: i64) -> String {
        let offset = self.offset();
        let zone = if offset.is_utc() {
            "Z".to_owned()
        } else {
            format_offset(offset)
        };
        format!("{}{zone}", self.local(secs, offset))
    }

    /// `2026-11-20T10:15:00.000+00:00`: commit times always carry a numeric offset.
    pub(crate) fn commit(self, secs: i64) -> String {
        let offset = self.offset();
        format!("{}{}", self.local(secs, offset), format_offset(offset))
    }

    /// The local date and time of `secs` at `offset`, with milliseconds, without the zone.
    fn local(self, secs: i64, offset: UtcOffset) -> String {
        static FORMAT: OnceLock<Vec<BorrowedFormatItem<'static>>> = OnceLock::new();
        let t = instant(secs)
            .replace_millisecond(self.millis(secs))
            .ok()
            .and_then(|t| t.checked_to_offset(offset))
            .unwrap_or_else(|| instant(secs));
        t.format(description(
            &FORMAT,
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]",
        ))
        .unwrap_or_default()
    }
}

/// `+00:00`, `-05:00`.
fn format_offset(offset: UtcOffset) -> String {
    static FORMAT: OnceLock<Vec<BorrowedFormatItem<'static>>> = OnceLock::new();
    offset
        .format(description(
            &FORMAT,
            "[offset_hour sign:mandatory]:[offset_minute]",
        ))
        .unwrap_or_default()
}

/// A format description parsed once (`text` is a constant the tests cover).
fn description(
    cell: &'static OnceLock<Vec<BorrowedFormatItem<'static>>>,
    text: &'static str,
) -> &'static [BorrowedFormatItem<'static>] {
    cell.get_or_init(|| time::format_description::parse(text).unwrap_or_default())
}

/// `secs` (Unix) as a UTC instant, clamped to the years `time` knows (±9999).
fn instant(secs: i64) -> OffsetDateTime {
    let min = Date::MIN.midnight().assume_utc().unix_timestamp();
    let max = Date::MAX.with_time(Time::MAX).assume_utc().unix_timestamp();
    OffsetDateTime::from_unix_timestamp(secs.clamp(min, max)).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// `2026-11-20T10:15:00.000Z` (UTC, `.000`), the default form of project and merge request times.
#[cfg(test)]
pub(crate) fn rfc3339_z(secs: i64) -> String {
    Timestamps::default().api(secs)
}

/// `2026-11-20T10:15:00.000+00:00` (UTC, `.000`), the default form of commit times.
#[cfg(test)]
pub(crate) fn rfc3339_offset(secs: i64) -> String {
    Timestamps::default().commit(secs)
}

/// `Tue, 05 Jan 2021 11:00:00 GMT` (RFC 9110 IMF-fixdate), used by `Date` and
/// `RateLimit-ResetTime`.
pub(crate) fn http_date(secs: i64) -> String {
    static FORMAT: OnceLock<Vec<BorrowedFormatItem<'static>>> = OnceLock::new();
    instant(secs)
        .format(description(
            &FORMAT,
            "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT",
        ))
        .unwrap_or_default()
}

/// Reads exactly `n` ASCII digits at the start of `s`.
fn digits(s: &[u8], n: usize) -> Option<(u32, &[u8])> {
    let head = s.get(..n)?;
    if !head.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = head
        .iter()
        .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'));
    Some((v, &s[n..]))
}

/// An ISO 8601 / RFC 3339 time as GitLab's `DateTime` parameters take it: `2026-11-20`,
/// `2026-11-20T10:15`, `2026-11-20T10:15:00`, with optional fraction and zone (`Z`, `+01:00`,
/// `-0500`; none = UTC). A space before the offset is read as `+` (an unencoded `+` in a query
/// string arrives as a space). Returns Unix seconds and the fraction's nanoseconds, or `None`
/// when it is not a time.
pub(crate) fn parse_datetime(s: &str) -> Option<(i64, u32)> {
    let b = s.trim().as_bytes();
    let (year, b) = digits(b, 4)?;
    let b = b.strip_prefix(b"-")?;
    let (month, b) = digits(b, 2)?;
    let b = b.strip_prefix(b"-")?;
    let (day, b) = digits(b, 2)?;
    let month = Month::try_from(u8::try_from(month).ok()?).ok()?;
    let date =
        Date::from_calendar_date(i32::try_from(year).ok()?, month, u8::try_from(day).ok()?).ok()?;
    let Some((&sep, b)) = b.split_first() else {
        return Some((date.midnight().assume_utc().unix_timestamp(), 0));
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
    let mut nanos = 0;
    if let Some(rest) = b.strip_prefix(b".").or_else(|| b.strip_prefix(b",")) {
        let n = rest.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        // Nanoseconds: the first nine digits, the rest dropped.
        nanos = rest[..n.min(9)]
            .iter()
            .chain(std::iter::repeat(&b'0'))
            .take(9)
            .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'));
        b = &rest[n..];
    }
    let time = Time::from_hms_nano(
        u8::try_from(hour).ok()?,
        u8::try_from(minute).ok()?,
        u8::try_from(second).ok()?,
        nanos,
    )
    .ok()?;
    let offset = match b.split_first() {
        None => UtcOffset::UTC,
        Some((b'Z' | b'z', [])) => UtcOffset::UTC,
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
            let (oh, om) = (i8::try_from(oh).ok()?, i8::try_from(om).ok()?);
            let (oh, om) = if sign == b'-' { (-oh, -om) } else { (oh, om) };
            UtcOffset::from_hms(oh, om, 0).ok()?
        }
        Some(_) => return None,
    };
    let t = PrimitiveDateTime::new(date, time).assume_offset(offset);
    Some((t.unix_timestamp(), t.nanosecond()))
}

/// Wall-clock seconds since the Unix epoch.
pub(crate) fn now_unix() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
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
        assert_eq!(http_date(i64::MAX), "Fri, 31 Dec 9999 23:59:59 GMT");
    }

    #[test]
    fn self_managed_times_carry_the_zone_and_milliseconds() {
        // 2024-03-01T14:15:27Z.
        let t = 1_709_302_527;
        let stamps = Timestamps::self_managed(-300);
        let ms = stamps.millis(t);
        assert_eq!(stamps.api(t), format!("2024-03-01T09:15:27.{ms:03}-05:00"));
        assert_eq!(
            stamps.commit(t),
            format!("2024-03-01T09:15:27.{ms:03}-05:00")
        );
        let east = Timestamps::self_managed(5 * 60 + 30);
        assert_eq!(east.api(t), format!("2024-03-01T19:45:27.{ms:03}+05:30"));
        let utc = Timestamps::self_managed(0);
        assert_eq!(utc.api(t), format!("2024-03-01T14:15:27.{ms:03}Z"));
        assert_eq!(utc.commit(t), format!("2024-03-01T14:15:27.{ms:03}+00:00"));
        // Varied, and each instant always the same.
        let distinct: std::collections::BTreeSet<u16> =
            (t..t + 50).map(|s| stamps.millis(s)).collect();
        assert!(distinct.len() > 40, "{distinct:?}");
        assert_eq!(stamps.millis(t), Timestamps::self_managed(60).millis(t));
        assert_eq!(Timestamps::default().millis(t), 0);
        // What is written reads back as the same instant.
        let written = stamps.api(t);
        assert_eq!(
            parse_datetime(&written),
            Some((t, u32::from(ms) * 1_000_000))
        );
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
            assert_eq!(parse_datetime(s), Some((t, 0)), "{s}");
        }
        assert_eq!(
            parse_datetime("2026-11-20T10:15:00.250Z"),
            Some((t, 250_000_000))
        );
        assert_eq!(
            parse_datetime("2026-11-20T10:15:00.1234567891Z"),
            Some((t, 123_456_789))
        );
        assert_eq!(parse_datetime("2026-11-20"), Some((t - 36_900, 0)));
        assert_eq!(
            parse_datetime("2000-02-29T00:00:00Z"),
            Some((951_782_400, 0))
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
