//! A mounted library follows iCloud: photos added, deleted, purged, favourited and new albums
//! show up after a poll (`/_sim/mutate` on the simulator, a short `--poll-interval`). And the
//! metadata: XMP sidecars parse and carry the asset's date; extended attributes come through
//! the xattr system calls.

use crate::support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use support::*;

/// Names from listxattr(2).
fn listxattr(path: &Path) -> Vec<String> {
    let p = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let mut buf = vec![0u8; 4096];
    // SAFETY: valid C string and buffer.
    let len = unsafe { libc::listxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    assert!(
        len >= 0,
        "listxattr {path:?}: {}",
        std::io::Error::last_os_error()
    );
    buf[..len as usize]
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

/// Every file of the date tree whose `user.icloud.asset_id` is one of `ids`, by id.
fn files_of(mnt: &Path, ids: &[String], under: Option<&str>) -> HashMap<String, Vec<PathBuf>> {
    let mut out: HashMap<String, Vec<PathBuf>> = HashMap::new();
    let root = under.map_or(mnt.to_path_buf(), |u| mnt.join(u));
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if under.is_none() && dir == root && VIEWS.contains(&name.as_str()) {
                continue;
            }
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else if let Some(id) = getxattr(&e.path(), "user.icloud.asset_id") {
                let id = String::from_utf8(id).unwrap();
                if ids.contains(&id) {
                    out.entry(id).or_default().push(e.path());
                }
            }
        }
    }
    out
}

#[test]
fn changes_in_icloud_appear_after_a_poll() {
    if !fuse_ready() {
        return;
    }
    let env = Env::new(small(300, 0.0005));
    let mnt = env.empty_dir("mnt");
    let mounted = env.mount(&mnt, &["--poll-interval", "1"]);

    let added = env.mutate(serde_json::json!({"op": "add", "count": 3}));
    eventually("new photos in the date tree", || {
        files_of(&mnt, &added, None).len() == 3
    });
    // Listing a directory the kernel has cached shows them too (its listing was invalidated).
    let new_file = files_of(&mnt, &added[..1], None)[&added[0]][0].clone();
    let dir_listing: Vec<_> = std::fs::read_dir(new_file.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(dir_listing.contains(&new_file));
    assert!(std::fs::read(&new_file).unwrap().len() as u64 == new_file.metadata().unwrap().len());

    env.mutate(serde_json::json!({"op": "favorite", "asset_ids": [added[0]]}));
    eventually("a favourite in Favorites", || {
        files_of(&mnt, &added[..1], Some("Favorites")).len() == 1
    });

    env.mutate(serde_json::json!({"op": "delete", "asset_ids": [added[1]]}));
    eventually(
        "a deleted photo leaves the date tree for Recently Deleted",
        || {
            files_of(&mnt, &added[1..2], None).is_empty()
                && files_of(&mnt, &added[1..2], Some("Recently Deleted")).len() == 1
        },
    );

    let purged_paths = files_of(&mnt, &added[2..3], None)[&added[2]].clone();
    env.mutate(serde_json::json!({"op": "purge", "asset_ids": [added[2]]}));
    eventually("a purged photo disappears", || {
        purged_paths.iter().all(|p| !p.exists())
    });

    env.mutate(serde_json::json!({"op": "album_create", "name": "Brand New Album"}));
    eventually("a new (empty) album", || {
        mnt.join("Albums/Brand New Album").is_dir()
    });
    assert_eq!(
        std::fs::read_dir(mnt.join("Albums/Brand New Album"))
            .unwrap()
            .count(),
        0
    );
    mounted.finish();
}

/// The text of element or attribute `name` (e.g. `xmp:CreateDate`) in an XMP packet.
fn xmp_value(xmp: &str, name: &str) -> Option<String> {
    if let Some(start) = xmp.find(&format!("<{name}>")) {
        let rest = &xmp[start + name.len() + 2..];
        return rest
            .find(&format!("</{name}>"))
            .map(|end| rest[..end].to_string());
    }
    let attr = format!("{name}=\"");
    let start = xmp.find(&attr)? + attr.len();
    xmp[start..]
        .find('"')
        .map(|end| xmp[start..start + end].to_string())
}

#[test]
fn xmp_sidecars_parse_and_xattrs_carry_the_catalog() {
    if !fuse_ready() {
        return;
    }
    let env = Env::new(small(200, 0.0005));
    let mnt = env.empty_dir("mnt");
    let mounted = env.mount(&mnt, &["--poll-interval", "3600", "--xmp-sidecar"]);
    let catalog = env.catalog();
    let lib = catalog.libraries().unwrap()[0].id;
    let assets: HashMap<String, icloudpd_rs::model::Asset> = catalog
        .assets(lib, icloudpd_rs::catalog::AssetFilter::InICloud)
        .map(|a| {
            let a = a.unwrap();
            (a.asset.id.clone(), a.asset)
        })
        .collect();

    let mut checked = 0;
    let mut stack = vec![mnt.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type().unwrap().is_dir() {
                if !(dir == mnt && VIEWS.contains(&name.as_str())) {
                    stack.push(path);
                }
                continue;
            }
            if name.ends_with(".xmp") {
                let photo = path.with_file_name(name.trim_end_matches(".xmp"));
                assert!(photo.is_file(), "{path:?} has no photo beside it");
                continue;
            }
            // The photo's attributes.
            let names = listxattr(&path);
            assert!(
                names.contains(&"user.icloud.asset_id".to_string()),
                "{names:?}"
            );
            let id = String::from_utf8(getxattr(&path, "user.icloud.asset_id").unwrap()).unwrap();
            let asset = assets
                .get(&id)
                .unwrap_or_else(|| panic!("{path:?}: unknown id {id}"));
            let fav = getxattr(&path, "user.icloud.favorite").unwrap();
            assert_eq!(fav, if asset.favorite { b"1" } else { b"0" });
            assert!(getxattr(&path, "user.nope").is_none());
            assert_eq!(
                std::io::Error::last_os_error().raw_os_error(),
                Some(libc::ENODATA)
            );
            // Its sidecar: well-formed XML carrying the asset's capture date.
            let sidecar = path.with_file_name(format!("{name}.xmp"));
            let bytes = std::fs::read(&sidecar).unwrap_or_else(|e| panic!("{sidecar:?}: {e}"));
            assert_eq!(bytes.len() as u64, sidecar.metadata().unwrap().len());
            let text = String::from_utf8(bytes).unwrap();
            let mut reader = quick_xml::Reader::from_str(&text);
            loop {
                match reader.read_event() {
                    Ok(quick_xml::events::Event::Eof) => break,
                    Ok(_) => {}
                    Err(e) => panic!("{sidecar:?} is not XML: {e}"),
                }
            }
            if asset.asset_date_ms != 0 {
                let date = xmp_value(&text, "xmp:CreateDate")
                    .unwrap_or_else(|| panic!("{sidecar:?} has no date:\n{text}"));
                let parsed = chrono::DateTime::parse_from_rfc3339(&date).unwrap();
                assert_eq!(
                    parsed.timestamp_millis(),
                    asset.asset_date_ms,
                    "{sidecar:?}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 200, "checked {checked} files");
    mounted.finish();
}

/// A mount started while another process held the catalog follows it, and refreshes by itself
/// once that process has ended (it used to stay frozen until remounted).
#[test]
fn a_following_mount_refreshes_once_the_catalogs_writer_has_ended() {
    if !fuse_ready() {
        return;
    }
    let env = Env::new(small(40, 0.0005));
    let first_mnt = env.empty_dir("first");
    let first = env.mount(&first_mnt, &["--poll-interval", "3600"]);
    let mnt = env.empty_dir("mnt");
    let cache = env.path("second-cache").display().to_string();
    let following = env.mount(&mnt, &["--poll-interval", "1", "--cache-dir", &cache]);
    first.finish();

    let added = env.mutate(serde_json::json!({"op": "add", "count": 2}));
    eventually("new photos in the mount that followed", || {
        files_of(&mnt, &added, None).len() == 2
    });
    following.finish();
}
