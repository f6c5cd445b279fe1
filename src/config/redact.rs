//! URLs as they may be logged or printed in an error: an OTLP endpoint may carry a
//! collector's credentials (`http://user:token@collector:4318`, `…/v1/traces?api_key=…`).

/// Scheme, host and port of `url`, nothing else: user info, path and query may hold
/// credentials. A value that does not parse as such a URL is not shown at all.
pub fn redacted_url(url: &str) -> String {
    let Ok(uri) = url.parse::<hyper::Uri>() else {
        return "(not a URL; not shown)".to_string();
    };
    match (uri.scheme_str(), uri.host(), uri.port_u16()) {
        (Some(scheme), Some(host), Some(port)) => format!("{scheme}://{host}:{port}"),
        (Some(scheme), Some(host), None) => format!("{scheme}://{host}"),
        _ => "(not a URL with a scheme and host; not shown)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_path_and_query_are_left_out() {
        assert_eq!(
            redacted_url("http://user:s3cret@collector.example:4318/v1/traces?api_key=k3y"),
            "http://collector.example:4318"
        );
        assert_eq!(
            redacted_url("http://collector.example/tenant-token/v1/traces"),
            "http://collector.example"
        );
        assert_eq!(
            redacted_url("http://127.0.0.1:4318"),
            "http://127.0.0.1:4318"
        );
    }

    #[test]
    fn a_value_that_is_not_a_url_is_not_shown() {
        for value in [
            "user:s3cret@collector:4318",
            "http://us er:s3cret@host",
            "s3cret",
        ] {
            let shown = redacted_url(value);
            assert!(!shown.contains("s3cret"), "{value} shown as {shown}");
        }
    }
}
