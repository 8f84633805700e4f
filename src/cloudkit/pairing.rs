//! Pairing CPLMaster and CPLAsset records by `masterRef`: within one answer, and across the
//! pages of one walk through a shared carry-over of the records whose partner has not arrived.
//! Every record that cannot become an asset is reported as a [`Skipped`] with the reason.

use std::collections::HashMap;
use std::sync::Mutex;

use super::fields::RecordText;
use super::parse::{ListedAsset, Skipped, Urls, build_asset_with, server_error_skip, skip_entry};
use super::records::Record;

/// The assets of one answer (a listing page, a lookup), and what did not become an asset.
#[derive(Debug, Default)]
pub struct ParsedRecords {
    pub assets: Vec<ListedAsset>,
    pub skipped: Vec<Skipped>,
    /// Records of types that carry no asset (e.g. `CPLContainerRelation` in album listings).
    pub ignored: usize,
}

/// Unpaired records of one walk, waiting for their partner on a later page.
#[derive(Default)]
pub(crate) struct CarryOver {
    /// Masters by recordName, with whether an asset already paired with it.
    masters: HashMap<String, (Record, bool)>,
    /// Assets waiting for their master, by master recordName.
    assets: HashMap<String, Vec<Record>>,
}

/// A CPLAsset naming a master another CPLAsset already paired with: both would be the same
/// asset (an asset is known by its master), so the first one is kept.
fn second_asset<S: RecordText>(asset: &Record<S>, master: &str) -> super::parse::Skipped {
    skip_entry(
        asset.name(),
        format!("a second CPLAsset for CPLMaster {master} (the first one is kept)"),
    )
}

impl CarryOver {
    /// Forget what waits for pairs that a later answer made within one page: the records of an
    /// earlier, cut-short answer of that page (see `enumerate`).
    fn forget_paired<S: RecordText>(&mut self, pairs: &[(S, S)]) {
        if self.masters.is_empty() && self.assets.is_empty() {
            return;
        }
        for (master, asset) in pairs {
            let (master, asset): (&str, &str) = (master, asset);
            if let Some((_, used)) = self.masters.get_mut(master) {
                *used = true;
            }
            if let Some(waiting) = self.assets.get_mut(master) {
                waiting.retain(|a| a.name() != asset);
                if waiting.is_empty() {
                    self.assets.remove(master);
                }
            }
        }
    }

    /// Report everything still unpaired at the end of the walk.
    pub fn finish(self) -> Vec<Skipped> {
        let mut out = Vec::new();
        for (name, (_, used)) in self.masters {
            if !used {
                out.push(skip_entry(
                    &name,
                    "CPLMaster without its CPLAsset in this listing",
                ));
            }
        }
        for (master, assets) in self.assets {
            for a in assets {
                out.push(skip_entry(
                    a.name(),
                    format!("CPLAsset whose CPLMaster {master} never arrived in this listing"),
                ));
            }
        }
        out
    }
}

/// Pair and parse the records of one standalone answer (e.g. a recorded listing page): records
/// whose partner is not in the answer are reported as skipped.
pub fn parse_records(records: Vec<Record>, zone: &str) -> ParsedRecords {
    pair_page(records, zone, None, Urls::Keep)
}

/// Pair the records of one page. Unpaired records go to `carry` (shared by the walk) when given,
/// else they are reported as skipped at once. Records may borrow from the answer (`S`); the
/// ones carried over are copied into owned records.
pub(crate) fn pair_page<S: RecordText>(
    records: Vec<Record<S>>,
    zone: &str,
    carry: Option<&Mutex<CarryOver>>,
    urls: Urls,
) -> ParsedRecords {
    let mut page = ParsedRecords::default();
    let mut masters: HashMap<S, (Record<S>, bool)> = HashMap::new();
    let mut master_order: Vec<S> = Vec::new();
    let mut assets: Vec<Record<S>> = Vec::new();
    for r in records {
        if let Some(skipped) = server_error_skip(&r) {
            page.skipped.push(skipped);
            continue;
        }
        if r.deleted {
            page.skipped
                .push(skip_entry(r.name(), "hard-deleted record inside a listing"));
            continue;
        }
        match r.record_type.as_deref() {
            Some("CPLMaster") if r.record_name.is_some() => {
                let name = r.record_name.clone().unwrap_or_default();
                if masters.insert(name.clone(), (r, false)).is_none() {
                    master_order.push(name);
                }
            }
            Some("CPLMaster") => page
                .skipped
                .push(skip_entry("", "CPLMaster without recordName")),
            Some("CPLAsset") => {
                if r.reference("masterRef").is_some() {
                    assets.push(r);
                } else {
                    page.skipped
                        .push(skip_entry(r.name(), "CPLAsset without masterRef"));
                }
            }
            Some("CPLContainerRelation") => page.ignored += 1,
            Some(other) => {
                let reason = format!("unexpected record type {other} in an asset listing");
                page.skipped.push(skip_entry(r.name(), reason));
            }
            None => page
                .skipped
                .push(skip_entry(r.name(), "record without recordType")),
        }
    }

    let mut waiting_assets = Vec::new();
    // Pairs made within the page, by master and asset record name: what an earlier, cut-short
    // answer of the same page left in the carry-over for them is stale once they pair here.
    let mut paired_here: Vec<(S, S)> = Vec::new();
    let carry_waits = carry.is_some_and(|c| {
        let c = c.lock().unwrap_or_else(|e| e.into_inner());
        !c.masters.is_empty() || !c.assets.is_empty()
    });
    for a in assets {
        let master_name = a.reference("masterRef").unwrap_or_default();
        match masters.get_mut(master_name) {
            Some((_, true)) => page.skipped.push(second_asset(&a, master_name)),
            Some((m, used)) => {
                *used = true;
                let built = build_asset_with(m, &a, zone, &mut page.skipped, urls);
                page.assets.push(built);
                if carry_waits
                    && let (Some(m), Some(n)) = (m.record_name.clone(), a.record_name.clone())
                {
                    paired_here.push((m, n));
                }
            }
            None => waiting_assets.push(a),
        }
    }
    if let Some(carry) = carry
        && !paired_here.is_empty()
    {
        carry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .forget_paired(&paired_here);
    }
    let waiting_masters: Vec<Record<S>> = master_order
        .into_iter()
        .filter_map(|name| masters.remove(&name))
        .filter(|(_, used)| !used)
        .map(|(m, _)| m)
        .collect();

    if waiting_assets.is_empty() && waiting_masters.is_empty() {
        return page;
    }
    let Some(carry) = carry else {
        for a in waiting_assets {
            let reason = format!(
                "CPLAsset whose CPLMaster {} is not in the answer",
                a.reference("masterRef").unwrap_or_default()
            );
            page.skipped.push(skip_entry(a.name(), reason));
        }
        for m in waiting_masters {
            page.skipped.push(skip_entry(
                m.name(),
                "CPLMaster without its CPLAsset in the answer",
            ));
        }
        return page;
    };
    let mut carry = carry.lock().unwrap_or_else(|e| e.into_inner());
    for a in waiting_assets {
        let a = a.into_owned();
        let master_name = a.reference("masterRef").unwrap_or_default().to_string();
        match carry.masters.get_mut(&master_name) {
            Some((_, true)) => page.skipped.push(second_asset(&a, &master_name)),
            Some((m, used)) => {
                *used = true;
                let built = build_asset_with(m, &a, zone, &mut page.skipped, urls);
                page.assets.push(built);
            }
            None => carry.assets.entry(master_name).or_default().push(a),
        }
    }
    for m in waiting_masters {
        let m = m.into_owned();
        let name = m.name().to_string();
        let used = match carry.assets.remove(&name) {
            Some(waiting) => {
                for a in waiting {
                    let built = build_asset_with(&m, &a, zone, &mut page.skipped, urls);
                    page.assets.push(built);
                }
                true
            }
            None => false,
        };
        carry.masters.insert(name, (m, used));
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloudkit::parse::tests::{asset, master, record};
    use serde_json::json;

    #[test]
    fn pairs_split_across_pages_are_joined_and_leftovers_reported() {
        let carry = Mutex::new(CarryOver::default());
        let p1 = pair_page(
            vec![master("M1", "public.jpeg"), asset("A2", "M2")],
            "Z",
            Some(&carry),
            Urls::Keep,
        );
        assert!(p1.assets.is_empty() && p1.skipped.is_empty());
        let p2 = pair_page(
            vec![
                asset("A1", "M1"),
                master("M2", "public.jpeg"),
                master("M3", "public.jpeg"),
            ],
            "Z",
            Some(&carry),
            Urls::Keep,
        );
        let ids: Vec<_> = p2.assets.iter().map(|a| a.asset.id.as_str()).collect();
        assert_eq!(ids.len(), 2);
        assert!(ids.contains(&"M1") && ids.contains(&"M2"));
        let left = carry.into_inner().expect("lock").finish();
        assert_eq!(
            left,
            vec![skip_entry(
                "M3",
                "CPLMaster without its CPLAsset in this listing"
            )]
        );
    }

    #[test]
    fn bad_records_become_explicit_skips() {
        let no_ref = record(json!({"recordName": "A9", "recordType": "CPLAsset", "fields": {}}));
        let err = record(
            json!({"recordName": "X", "serverErrorCode": "ACCESS_DENIED", "reason": "revoked"}),
        );
        let other = record(json!({"recordName": "Y", "recordType": "CPLMemory", "fields": {}}));
        let untyped = record(json!({"recordName": "Z", "fields": {}}));
        let p = pair_page(
            vec![no_ref, err, other, untyped, master("M", "public.jpeg")],
            "Z",
            None,
            Urls::Keep,
        );
        let names: Vec<_> = p.skipped.iter().map(|s| s.record_name.as_str()).collect();
        assert_eq!(names, vec!["A9", "X", "Y", "Z", "M"]);
        assert!(p.skipped[1].reason.contains("ACCESS_DENIED"));
    }
}
