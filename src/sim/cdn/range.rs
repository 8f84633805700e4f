//! The `Range` header, as a CDN answers it (RFC 9110 §14): one byte range is honoured exactly,
//! several ranges get the whole file, anything malformed is ignored.

/// What a `Range` header asks of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeAnswer {
    /// No usable single range: send the whole file (200).
    Full,
    /// One satisfiable range, `end` inclusive (206).
    Partial { start: u64, end: u64 },
    /// A well-formed single range that misses the file (416).
    Unsatisfiable,
}

/// Digits as a number, saturating (a position past any file is still a position); `None` if
/// empty or not all digits.
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |n, b| {
        n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

/// Answer the `Range` header `value` (if any) for a file of `size` bytes.
pub(crate) fn answer(value: Option<&[u8]>, size: u64) -> RangeAnswer {
    let Some(value) = value.and_then(|v| std::str::from_utf8(v).ok()) else {
        return RangeAnswer::Full;
    };
    let Some((unit, set)) = value.trim().split_once('=') else {
        return RangeAnswer::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || set.contains(',') {
        return RangeAnswer::Full;
    }
    let Some((first, last)) = set.trim().split_once('-') else {
        return RangeAnswer::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // Suffix range: the last n bytes.
        return match number(last) {
            None => RangeAnswer::Full,
            Some(0) => RangeAnswer::Unsatisfiable,
            Some(_) if size == 0 => RangeAnswer::Unsatisfiable,
            Some(n) => RangeAnswer::Partial {
                start: size - n.min(size),
                end: size - 1,
            },
        };
    }
    let Some(start) = number(first) else {
        return RangeAnswer::Full;
    };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        match number(last) {
            Some(end) if end >= start => end,
            _ => return RangeAnswer::Full,
        }
    };
    if start >= size {
        return RangeAnswer::Unsatisfiable;
    }
    RangeAnswer::Partial {
        start,
        end: end.min(size - 1),
    }
}

#[cfg(test)]
mod tests {
    use super::RangeAnswer::{Full, Partial, Unsatisfiable};
    use super::*;

    fn a(v: &str, size: u64) -> RangeAnswer {
        answer(Some(v.as_bytes()), size)
    }

    #[test]
    fn single_ranges() {
        assert_eq!(a("bytes=0-", 100), Partial { start: 0, end: 99 });
        assert_eq!(a("bytes=10-", 100), Partial { start: 10, end: 99 });
        assert_eq!(a("bytes=10-19", 100), Partial { start: 10, end: 19 });
        assert_eq!(a("bytes=10-10", 100), Partial { start: 10, end: 10 });
        assert_eq!(a("bytes=90-500", 100), Partial { start: 90, end: 99 });
        assert_eq!(
            a("bytes=0-99999999999999999999999", 100),
            Partial { start: 0, end: 99 }
        );
        assert_eq!(a("bytes=-10", 100), Partial { start: 90, end: 99 });
        assert_eq!(a("bytes=-1000", 100), Partial { start: 0, end: 99 });
        assert_eq!(a("Bytes = 5-6", 100), Partial { start: 5, end: 6 });
    }

    #[test]
    fn unsatisfiable_ranges() {
        assert_eq!(a("bytes=100-", 100), Unsatisfiable);
        assert_eq!(a("bytes=100-200", 100), Unsatisfiable);
        assert_eq!(a("bytes=99999999999999999999999-", 100), Unsatisfiable);
        assert_eq!(a("bytes=-0", 100), Unsatisfiable);
        assert_eq!(a("bytes=0-", 0), Unsatisfiable);
        assert_eq!(a("bytes=-5", 0), Unsatisfiable);
    }

    #[test]
    fn ignored_headers_give_the_whole_file() {
        assert_eq!(answer(None, 100), Full);
        for v in [
            "bytes=0-1,5-6",
            "bytes=5-1",
            "bytes=a-",
            "bytes=-",
            "bytes=1",
            "items=0-1",
            "bytes 0-1",
            "",
            "bytes=0x1-",
            "bytes=+1-2",
        ] {
            assert_eq!(a(v, 100), Full, "{v:?}");
        }
        assert_eq!(answer(Some(&[0xFF, 0xFE]), 100), Full);
    }
}
