//! Section 6 of the protocol notes, table by table: which versions become files and under
//! which names, for every size, RAW, live-photo and filename policy.

use crate::support;

use icloudpd_rs::layout::{
    AlignRaw, FileMatchPolicy, LayoutPolicy, LiveSize, MovNamePolicy, PrimarySize, plan_asset,
    skipped_sizes,
};
use icloudpd_rs::model::{Asset, ItemKind, VersionKind as K};
use support::*;

fn sizes(list: &[PrimarySize]) -> LayoutPolicy {
    LayoutPolicy {
        sizes: list.to_vec(),
        ..utc_policy()
    }
}

/// Plan and return (name, role, source) triples.
fn plan(asset: &Asset, policy: &LayoutPolicy) -> Vec<(String, K, K)> {
    summary(&plan_asset(asset, policy))
}

/// Expected (name, role, source) of one file.
type Row = (String, K, K);

fn row(name: &str, role: K, source: K) -> (String, K, K) {
    (name.to_string(), role, source)
}

use PrimarySize::{Adjusted, Alternative, Medium, Original, Thumb};

#[test]
fn primary_sizes_of_a_plain_photo() {
    let photo = jpeg_photo(ICLOUDPD_ID, "IMG_7409.JPG", 1_884_695);
    let cases: Vec<(Vec<PrimarySize>, Vec<Row>)> = vec![
        (vec![], vec![row("IMG_7409.JPG", K::Original, K::Original)]),
        (
            vec![Original],
            vec![row("IMG_7409.JPG", K::Original, K::Original)],
        ),
        (
            vec![Medium],
            vec![row("IMG_7409-medium.JPG", K::Medium, K::Medium)],
        ),
        (
            vec![Thumb],
            vec![row("IMG_7409-thumb.JPG", K::Thumb, K::Thumb)],
        ),
        (
            vec![Original, Medium, Thumb],
            vec![
                row("IMG_7409.JPG", K::Original, K::Original),
                row("IMG_7409-medium.JPG", K::Medium, K::Medium),
                row("IMG_7409-thumb.JPG", K::Thumb, K::Thumb),
            ],
        ),
        // Unedited: `adjusted` is the original under the original's name.
        (
            vec![Adjusted],
            vec![row("IMG_7409.JPG", K::Adjusted, K::Original)],
        ),
        // No alternative: the original.
        (
            vec![Alternative],
            vec![row("IMG_7409.JPG", K::Alternative, K::Original)],
        ),
        // Both requested, neither exists: the original once (the files would be identical).
        (
            vec![Adjusted, Alternative],
            vec![row("IMG_7409.JPG", K::Adjusted, K::Original)],
        ),
        // Original requested: the missing adjusted is covered by it.
        (
            vec![Original, Adjusted],
            vec![row("IMG_7409.JPG", K::Original, K::Original)],
        ),
    ];
    for (requested, expected) in cases {
        assert_eq!(plan(&photo, &sizes(&requested)), expected, "{requested:?}");
    }
}

#[test]
fn missing_sizes_fall_back_or_are_skipped_with_force_size() {
    let photo = asset(
        "id1",
        Some("IMG_0001.JPG"),
        ItemKind::Image,
        vec![version(K::Original, JPEG, 1000)],
    );
    let medium = sizes(&[Medium]);
    assert_eq!(
        plan(&photo, &medium),
        vec![row("IMG_0001.JPG", K::Original, K::Original)]
    );
    assert!(skipped_sizes(&photo, &medium).is_empty());

    let forced = LayoutPolicy {
        force_size: true,
        ..medium
    };
    assert_eq!(plan(&photo, &forced), vec![]);
    assert_eq!(skipped_sizes(&photo, &forced), vec![Medium]);

    // With the original also requested, a missing thumb is just left out.
    let both = sizes(&[Original, Thumb]);
    assert_eq!(
        plan(&photo, &both),
        vec![row("IMG_0001.JPG", K::Original, K::Original)]
    );
    // Two missing sizes both falling back give one file, not two.
    assert_eq!(
        plan(&photo, &sizes(&[Medium, Thumb])),
        vec![row("IMG_0001.JPG", K::Original, K::Original)]
    );
    // icloudpd does not force `adjusted`: unedited still means the original.
    let forced_adjusted = LayoutPolicy {
        force_size: true,
        ..sizes(&[Adjusted])
    };
    assert_eq!(
        plan(&photo, &forced_adjusted),
        vec![row("IMG_0001.JPG", K::Adjusted, K::Original)]
    );
}

fn edited(filename: &str, original_uti: &str) -> Asset {
    asset(
        "edited",
        Some(filename),
        ItemKind::Image,
        vec![
            version(K::Original, original_uti, 3000),
            version(K::Adjusted, JPEG, 2000),
        ],
    )
}

#[test]
fn adjusted_versions_and_their_disambiguation() {
    let heic = edited("IMG_0001.HEIC", HEIC);
    assert_eq!(
        plan(&heic, &sizes(&[Adjusted])),
        vec![row("IMG_0001.JPG", K::Adjusted, K::Adjusted)]
    );
    // Different extensions: no suffix needed.
    assert_eq!(
        plan(&heic, &sizes(&[Original, Adjusted])),
        vec![
            row("IMG_0001.HEIC", K::Original, K::Original),
            row("IMG_0001.JPG", K::Adjusted, K::Adjusted),
        ]
    );
    // Same name: the edit gets `-adjusted`.
    let jpeg = edited("IMG_7409.JPG", JPEG);
    assert_eq!(
        plan(&jpeg, &sizes(&[Original, Adjusted])),
        vec![
            row("IMG_7409.JPG", K::Original, K::Original),
            row("IMG_7409-adjusted.JPG", K::Adjusted, K::Adjusted),
        ]
    );
}

/// Two sizes of one asset that land on one name (an edit, and a missing alternative that
/// falls back to the original of the same name): the size requested first keeps the name,
/// the other gets `-<size>`, as icloudpd writes them in the `--size` order. Collision
/// handling over a whole tree keeps that choice.
#[test]
fn sizes_sharing_a_name_are_named_in_the_requested_order() {
    let jpeg = edited("IMG_0009.JPG", JPEG);
    let adjusted_first = sizes(&[Adjusted, Alternative]);
    assert_eq!(
        plan(&jpeg, &adjusted_first),
        vec![
            row("IMG_0009.JPG", K::Adjusted, K::Adjusted),
            row("IMG_0009-3000.JPG", K::Original, K::Original),
        ]
    );
    let alternative_first = sizes(&[Alternative, Adjusted]);
    assert_eq!(
        plan(&jpeg, &alternative_first),
        vec![
            row("IMG_0009.JPG", K::Original, K::Original),
            row("IMG_0009-2000.JPG", K::Adjusted, K::Adjusted),
        ]
    );
    for policy in [adjusted_first, alternative_first] {
        let tree = icloudpd_rs::layout::plan_tree([&jpeg], &policy, None);
        let mut expected = plan(&jpeg, &policy);
        expected.sort();
        assert_eq!(summary(&tree), expected, "{:?}", policy.sizes);
    }
    // Names equal but for case collide too (an original whose type maps to no extension
    // keeps the name's own `.jpg`).
    let lower = asset(
        "lower",
        Some("img_0009.jpg"),
        ItemKind::Image,
        vec![
            version(K::Original, "com.example.unmapped", 3000),
            version(K::Adjusted, JPEG, 2000),
        ],
    );
    assert_eq!(
        plan(&lower, &sizes(&[Adjusted, Alternative])),
        vec![
            row("img_0009.JPG", K::Adjusted, K::Adjusted),
            row("img_0009-3000.jpg", K::Original, K::Original),
        ]
    );
}

fn raw_pair(edited: bool) -> Asset {
    let mut versions = vec![
        version(K::Original, CR2, 25_000_000),
        version(K::Alternative, JPEG, 3_000_000),
    ];
    if edited {
        versions.push(version(K::Adjusted, JPEG, 2_500_000));
    }
    asset(ICLOUDPD_ID, Some("IMG_7409.JPG"), ItemKind::Image, versions)
}

fn raw(align: AlignRaw, requested: &[PrimarySize]) -> LayoutPolicy {
    LayoutPolicy {
        align_raw: align,
        ..sizes(requested)
    }
}

#[test]
fn raw_alignment_follows_section_6_2() {
    let pair = raw_pair(false);
    // The icloudpd examples.
    assert_eq!(
        plan(&pair, &raw(AlignRaw::AsIs, &[Original, Alternative])),
        vec![
            row("IMG_7409.CR2", K::Original, K::Original),
            row("IMG_7409.JPG", K::Alternative, K::Alternative),
        ]
    );
    for align in [AlignRaw::AsIs, AlignRaw::Original] {
        assert_eq!(
            plan(&pair, &raw(align, &[])),
            vec![row("IMG_7409.CR2", K::Original, K::Original)],
            "{align}"
        );
    }
    assert_eq!(
        plan(&raw_pair(true), &raw(AlignRaw::Alternative, &[Adjusted])),
        vec![row("IMG_7409.JPG", K::Adjusted, K::Adjusted)]
    );
    // RAW as the alternative: the JPEG bytes are now "original".
    assert_eq!(
        plan(&pair, &raw(AlignRaw::Alternative, &[])),
        vec![row("IMG_7409.JPG", K::Original, K::Alternative)]
    );
    assert_eq!(
        plan(&pair, &raw(AlignRaw::Alternative, &[Original, Alternative])),
        vec![
            row("IMG_7409.JPG", K::Original, K::Alternative),
            row("IMG_7409.CR2", K::Alternative, K::Original),
        ]
    );
    // Apple put the JPEG first: `--align-raw original` swaps, `alternative` does not.
    let jpeg_first = asset(
        "jpeg-first",
        Some("IMG_0002.JPG"),
        ItemKind::Image,
        vec![
            version(K::Original, JPEG, 3),
            version(K::Alternative, CR2, 25),
        ],
    );
    assert_eq!(
        plan(&jpeg_first, &raw(AlignRaw::Original, &[])),
        vec![row("IMG_0002.CR2", K::Original, K::Alternative)]
    );
    assert_eq!(
        plan(&jpeg_first, &raw(AlignRaw::Alternative, &[])),
        vec![row("IMG_0002.JPG", K::Original, K::Original)]
    );
}

#[test]
fn alternative_with_the_originals_name_gets_a_suffix() {
    let pair = asset(
        "jj",
        Some("IMG_0003.JPG"),
        ItemKind::Image,
        vec![
            version(K::Original, JPEG, 3),
            version(K::Alternative, JPEG, 4),
        ],
    );
    assert_eq!(
        plan(&pair, &sizes(&[Original, Alternative])),
        vec![
            row("IMG_0003.JPG", K::Original, K::Original),
            row("IMG_0003-alternative.JPG", K::Alternative, K::Alternative),
        ]
    );
}

fn live(filename: &str, still: &str) -> Asset {
    asset(
        "live",
        Some(filename),
        ItemKind::Image,
        vec![
            version(K::Original, still, 2_000_000),
            version(K::Medium, JPEG, 300_000),
            version(K::Thumb, JPEG, 30_000),
            version(K::LiveOriginal, MOV, 3_294_075),
            version(K::LiveMedium, MOV, 1_000_000),
            version(K::LiveThumb, MOV, 100_000),
        ],
    )
}

fn live_policy(size: LiveSize, mov: MovNamePolicy) -> LayoutPolicy {
    LayoutPolicy {
        live_size: size,
        mov_names: mov,
        ..utc_policy()
    }
}

#[test]
fn live_photos_follow_section_6_4() {
    let cases = [
        (
            "IMG_1234.HEIC",
            HEIC,
            LiveSize::Original,
            MovNamePolicy::Suffix,
            "IMG_1234_HEVC.MOV",
        ),
        (
            "IMG_1234.HEIC",
            HEIC,
            LiveSize::Original,
            MovNamePolicy::Original,
            "IMG_1234.MOV",
        ),
        (
            "IMG_1234.heic",
            HEIC,
            LiveSize::Original,
            MovNamePolicy::Suffix,
            "IMG_1234_HEVC.MOV",
        ),
        (
            "IMG_1234.JPG",
            JPEG,
            LiveSize::Original,
            MovNamePolicy::Suffix,
            "IMG_1234.MOV",
        ),
        (
            "IMG.1234.HEIC",
            HEIC,
            LiveSize::Original,
            MovNamePolicy::Suffix,
            "IMG.1234_HEVC.MOV",
        ),
        (
            "IMG_7409.JPG",
            JPEG,
            LiveSize::Medium,
            MovNamePolicy::Suffix,
            "IMG_7409-medium.MOV",
        ),
        (
            "IMG_1234.HEIC",
            HEIC,
            LiveSize::Medium,
            MovNamePolicy::Suffix,
            "IMG_1234_HEVC-medium.MOV",
        ),
        (
            "IMG_1234.HEIC",
            HEIC,
            LiveSize::Thumb,
            MovNamePolicy::Original,
            "IMG_1234-thumb.MOV",
        ),
        // Beyond icloudpd: a name without extension still gets `.MOV`.
        (
            "IMG_1234",
            HEIC,
            LiveSize::Original,
            MovNamePolicy::Suffix,
            "IMG_1234.MOV",
        ),
    ];
    for (filename, still, size, mov, expected) in cases {
        let files = plan(&live(filename, still), &live_policy(size, mov));
        assert_eq!(files.len(), 2, "{filename} {size} {mov}: {files:?}");
        assert_eq!(files[1], row(expected, size_kind(size), size_kind(size)));
    }
}

fn size_kind(size: LiveSize) -> K {
    match size {
        LiveSize::Original => K::LiveOriginal,
        LiveSize::Medium => K::LiveMedium,
        LiveSize::Thumb => K::LiveThumb,
    }
}

#[test]
fn live_companions_can_be_skipped_and_never_fall_back() {
    let photo = live("IMG_1234.HEIC", HEIC);
    let skip = LayoutPolicy {
        skip_live_photos: true,
        ..utc_policy()
    };
    assert_eq!(
        plan(&photo, &skip),
        vec![row("IMG_1234.HEIC", K::Original, K::Original)]
    );
    // Only the original motion exists: a medium request writes no MOV at all.
    let only_original_motion = asset(
        "live2",
        Some("IMG_2000.HEIC"),
        ItemKind::Image,
        vec![
            version(K::Original, HEIC, 10),
            version(K::LiveOriginal, MOV, 20),
        ],
    );
    assert_eq!(
        plan(
            &only_original_motion,
            &live_policy(LiveSize::Medium, MovNamePolicy::Suffix)
        ),
        vec![row("IMG_2000.HEIC", K::Original, K::Original)]
    );
    // The still's size and the motion's size are independent.
    assert_eq!(
        plan(&photo, &sizes(&[Medium])),
        vec![
            row("IMG_1234-medium.JPG", K::Medium, K::Medium),
            row("IMG_1234_HEVC.MOV", K::LiveOriginal, K::LiveOriginal),
        ]
    );
}

#[test]
fn videos_keep_their_extension_and_get_no_companion() {
    let video = asset(
        "video",
        Some("IMG_7405.MOV"),
        ItemKind::Movie,
        vec![
            version(K::Original, MOV, 50_000_000),
            version(K::Medium, MP4, 5_000_000),
            version(K::Thumb, MP4, 500_000),
        ],
    );
    assert_eq!(
        plan(&video, &utc_policy()),
        vec![row("IMG_7405.MOV", K::Original, K::Original)]
    );
    assert_eq!(
        plan(&video, &sizes(&[Medium])),
        vec![row("IMG_7405-medium.MOV", K::Medium, K::Medium)]
    );
    assert_eq!(
        plan(&video, &sizes(&[Thumb])),
        vec![row("IMG_7405-thumb.MOV", K::Thumb, K::Thumb)]
    );
    // An edited video: icloudpd has no edited rendition of a video, so `adjusted` is its
    // original, and asking for both gives one file (a folder icloudpd wrote is taken over).
    let mut edited = video.clone();
    edited.versions.push(version(K::Adjusted, MOV, 40_000_000));
    assert_eq!(
        plan(&edited, &sizes(&[Adjusted])),
        vec![row("IMG_7405.MOV", K::Adjusted, K::Original)]
    );
    assert_eq!(
        plan(&edited, &sizes(&[Original, Adjusted])),
        vec![row("IMG_7405.MOV", K::Original, K::Original)]
    );
}

#[test]
fn filename_pipeline_follows_section_6_5() {
    let id7 = LayoutPolicy {
        file_match: FileMatchPolicy::NameId7,
        ..utc_policy()
    };
    let photo = jpeg_photo(ICLOUDPD_ID, "IMG_7409.JPG", 1);
    assert_eq!(names(&plan_asset(&photo, &id7)), ["IMG_7409_QVk2Yyt.JPG"]);
    let medium_id7 = LayoutPolicy {
        sizes: vec![Medium],
        ..id7.clone()
    };
    assert_eq!(
        names(&plan_asset(&photo, &medium_id7)),
        ["IMG_7409_QVk2Yyt-medium.JPG"]
    );
    let live_id7 = plan_asset(&live("IMG_1234.HEIC", HEIC), &id7);
    assert_eq!(
        names(&live_id7),
        ["IMG_1234_bGl2ZQ=.HEIC", "IMG_1234_bGl2ZQ=_HEVC.MOV"]
    );

    // No filename: the id's first 12 characters, extension from itemType.
    let nameless = asset(
        ICLOUDPD_ID,
        None,
        ItemKind::Image,
        vec![version(K::Original, JPEG, 1)],
    );
    assert_eq!(
        names(&plan_asset(&nameless, &utc_policy())),
        ["AY6c_BsE0jja.JPG"]
    );
    let mut unknown = asset(
        ICLOUDPD_ID,
        None,
        ItemKind::Unknown,
        vec![version(K::Original, "org.webmproject.webp", 1)],
    );
    unknown.item_type = None;
    assert_eq!(
        names(&plan_asset(&unknown, &utc_policy())),
        ["AY6c_BsE0jja.unknown"]
    );

    // Cleaning and unicode.
    let cases = [
        ("Jörg.JPG", false, "Jrg.JPG"),
        ("Jörg.JPG", true, "Jörg.JPG"),
        ("a/b:c*d?.JPG", false, "a_b_c_d_.JPG"),
        ("<>|\"\\.JPG", false, "_____.JPG"),
        ("tab\there.JPG", false, "tab_here.JPG"),
        // Nothing usable left: the id-based stem, the extension kept.
        ("日本.JPG", false, "AY6c_BsE0jja.JPG"),
        ("日本.JPG", true, "日本.JPG"),
        ("", false, "AY6c_BsE0jja.JPG"),
        ("..", false, "AY6c_BsE0jja.JPG"),
        // A leading dot would hide the file.
        (".hidden.JPG", false, "_hidden.JPG"),
        // The extension comes from the version's UTI.
        ("IMG_0001.jpeg", false, "IMG_0001.JPG"),
        ("IMG_0001.png", false, "IMG_0001.JPG"),
        ("IMG_0001", false, "IMG_0001.JPG"),
        // Whitespace at the end is dropped before the extension is looked for; spaces at the
        // start and before the dot are kept, as icloudpd keeps them.
        ("trail2.JPG ", false, "trail2.JPG"),
        ("trail2.JPG \u{a0}\u{3000}", true, "trail2.JPG"),
        ("trail2.JPG 日本", false, "trail2.JPG"),
        ("IMG_0001  ", false, "IMG_0001.JPG"),
        ("IMG_0001 .", false, "IMG_0001.JPG"),
        ("trail2 .JPG", false, "trail2 .JPG"),
        (" lead.JPG", false, " lead.JPG"),
        // A control character is replaced, not dropped, wherever it is.
        ("ctrl.JPG\t", false, "ctrl.JPG_.JPG"),
    ];
    for (filename, keep_unicode, expected) in cases {
        let policy = LayoutPolicy {
            keep_unicode,
            ..utc_policy()
        };
        let photo = jpeg_photo(ICLOUDPD_ID, filename, 1);
        assert_eq!(
            names(&plan_asset(&photo, &policy)),
            [expected],
            "{filename:?}"
        );
    }
}

#[test]
fn unmapped_utis_keep_the_current_extension() {
    let photo = asset(
        "webp",
        Some("sticker.webp"),
        ItemKind::Image,
        vec![version(K::Original, "org.webmproject.webp", 1)],
    );
    assert_eq!(names(&plan_asset(&photo, &utc_policy())), ["sticker.webp"]);
    // A trailing space is not left at the end of the name.
    let clip = asset(
        "mp4",
        Some("clip.mp4 "),
        ItemKind::Movie,
        vec![version(K::Original, MP4, 1)],
    );
    assert_eq!(names(&plan_asset(&clip, &utc_policy())), ["clip.mp4"]);
}

#[test]
fn planned_files_carry_size_and_mtime() {
    let photo = jpeg_photo("id", "IMG_0001.JPG", 4000);
    let files = plan_asset(&photo, &sizes(&[Original, Medium]));
    assert_eq!(
        files.iter().map(|f| f.size).collect::<Vec<_>>(),
        [4000, 1000]
    );
    for f in &files {
        assert_eq!(f.mtime_ms, photo.asset_date_ms);
        assert_eq!(f.asset_id, "id");
    }
}
