//! Fault injection: which faults are armed, at what rate, and deterministic decisions.
//!
//! A decision is a pure function of (seed, fault, how many times this fault was consulted), so a
//! run with the same seed and the same request sequence fires the same faults, and over N
//! consultations a fault with probability P fires about N·P times, whatever the concurrency.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Every fault the simulator knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum FaultKind {
    /// API answers 503 with `Retry-After`.
    #[serde(rename = "api-503")]
    Api503,
    /// API answers 429 with `Retry-After`.
    #[serde(rename = "api-429")]
    Api429,
    /// API connection dropped without an answer.
    #[serde(rename = "api-reset")]
    ApiReset,
    /// API answer is truncated JSON.
    #[serde(rename = "api-malformed")]
    ApiMalformed,
    /// A `records/query` answer holds only the first half of its records (well-formed JSON:
    /// a page cut short by a gateway, or partly served).
    #[serde(rename = "api-short-page")]
    ApiShortPage,
    /// The web session becomes invalid (as Apple signals it) and this call is refused.
    #[serde(rename = "session-expire")]
    SessionExpire,
    /// A sync token given to `changes/zone` is rejected.
    #[serde(rename = "token-expire")]
    TokenExpire,
    /// CDN answers 503.
    #[serde(rename = "cdn-503")]
    Cdn503,
    /// CDN connection dropped mid-body.
    #[serde(rename = "cdn-reset")]
    CdnReset,
    /// CDN body shorter than its `Content-Length`.
    #[serde(rename = "cdn-truncate")]
    CdnTruncate,
    /// CDN answers 200 with an HTML error page.
    #[serde(rename = "cdn-html")]
    CdnHtml,
    /// CDN stops sending mid-body for longer than a client should wait.
    #[serde(rename = "cdn-stall")]
    CdnStall,
    /// CDN treats the URL as expired.
    #[serde(rename = "url-expire")]
    UrlExpire,
}

impl FaultKind {
    /// Every fault, in a fixed order.
    pub const ALL: [FaultKind; 13] = [
        FaultKind::Api503,
        FaultKind::Api429,
        FaultKind::ApiReset,
        FaultKind::ApiMalformed,
        FaultKind::ApiShortPage,
        FaultKind::SessionExpire,
        FaultKind::TokenExpire,
        FaultKind::Cdn503,
        FaultKind::CdnReset,
        FaultKind::CdnTruncate,
        FaultKind::CdnHtml,
        FaultKind::CdnStall,
        FaultKind::UrlExpire,
    ];

    /// The name used on the command line and in `/_sim/faults`.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Api503 => "api-503",
            FaultKind::Api429 => "api-429",
            FaultKind::ApiReset => "api-reset",
            FaultKind::ApiMalformed => "api-malformed",
            FaultKind::ApiShortPage => "api-short-page",
            FaultKind::SessionExpire => "session-expire",
            FaultKind::TokenExpire => "token-expire",
            FaultKind::Cdn503 => "cdn-503",
            FaultKind::CdnReset => "cdn-reset",
            FaultKind::CdnTruncate => "cdn-truncate",
            FaultKind::CdnHtml => "cdn-html",
            FaultKind::CdnStall => "cdn-stall",
            FaultKind::UrlExpire => "url-expire",
        }
    }

    /// True for faults of the download CDN (the others apply to API calls).
    pub fn is_cdn(self) -> bool {
        matches!(
            self,
            FaultKind::Cdn503
                | FaultKind::CdnReset
                | FaultKind::CdnTruncate
                | FaultKind::CdnHtml
                | FaultKind::CdnStall
                | FaultKind::UrlExpire
        )
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FaultKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        FaultKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = FaultKind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown fault {s:?} (known: {})", names.join(", "))
            })
    }
}

/// How one fault is armed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultRule {
    /// Probability in [0, 1] that a consultation fires.
    pub p: f64,
    /// Only fire for these asset ids (CPLMaster recordNames); `None` = any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset_ids: Option<HashSet<String>>,
    /// Fire at most this many more times; `None` = unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<u64>,
}

/// Parse `NAME=P` as given to `--fault`.
pub fn parse_spec(spec: &str) -> Result<(FaultKind, f64), String> {
    let (name, p) = spec.split_once('=').ok_or_else(|| {
        format!("fault {spec:?} must look like NAME=PROBABILITY, e.g. cdn-503=0.05")
    })?;
    let kind: FaultKind = name.trim().parse()?;
    let p: f64 = p
        .trim()
        .parse()
        .map_err(|_| format!("fault {spec:?}: {p:?} is not a number"))?;
    if !(0.0..=1.0).contains(&p) {
        return Err(format!(
            "fault {spec:?}: probability must be between 0 and 1"
        ));
    }
    Ok((kind, p))
}

/// The armed faults of a simulator and their counters.
pub struct Faults {
    seed: u64,
    rules: RwLock<HashMap<FaultKind, FaultRule>>,
    consulted: HashMap<FaultKind, AtomicU64>,
    fired: HashMap<FaultKind, AtomicU64>,
}

impl Faults {
    /// Faults armed from `--fault NAME=P` specs.
    pub fn new(seed: u64, specs: &[String]) -> Result<Self, String> {
        let faults = Faults {
            seed,
            rules: RwLock::new(HashMap::new()),
            consulted: FaultKind::ALL
                .into_iter()
                .map(|k| (k, AtomicU64::new(0)))
                .collect(),
            fired: FaultKind::ALL
                .into_iter()
                .map(|k| (k, AtomicU64::new(0)))
                .collect(),
        };
        for spec in specs {
            let (kind, p) = parse_spec(spec)?;
            faults.set(
                kind,
                FaultRule {
                    p,
                    ..FaultRule::default()
                },
            );
        }
        Ok(faults)
    }

    /// Arm (or with `p == 0`, disarm) a fault.
    pub fn set(&self, kind: FaultKind, rule: FaultRule) {
        let mut rules = self.rules.write().unwrap_or_else(|e| e.into_inner());
        if rule.p <= 0.0 {
            rules.remove(&kind);
        } else {
            rules.insert(kind, rule);
        }
    }

    /// Disarm every fault.
    pub fn clear(&self) {
        self.rules
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// True if `kind` is armed for particular assets only: a caller must then look up and pass
    /// the asset id, which it can skip otherwise.
    pub fn needs_asset_id(&self, kind: FaultKind) -> bool {
        let rules = self.rules.read().unwrap_or_else(|e| e.into_inner());
        rules.get(&kind).is_some_and(|r| r.asset_ids.is_some())
    }

    /// Decide whether `kind` fires now (for an untargeted consultation).
    pub fn fire(&self, kind: FaultKind) -> bool {
        self.fire_for(kind, None)
    }

    /// Decide whether `kind` fires now for a request about `asset_id` (if known).
    pub fn fire_for(&self, kind: FaultKind, asset_id: Option<&str>) -> bool {
        // Fast path: nothing armed for this fault.
        let rule = {
            let rules = self.rules.read().unwrap_or_else(|e| e.into_inner());
            match rules.get(&kind) {
                Some(rule) => rule.clone(),
                None => return false,
            }
        };
        if let Some(ids) = &rule.asset_ids {
            match asset_id {
                Some(id) if ids.contains(id) => {}
                _ => return false,
            }
        }
        let n = self.consulted[&kind].fetch_add(1, Ordering::Relaxed);
        if !decide(self.seed, kind, n, rule.p) {
            return false;
        }
        if rule.remaining.is_some() {
            let mut rules = self.rules.write().unwrap_or_else(|e| e.into_inner());
            match rules.get_mut(&kind).and_then(|r| r.remaining.as_mut()) {
                Some(0) => return false,
                Some(left) => {
                    *left -= 1;
                    if *left == 0 {
                        rules.remove(&kind);
                    }
                }
                None => {}
            }
        }
        self.fired[&kind].fetch_add(1, Ordering::Relaxed);
        tracing::info!(fault = kind.name(), asset_id, "fault fired");
        true
    }

    /// How many times `kind` fired since start.
    pub fn fired(&self, kind: FaultKind) -> u64 {
        self.fired[&kind].load(Ordering::Relaxed)
    }

    /// JSON view for `GET /_sim/faults`: armed rules and counters.
    pub fn snapshot(&self) -> serde_json::Value {
        let rules = self.rules.read().unwrap_or_else(|e| e.into_inner());
        let mut armed = serde_json::Map::new();
        for (k, r) in rules.iter() {
            armed.insert(k.name().into(), serde_json::to_value(r).unwrap_or_default());
        }
        let mut fired = serde_json::Map::new();
        let mut consulted = serde_json::Map::new();
        for k in FaultKind::ALL {
            fired.insert(k.name().into(), self.fired(k).into());
            consulted.insert(
                k.name().into(),
                self.consulted[&k].load(Ordering::Relaxed).into(),
            );
        }
        serde_json::json!({"armed": armed, "fired": fired, "consulted": consulted})
    }
}

/// The n-th decision for a fault: a keyed hash compared against the probability.
fn decide(seed: u64, kind: FaultKind, n: u64, p: f64) -> bool {
    if p >= 1.0 {
        return true;
    }
    let h = super::seeded_hash(seed ^ n.rotate_left(17), kind.name().as_bytes());
    let x = u64::from_be_bytes(h[..8].try_into().expect("8 bytes"));
    (x as f64) < p * (u64::MAX as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs_and_rejects_bad_ones() {
        assert_eq!(
            parse_spec("cdn-503=0.25").unwrap(),
            (FaultKind::Cdn503, 0.25)
        );
        assert!(parse_spec("cdn-503").is_err());
        assert!(parse_spec("nope=0.1").is_err());
        assert!(parse_spec("cdn-503=2").is_err());
        assert!(parse_spec("cdn-503=x").is_err());
    }

    #[test]
    fn fires_at_its_rate_and_only_when_armed() {
        let f = Faults::new(7, &["api-503=0.1".into()]).unwrap();
        let fired = (0..10_000).filter(|_| f.fire(FaultKind::Api503)).count();
        assert!(
            (800..1200).contains(&fired),
            "fired {fired} of 10000 at p=0.1"
        );
        assert!((0..10_000).all(|_| !f.fire(FaultKind::Api429)));
        assert_eq!(f.fired(FaultKind::Api503), fired as u64);
    }

    #[test]
    fn decisions_are_deterministic() {
        let a = Faults::new(3, &["cdn-reset=0.3".into()]).unwrap();
        let b = Faults::new(3, &["cdn-reset=0.3".into()]).unwrap();
        let xs: Vec<bool> = (0..500).map(|_| a.fire(FaultKind::CdnReset)).collect();
        let ys: Vec<bool> = (0..500).map(|_| b.fire(FaultKind::CdnReset)).collect();
        assert_eq!(xs, ys);
    }

    #[test]
    fn targeted_rules_fire_only_for_their_assets_and_count_down() {
        let f = Faults::new(1, &[]).unwrap();
        f.set(
            FaultKind::Cdn503,
            FaultRule {
                p: 1.0,
                asset_ids: Some(["A".to_string()].into()),
                remaining: Some(2),
            },
        );
        assert!(!f.fire_for(FaultKind::Cdn503, Some("B")));
        assert!(!f.fire_for(FaultKind::Cdn503, None));
        assert!(f.fire_for(FaultKind::Cdn503, Some("A")));
        assert!(f.fire_for(FaultKind::Cdn503, Some("A")));
        assert!(!f.fire_for(FaultKind::Cdn503, Some("A")));
    }
}
