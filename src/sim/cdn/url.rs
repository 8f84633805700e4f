//! Signed download URLs: what the `o` token carries, how `s` signs it, and how a request's
//! query is checked.
//!
//! The token names the [`Resource`] itself, so serving a URL never consults the library (URLs
//! stay valid across library mutations for their lifetime, as Apple's do). The signature is an
//! HMAC-SHA256 with the simulator's secret over the path id, the token and the expiry: changing
//! any of them, or the signature, makes the URL forbidden.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::sim::content::{Format, Resource};

/// Version byte that starts every token.
const TOKEN_VERSION: u8 = 2;
/// Token length in bytes: version, asset key, rendition, generation, size, format.
const TOKEN_LEN: usize = 1 + 8 + 1 + 4 + 8 + 1;
/// Signature length in bytes (Apple's `s` is 20 bytes too).
const SIG_LEN: usize = 20;

/// The `o` parameter for `res`.
pub(crate) fn encode_token(res: &Resource) -> String {
    let mut t = Vec::with_capacity(TOKEN_LEN);
    t.push(TOKEN_VERSION);
    t.extend_from_slice(&res.asset_key.to_be_bytes());
    t.push(res.rendition);
    t.extend_from_slice(&res.generation.to_be_bytes());
    t.extend_from_slice(&res.size.to_be_bytes());
    t.push(res.format.code());
    URL_SAFE_NO_PAD.encode(t)
}

/// The resource an `o` parameter names, if it is a well-formed token.
pub(crate) fn decode_token(token: &str) -> Option<Resource> {
    let t = URL_SAFE_NO_PAD.decode(token).ok()?;
    if t.len() != TOKEN_LEN || t[0] != TOKEN_VERSION {
        return None;
    }
    let u64_at = |i: usize| t[i..i + 8].try_into().ok().map(u64::from_be_bytes);
    Some(Resource {
        asset_key: u64_at(1)?,
        rendition: t[9],
        generation: u32::from_be_bytes(t[10..14].try_into().ok()?),
        size: u64_at(14)?,
        format: Format::from_code(t[22])?,
    })
}

fn mac(secret: &[u8; 32], path_id: &str, token: &str, expiry: u64) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    for part in [
        path_id.as_bytes(),
        token.as_bytes(),
        expiry.to_string().as_bytes(),
    ] {
        mac.update(&(part.len() as u32).to_be_bytes());
        mac.update(part);
    }
    mac
}

/// The `s` parameter for a URL with this path id, token and expiry.
pub(crate) fn sign(secret: &[u8; 32], path_id: &str, token: &str, expiry: u64) -> String {
    let full = mac(secret, path_id, token, expiry).finalize().into_bytes();
    URL_SAFE_NO_PAD.encode(&full[..SIG_LEN])
}

/// True if `signature` is the one [`sign`] gives (compared in constant time).
pub(crate) fn verify(
    secret: &[u8; 32],
    path_id: &str,
    token: &str,
    expiry: u64,
    signature: &str,
) -> bool {
    match URL_SAFE_NO_PAD.decode(signature) {
        Ok(tag) if tag.len() == SIG_LEN => mac(secret, path_id, token, expiry)
            .verify_truncated_left(&tag)
            .is_ok(),
        _ => false,
    }
}

/// A standard-base64 value in URL-safe form without padding, as Apple puts checksums and keys
/// in CDN URLs (`+` → `-`, `/` → `_`).
pub(crate) fn url_safe(standard: &str) -> String {
    standard
        .chars()
        .filter(|&c| c != '=')
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect()
}

/// The opaque `a` parameter and the request UUID (`r`, without its `-1`) of a URL: derived from
/// its token and expiry so URLs are reproducible; nothing checks them.
pub(crate) fn decorations(token: &str, expiry: u64) -> (String, String) {
    use sha2::Digest;
    let mut h = Sha256::new();
    h.update(b"cdn-url-decorations");
    h.update(token.as_bytes());
    h.update(expiry.to_be_bytes());
    let d: [u8; 32] = h.finalize().into();
    let mut uuid_bytes = [0u8; 16];
    uuid_bytes.copy_from_slice(&d[16..]);
    let uuid = uuid::Builder::from_random_bytes(uuid_bytes).into_uuid();
    (
        URL_SAFE_NO_PAD.encode(&d[..24]),
        uuid.hyphenated().to_string(),
    )
}

/// Percent-encode every byte outside RFC 3986's unreserved set (as Apple's
/// `Content-Disposition` shows `${f}` as `%24%7Bf%7D`).
pub(crate) fn percent_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decode `%XX` escapes; a `%` not followed by two hex digits stays as it is.
pub(crate) fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        let escaped = if b[i] == b'%' && i + 2 < b.len() {
            hex(b[i + 1]).zip(hex(b[i + 2]))
        } else {
            None
        };
        if let Some((h, l)) = escaped {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// The parameters of a CDN request the server relies on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SignedQuery<'a> {
    pub token: &'a str,
    pub expiry: u64,
    pub signature: &'a str,
    /// `r`: the request UUID of the listing that produced the URL (echoed in a header).
    pub request: Option<&'a str>,
}

impl<'a> SignedQuery<'a> {
    /// Pick `o`, `e`, `s` and `r` out of a raw query string; `None` if one of the first three
    /// is missing or `e` is not a number.
    pub(crate) fn parse(query: &'a str) -> Option<SignedQuery<'a>> {
        let (mut token, mut expiry, mut signature, mut request) = (None, None, None, None);
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "o" => token = Some(v),
                "e" => expiry = v.parse().ok(),
                "s" => signature = Some(v),
                "r" => request = Some(v),
                _ => {}
            }
        }
        Some(SignedQuery {
            token: token?,
            expiry: expiry?,
            signature: signature?,
            request,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: [u8; 32] = [7; 32];

    fn res() -> Resource {
        Resource {
            asset_key: 0x0102_0304_0506_0708,
            rendition: 3,
            generation: 9,
            size: 5 << 30,
            format: Format::Mov,
        }
    }

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        let t = encode_token(&res());
        assert_eq!(decode_token(&t), Some(res()));
        assert_eq!(decode_token("not base64!"), None);
        assert_eq!(decode_token(&t[..t.len() - 2]), None);
        let mut bad_format = URL_SAFE_NO_PAD.decode(&t).unwrap();
        bad_format[22] = 200;
        assert_eq!(decode_token(&URL_SAFE_NO_PAD.encode(bad_format)), None);
    }

    #[test]
    fn signatures_cover_path_token_and_expiry() {
        let t = encode_token(&res());
        let s = sign(&SECRET, "AAAA", &t, 1000);
        assert!(verify(&SECRET, "AAAA", &t, 1000, &s));
        assert!(!verify(&SECRET, "AAAB", &t, 1000, &s));
        assert!(!verify(&SECRET, "AAAA", &t, 1001, &s));
        assert!(!verify(
            &SECRET,
            "AAAA",
            &encode_token(&Resource { size: 1, ..res() }),
            1000,
            &s
        ));
        assert!(!verify(&[8; 32], "AAAA", &t, 1000, &s));
        assert!(
            !verify(&SECRET, "AAAA", &t, 1000, &s[..10]),
            "truncated signatures are refused"
        );
        assert!(!verify(&SECRET, "AAAA", &t, 1000, ""));
    }

    #[test]
    fn url_safe_matches_the_recorded_form() {
        // wrappingKey "Aj375aJi6sEmqgJPj64+7Q==" appears as k=Aj375aJi6sEmqgJPj64-7Q.
        assert_eq!(
            url_safe("Aj375aJi6sEmqgJPj64+7Q=="),
            "Aj375aJi6sEmqgJPj64-7Q"
        );
        assert_eq!(url_safe("AY6c+BsE0jjaXx9t/VGJ"), "AY6c-BsE0jjaXx9t_VGJ");
    }

    #[test]
    fn percent_coding_matches_the_recorded_disposition() {
        assert_eq!(percent_encode(b"${f}"), "%24%7Bf%7D");
        assert_eq!(percent_encode(b"IMG_0001.JPG"), "IMG_0001.JPG");
        assert_eq!(percent_decode("$%7Bf%7D"), b"${f}");
        assert_eq!(percent_decode("%24%7bf%7D"), b"${f}");
        assert_eq!(percent_decode("100%"), b"100%");
        assert_eq!(percent_decode("%4"), b"%4");
        assert_eq!(percent_decode("%zz%41"), b"%zzA");
    }

    #[test]
    fn decorations_are_uuid_shaped_and_reproducible() {
        let (a, r) = decorations("tok", 5);
        assert_eq!((a.clone(), r.clone()), decorations("tok", 5));
        assert_ne!(r, decorations("tok", 6).1);
        assert_eq!(a.len(), 32);
        assert!(uuid::Uuid::parse_str(&r).is_ok());
    }

    #[test]
    fn query_parsing() {
        let q = SignedQuery::parse("o=abc&v=1&e=12&fl=&r=u-1&s=sig").unwrap();
        assert_eq!(
            q,
            SignedQuery {
                token: "abc",
                expiry: 12,
                signature: "sig",
                request: Some("u-1")
            }
        );
        assert!(SignedQuery::parse("o=abc&e=x&s=sig").is_none());
        assert!(SignedQuery::parse("o=abc&e=1").is_none());
        assert!(SignedQuery::parse("").is_none());
    }
}
