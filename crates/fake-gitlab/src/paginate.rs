//! Query-string parsing, offset and keyset page selection, and GitLab's pagination headers (`X-*`, `Link`).

use super::dates::{Timestamps, parse_datetime};

/// `per_page` when missing or not positive.
pub(crate) const DEFAULT_PER_PAGE: u64 = 20;
/// `per_page` is silently clamped to this.
pub(crate) const MAX_PER_PAGE: u64 = 100;
/// Above this many records GitLab drops `X-Total`, `X-Total-Pages` and `rel="last"`.
pub(crate) const COUNT_LIMIT: u64 = 10_000;

/// A parameter GitLab's parameter validation (Grape) rejects with 400 `{"error": ...}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadParam(pub String);

impl BadParam {
    fn invalid(key: &str) -> BadParam {
        BadParam(format!("{key} is invalid"))
    }

    fn not_valid_value(key: &str) -> BadParam {
        BadParam(format!("{key} does not have a valid value"))
    }
}

/// One `key=value` pair of the query string.
#[derive(Debug, Clone)]
struct Param {
    /// As received (still percent-encoded), reused verbatim in `Link` URLs.
    raw: String,
    key: String,
    value: String,
}

/// The request's query string, decoded, with the raw form kept for `Link` URLs.
#[derive(Debug, Clone, Default)]
pub(crate) struct Query {
    params: Vec<Param>,
}

impl Query {
    /// Parses `a=1&b=x%20y`; never fails (malformed escapes are kept literally).
    pub(crate) fn parse(query: Option<&str>) -> Query {
        let params = query
            .unwrap_or("")
            .split('&')
            .filter(|s| !s.is_empty())
            .map(|raw| {
                let (k, v) = raw.split_once('=').unwrap_or((raw, ""));
                Param {
                    raw: raw.to_string(),
                    key: decode_component(k, true),
                    value: decode_component(v, true),
                }
            })
            .collect();
        Query { params }
    }

    /// The last value given for `key` (Rack semantics); empty values count as missing.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .rev()
            .find(|p| p.key == key)
            .map(|p| p.value.as_str())
            .filter(|v| !v.is_empty())
    }

    /// A Grape `Boolean` parameter.
    pub(crate) fn bool(&self, key: &str) -> Result<Option<bool>, BadParam> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        match v.to_ascii_lowercase().as_str() {
            "true" | "t" | "1" | "yes" | "y" => Ok(Some(true)),
            "false" | "f" | "0" | "no" | "n" => Ok(Some(false)),
            _ => Err(BadParam::invalid(key)),
        }
    }

    /// A Grape `Integer` parameter.
    pub(crate) fn int(&self, key: &str) -> Result<Option<i64>, BadParam> {
        self.get(key)
            .map(|v| v.trim().parse::<i64>().map_err(|_| BadParam::invalid(key)))
            .transpose()
    }

    /// A Grape `DateTime` parameter as an inclusive bound in whole seconds of the times the
    /// instance writes (`stamps`: second `s` is written as `s` plus its milliseconds): a lower
    /// bound (`*_after`, `>=`) keeps its own second when the time written in that second is
    /// not earlier than the bound, an upper bound (`*_before`, `<=`) when it is not later.
    pub(crate) fn datetime(
        &self,
        key: &str,
        lower: bool,
        stamps: Timestamps,
    ) -> Result<Option<i64>, BadParam> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let (secs, nanos) = parse_datetime(v).ok_or_else(|| BadParam::invalid(key))?;
        let written = u32::from(stamps.millis(secs)) * 1_000_000;
        Ok(Some(match lower {
            true if written < nanos => secs + 1,
            false if written > nanos => secs - 1,
            _ => secs,
        }))
    }

    /// A parameter restricted to `allowed` values.
    pub(crate) fn choice<'a>(
        &self,
        key: &str,
        allowed: &[&'a str],
    ) -> Result<Option<&'a str>, BadParam> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        allowed
            .iter()
            .find(|a| **a == v)
            .map(|a| Some(*a))
            .ok_or_else(|| BadParam::not_valid_value(key))
    }

    /// `base + path + ?query` with every parameter kept in order, `replace` keys set in place
    /// (or appended when absent).
    pub(crate) fn href(&self, base: &str, path: &str, replace: &[(&str, String)]) -> String {
        let mut parts: Vec<String> = Vec::with_capacity(self.params.len() + replace.len());
        let mut done = vec![false; replace.len()];
        for p in &self.params {
            match replace.iter().position(|(k, _)| *k == p.key) {
                Some(i) if done[i] => {}
                Some(i) => {
                    done[i] = true;
                    parts.push(format!("{}={}", replace[i].0, replace[i].1));
                }
                None => parts.push(p.raw.clone()),
            }
        }
        for (i, (k, v)) in replace.iter().enumerate() {
            if !done[i] {
                parts.push(format!("{k}={v}"));
            }
        }
        format!("{base}{path}?{}", parts.join("&"))
    }
}

/// Percent-decodes `s` (and `+` as space in query components); invalid escapes stay literal,
/// invalid UTF-8 becomes U+FFFD, so nothing ever fails.
pub(crate) fn decode_component(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The page asked for: effective values plus the raw ones GitLab's offset limit multiplies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PageRequest {
    /// Effective page, >= 1.
    pub(crate) page: u64,
    /// Effective page size, 1..=100.
    pub(crate) per_page: u64,
    raw_page: i64,
    raw_per_page: i64,
}

impl PageRequest {
    /// Reads `page` and `per_page`: missing or <= 0 fall back to 1 and 20, `per_page` > 100 is clamped.
    pub(crate) fn from_query(q: &Query) -> Result<PageRequest, BadParam> {
        let raw_page = q.int("page")?.unwrap_or(1);
        let raw_per_page = q.int("per_page")?.unwrap_or(DEFAULT_PER_PAGE as i64);
        let page = u64::try_from(raw_page).ok().filter(|p| *p > 0).unwrap_or(1);
        let per_page = u64::try_from(raw_per_page)
            .ok()
            .filter(|p| *p > 0)
            .map_or(DEFAULT_PER_PAGE, |p| p.min(MAX_PER_PAGE));
        Ok(PageRequest {
            page,
            per_page,
            raw_page,
            raw_per_page,
        })
    }

    /// Index of the first record of the page.
    pub(crate) fn offset(&self) -> u64 {
        (self.page - 1).saturating_mul(self.per_page)
    }

    /// GitLab's `offset_limit_exceeded?`: `limit > 0 && params[:page] * params[:per_page] > limit`,
    /// computed on the parameters as sent (not clamped).
    pub(crate) fn exceeds_offset_limit(&self, limit: u64) -> bool {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        limit > 0 && self.raw_page.saturating_mul(self.raw_per_page) > limit
    }
}

/// The 405 body for an offset beyond the limit, for records of type `kind` (e.g. `Project`).
pub(crate) fn offset_limit_message(limit: u64, kind: &str) -> String {
    format!(
        "Offset pagination has a maximum allowed offset of {limit} for requests that return objects of type {kind}. Remaining records can be retrieved using keyset pagination."
    )
}

/// What the offset pagination headers of one answered page say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetPage {
    pub(crate) page: u64,
    pub(crate) per_page: u64,
    pub(crate) prev: Option<u64>,
    pub(crate) next: Option<u64>,
    /// `None`: no `X-Total`, `X-Total-Pages` nor `rel="last"`.
    pub(crate) total: Option<u64>,
}

impl OffsetPage {
    /// A collection of `total` records: counted up to 10,000, Kaminari's without-count mode above.
    pub(crate) fn for_total(req: &PageRequest, total: u64) -> OffsetPage {
        if total > COUNT_LIMIT {
            let end = req.offset().saturating_add(req.per_page);
            OffsetPage::uncounted(req, req.offset() < total, end < total)
        } else {
            OffsetPage::counted(req, total)
        }
    }

    /// Kaminari with a count: `prev`/`next` are absent outside the collection.
    fn counted(req: &PageRequest, total: u64) -> OffsetPage {
        let pages = total.div_ceil(req.per_page);
        let out_of_range = req.page > pages;
        OffsetPage {
            page: req.page,
            per_page: req.per_page,
            prev: (req.page > 1 && !out_of_range).then(|| req.page - 1),
            next: (req.page < pages).then(|| req.page + 1),
            total: Some(total),
        }
    }

    /// Kaminari's without-count mode: one record looked ahead decides `next`; an empty page has no `prev`.
    pub(crate) fn uncounted(req: &PageRequest, has_items: bool, has_next: bool) -> OffsetPage {
        OffsetPage {
            page: req.page,
            per_page: req.per_page,
            prev: (req.page > 1 && has_items).then(|| req.page - 1),
            next: has_next.then(|| req.page + 1),
            total: None,
        }
    }

    /// Modern commits listing: no totals, and a next page whenever this page is full (even if
    /// nothing follows: the phantom page).
    pub(crate) fn commits(req: &PageRequest, len: usize) -> OffsetPage {
        OffsetPage {
            page: req.page,
            per_page: req.per_page,
            prev: (req.page > 1).then(|| req.page - 1),
            next: (len as u64 >= req.per_page).then(|| req.page + 1),
            total: None,
        }
    }

    /// `X-Page`, `X-Per-Page`, `X-Next-Page`, `X-Prev-Page`, `Link`, then `X-Total` and
    /// `X-Total-Pages` when counted, as in GitLab's `OffsetHeaderBuilder`.
    pub(crate) fn headers(&self, q: &Query, base: &str, path: &str) -> Vec<(&'static str, String)> {
        let per_page = self.per_page.to_string();
        let href = |page: u64| {
            q.href(
                base,
                path,
                &[("page", page.to_string()), ("per_page", per_page.clone())],
            )
        };
        let total_pages = self.total.map(|t| t.div_ceil(self.per_page).max(1));
        let mut links = Vec::with_capacity(4);
        if let Some(prev) = self.prev {
            links.push(format!("<{}>; rel=\"prev\"", href(prev)));
        }
        if let Some(next) = self.next {
            links.push(format!("<{}>; rel=\"next\"", href(next)));
        }
        links.push(format!("<{}>; rel=\"first\"", href(1)));
        if let Some(last) = total_pages {
            links.push(format!("<{}>; rel=\"last\"", href(last)));
        }
        let opt = |v: Option<u64>| v.map(|n| n.to_string()).unwrap_or_default();
        let mut h = vec![
            ("X-Page", self.page.to_string()),
            ("X-Per-Page", per_page.clone()),
            ("X-Next-Page", opt(self.next)),
            ("X-Prev-Page", opt(self.prev)),
            ("Link", links.join(", ")),
        ];
        if let (Some(total), Some(pages)) = (self.total, total_pages) {
            h.push(("X-Total", total.to_string()));
            h.push(("X-Total-Pages", pages.to_string()));
        }
        h
    }
}

/// Picks the requested page out of an already filtered and ordered sequence, counting at most
/// 10,001 records like GitLab (so a huge collection is not walked to its end).
pub(crate) fn select_offset<T>(
    items: impl Iterator<Item = T>,
    req: &PageRequest,
) -> (Vec<T>, OffsetPage) {
    let start = req.offset();
    let end = start.saturating_add(req.per_page);
    let mut page = Vec::with_capacity(req.per_page as usize);
    let mut count = 0u64;
    for item in items {
        if count >= start && count < end {
            page.push(item);
        }
        count += 1;
        if count > COUNT_LIMIT && count > end {
            break;
        }
    }
    let info = if count > COUNT_LIMIT {
        OffsetPage::uncounted(req, !page.is_empty(), count > end)
    } else {
        OffsetPage::for_total(req, count)
    };
    (page, info)
}

/// Keyset direction on `order_by=id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeysetOrder {
    /// `sort=asc`: the next page is `id_after=<last id>`.
    Asc,
    /// `sort=desc`: the next page is `id_before=<last id>`.
    Desc,
}

/// The keyset `Link` header: only `rel="next"`, after the page's last record, on every page with
/// a record, short ones included (`Gitlab::Pagination::Keyset::Pager#apply_headers` returns only
/// when the page is empty): a walk ends on an empty page, which has none.
pub(crate) fn keyset_headers(
    q: &Query,
    base: &str,
    path: &str,
    order: KeysetOrder,
    page_ids: &[u64],
) -> Vec<(&'static str, String)> {
    match page_ids.last() {
        Some(last) => {
            let key = match order {
                KeysetOrder::Asc => "id_after",
                KeysetOrder::Desc => "id_before",
            };
            let url = q.href(base, path, &[(key, last.to_string())]);
            vec![("Link", format!("<{url}>; rel=\"next\""))]
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "http://h:1";
    const PATH: &str = "/api/v4/things";

    fn req(q: &str) -> (Query, PageRequest) {
        let q = Query::parse(Some(q));
        let r = PageRequest::from_query(&q).unwrap_or_else(|e| panic!("{e:?}"));
        (q, r)
    }

    fn header<'a>(h: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
        h.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn header_builder_matches_documented_example() {
        let (q, r) = req("page=2&per_page=3");
        let h = OffsetPage::for_total(&r, 8).headers(&q, BASE, PATH);
        assert_eq!(header(&h, "X-Page"), Some("2"));
        assert_eq!(header(&h, "X-Per-Page"), Some("3"));
        assert_eq!(header(&h, "X-Next-Page"), Some("3"));
        assert_eq!(header(&h, "X-Prev-Page"), Some("1"));
        assert_eq!(header(&h, "X-Total"), Some("8"));
        assert_eq!(header(&h, "X-Total-Pages"), Some("3"));
        assert_eq!(
            header(&h, "Link"),
            Some(
                "<http://h:1/api/v4/things?page=1&per_page=3>; rel=\"prev\", \
                 <http://h:1/api/v4/things?page=3&per_page=3>; rel=\"next\", \
                 <http://h:1/api/v4/things?page=1&per_page=3>; rel=\"first\", \
                 <http://h:1/api/v4/things?page=3&per_page=3>; rel=\"last\""
            )
        );
        let names: Vec<&str> = h.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            names,
            [
                "X-Page",
                "X-Per-Page",
                "X-Next-Page",
                "X-Prev-Page",
                "Link",
                "X-Total",
                "X-Total-Pages"
            ]
        );
    }

    #[test]
    fn first_last_and_empty_pages() {
        let (q, r) = req("state=opened");
        let h = OffsetPage::for_total(&r, 0).headers(&q, BASE, PATH);
        assert_eq!(header(&h, "X-Next-Page"), Some(""));
        assert_eq!(header(&h, "X-Prev-Page"), Some(""));
        assert_eq!(header(&h, "X-Total"), Some("0"));
        assert_eq!(header(&h, "X-Total-Pages"), Some("1"));
        assert_eq!(
            header(&h, "Link"),
            Some(
                "<http://h:1/api/v4/things?state=opened&page=1&per_page=20>; rel=\"first\", \
                 <http://h:1/api/v4/things?state=opened&page=1&per_page=20>; rel=\"last\""
            )
        );
        // Beyond the end: empty, no prev (Kaminari's out_of_range), totals still there.
        let (q, r) = req("page=9&per_page=5");
        let p = OffsetPage::for_total(&r, 12);
        assert_eq!((p.prev, p.next, p.total), (None, None, Some(12)));
        assert_eq!(
            header(&p.headers(&q, BASE, PATH), "X-Total-Pages"),
            Some("3")
        );
    }

    #[test]
    fn per_page_and_page_defaults_and_clamping() {
        assert_eq!(req("per_page=200").1.per_page, 100);
        assert_eq!(req("per_page=0").1.per_page, 20);
        assert_eq!(req("per_page=-5&page=-2").1.page, 1);
        assert_eq!(req("").1, req("page=&per_page=").1);
        let q = Query::parse(Some("page=abc"));
        assert_eq!(
            PageRequest::from_query(&q),
            Err(BadParam("page is invalid".into()))
        );
        // Link keeps every other parameter verbatim and writes the effective per_page.
        let (q, r) = req("per_page=500&search=a%2Fb&page=1");
        let h = OffsetPage::for_total(&r, 150).headers(&q, BASE, PATH);
        assert_eq!(header(&h, "X-Per-Page"), Some("100"));
        assert!(header(&h, "Link").is_some_and(|l| l.starts_with(
            "<http://h:1/api/v4/things?per_page=100&search=a%2Fb&page=2>; rel=\"next\""
        )));
    }

    #[test]
    fn totals_are_omitted_above_ten_thousand() {
        let (q, r) = req("per_page=1");
        let exact = OffsetPage::for_total(&r, 10_000).headers(&q, BASE, PATH);
        assert_eq!(header(&exact, "X-Total"), Some("10000"));
        assert_eq!(header(&exact, "X-Total-Pages"), Some("10000"));
        let over = OffsetPage::for_total(&r, 10_001).headers(&q, BASE, PATH);
        assert_eq!(header(&over, "X-Total"), None);
        assert_eq!(header(&over, "X-Total-Pages"), None);
        assert_eq!(header(&over, "X-Next-Page"), Some("2"));
        assert!(header(&over, "Link").is_some_and(|l| !l.contains("rel=\"last\"")));
        // The last page of an uncounted collection still knows it is last.
        let (_, r) = req("per_page=100&page=124");
        assert_eq!(OffsetPage::for_total(&r, 12_345).next, None);
        assert_eq!(OffsetPage::for_total(&r, 12_345).prev, Some(123));
        let (_, r) = req("per_page=100&page=123");
        assert_eq!(OffsetPage::for_total(&r, 12_345).next, Some(124));
    }

    #[test]
    fn select_offset_counts_with_limit() {
        let (_, r) = req("page=2&per_page=3");
        let (items, p) = select_offset(0..8, &r);
        assert_eq!(items, vec![3, 4, 5]);
        assert_eq!(p.total, Some(8));
        let (items, p) = select_offset(0..20_000, &r);
        assert_eq!(items, vec![3, 4, 5]);
        assert_eq!((p.total, p.next, p.prev), (None, Some(3), Some(1)));
        let (_, r) = req("page=6667&per_page=3");
        let (items, p) = select_offset(0..20_000, &r);
        assert_eq!(items, vec![19_998, 19_999]);
        assert_eq!((p.total, p.next), (None, None));
    }

    #[test]
    fn commits_have_a_phantom_next_page() {
        // 40 commits at per_page=20: page 2 is full, so page 3 is advertised and comes back empty.
        let (q, r) = req("per_page=20&page=2");
        let h = OffsetPage::commits(&r, 20).headers(&q, BASE, PATH);
        assert_eq!(header(&h, "X-Next-Page"), Some("3"));
        assert_eq!(header(&h, "X-Total"), None);
        assert_eq!(header(&h, "X-Total-Pages"), None);
        assert!(header(&h, "Link").is_some_and(|l| !l.contains("rel=\"last\"")));
        let (q, r) = req("per_page=20&page=3");
        let h = OffsetPage::commits(&r, 0).headers(&q, BASE, PATH);
        assert_eq!(header(&h, "X-Next-Page"), Some(""));
        assert_eq!(header(&h, "X-Prev-Page"), Some("2"));
    }

    #[test]
    fn offset_limit_uses_raw_parameters() {
        let (_, r) = req("page=500&per_page=100");
        assert!(!r.exceeds_offset_limit(50_000));
        let (_, r) = req("page=501&per_page=100");
        assert!(r.exceeds_offset_limit(50_000));
        assert!(!r.exceeds_offset_limit(0), "0 disables the limit");
        let (_, r) = req("page=300&per_page=200");
        assert!(
            r.exceeds_offset_limit(50_000),
            "per_page is not clamped first"
        );
        assert_eq!(
            offset_limit_message(50_000, "Project"),
            "Offset pagination has a maximum allowed offset of 50000 for requests that return \
             objects of type Project. Remaining records can be retrieved using keyset pagination."
        );
    }

    #[test]
    fn keyset_link_on_every_page_but_an_empty_one() {
        let q = Query::parse(Some("pagination=keyset&per_page=2&order_by=id&sort=asc"));
        let h = keyset_headers(&q, BASE, "/api/v4/projects", KeysetOrder::Asc, &[5, 9]);
        assert_eq!(
            h,
            vec![(
                "Link",
                "<http://h:1/api/v4/projects?pagination=keyset&per_page=2&order_by=id&sort=asc&id_after=9>; rel=\"next\""
                    .to_string()
            )]
        );
        let q = Query::parse(Some(
            "pagination=keyset&order_by=id&sort=desc&id_before=9&per_page=2",
        ));
        let h = keyset_headers(&q, BASE, "/p", KeysetOrder::Desc, &[7, 3]);
        assert!(h[0].1.contains("sort=desc&id_before=3&per_page=2"));
        let short = keyset_headers(&q, BASE, "/p", KeysetOrder::Desc, &[1]);
        assert!(
            short[0].1.contains("sort=desc&id_before=1&per_page=2"),
            "{short:?}"
        );
        assert!(keyset_headers(&q, BASE, "/p", KeysetOrder::Asc, &[]).is_empty());
    }

    #[test]
    fn decoding_never_fails() {
        assert_eq!(decode_component("acme%2Fplatform", false), "acme/platform");
        assert_eq!(decode_component("a+b%20c", true), "a b c");
        assert_eq!(decode_component("a+b", false), "a+b");
        assert_eq!(decode_component("%", true), "%");
        assert_eq!(decode_component("%zz%4", true), "%zz%4");
        assert_eq!(decode_component("%ff", true), "\u{fffd}");
        let q = Query::parse(Some("&&=x&a&b=1&b=2&c=%E2%9C%93"));
        assert_eq!(q.get("b"), Some("2"));
        assert_eq!(q.get("a"), None);
        assert_eq!(q.get("c"), Some("✓"));
        assert_eq!(q.bool("b"), Err(BadParam("b is invalid".into())));
        let q = Query::parse(Some(
            "a=2026-11-20T10:15:00.5Z&b=2026-11-20T11:15:00%2B01:00&c=soon",
        ));
        let utc = Timestamps::default();
        assert_eq!(q.datetime("a", true, utc), Ok(Some(1_795_169_701)));
        assert_eq!(q.datetime("a", false, utc), Ok(Some(1_795_169_700)));
        assert_eq!(q.datetime("b", true, utc), Ok(Some(1_795_169_700)));
        assert_eq!(
            q.datetime("c", true, utc),
            Err(BadParam("c is invalid".into()))
        );
        assert_eq!(q.datetime("d", true, utc), Ok(None));
        // With milliseconds: second `s` is written `s.mmm`; a bound compares with that.
        let ms = Timestamps::self_managed(0);
        let t = 1_795_169_700;
        let m = ms.millis(t);
        assert!(m > 0 && m < 999, "{m}");
        for (bound, lower, expected) in [
            (format!("2026-11-20T10:15:00.{m:03}Z"), true, t),
            (format!("2026-11-20T10:15:00.{:03}Z", m + 1), true, t + 1),
            (format!("2026-11-20T10:15:00.{m:03}Z"), false, t),
            (format!("2026-11-20T10:15:00.{:03}Z", m - 1), false, t - 1),
            ("2026-11-20T10:15:00Z".to_owned(), true, t),
            ("2026-11-20T10:15:00Z".to_owned(), false, t - 1),
        ] {
            let q = Query::parse(Some(&format!("x={bound}")));
            assert_eq!(
                q.datetime("x", lower, ms),
                Ok(Some(expected)),
                "{bound} {lower}"
            );
        }
        assert_eq!(
            Query::parse(Some("s=up")).choice("s", &["asc", "desc"]),
            Err(BadParam("s does not have a valid value".into()))
        );
    }
}
