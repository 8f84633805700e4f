//! Cookies: reading a request's `Cookie` header (values with or without Apple's surrounding
//! quotes) and writing `Set-Cookie` lines shaped like the recorded ones (icloud-auth.md 1.5).

use std::time::Duration;

use axum::http::HeaderValue;

/// Where a cookie is scoped and whether it is marked `Secure`.
#[derive(Debug, Clone, Copy)]
pub struct CookieScope {
    /// `Domain` attribute (`.icloud.com`, `apple.com`) or host-only when `None`.
    pub domain: Option<&'static str>,
    /// Mark the cookie `Secure` (only when served over TLS, else clients would not send it back).
    pub secure: bool,
}

/// The `name=value` pairs of a `Cookie` header, with surrounding double quotes removed from values.
pub fn request_cookies(header: &str) -> impl Iterator<Item = (&str, &str)> {
    header.split(';').filter_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        Some((name.trim(), value))
    })
}

/// True if `value` can go into a cookie unchanged by every client we serve: printable ASCII
/// without `"`, `;`, `\`, space or comma (rclone's parser silently drops anything else).
pub fn is_safe_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b';' && b != b'\\' && b != b',')
}

/// One `Set-Cookie` line, e.g.
/// `X-APPLE-WEBAUTH-USER="v=1:s=1:d=123";Expires=Fri, 12-Jan-2024 05:06:31 GMT;Path=/;Domain=.icloud.com;Secure;HttpOnly`.
/// `quoted` wraps the value in double quotes as Apple does for its `X-APPLE-*` cookies.
pub fn set_cookie(
    name: &str,
    value: &str,
    quoted: bool,
    lifetime: Option<Duration>,
    http_only: bool,
    scope: CookieScope,
) -> Option<HeaderValue> {
    if !is_safe_value(value) {
        tracing::warn!(
            cookie = name,
            "refusing to emit a cookie value clients would drop"
        );
        return None;
    }
    let mut line = if quoted {
        format!("{name}=\"{value}\"")
    } else {
        format!("{name}={value}")
    };
    if let Some(lifetime) = lifetime {
        let expires = chrono::Utc::now()
            + chrono::Duration::from_std(lifetime).unwrap_or(chrono::Duration::days(30));
        line.push_str(&format!(
            ";Expires={}",
            expires.format("%a, %d-%b-%Y %H:%M:%S GMT")
        ));
    }
    line.push_str(";Path=/");
    if let Some(domain) = scope.domain {
        line.push_str(";Domain=");
        line.push_str(domain);
    }
    if scope.secure {
        line.push_str(";Secure");
    }
    if http_only {
        line.push_str(";HttpOnly");
    }
    HeaderValue::from_str(&line).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_cookies_strip_quotes_and_spaces() {
        let got: Vec<_> = request_cookies(
            r#"A="v=1:x"; B=plain ;C="";dslang=US-EN; junk; X-APPLE-WEBAUTH-USER="v=1:s=1:d=1""#,
        )
        .collect();
        assert_eq!(
            got,
            vec![
                ("A", "v=1:x"),
                ("B", "plain"),
                ("C", ""),
                ("dslang", "US-EN"),
                ("X-APPLE-WEBAUTH-USER", "v=1:s=1:d=1")
            ]
        );
    }

    #[test]
    fn set_cookie_shape() {
        let scope = CookieScope {
            domain: Some(".icloud.com"),
            secure: true,
        };
        let v = set_cookie(
            "N",
            "v=1:t=abc~~",
            true,
            Some(Duration::from_secs(60)),
            true,
            scope,
        )
        .expect("line");
        let s = v.to_str().expect("ascii");
        assert!(s.starts_with("N=\"v=1:t=abc~~\";Expires="), "{s}");
        assert!(
            s.ends_with(" GMT;Path=/;Domain=.icloud.com;Secure;HttpOnly"),
            "{s}"
        );

        let host_only = CookieScope {
            domain: None,
            secure: false,
        };
        let v = set_cookie("N", "x", false, None, false, host_only).expect("line");
        assert_eq!(v.to_str().expect("ascii"), "N=x;Path=/");
    }

    #[test]
    fn unsafe_values_are_refused() {
        let scope = CookieScope {
            domain: None,
            secure: false,
        };
        for bad in ["a\"b", "a;b", "a\\b", "a b", "é"] {
            assert!(
                set_cookie("N", bad, true, None, false, scope).is_none(),
                "{bad}"
            );
        }
    }
}
