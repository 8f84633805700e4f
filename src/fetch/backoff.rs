//! Retry delays: exponential backoff with full jitter, overridden by a server's `Retry-After`.

use std::time::Duration;

/// Exponential backoff: attempt n waits a random time in [base·2ⁿ / 2, base·2ⁿ], capped.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
    /// Longest `Retry-After` honoured (a server asking for more is capped to this).
    pub max_retry_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(250),
            cap: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

impl Backoff {
    /// Delay before retry number `attempt` (0 = first retry), honouring `retry_after`.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(ra) = retry_after {
            return ra.min(self.max_retry_after);
        }
        let exp = self
            .base
            .saturating_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX));
        let top = exp.min(self.cap);
        // Half fixed, half random: spreads retries of many workers without going to zero.
        let half = top / 2;
        let jitter = rand::random_range(0..=half.as_millis().max(1) as u64);
        half + Duration::from_millis(jitter)
    }
}

/// `Retry-After` in delta-seconds (the HTTP-date form is ignored, as Apple sends seconds).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let secs: u64 = v.trim().parse().ok()?;
    Some(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_then_caps_and_honours_retry_after() {
        let b = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(5),
        };
        for attempt in 0..10 {
            let d = b.delay(attempt, None);
            let top = (Duration::from_millis(100) * 2u32.pow(attempt)).min(Duration::from_secs(1));
            assert!(
                d >= top / 2 && d <= top,
                "attempt {attempt}: {d:?} not in [{:?}, {top:?}]",
                top / 2
            );
        }
        assert_eq!(
            b.delay(3, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(
            b.delay(3, Some(Duration::from_secs(600))),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn parses_retry_after_seconds_only() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            reqwest::header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
    }
}
