use std::time::{Duration, UNIX_EPOCH};

use super::*;
use crate::mount::cookies::{COOKIE_DOTDOT, COOKIE_MAX};
use crate::mount::inodes::DIR_INO_BASE;
use crate::mount::tree::{Child, Tree};

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn entry(path: &str, key: u64, size: u64, mtime: u64) -> Entry {
    Entry {
        path: path.into(),
        size,
        mtime: t(mtime),
        file: FileId(key.wrapping_mul(10)),
        inode_key: key,
        xattrs: Arc::default(),
    }
}

fn names(tree: &Tree, dir: u64) -> Vec<String> {
    tree.dirs[&dir]
        .children
        .iter()
        .map(|c| String::from_utf8(c.name.to_vec()).unwrap())
        .collect()
}

fn child(tree: &Tree, dir: u64, name: &str) -> Child {
    tree.lookup(&tree.dirs[&dir], name.as_bytes())
        .unwrap_or_else(|| panic!("{name} missing"))
        .clone()
}

#[test]
fn builds_implicit_directories_sorted_bytewise() {
    let (ns, skipped) = Namespace::with_epoch(
        vec![
            entry("2024/01/02/b.jpg", 1, 10, 100),
            entry("2024/01/02/a.jpg", 2, 20, 300),
            entry("2024/01/02/B.jpg", 3, 30, 200),
            entry("2023/12/31/z.mov", 4, 40, 50),
            entry("top.txt", 5, 5, 10),
            entry("2024/01/02/a-.jpg", 6, 1, 1),
        ],
        &["Albums".to_string(), "Albums/Empty".to_string()],
        t(7),
    );
    assert!(skipped.is_empty());
    let tree = ns.tree();
    assert_eq!(
        names(&tree, ROOT_INO),
        vec!["2023", "2024", "Albums", "top.txt"]
    );
    let y = child(&tree, ROOT_INO, "2024");
    let m = child(&tree, y.ino, "01");
    let d = child(&tree, m.ino, "02");
    assert_eq!(d.kind, Kind::Dir);
    // Byte order: uppercase before lowercase, '-' (0x2d) before '.' (0x2e).
    assert_eq!(
        names(&tree, d.ino),
        vec!["B.jpg", "a-.jpg", "a.jpg", "b.jpg"]
    );
    // File inodes come from keys, directory inodes from their range.
    assert_eq!(child(&tree, d.ino, "a.jpg").ino, FILE_INO_BASE + 2);
    for dir in [y.ino, m.ino, d.ino] {
        assert_eq!(dir & (3 << 62), DIR_INO_BASE);
    }
    // Directory mtimes: newest file below; empty directories: the epoch.
    assert_eq!(tree.dirs[&d.ino].mtime, t(300));
    assert_eq!(tree.dirs[&ROOT_INO].mtime, t(300));
    let albums = child(&tree, ROOT_INO, "Albums");
    assert_eq!(tree.dirs[&albums.ino].mtime, t(7));
    assert_eq!(tree.dirs[&ROOT_INO].subdirs, 3);
    assert_eq!(tree.total_bytes, 106);
    assert_eq!(ns.file_count(), 6);
}

#[test]
fn directory_inodes_are_a_pure_function_of_the_path() {
    let a = Namespace::new(vec![entry("x/y/f", 1, 1, 1)], &[]).0;
    let b = Namespace::new(vec![entry("q", 9, 1, 1), entry("x/y/g", 2, 1, 1)], &[]).0;
    let (ta, tb) = (a.tree(), b.tree());
    let xa = child(&ta, ROOT_INO, "x");
    let xb = child(&tb, ROOT_INO, "x");
    assert_eq!(xa.ino, xb.ino);
    assert_eq!(child(&ta, xa.ino, "y").ino, child(&tb, xb.ino, "y").ino);
}

#[test]
fn refuses_bad_entries_and_says_why() {
    let long = "n".repeat(256);
    let (ns, skipped) = Namespace::new(
        vec![
            entry("ok.jpg", 1, 1, 1),
            entry("", 2, 1, 1),
            entry("/abs", 3, 1, 1),
            entry("a//b", 4, 1, 1),
            entry("a/./b", 5, 1, 1),
            entry("a/../b", 6, 1, 1),
            entry("trailing/", 7, 1, 1),
            entry(&long, 8, 1, 1),
            entry("nul\0x", 9, 1, 1),
            entry("ok.jpg", 10, 1, 1),
            entry("dir", 11, 1, 1),
            entry("dir/inside", 12, 1, 1),
            entry("big-key", MAX_INODE_KEY, 1, 1),
        ],
        &[],
    );
    let reasons: Vec<(String, SkipReason)> =
        skipped.into_iter().map(|s| (s.path, s.reason)).collect();
    use SkipReason::*;
    for (path, reason) in [
        ("", InvalidPath),
        ("/abs", InvalidPath),
        ("a//b", InvalidPath),
        ("a/./b", InvalidPath),
        ("a/../b", InvalidPath),
        ("trailing/", InvalidPath),
        (long.as_str(), InvalidPath),
        ("nul\0x", InvalidPath),
        ("ok.jpg", DuplicatePath),
        ("dir", ShadowedByDirectory),
        ("big-key", KeyOutOfRange),
    ] {
        assert!(
            reasons.contains(&(path.to_string(), reason)),
            "{path:?} should be refused as {reason:?}: {reasons:?}"
        );
    }
    assert_eq!(reasons.len(), 11);
    let tree = ns.tree();
    // The first of two files with one path wins.
    assert_eq!(child(&tree, ROOT_INO, "ok.jpg").ino, FILE_INO_BASE + 1);
    assert_eq!(names(&tree, ROOT_INO), vec!["dir", "ok.jpg"]);
    assert_eq!(ns.file_count(), 2);
}

#[test]
fn equal_keys_are_hard_links() {
    let mut fav = entry("Favorites/a.jpg", 1, 10, 5);
    fav.xattrs = Arc::new([("user.x".to_string(), b"1".to_vec())].into());
    let mut conflicting = entry("Other/a.jpg", 1, 11, 5);
    conflicting.file = FileId(10);
    let (ns, skipped) = Namespace::new(vec![entry("2024/a.jpg", 1, 10, 5), fav, conflicting], &[]);
    assert_eq!(
        skipped,
        vec![Skipped {
            path: "Other/a.jpg".into(),
            reason: SkipReason::ConflictingHardLink
        }]
    );
    let tree = ns.tree();
    let a = child(&tree, child(&tree, ROOT_INO, "2024").ino, "a.jpg");
    let b = child(&tree, child(&tree, ROOT_INO, "Favorites").ino, "a.jpg");
    assert_eq!(a.ino, b.ino);
    assert_eq!(tree.files[&a.ino].nlink, 2);
    assert_eq!(tree.total_bytes, 10, "a hard-linked file counts once");
}

#[test]
fn cookies_increase_and_resume_anywhere() {
    let entries: Vec<Entry> = (0..1000)
        .map(|i| entry(&format!("d/f{i:04}"), i + 1, 1, 1))
        .collect();
    let (ns, _) = Namespace::new(entries, &[]);
    let tree = ns.tree();
    let d = &tree.dirs[&child(&tree, ROOT_INO, "d").ino];
    let cookies: Vec<u64> = d.children.iter().map(|c| c.cookie).collect();
    assert!(cookies[0] > COOKIE_DOTDOT);
    assert!(cookies.windows(2).all(|w| w[0] < w[1]));
    assert!(*cookies.last().unwrap() <= COOKIE_MAX);
    for (i, c) in cookies.iter().enumerate() {
        assert_eq!(Tree::children_after(d, *c).len(), 999 - i);
    }
    assert_eq!(Tree::children_after(d, 0).len(), 1000);
    assert_eq!(Tree::children_after(d, COOKIE_DOTDOT).len(), 1000);
}

#[test]
fn apply_keeps_unchanged_inodes_and_reports_invalidations() {
    let (ns, _) = Namespace::with_epoch(
        vec![
            entry("2024/a.jpg", 1, 10, 100),
            entry("2024/c.jpg", 3, 30, 100),
            entry("2024/d.jpg", 4, 40, 100),
            entry("old/x.jpg", 5, 50, 100),
        ],
        &[],
        t(1),
    );
    let before = ns.tree();
    let y = child(&before, ROOT_INO, "2024");
    let old_dir = child(&before, ROOT_INO, "old");
    let c_cookie = child(&before, y.ino, "c.jpg").cookie;
    let d_cookie = child(&before, y.ino, "d.jpg").cookie;
    let update = ns.apply(
        vec![
            entry("2024/a.jpg", 1, 10, 100),
            entry("2024/b.jpg", 2, 20, 200),
            // Same key, new content: must not keep the old inode number.
            entry("2024/d.jpg", 4, 41, 150),
            entry("new/y.jpg", 6, 60, 100),
        ],
        &[],
    );
    assert!(update.skipped.is_empty());
    let after = ns.tree();
    assert_eq!(child(&after, ROOT_INO, "2024").ino, y.ino);
    assert_eq!(child(&after, y.ino, "a.jpg").ino, FILE_INO_BASE + 1);
    let new_d = child(&after, y.ino, "d.jpg");
    assert_ne!(new_d.ino, FILE_INO_BASE + 4);
    assert_eq!(after.files[&new_d.ino].size, 41);
    assert!(!after.files.contains_key(&(FILE_INO_BASE + 4)));
    // Names keep their cookies; a new name lands between its neighbours.
    assert_eq!(new_d.cookie, d_cookie);
    let a_cookie = child(&after, y.ino, "a.jpg").cookie;
    let b_cookie = child(&after, y.ino, "b.jpg").cookie;
    assert!(a_cookie < b_cookie && b_cookie < d_cookie);
    // Resuming after the removed c.jpg's cookie continues with d.jpg.
    let rest = Tree::children_after(&after.dirs[&y.ino], c_cookie);
    assert_eq!(&*rest[0].name, b"d.jpg");

    let inv = &update.invalidations;
    let has = |i: Invalidation| inv.contains(&i);
    assert!(has(Invalidation::Entry {
        parent: y.ino,
        name: b"b.jpg".to_vec()
    }));
    assert!(has(Invalidation::Delete {
        parent: y.ino,
        child: FILE_INO_BASE + 3,
        name: b"c.jpg".to_vec()
    }));
    assert!(has(Invalidation::Entry {
        parent: y.ino,
        name: b"d.jpg".to_vec()
    }));
    assert!(has(Invalidation::Entry {
        parent: ROOT_INO,
        name: b"old".to_vec()
    }));
    assert!(has(Invalidation::Entry {
        parent: ROOT_INO,
        name: b"new".to_vec()
    }));
    assert!(has(Invalidation::Inode { ino: y.ino }));
    assert!(has(Invalidation::Inode { ino: ROOT_INO }));
    // Names come before inodes; nothing about a.jpg.
    let first_inode = inv
        .iter()
        .position(|i| matches!(i, Invalidation::Inode { .. }))
        .unwrap();
    assert!(
        inv[first_inode..]
            .iter()
            .all(|i| matches!(i, Invalidation::Inode { .. }))
    );
    assert!(
        !inv.iter()
            .any(|i| matches!(i, Invalidation::Entry { name, .. } if name == b"a.jpg"))
    );
    assert!(!inv.contains(&Invalidation::Inode { ino: old_dir.ino }));

    // The old directory comes back with the same inode; the changed key never reuses one.
    let update = ns.apply(
        vec![
            entry("old/x.jpg", 5, 50, 100),
            entry("2024/d.jpg", 4, 40, 100),
        ],
        &[],
    );
    let again = ns.tree();
    assert_eq!(child(&again, ROOT_INO, "old").ino, old_dir.ino);
    let d3 = child(&again, y.ino, "d.jpg").ino;
    assert_ne!(d3, FILE_INO_BASE + 4);
    assert_ne!(d3, new_d.ino);
    assert!(!update.invalidations.is_empty());
}

#[test]
fn empty_directories_take_the_newest_file_time_on_every_mount() {
    let list = || vec![entry("a/f.jpg", 1, 1, 500), entry("g.jpg", 2, 1, 300)];
    for _ in 0..2 {
        let (ns, _) = Namespace::new(list(), &["Empty".into()]);
        let tree = ns.tree();
        let empty = child(&tree, ROOT_INO, "Empty");
        assert_eq!(tree.dirs[&empty.ino].mtime, t(500));
    }
}

#[test]
fn identical_apply_changes_nothing() {
    let list = || vec![entry("a/b.jpg", 1, 1, 1), entry("a/c.jpg", 2, 1, 1)];
    let (ns, _) = Namespace::new(list(), &["x".into()]);
    let update = ns.apply(list(), &["x".into()]);
    assert!(
        update.invalidations.is_empty(),
        "{:?}",
        update.invalidations
    );
}
