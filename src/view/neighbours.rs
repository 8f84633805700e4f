//! Which photos sit next to which, in listing order: a file manager or a thumbnailer that
//! opens one file of a directory opens the next ones right after, and `cp -r`, `rsync` or a
//! recursive thumbnailer walk on into the next directories (a date tree has a directory per
//! day, with few photos each). A download URL looked up for one photo is looked up together
//! with those of the photos after it in path order (one `records/lookup` for many), so a walk
//! costs one lookup per few dozen photos, not one per photo.

use std::collections::HashMap;

use crate::catalog::AssetKey;

/// The assets in path order.
#[derive(Debug, Default)]
pub struct NeighbourOrder {
    /// Assets in the order of their first file's path.
    list: Vec<AssetKey>,
    /// Where each asset is listed first.
    place: HashMap<AssetKey, u32>,
}

impl NeighbourOrder {
    /// From `(directory, file name, asset)` triples, in any order.
    pub fn new(mut files: Vec<(String, String, AssetKey)>) -> NeighbourOrder {
        files.sort_unstable();
        let mut order = NeighbourOrder::default();
        for (_, _, asset) in files {
            if order.list.last() == Some(&asset) {
                continue; // another file of the same asset (a live photo's video)
            }
            if let std::collections::hash_map::Entry::Vacant(e) = order.place.entry(asset) {
                e.insert(order.list.len() as u32);
                order.list.push(asset);
            }
        }
        order
    }

    /// Up to `n` assets listed after `asset` (then before it, near the end).
    pub fn after(&self, asset: AssetKey, n: usize) -> Vec<AssetKey> {
        let Some(&pos) = self.place.get(&asset) else {
            return Vec::new();
        };
        let pos = pos as usize;
        let mut out: Vec<AssetKey> = self.list.iter().skip(pos + 1).take(n).copied().collect();
        if out.len() < n {
            let more = n - out.len();
            out.extend(self.list[..pos].iter().rev().take(more).copied());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbours_follow_path_order_across_directories() {
        let f = |d: &str, n: &str, k: i64| (d.to_string(), n.to_string(), AssetKey(k));
        let order = NeighbourOrder::new(vec![
            f("2024/01", "IMG_3.JPG", 3),
            f("2024/01", "IMG_1.HEIC", 1),
            f("2024/01", "IMG_1_HEVC.MOV", 1),
            f("2024/01", "IMG_2.JPG", 2),
            f("2024/02", "IMG_9.JPG", 9),
            f("Favorites", "IMG_2.JPG", 2),
        ]);
        assert_eq!(
            order.after(AssetKey(1), 5),
            vec![AssetKey(2), AssetKey(3), AssetKey(9)]
        );
        assert_eq!(order.after(AssetKey(9), 2), vec![AssetKey(3), AssetKey(2)]);
        assert_eq!(order.after(AssetKey(42), 3), vec![]);
    }
}
