//! URLs as they may be shown: the one policy for every message, status line, warning and
//! document that names a server (H2O, the state database, a SQL source, the remote cache, a
//! webhook).
//!
//! Policy: the scheme, host, port, path and fragment stay; a user name stays (it says who
//! connects); a password becomes `***`; so does the value of a query parameter whose name says
//! it holds a secret (`password`, `pwd`, `token`, `secret`, `key`, `sig`, `auth`, in any case and
//! as part of a longer name such as `access_token`). A string that is not a URL is shown with
//! the same rules applied to what looks like its authority and query.

use std::fmt;

/// Parts of a query parameter's name that mark its value as a secret.
const SECRET_PARAMS: &[&str] = &[
    "password", "passwd", "pwd", "token", "secret", "key", "sig", "auth",
];

/// A URL fit to be shown ([module docs](self) for the policy). Never fails to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafeUrl(String);

impl SafeUrl {
    pub fn new(url: &str) -> SafeUrl {
        let (scheme, rest) = match url.split_once("://") {
            Some((scheme, rest)) => (Some(scheme), rest),
            None => (None, url),
        };
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let authority = match authority.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _password)) => format!("{user}:***@{host}"),
                None => format!("{userinfo}@{host}"),
            },
            None => authority.to_string(),
        };
        let tail = mask_query(tail);
        SafeUrl(match scheme {
            Some(scheme) => format!("{scheme}://{authority}{tail}"),
            None => format!("{authority}{tail}"),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SafeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `url` as it may be shown ([`SafeUrl`]).
pub fn safe_url(url: &str) -> String {
    SafeUrl::new(url).0
}

/// `url` without any credentials: no user, no password, no secret query values. Not for
/// display (that is [`safe_url`]) but for identity: what names a server whoever connects to it
/// (the state of an incremental SQL source is kept under a hash of it).
pub fn without_credentials(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// The path, query and fragment with every secret query value replaced by `***`.
fn mask_query(tail: &str) -> String {
    let Some(q) = tail.find('?') else {
        return tail.to_string();
    };
    let (path, rest) = tail.split_at(q + 1);
    let (query, fragment) = match rest.find('#') {
        Some(h) => rest.split_at(h),
        None => (rest, ""),
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_secret(name) => format!("{name}=***"),
            _ => pair.to_string(),
        })
        .collect();
    format!("{path}{}{fragment}", pairs.join("&"))
}

fn is_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_PARAMS.iter().any(|s| name.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_secret_params_are_masked_and_the_rest_kept() {
        let cases = [
            (
                "postgres://ann:s3cret@db:5432/ml",
                "postgres://ann:***@db:5432/ml",
            ),
            ("http://a:b@h:1/x?y=@", "http://a:***@h:1/x?y=@"),
            ("http://h:1/x@y", "http://h:1/x@y"),
            ("http://user@h/x", "http://user@h/x"),
            ("h:1", "h:1"),
            ("u:p@h/db", "u:***@h/db"),
            ("https://h/c?token=abc&x=1", "https://h/c?token=***&x=1"),
            (
                "https://h/c?X-Amz-Signature=f00&Access_Token=t#frag",
                "https://h/c?X-Amz-Signature=***&Access_Token=***#frag",
            ),
            ("postgres://a%40b:p%3Aw@h/db", "postgres://a%40b:***@h/db"),
            ("postgres://u:p@w@h/db", "postgres://u:***@h/db"),
            ("", ""),
            ("not a url", "not a url"),
        ];
        for (url, shown) in cases {
            assert_eq!(safe_url(url), shown, "{url}");
            assert_eq!(SafeUrl::new(url).to_string(), shown);
        }
    }

    #[test]
    fn identity_drops_every_credential() {
        assert_eq!(
            without_credentials("postgres://ann:s3cret@db:5432/ml"),
            "postgres://db:5432/ml"
        );
        assert_eq!(without_credentials("http://h:1/x@y"), "http://h:1/x@y");
        assert_eq!(without_credentials("h:1"), "h:1");
    }
}
