//! Making remote text safe as one path component: invalid characters, non-ASCII, the 255-byte
//! name limit, the reserved names `.`/`..`/empty, and hidden-file prefixes.
//!
//! Everything that ends up in a path goes through here, so that no filename, album name or
//! template can yield an absolute path, a `..` component or a name the kernel refuses.

/// Longest name one path component may have on Linux file systems (`NAME_MAX`), in bytes.
pub const NAME_MAX_BYTES: usize = 255;

/// Characters icloudpd replaces with `_` (besides NUL and the other control characters).
const INVALID_CHARS: &[char] = &['<', '>', ':', '"', '/', '\\', '|', '?', '*'];

/// What replaces an invalid character, and stands in for a name with nothing usable left.
pub const REPLACEMENT: char = '_';

/// icloudpd's filename cleaning: drop non-ASCII unless `keep_unicode` (as icloudpd does, before
/// looking at the character), then turn `< > : " / \ | ? *` and every control character
/// (including NUL and DEL) into `_`.
pub fn clean_chars(text: &str, keep_unicode: bool) -> String {
    text.chars()
        .filter(|c| keep_unicode || c.is_ascii())
        .map(|c| {
            if INVALID_CHARS.contains(&c) || c.is_control() {
                REPLACEMENT
            } else {
                c
            }
        })
        .collect()
}

/// The longest prefix of `text` that fits in `max_bytes`, cut on a character boundary.
pub fn truncate_bytes(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Final guard for one path component built from any source: no `/`, NUL or control
/// characters, never empty, `.` or `..`, at most [`NAME_MAX_BYTES`] bytes. Other text is kept
/// (callers clean remote text first; this only enforces what the file system requires).
pub fn component(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                REPLACEMENT
            } else {
                c
            }
        })
        .collect();
    let cut = truncate_bytes(&cleaned, NAME_MAX_BYTES);
    match cut {
        "" | "." | ".." => REPLACEMENT.to_string(),
        _ => cut.to_string(),
    }
}

/// A name from the remote side (album, library) made into a visible, safe directory name:
/// [`clean_chars`] keeping non-ASCII (icloudpd's ASCII-only default is for file names, which
/// scripts compare; a folder of "日本" must not become "_"), spaces at either end dropped
/// (Windows and SMB shares of a NAS cannot show them as they are), a leading `.` (which would
/// hide the entry) becomes `_`, then [`component`]. The name is put in NFC first: an album
/// named on a Mac arrives decomposed ("e" + U+0301), and beside the same name composed it
/// would make two folders that look the same, where NFC makes them one name (then `-2`).
pub fn remote_component(text: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let composed: String = text.nfc().collect();
    let cleaned = clean_chars(&composed, true);
    component(&unhide(cleaned.trim()))
}

/// Replace a leading `.` with `_` so that the entry is not hidden from `ls` and file managers.
pub fn unhide(text: &str) -> String {
    match text.strip_prefix('.') {
        Some(rest) => format!("{REPLACEMENT}{rest}"),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_names_are_composed() {
        assert_eq!(remote_component("Cafe\u{301}"), "Caf\u{e9}");
        assert_eq!(remote_component("Caf\u{e9}"), "Caf\u{e9}");
    }

    #[test]
    fn remote_names_lose_the_spaces_at_their_ends() {
        assert_eq!(
            remote_component(" Hiking \u{26f0}\u{fe0f} "),
            "Hiking \u{26f0}\u{fe0f}"
        );
        assert_eq!(remote_component("  Trips 2019 "), "Trips 2019");
        assert_eq!(remote_component(" .hidden"), "_hidden");
        assert_eq!(remote_component("   "), "_");
    }

    #[test]
    fn invalid_characters_become_underscores() {
        assert_eq!(clean_chars("a/b:c*d?.JPG", false), "a_b_c_d_.JPG");
        assert_eq!(clean_chars("<>:\"/\\|?*", false), "_________");
        assert_eq!(clean_chars("a\0b\nc\u{7f}d", false), "a_b_c_d");
    }

    #[test]
    fn non_ascii_is_dropped_unless_kept() {
        assert_eq!(clean_chars("Jörg.JPG", false), "Jrg.JPG");
        assert_eq!(clean_chars("Jörg.JPG", true), "Jörg.JPG");
        // A C1 control character is non-ASCII: dropped like icloudpd, replaced when kept.
        assert_eq!(clean_chars("a\u{85}b", false), "ab");
        assert_eq!(clean_chars("a\u{85}b", true), "a_b");
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate_bytes("abc", 5), "abc");
        assert_eq!(truncate_bytes("aé", 2), "a");
        assert_eq!(truncate_bytes("日本", 5), "日");
        assert_eq!(truncate_bytes("日本", 0), "");
    }

    #[test]
    fn reserved_components_are_replaced() {
        assert_eq!(component(""), "_");
        assert_eq!(component("."), "_");
        assert_eq!(component(".."), "_");
        assert_eq!(component("../x"), ".._x");
        assert_eq!(component(&"é".repeat(200)).len(), 254);
    }

    #[test]
    fn remote_components_are_visible() {
        assert_eq!(remote_component(".Trash"), "_Trash");
        assert_eq!(remote_component(".."), "_.");
        assert_eq!(remote_component("日本"), "日本");
        assert_eq!(remote_component("Jörg\u{7}"), "Jörg_");
        assert_eq!(
            remote_component("Garage vorher/nachher"),
            "Garage vorher_nachher"
        );
    }
}
