//! The mounted tree against the simulator, through the real binary and a real kernel mount:
//! the date tree is the tree `sync -d` writes (paths, sizes, mtimes, bytes), `rsync -a` copies
//! it exactly and a second `rsync -a` copies nothing without touching the CDN, and the views
//! beside it hold the catalog's albums and smart folders as hard links of the same inodes.

use crate::support;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use icloudpd_rs::catalog::{AssetFilter, SmartFolder};
use support::*;

#[test]
fn date_tree_equals_the_sync_tree_and_rsync_copies_it_once() {
    if !fuse_ready() {
        return;
    }
    let env = Env::new(small(2500, 0.001));
    let synced = env.path("synced");
    env.sync(&synced, &[]);
    let mnt = env.empty_dir("mnt");
    let mounted = env.mount(&mnt, &["--poll-interval", "3600"]);

    let want = tree(&synced, false);
    assert!(want.len() > 2500, "a few thousand files: {}", want.len());
    let got = tree(&mnt, true);
    assert_same_tree("mount date tree vs sync -d", &got, &want);

    let copy = env.empty_dir("copy");
    let (requests, _) = env.cdn();
    let first = rsync_date_tree(&mnt, &copy);
    assert_eq!(first as usize, want.len(), "first rsync copies every file");
    assert_same_tree(
        "rsync -a of the mount vs sync -d",
        &tree(&copy, false),
        &want,
    );
    // The bytes were fetched once already (the sha256 walk): the cache serves them.
    let (after_copy, _) = env.cdn();
    assert_eq!(
        after_copy, requests,
        "the second read of every file is cached"
    );
    let second = rsync_date_tree(&mnt, &copy);
    assert_eq!(second, 0, "a second rsync -a copies nothing");
    assert_eq!(env.cdn().0, after_copy, "and makes no CDN request");

    views_hold_the_catalog_as_hard_links(&env, &mnt);
    statfs_is_honest(&mnt, &got);
    mounted.finish();
}

/// Albums and smart folders match the catalog; every view file is a hard link of a date-tree
/// file or of another view's file (one inode per version).
fn views_hold_the_catalog_as_hard_links(env: &Env, mnt: &Path) {
    let catalog = env.catalog();
    let lib = catalog
        .libraries()
        .unwrap()
        .into_iter()
        .find(|l| l.library.zone == "PrimarySync")
        .unwrap();
    let mut inodes: HashMap<u64, (u64, u64)> = HashMap::new();
    let mut date_inodes: HashSet<u64> = HashSet::new();
    walk(mnt, &mut |rel, meta| {
        let top = rel.split('/').next().unwrap();
        if !VIEWS.contains(&top) {
            date_inodes.insert(meta.ino());
        }
        let seen = inodes.entry(meta.ino()).or_insert((0, meta.nlink()));
        seen.0 += 1;
        assert_eq!(seen.1, meta.nlink(), "{rel}: nlink differs between paths");
    });
    for (ino, (paths, nlink)) in &inodes {
        assert_eq!(*paths, *nlink, "inode {ino}: nlink = number of paths");
    }

    // Each album and smart folder shows exactly the catalog's members.
    let ids = |filter: AssetFilter| -> BTreeSet<String> {
        catalog
            .assets(lib.id, filter)
            .map(|a| a.unwrap().asset.id)
            .collect()
    };
    let albums = catalog.albums(lib.id).unwrap();
    let mut checked = 0;
    for a in albums
        .iter()
        .filter(|a| !a.album.is_folder && !a.album.deleted)
    {
        let dir = find_dir(&mnt.join("Albums"), &a.album.name)
            .unwrap_or_else(|| panic!("album {:?} not under Albums/", a.album.name));
        assert_eq!(
            asset_ids_in(&dir),
            ids(AssetFilter::Album(a.key)),
            "album {:?}",
            a.album.name
        );
        checked += 1;
    }
    assert!(checked > 3, "the simulator has albums");
    let places = [
        (SmartFolder::Favorites, "Favorites"),
        (SmartFolder::Videos, "Media Types/Videos"),
        (SmartFolder::LivePhotos, "Media Types/Live Photos"),
        (SmartFolder::Screenshots, "Media Types/Screenshots"),
        (SmartFolder::Bursts, "Media Types/Bursts"),
        (SmartFolder::Panoramas, "Media Types/Panoramas"),
        (SmartFolder::SloMo, "Media Types/Slo-mo"),
        (SmartFolder::TimeLapse, "Media Types/Time-lapse"),
        (SmartFolder::Hidden, "Hidden"),
        (SmartFolder::RecentlyDeleted, "Recently Deleted"),
    ];
    for (folder, dir) in places {
        let want = ids(AssetFilter::Smart(folder));
        assert!(!want.is_empty(), "{dir}: the simulator has some");
        assert_eq!(asset_ids_in(&mnt.join(dir)), want, "{dir}");
    }
    // Favourites are hard links into the date tree; hidden photos are not in it.
    for e in std::fs::read_dir(mnt.join("Favorites")).unwrap().flatten() {
        let ino = e.metadata().unwrap().ino();
        assert!(
            date_inodes.contains(&ino),
            "{:?} is not a date-tree inode",
            e.path()
        );
    }
    for e in std::fs::read_dir(mnt.join("Hidden")).unwrap().flatten() {
        let ino = e.metadata().unwrap().ino();
        assert!(
            !date_inodes.contains(&ino),
            "hidden photos stay out of the date tree"
        );
    }
}

fn walk(root: &Path, f: &mut dyn FnMut(&str, &std::fs::Metadata)) {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                let rel = e
                    .path()
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                f(&rel, &meta);
            }
        }
    }
}

/// The directory under `root` (any depth) whose name is the album's, cleaned as the layout
/// cleans folder names (non-ASCII kept: "Jörg", "Hiking ⛰️").
fn find_dir(root: &Path, name: &str) -> Option<std::path::PathBuf> {
    // As the layout cleans it: no spaces at the ends, `/` made `_`.
    let want = name.trim();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).ok()?.flatten() {
            if e.file_type().ok()?.is_dir() {
                if e.file_name().to_string_lossy() == want.replace('/', "_") {
                    return Some(e.path());
                }
                stack.push(e.path());
            }
        }
    }
    None
}

fn statfs_is_honest(
    mnt: &Path,
    date_tree: &std::collections::BTreeMap<String, (u64, i128, String)>,
) {
    let c = std::ffi::CString::new(mnt.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: valid path and out pointer.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
    let bytes = st.f_blocks * st.f_frsize;
    let date_bytes: u64 = date_tree.values().map(|v| v.0).sum();
    assert!(
        bytes >= date_bytes,
        "statfs total {bytes} < date tree {date_bytes}"
    );
    assert_eq!(st.f_bfree, 0);
    assert!(st.f_flag & libc::ST_RDONLY != 0);
}

#[test]
fn layout_flags_give_the_same_tree_as_sync_and_views_yield_to_the_date_tree() {
    if !fuse_ready() {
        return;
    }
    let env = Env::new(small(600, 0.0005));
    // An album named like a view: with `{album}` folders it sits at the root of the date tree.
    env.mutate(serde_json::json!([
        {"op": "album_create", "name": "Albums"},
        {"op": "add", "count": 4, "album": "Albums"},
    ]));
    // One config file for both commands (`threads_num` is sync's own: the mount skips it).
    let config = env.path("both.toml");
    std::fs::write(
        &config,
        "folder_structure = \"{:%Y/%m}\"\nsize = [\"original\", \"adjusted\"]\n\
         skip_live_photos = true\nthreads_num = 2\n",
    )
    .unwrap();
    let config = config.display().to_string();
    let variants: [&[&str]; 3] = [
        &["--folder-structure", "{album}", "--album", "Albums"],
        &[
            "--folder-structure",
            "{:%Y}",
            "--size",
            "original",
            "--size",
            "medium",
            "--skip-videos",
            "--keep-unicode-in-filenames",
        ],
        &["--config", &config],
    ];
    for (i, flags) in variants.iter().enumerate() {
        let synced = env.path(&format!("synced{i}"));
        env.sync(&synced, flags);
        let want = tree(&synced, false);
        assert!(!want.is_empty());
        if flags[0] == "--config" {
            // The file was read: `{:%Y/%m}` folders.
            assert!(want.keys().all(|p| p.split('/').count() == 3), "{want:?}");
        }
        let mnt = env.empty_dir(&format!("mnt{i}"));
        let mut args = vec!["--poll-interval", "3600"];
        args.extend_from_slice(flags);
        let mounted = env.mount(&mnt, &args);
        let mut got = tree(&mnt, false);
        // The views sit beside the date tree; a view whose name the date tree uses moved to
        // `NAME (2)`.
        let renamed = i == 0;
        assert_eq!(
            mnt.join("Albums (2)").is_dir(),
            renamed,
            "the albums view yields its name to the date tree"
        );
        got.retain(|p, _| {
            let top = p.split('/').next().unwrap();
            let view =
                top == "Albums (2)" || (VIEWS.contains(&top) && !(renamed && top == "Albums"));
            !view
        });
        assert_same_tree(&format!("mount vs sync -d with {flags:?}"), &got, &want);
        mounted.finish();
    }
}
