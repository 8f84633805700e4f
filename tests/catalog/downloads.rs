//! Download roots and download state transitions, and the status document built on them.

use crate::support;

use icloudpd_rs::catalog::{
    Catalog, CatalogError, DownloadState, DownloadStateKind, RootId, VersionKey,
};
use icloudpd_rs::model::VersionKind;
use support::*;

fn originals(c: &Catalog, lib: icloudpd_rs::catalog::LibraryId) -> Vec<VersionKey> {
    c.assets(lib, icloudpd_rs::catalog::AssetFilter::InICloud)
        .map(|a| a.unwrap().version_key(VersionKind::Original).unwrap())
        .collect()
}

#[test]
fn roots_are_absolute_normalised_and_separate() {
    let s = Scratch::new();
    let (mut c, _) = writer(&s.db());
    let a = c.register_root(&s.path("photos")).unwrap();
    let a_again = c.register_root(&s.dir.path().join("./photos/")).unwrap();
    let b = c.register_root(&s.path("mirror")).unwrap();
    assert_eq!(a, a_again);
    assert_ne!(a, b);
    assert_eq!(c.root_id(&s.path("photos")).unwrap(), Some(a));
    assert_eq!(c.root_id(&s.path("elsewhere")).unwrap(), None);
    let roots = c.roots().unwrap();
    assert_eq!(roots.len(), 2);
    assert_eq!(roots[0].path, s.path("photos"));
    for bad in ["relative/dir", "/a/../b"] {
        assert!(matches!(
            c.register_root(std::path::Path::new(bad)),
            Err(CatalogError::BadRoot { .. })
        ));
    }
}

#[test]
fn download_states_move_through_their_transitions() {
    let s = Scratch::new();
    let (mut c, lib) = writer(&s.db());
    full_refresh(&mut c, lib, &[photo("A", 1), photo("B", 2), photo("C", 3)]);
    let [va, vb, vc]: [VersionKey; 3] = originals(&c, lib).try_into().unwrap();
    let root = c.register_root(&s.path("photos")).unwrap();
    let other = c.register_root(&s.path("mirror")).unwrap();

    assert_eq!(c.download_state(va, root).unwrap(), None);
    assert_eq!(c.mark_pending(root, &[va, vb, vc]).unwrap(), 3);
    assert_eq!(c.mark_pending(root, &[va]).unwrap(), 0, "idempotent");
    assert_eq!(
        c.download_state(va, root).unwrap(),
        Some(DownloadState::Pending {
            previous_path: None
        })
    );

    assert_eq!(c.mark_failed(vb, root, "HTTP 500").unwrap(), 1);
    assert_eq!(c.mark_failed(vb, root, "connection reset").unwrap(), 2);
    match c.download_state(vb, root).unwrap().unwrap() {
        DownloadState::Failed {
            attempts,
            last_error,
            ..
        } => assert_eq!((attempts, last_error.as_str()), (2, "connection reset")),
        other => panic!("expected failed, got {other:?}"),
    }

    let digest = [0xAB; 32];
    c.mark_downloaded(va, root, "2017/07/14/IMG_0001.HEIC", 1_000_001, &digest)
        .unwrap();
    c.mark_downloaded(vb, root, "2017/07/14/IMG_0002.HEIC", 1_000_002, &digest)
        .unwrap();
    match c.download_state(va, root).unwrap().unwrap() {
        DownloadState::Downloaded {
            rel_path,
            size,
            sha256,
            at_ms,
        } => {
            assert_eq!(rel_path, "2017/07/14/IMG_0001.HEIC");
            assert_eq!(size, 1_000_001);
            assert_eq!(sha256, digest);
            assert!(at_ms > 0);
        }
        other => panic!("expected downloaded, got {other:?}"),
    }
    // The other root knows nothing of it.
    assert_eq!(c.download_state(va, other).unwrap(), None);
    c.mark_failed(vc, other, "disk full").unwrap();

    let downloaded: Vec<VersionKey> = c
        .downloads(root, DownloadStateKind::Downloaded)
        .map(|r| r.unwrap().version)
        .collect();
    assert_eq!(downloaded, [va, vb]);
    let pending: Vec<_> = c
        .downloads(root, DownloadStateKind::Pending)
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        (pending[0].version, pending[0].kind),
        (vc, VersionKind::Original)
    );
    let failed: Vec<_> = c
        .downloads(other, DownloadStateKind::Failed)
        .map(|r| r.unwrap().version)
        .collect();
    assert_eq!(failed, [vc]);

    // Status per root and over all roots.
    let st = c.status(Some(root)).unwrap();
    assert_eq!(
        (st.assets, st.versions, st.downloaded, st.pending, st.failed),
        (3, 9, 2, 1, 0)
    );
    assert_eq!(st.downloaded_bytes, 2_000_003);
    assert_eq!(st.root.as_deref(), Some(s.path("photos").as_path()));
    let all = c.status(None).unwrap();
    assert_eq!((all.downloaded, all.pending, all.failed), (2, 1, 1));

    // Reset of one root: back to pending with the old path remembered; the other root keeps
    // its state.
    assert_eq!(c.reset_downloads(Some(root)).unwrap(), 2);
    assert_eq!(
        c.download_state(va, root).unwrap(),
        Some(DownloadState::Pending {
            previous_path: Some("2017/07/14/IMG_0001.HEIC".into())
        })
    );
    assert!(matches!(
        c.download_state(vc, other).unwrap(),
        Some(DownloadState::Failed { .. })
    ));
    assert_eq!(c.reset_downloads(None).unwrap(), 1);
    assert!(c.forget_download(va, root).unwrap());
    assert_eq!(c.download_state(va, root).unwrap(), None);
}

#[test]
fn download_state_rejects_bad_input() {
    let s = Scratch::new();
    let (mut c, lib) = writer(&s.db());
    full_refresh(&mut c, lib, &[photo("A", 1)]);
    let v = originals(&c, lib)[0];
    let root = c.register_root(&s.path("photos")).unwrap();
    for bad in ["", "/etc/passwd", "../outside.JPG", "a/../../b.JPG"] {
        assert!(
            matches!(
                c.mark_downloaded(v, root, bad, 1, &[0; 32]),
                Err(CatalogError::BadLocalPath { .. })
            ),
            "{bad:?} accepted"
        );
    }
    assert!(matches!(
        c.mark_downloaded(VersionKey(9999), root, "a.JPG", 1, &[0; 32]),
        Err(CatalogError::UnknownVersion(_))
    ));
    assert!(matches!(
        c.mark_failed(v, RootId(9999), "x"),
        Err(CatalogError::UnknownRoot(_))
    ));
    assert!(matches!(
        c.status(Some(RootId(9999))),
        Err(CatalogError::UnknownRoot(_))
    ));
}

#[test]
fn gone_assets_leave_pending_and_failed_counts_but_keep_their_files() {
    let s = Scratch::new();
    let (mut c, lib) = writer(&s.db());
    full_refresh(&mut c, lib, &[photo("A", 1), photo("B", 2), photo("C", 3)]);
    let [va, vb, vc]: [VersionKey; 3] = originals(&c, lib).try_into().unwrap();
    let root = c.register_root(&s.path("photos")).unwrap();
    c.mark_downloaded(va, root, "a.HEIC", 1, &[1; 32]).unwrap();
    c.mark_pending(root, &[vb]).unwrap();
    c.mark_failed(vc, root, "boom").unwrap();

    full_refresh(&mut c, lib, &[]);
    let st = c.status(Some(root)).unwrap();
    assert_eq!((st.assets, st.versions, st.bytes), (0, 0, 0));
    assert_eq!((st.downloaded, st.pending, st.failed), (1, 0, 0));
    let files: Vec<_> = c
        .downloads(root, DownloadStateKind::Downloaded)
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(files.len(), 1);
    assert!(files[0].asset_gone);
}

#[test]
fn status_serialises_as_the_status_json_document() {
    let s = Scratch::new();
    let (mut c, lib) = writer(&s.db());
    full_refresh(&mut c, lib, &[photo("A", 1), photo("B", 2)]);
    c.replace_albums(lib, &[album("AL", "Album", None, false, 1)])
        .unwrap();
    let json = serde_json::to_value(c.status(None).unwrap()).unwrap();
    for key in [
        "assets",
        "versions",
        "downloaded",
        "pending",
        "failed",
        "albums",
        "last_refresh",
        "libraries",
        "last_run",
        "interrupted_runs",
    ] {
        assert!(json.get(key).is_some(), "missing {key}: {json}");
    }
    assert_eq!(json["assets"], 2);
    assert_eq!(json["versions"], 6);
    assert_eq!(json["albums"], 1);
    assert!(json["last_refresh"].as_str().unwrap().ends_with('Z'));
    assert_eq!(json["libraries"][0]["zone"], "PrimarySync");
    assert_eq!(json["libraries"][0]["assets"], 2);
    assert_eq!(json["libraries"][0]["has_zone_token"], true);
    assert!(
        json["libraries"][0].get("zone_token").is_none(),
        "tokens stay out of status"
    );
    assert_eq!(json["last_run"]["kind"], "full");
    assert_eq!(json["last_run"]["status"], "completed");
    assert_eq!(json["last_run"]["seen"], 2);
}

#[test]
fn older_copies_keep_their_digest_through_resets_and_edits() {
    let s = Scratch::new();
    let (mut c, lib) = writer(&s.db());
    let mut edited = photo("A", 1);
    full_refresh(&mut c, lib, &[edited.clone(), photo("B", 2)]);
    let [va, vb]: [VersionKey; 2] = originals(&c, lib).try_into().unwrap();
    let root = c.register_root(&s.path("photos")).unwrap();
    c.mark_downloaded(va, root, "A.HEIC", 11, &[1; 32]).unwrap();
    c.mark_downloaded(vb, root, "B.HEIC", 12, &[2; 32]).unwrap();
    assert!(
        c.previous_copies(root, &[va, vb]).unwrap().is_empty(),
        "downloaded: none"
    );

    // reset-state: the copies still hold the current content.
    c.reset_downloads(Some(root)).unwrap();
    let copies = c.previous_copies(root, &[va, vb]).unwrap();
    let a = &copies[&va];
    assert_eq!(
        (a.rel_path.as_str(), a.size, a.sha256, a.current),
        ("A.HEIC", 11, [1; 32], true)
    );
    assert!(copies[&vb].current);

    // A failure after the reset keeps what is known of the copy.
    c.mark_failed(vb, root, "changed on disk").unwrap();
    assert_eq!(c.previous_copies(root, &[vb]).unwrap()[&vb].sha256, [2; 32]);

    // A's content changes in iCloud: its copy is now older content.
    edited.versions[0].checksum = "edited".into();
    edited.versions[0].size += 1;
    full_refresh(&mut c, lib, &[edited, photo("B", 2)]);
    let a = &c.previous_copies(root, &[va]).unwrap()[&va];
    assert_eq!((a.sha256, a.current), ([1; 32], false));

    // A failure of a version recorded as downloaded forgets its digest (`verify --repair`: the
    // file is missing or damaged, so it is replaced).
    c.mark_downloaded(va, root, "A.HEIC", 13, &[3; 32]).unwrap();
    c.mark_failed(va, root, "verify: damaged").unwrap();
    assert!(c.previous_copies(root, &[va]).unwrap().is_empty());
    assert_eq!(
        c.download_state(va, root).unwrap(),
        Some(DownloadState::Failed {
            attempts: 1,
            last_error: "verify: damaged".into(),
            at_ms: match c.download_state(va, root).unwrap() {
                Some(DownloadState::Failed { at_ms, .. }) => at_ms,
                _ => 0,
            },
            previous_path: Some("A.HEIC".into()),
        })
    );
}
