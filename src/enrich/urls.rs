//! Just enough of a URL for enrichment, by slicing the text: its host, path and query.
//! A full parser (the `url` crate) would validate and normalise much more than a page
//! path or referrer host needs, and cost several times as much per event.

/// A URL or path cut into the parts enrichment uses (the fragment dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct UrlParts<'a> {
    /// The authority as written (userinfo and port included), when there is one.
    pub authority: Option<&'a str>,
    pub path: &'a str,
    pub query: Option<&'a str>,
}

/// Splits `scheme://authority/path?query#fragment`, `//authority/path…`, or a bare
/// `/path?query`. The path of a URL with an authority but no path is `/`.
pub(super) fn split(text: &str) -> UrlParts<'_> {
    let text = text.split_once('#').map_or(text, |(before, _)| before);
    let (authority, rest) = match authority_start(text) {
        Some(start) => {
            let after = &text[start..];
            let end = after
                .bytes()
                .position(|byte| byte == b'/' || byte == b'?')
                .unwrap_or(after.len());
            (Some(&after[..end]), &after[end..])
        }
        None => (None, text),
    };
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    let path = if path.is_empty() && authority.is_some() {
        "/"
    } else {
        path
    };
    UrlParts {
        authority,
        path,
        query,
    }
}

/// Where the authority begins: after `scheme://` (a scheme being letters, digits, `+-.`
/// before the first `:`), or after a leading `//`.
fn authority_start(text: &str) -> Option<usize> {
    if text.starts_with("//") {
        return Some(2);
    }
    // `find(':')` then a look at what follows: a `find("://")` builds a substring
    // searcher per call, which costs more than the short scan it does.
    let colon = text.find(':')?;
    if !text[colon..].starts_with("://") {
        return None;
    }
    let scheme = &text[..colon];
    let is_scheme = scheme.starts_with(|first: char| first.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    is_scheme.then_some(colon + 3)
}

/// The host of an authority as enrichment compares and stores it, still in the case it
/// was written: without userinfo, port, trailing dot or a leading `www.`. IPv6 literals
/// keep their brackets.
pub(super) fn bare_host(authority: &str) -> &str {
    let host_and_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = if host_and_port.starts_with('[') {
        host_and_port
            .find(']')
            .map_or(host_and_port, |end| &host_and_port[..=end])
    } else {
        host_and_port
            .split_once(':')
            .map_or(host_and_port, |(host, _)| host)
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    match host.get(..4) {
        Some(prefix) if prefix.eq_ignore_ascii_case("www.") && host.len() > 4 => &host[4..],
        _ => host,
    }
}

/// Whether two hosts (or authorities) name the same site once bare and case-folded.
pub(super) fn same_host(left: &str, right: &str) -> bool {
    bare_host(left).eq_ignore_ascii_case(bare_host(right))
}

/// The value of the first parameter of each of `names` in `query` (a leading `?`
/// allowed; names compared in any case), percent- and `+`-decoded; absent when the
/// parameter is missing or its first value is blank. One pass, however many names.
pub(super) fn query_parameters<const N: usize>(
    query: &str,
    names: [&str; N],
) -> [Option<String>; N] {
    let query = query.strip_prefix('?').unwrap_or(query);
    let mut values: [Option<String>; N] = std::array::from_fn(|_| None);
    let mut seen = [false; N];
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let Some(index) = names.iter().position(|name| key.eq_ignore_ascii_case(name)) else {
            continue;
        };
        if std::mem::replace(&mut seen[index], true) {
            continue;
        }
        let value = value.trim();
        values[index] = (!value.is_empty()).then(|| value.to_string());
        if seen.iter().all(|seen| *seen) {
            break;
        }
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_urls_with_and_without_an_authority() {
        let full = split("https://user@Shop.Example.com:8443/pricing/?plan=pro&x=1#faq");
        assert_eq!(full.authority, Some("user@Shop.Example.com:8443"));
        assert_eq!((full.path, full.query), ("/pricing/", Some("plan=pro&x=1")));
        let bare = split("https://example.com?utm_source=x");
        assert_eq!((bare.path, bare.query), ("/", Some("utm_source=x")));
        let relative = split("/docs/start?x=1#top");
        assert_eq!(relative.authority, None);
        assert_eq!(
            (relative.path, relative.query),
            ("/docs/start", Some("x=1"))
        );
        assert_eq!(
            split("//cdn.example.com/a").authority,
            Some("cdn.example.com")
        );
        assert_eq!(
            split("android-app://com.google.android.gm/").authority,
            Some("com.google.android.gm")
        );
        assert_eq!(split("not a url: really://no").authority, None);
    }

    #[test]
    fn bare_hosts_drop_www_port_userinfo_and_trailing_dot() {
        assert_eq!(bare_host("WWW.Example.com:443"), "Example.com");
        assert_eq!(bare_host("me:secret@news.example.org."), "news.example.org");
        assert_eq!(bare_host("[2001:db8::1]:8080"), "[2001:db8::1]");
        assert_eq!(bare_host("www."), "www");
        assert!(same_host("www.EXAMPLE.com:8080", "example.com"));
        assert!(!same_host("blog.example.com", "example.com"));
    }

    #[test]
    fn query_parameters_are_decoded_and_blank_ones_absent() {
        let query =
            "?utm_source=news%20letter&UTM_MEDIUM=e+mail&utm_campaign=%20&utm_campaign=late";
        let [source, medium, campaign, term] = query_parameters(
            query,
            ["utm_source", "utm_medium", "utm_campaign", "utm_term"],
        );
        assert_eq!(source.as_deref(), Some("news letter"));
        assert_eq!(medium.as_deref(), Some("e mail"));
        assert_eq!(campaign, None, "the first value counts, blank");
        assert_eq!(term, None);
        assert_eq!(
            query_parameters("a=1&utm_source=x&utm_source=y", ["utm_source"]),
            [Some("x".to_string())]
        );
    }
}
