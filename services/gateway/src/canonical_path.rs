//! One canonical path per request, made once, before anything looks at the path.
//! The access policy decides on it, the routing table routes it, and it is the path
//! the upstream receives: the three can never disagree.
//!
//! 1. Percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`, RFC 3986 §2.3)
//!    are decoded; other percent-encodings stay, with upper-case hex digits.
//! 2. Dot segments are removed (RFC 3986 §5.2.4): `/a/./b/../c` is `/a/c`, and
//!    `/products/%2e%2e/api/v1/x` is `/api/v1/x`.
//!
//! Forms that servers and proxies read differently are refused with 400 instead:
//! an encoded `/` or `\` (`%2F`, `%5C`), a raw `\`, a `;` (matrix parameters, as in
//! `..;/`), an encoded `%` (double encoding), NUL or any control character, empty
//! segments (`//`), and percent-encodings that are not valid UTF-8 (overlong forms
//! such as `%C0%AE`).

/// The longest path accepted (414 beyond).
pub const MAX_PATH_BYTES: usize = 2048;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path is longer than {MAX_PATH_BYTES} bytes")]
    TooLong,
    #[error("the path must start with /")]
    NotAbsolute,
    #[error("the path must not contain {0}")]
    Ambiguous(&'static str),
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The canonical form of `raw` (a request's path, without the query), or why it is
/// refused.
pub fn canonicalize(raw: &str) -> Result<String, PathError> {
    if raw.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong);
    }
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let bytes = raw.as_bytes();
    let mut decoded = String::with_capacity(raw.len());
    // Every byte the path stands for, to check that encoded ones form UTF-8.
    let mut meaning = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let (Some(hi), Some(lo)) = (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(PathError::Ambiguous(
                        "a % that is not followed by two hex digits",
                    ));
                };
                let value = hi * 16 + lo;
                match value {
                    b'/' | b'\\' => return Err(PathError::Ambiguous("an encoded / or \\")),
                    b'%' => return Err(PathError::Ambiguous("an encoded % (double encoding)")),
                    b';' => return Err(PathError::Ambiguous("an encoded ;")),
                    v if v < 0x20 || v == 0x7f => {
                        return Err(PathError::Ambiguous("an encoded control character or NUL"));
                    }
                    v if is_unreserved(v) => decoded.push(char::from(v)),
                    v => {
                        decoded.push('%');
                        decoded.push(char::from(b"0123456789ABCDEF"[usize::from(v >> 4)]));
                        decoded.push(char::from(b"0123456789ABCDEF"[usize::from(v & 15)]));
                    }
                }
                meaning.push(value);
                i += 3;
            }
            b'\\' => return Err(PathError::Ambiguous("a \\")),
            b';' => return Err(PathError::Ambiguous("a ; (path parameters)")),
            b if !(0x20..0x7f).contains(&b) => {
                return Err(PathError::Ambiguous("a control or non-ASCII character"));
            }
            b => {
                decoded.push(char::from(b));
                meaning.push(b);
                i += 1;
            }
        }
    }
    if std::str::from_utf8(&meaning).is_err() {
        return Err(PathError::Ambiguous(
            "percent-encodings that are not UTF-8 (e.g. overlong forms)",
        ));
    }
    let segments: Vec<&str> = decoded[1..].split('/').collect();
    let last = segments.len() - 1;
    if segments
        .iter()
        .enumerate()
        .any(|(n, s)| s.is_empty() && n != last)
    {
        return Err(PathError::Ambiguous("an empty segment (//)"));
    }
    Ok(remove_dot_segments(&segments))
}

/// RFC 3986 §5.2.4 over the segments of an absolute path: `.` goes, `..` takes the
/// segment before it with it; one of them at the end leaves a trailing slash.
fn remove_dot_segments(segments: &[&str]) -> String {
    let mut out: Vec<&str> = Vec::with_capacity(segments.len());
    let mut trailing_slash = false;
    for (n, segment) in segments.iter().enumerate() {
        let is_last = n + 1 == segments.len();
        match *segment {
            "." => trailing_slash = is_last,
            ".." => {
                out.pop();
                trailing_slash = is_last;
            }
            s => {
                out.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut path = String::from("/");
    path.push_str(&out.join("/"));
    if trailing_slash && !path.ends_with('/') {
        path.push('/');
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> String {
        canonicalize(raw).unwrap_or_else(|e| panic!("{raw}: {e}"))
    }

    #[test]
    fn plain_paths_stay_as_they_are() {
        for p in [
            "/",
            "/api/v1/orders",
            "/api/v1/orders/",
            "/api/v1/stock/SKU-ABC",
            "/api/v1/stock/SKU%20A",
            "/users/user/login",
            "/orders/product/3",
            "/a~b_c.d",
        ] {
            assert_eq!(ok(p), p);
        }
    }

    #[test]
    fn unreserved_characters_are_decoded_and_dots_removed() {
        assert_eq!(
            ok("/products/%2e%2e/api/v1/products/1"),
            "/api/v1/products/1"
        );
        assert_eq!(
            ok("/products/%2E%2E/api/v1/products/1"),
            "/api/v1/products/1"
        );
        assert_eq!(ok("/api/v1/%6Frders/1"), "/api/v1/orders/1");
        assert_eq!(ok("/api/v1/./orders"), "/api/v1/orders");
        assert_eq!(ok("/api/v1/orders/."), "/api/v1/orders/");
        assert_eq!(ok("/api/v1/x/.."), "/api/v1/");
        assert_eq!(ok("/../../api/v1/orders"), "/api/v1/orders");
        assert_eq!(ok("/api/v1/stock/sku%c3%a9"), "/api/v1/stock/sku%C3%A9");
        assert_eq!(ok("/a/%2e"), "/a/");
        assert_eq!(ok("/.."), "/");
    }

    #[test]
    fn ambiguous_forms_are_refused() {
        for raw in [
            "/api/v1/orders%2f1",
            "/api/v1/orders%2F1",
            "/products%5c..%5capi",
            "/products\\..\\api",
            "/products/..;/api/v1/products/1",
            "/api/v1/orders;jsessionid=1",
            "/api/v1/orders/%3b",
            "/api/v1/%252e%252e/x",
            "/api/v1/orders%00",
            "/api/v1/orders%0a",
            "/api/v1//orders",
            "//api/v1/orders",
            "/api/v1/%c0%ae%c0%ae/x",
            "/api/v1/%e0%80%ae",
            "/api/v1/%ff",
            "/api/v1/%zz",
            "/api/v1/%2",
            "relative",
            "",
        ] {
            assert!(
                canonicalize(raw).is_err(),
                "{raw} accepted as {:?}",
                canonicalize(raw)
            );
        }
        assert_eq!(
            canonicalize(&format!("/{}", "a".repeat(MAX_PATH_BYTES))),
            Err(PathError::TooLong)
        );
    }

    #[test]
    fn canonical_paths_are_fixed_points() {
        for raw in [
            "/products/%2e%2e/api/v1/products/1",
            "/api/v1/stock/sku%c3%a9",
            "/x/./y/../z/",
        ] {
            let once = ok(raw);
            assert_eq!(ok(&once), once);
        }
    }
}
