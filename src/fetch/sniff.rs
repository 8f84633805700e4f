//! What the first bytes of a CDN body say: the expected kind of file, or an error page.
//!
//! Apple's CDN (and proxies in front of it) sometimes answer 200 with an HTML or JSON error page.
//! Those must never be written where a photo belongs. A body is rejected when its head looks like
//! markup or a JSON envelope, or when it lacks the magic bytes of the UTI we expect.

/// Bytes needed to judge a body.
pub const HEAD_LEN: usize = 16;

/// Check the head of a body against the expected UTI. `Err` names what was found instead.
pub fn check(head: &[u8], uti: &str) -> Result<(), String> {
    if let Some(what) = error_page(head) {
        return Err(what.to_string());
    }
    if head.len() < 4 {
        // Too short to judge magic bytes; the size check decides.
        return Ok(());
    }
    let at4 = |tags: &[&[u8; 4]]| head.len() >= 8 && tags.iter().any(|t| &head[4..8] == *t);
    let ok = match uti {
        "public.jpeg" => head.starts_with(&[0xFF, 0xD8]),
        "public.png" => head.starts_with(&[0x89, b'P', b'N', b'G']),
        "public.heic" | "public.heif" | "public.mpeg-4" | "public.avci" => at4(&[b"ftyp"]),
        "com.apple.quicktime-movie" => at4(&[
            b"ftyp", b"wide", b"mdat", b"moov", b"free", b"skip", b"pnot",
        ]),
        "com.compuserve.gif" => head.starts_with(b"GIF8"),
        "org.webmproject.webp" => {
            head.starts_with(b"RIFF") && head.len() >= 12 && &head[8..12] == b"WEBP"
        }
        t if t.contains("raw-image") || t == "public.tiff" => {
            head.starts_with(&[0x49, 0x49, 0x2A, 0x00])
                || head.starts_with(&[0x4D, 0x4D, 0x00, 0x2A])
                // CR3, ORF and RW2 variants.
                || at4(&[b"ftyp"])
                || head.starts_with(b"IIRO")
                || head.starts_with(b"IIU\0")
                || head.starts_with(b"FUJIFILM")
        }
        // Unknown types: only error pages are refused.
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "bytes that are not a {uti} file (starts with {:02x?})",
            &head[..head.len().min(8)]
        ))
    }
}

/// `Some(description)` when the head looks like an HTML/XML page or a JSON error envelope.
fn error_page(head: &[u8]) -> Option<&'static str> {
    let trimmed: Vec<u8> = head
        .iter()
        .copied()
        .skip_while(|b| b.is_ascii_whitespace() || *b == 0xEF || *b == 0xBB || *b == 0xBF)
        .take(8)
        .map(|b| b.to_ascii_lowercase())
        .collect();
    if trimmed.starts_with(b"<!doctyp")
        || trimmed.starts_with(b"<html")
        || trimmed.starts_with(b"<?xml")
    {
        return Some("an HTML page");
    }
    if trimmed.starts_with(b"<")
        && trimmed
            .get(1)
            .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'!')
    {
        return Some("markup");
    }
    if trimmed.starts_with(b"{\"") || trimmed == b"{}" || trimmed.starts_with(b"[{") {
        return Some("a JSON document");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_real_magic() {
        assert!(
            check(
                &[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F'],
                "public.jpeg"
            )
            .is_ok()
        );
        assert!(check(b"\0\0\0\x18ftypheic", "public.heic").is_ok());
        assert!(check(b"\0\0\0\x14ftypqt  ", "com.apple.quicktime-movie").is_ok());
        assert!(check(b"\0\0\0\x08wide\0\0", "com.apple.quicktime-movie").is_ok());
        assert!(check(b"II*\0\x08\0\0\0", "com.adobe.raw-image").is_ok());
        assert!(check(b"II*\0\x08\0\0\0", "com.canon.cr2-raw-image").is_ok());
        assert!(check(&[0x89, b'P', b'N', b'G', 13, 10, 26, 10], "public.png").is_ok());
        assert!(check(b"anything", "public.unknown-type").is_ok());
    }

    #[test]
    fn refuses_error_pages_and_wrong_magic() {
        assert!(check(b"<!DOCTYPE html><html>", "public.jpeg").is_err());
        assert!(check(b"  <html><body>", "public.heic").is_err());
        assert!(check(b"{\"error\":\"x\"}", "public.jpeg").is_err());
        assert!(check(b"{}", "public.unknown-type").is_err());
        assert!(check(b"<html>", "public.unknown-type").is_err());
        assert!(check(b"\0\0\0\x18ftypheic", "public.jpeg").is_err());
        assert!(check(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0, 0, 0], "public.heic").is_err());
    }
}
