//! The rule for a partner's `ownHosts`: host names (no scheme, path or port), kept
//! lowercase, without a trailing dot and without repeats, at most `MAX_OWN_HOSTS`.

use crate::error::FieldError;

pub const MAX_OWN_HOSTS: usize = 50;
const MAX_HOST_CHARS: usize = 253;
const MAX_LABEL_CHARS: usize = 63;

/// The hosts as they are kept, or what is wrong with them (field `ownHosts`).
pub fn own_hosts(raw: &[String]) -> Result<Vec<String>, FieldError> {
    if raw.len() > MAX_OWN_HOSTS {
        return Err(FieldError::new(
            "ownHosts",
            format!("must hold at most {MAX_OWN_HOSTS} hosts, got {}", raw.len()),
        ));
    }
    let mut hosts: Vec<String> = Vec::with_capacity(raw.len());
    for (index, host) in raw.iter().enumerate() {
        let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
        if let Some(problem) = host_problem(&host) {
            return Err(FieldError::new(format!("ownHosts[{index}]"), problem));
        }
        if !hosts.contains(&host) {
            hosts.push(host);
        }
    }
    Ok(hosts)
}

fn host_problem(host: &str) -> Option<String> {
    if host.is_empty() {
        return Some("must not be blank".into());
    }
    if host.contains("://") || host.contains(['/', ':', '?', '#', '@']) {
        return Some(format!(
            "'{host}' must be a host name only (shop.example.com), without scheme, port or path"
        ));
    }
    if host.len() > MAX_HOST_CHARS {
        return Some(format!("must be at most {MAX_HOST_CHARS} characters"));
    }
    let bad_label = host.split('.').any(|label| {
        label.is_empty()
            || label.len() > MAX_LABEL_CHARS
            || label.starts_with('-')
            || label.ends_with('-')
            || !label
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
    });
    bad_label.then(|| format!("'{host}' is not a host name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(raw: &[&str]) -> Result<Vec<String>, FieldError> {
        own_hosts(&raw.iter().map(|host| host.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn hosts_are_kept_lowercase_once_each() {
        let kept = hosts(&["Shop.Example.com", "shop.example.com.", " www.example.com "]);
        assert_eq!(kept.unwrap(), ["shop.example.com", "www.example.com"]);
        assert_eq!(hosts(&[]).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn urls_ports_and_malformed_names_are_refused_by_index() {
        for bad in [
            "https://shop.example.com",
            "shop.example.com:8080",
            "shop..com",
            "-a.com",
            "a b.com",
            "",
        ] {
            let error = hosts(&["ok.example.com", bad]).unwrap_err();
            assert_eq!(error.field, "ownHosts[1]", "{bad}");
        }
    }

    #[test]
    fn at_most_fifty_hosts() {
        let many: Vec<String> = (0..=MAX_OWN_HOSTS)
            .map(|n| format!("h{n}.example.com"))
            .collect();
        assert_eq!(own_hosts(&many).unwrap_err().field, "ownHosts");
        assert!(own_hosts(&many[..MAX_OWN_HOSTS]).is_ok());
    }
}
