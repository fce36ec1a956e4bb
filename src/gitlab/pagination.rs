//! GitLab's pagination headers, read the way that never undercounts: a next page exists when
//! `X-Next-Page` is non-empty (offset pagination) or `Link` has `rel="next"` (keyset). Totals
//! (`X-Total`) are only a hint: GitLab leaves them out above 10,000 records, on keyset pages and
//! always on commits.

use ureq::http::HeaderMap;

/// What one answer says about the pages around it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageInfo {
    /// `X-Next-Page`, when present and non-empty.
    pub next_page: Option<u64>,
    /// `X-Total`, when present.
    pub total: Option<u64>,
    /// The query parameters of the `Link` header's `rel="next"` URL. Only the parameters are
    /// kept: the exporter builds its own URL, so it never follows a link to another host.
    pub next_link: Option<Vec<(String, String)>>,
}

impl PageInfo {
    /// Reads the pagination headers of an answer.
    pub fn from_headers(headers: &HeaderMap) -> PageInfo {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        let number = |name: &str| header(name).and_then(|v| v.parse::<u64>().ok());
        PageInfo {
            next_page: number("x-next-page"),
            total: number("x-total"),
            next_link: header("link").and_then(link_next).map(query_pairs),
        }
    }

    /// True when the answer says another page follows.
    pub fn has_next(&self) -> bool {
        self.next_page.is_some() || self.next_link.is_some()
    }

    /// A parameter of the `rel="next"` link, e.g. `id_after` for keyset pagination.
    pub fn next_link_param(&self, name: &str) -> Option<&str> {
        self.next_link
            .as_ref()?
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The URL of the `rel="next"` member of a `Link` header (RFC 8288).
pub fn link_next(link: &str) -> Option<&str> {
    link.split(',').find_map(|member| {
        let (target, params) = member.split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .filter_map(|p| p.split_once('='))
            .any(|(k, v)| {
                k.trim().eq_ignore_ascii_case("rel")
                    && v.trim()
                        .trim_matches('"')
                        .split_whitespace()
                        .any(|r| r == "next")
            })
            .then_some(target)
    })
}

/// The decoded query parameters of a URL.
fn query_pairs(url: &str) -> Vec<(String, String)> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let query = query.split('#').next().unwrap_or("");
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ureq::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn documented_example() {
        let link = "<https://gitlab.example.com/api/v4/projects/8/issues/8/notes?page=1&per_page=3>; rel=\"prev\", \
                    <https://gitlab.example.com/api/v4/projects/8/issues/8/notes?page=3&per_page=3>; rel=\"next\", \
                    <https://gitlab.example.com/api/v4/projects/8/issues/8/notes?page=1&per_page=3>; rel=\"first\", \
                    <https://gitlab.example.com/api/v4/projects/8/issues/8/notes?page=3&per_page=3>; rel=\"last\"";
        let info = PageInfo::from_headers(&headers(&[
            ("link", link),
            ("x-next-page", "3"),
            ("x-page", "2"),
            ("x-total", "8"),
            ("x-prev-page", "1"),
        ]));
        assert_eq!(info.next_page, Some(3));
        assert_eq!(info.total, Some(8));
        assert_eq!(info.next_link_param("page"), Some("3"));
        assert!(info.has_next());
    }

    #[test]
    fn last_page_has_empty_next_and_may_lack_totals() {
        let info = PageInfo::from_headers(&headers(&[("x-next-page", ""), ("x-page", "7")]));
        assert_eq!(info, PageInfo::default());
        assert!(!info.has_next());
    }

    #[test]
    fn keyset_link_gives_the_cursor() {
        let info = PageInfo::from_headers(&headers(&[(
            "link",
            "<https://gitlab.example.com/api/v4/projects?pagination=keyset&per_page=50&order_by=id&sort=asc&id_after=42>; rel=\"next\"",
        )]));
        assert_eq!(info.next_page, None);
        assert_eq!(info.next_link_param("id_after"), Some("42"));
        assert_eq!(info.next_link_param("pagination"), Some("keyset"));
    }

    #[test]
    fn link_parsing_is_tolerant() {
        assert_eq!(link_next("<a?x=1>; rel=first"), None);
        assert_eq!(link_next("<a?x=1>;rel=\"prev next\""), Some("a?x=1"));
        assert_eq!(link_next("garbage, <b>; REL=\"next\""), Some("b"));
        assert_eq!(link_next(""), None);
        assert_eq!(percent_decode("a%2Fb%zz%"), "a/b%zz%");
    }
}
