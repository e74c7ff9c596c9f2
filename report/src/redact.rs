//! Credentials never leave flux-reporter: a URL's user info
//! (`https://user:token@host/…`, `oci://user:pass@…`) and the values of query
//! parameters that carry secrets (`?token=…`, `X-Amz-Signature=…`) are
//! replaced by `***` wherever a URL is reported: the FluxReport
//! (`sync.source`, messages), metric labels (`url`), events, notifications,
//! `check` output and logs, which all take their text from here.

use std::borrow::Cow;

const MASK: &str = "***";

/// Query parameter names (lower-cased substrings) whose values are secrets.
const SECRET_PARAMS: [&str; 11] = [
    "token",
    "secret",
    "password",
    "passwd",
    "pwd",
    "key",
    "sig",
    "credential",
    "auth",
    "session",
    "code",
];

/// One URL with its user info and secret query values masked. Text that is
/// not a `scheme://` URL is returned as is.
pub fn url(s: &str) -> Cow<'_, str> {
    let Some(scheme_end) = s.find("://") else {
        return Cow::Borrowed(s);
    };
    let scheme = &s[..scheme_end];
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return Cow::Borrowed(s);
    }
    let rest = &s[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let mut out = String::with_capacity(s.len());
    out.push_str(&s[..scheme_end + 3]);
    let mut changed = false;
    match authority.rfind('@') {
        // An SSH user name without a password is an account (`git`), not a
        // credential: the key authenticates. Anywhere else a lone user name
        // is often a token (`https://ghp_…@github.com`).
        Some(at) if scheme.eq_ignore_ascii_case("ssh") && !authority[..at].contains(':') => {
            out.push_str(authority)
        }
        Some(at) => {
            out.push_str(MASK);
            out.push_str(&authority[at..]);
            changed = true;
        }
        None => out.push_str(authority),
    }
    let (path, query_and_fragment) = match tail.find('?') {
        Some(q) => tail.split_at(q),
        None => (tail, ""),
    };
    out.push_str(path);
    if !query_and_fragment.is_empty() {
        let (query, fragment) = match query_and_fragment.find('#') {
            Some(f) => query_and_fragment.split_at(f),
            None => (query_and_fragment, ""),
        };
        out.push('?');
        let params: Vec<String> = query[1..]
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, value)) if is_secret(name) && !value.is_empty() => {
                    changed = true;
                    format!("{name}={MASK}")
                }
                _ => pair.to_string(),
            })
            .collect();
        out.push_str(&params.join("&"));
        out.push_str(fragment);
    }
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(s)
    }
}

fn is_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_PARAMS.iter().any(|p| name.contains(p))
}

/// Free text (a condition message, an error) with every URL in it masked.
pub fn text(s: &str) -> Cow<'_, str> {
    if !s.contains("://") {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut changed = false;
    let mut rest = s;
    while let Some(pos) = rest.find("://") {
        // The URL starts where its scheme starts.
        let start = rest[..pos]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map(|i| i + 1)
            .unwrap_or(0);
        let end = rest[pos..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>'))
            .map(|i| pos + i)
            .unwrap_or(rest.len());
        out.push_str(&rest[..start]);
        let candidate = &rest[start..end];
        let masked = url(candidate);
        changed |= matches!(masked, Cow::Owned(_));
        out.push_str(&masked);
        rest = &rest[end..];
    }
    out.push_str(rest);
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_is_masked_in_every_scheme() {
        assert_eq!(
            url("https://user:token@github.com/org/repo.git"),
            "https://***@github.com/org/repo.git"
        );
        assert_eq!(
            url("https://ghp_abc123@github.com/org/repo"),
            "https://***@github.com/org/repo"
        );
        assert_eq!(
            url("oci://user:pass@ghcr.io/org/manifests"),
            "oci://***@ghcr.io/org/manifests"
        );
        assert_eq!(
            url("ssh://git:secret@example.com:22/repo"),
            "ssh://***@example.com:22/repo"
        );
    }

    #[test]
    fn secret_query_values_are_masked_and_the_rest_kept() {
        assert_eq!(
            url("https://s3.example.com/bucket?X-Amz-Signature=abc&region=eu&access_token=t#frag"),
            "https://s3.example.com/bucket?X-Amz-Signature=***&region=eu&access_token=***#frag"
        );
        assert_eq!(
            url("https://example.com/charts?sslmode=on"),
            "https://example.com/charts?sslmode=on"
        );
    }

    #[test]
    fn clean_urls_and_plain_text_are_borrowed_unchanged() {
        for s in [
            "https://github.com/org/repo.git",
            "ssh://git@github.com/org/repo",
            "git@github.com:org/repo.git",
            "s3.amazonaws.com",
            "/hook/abc",
            "",
        ] {
            assert!(matches!(url(s), Cow::Borrowed(_)), "{s}");
        }
    }

    #[test]
    fn urls_inside_messages_are_masked() {
        let msg = "failed to checkout and determine revision: unable to clone \
                   'https://x-access-token:ghs_SECRET@github.com/org/repo.git': authentication required";
        let out = text(msg);
        assert!(!out.contains("ghs_SECRET"), "{out}");
        assert!(
            out.contains("'https://***@github.com/org/repo.git'"),
            "{out}"
        );
        assert_eq!(text("no url here"), "no url here");
        assert_eq!(
            text("two: oci://a:b@r.io/x and https://h/p?token=t"),
            "two: oci://***@r.io/x and https://h/p?token=***"
        );
    }
}
