//! The simulator's CDN over real HTTP: signed URLs, exact bytes, every `Range` form, HEAD,
//! expiry, tampering, any last path segment, magic bytes, faults.

use std::time::Duration;

use icloudpd_rs::sim::cdn::{self, UrlParts};
use icloudpd_rs::sim::content::{self, Format, Resource};
use icloudpd_rs::sim::faults::{FaultKind, FaultRule};
use icloudpd_rs::sim::{Sim, SimConfig};
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PARTS: UrlParts<'static> = UrlParts {
    file_checksum: "AY6c+BsE0jjaXx9tmVGJM1D2VcEO",
    reference_checksum: "AfUMnLhKAW8bwnMCwMMXLMKCslue",
    wrapping_key: "Aj375aJi6sEmqgJPj64+7Q==",
    zone: "PrimarySync",
};

fn config() -> SimConfig {
    SimConfig {
        assets: 10,
        seed: 5,
        ..SimConfig::default()
    }
}

async fn start(config: SimConfig) -> Sim {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Sim::start(config).await.expect("simulator starts")
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

fn res(format: Format, size: u64) -> Resource {
    Resource {
        asset_key: 31,
        rendition: 0,
        generation: 0,
        size,
        format,
    }
}

fn url(sim: &Sim, r: &Resource) -> String {
    cdn::download_url(sim.state(), r, &PARTS)
}

fn bytes_of(sim: &Sim, r: &Resource, start: u64, len: u64) -> Vec<u8> {
    let mut buf = vec![0u8; len as usize];
    content::fill(sim.state().config.seed, r, start, &mut buf);
    buf
}

fn hval<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

async fn get_range(
    c: &reqwest::Client,
    url: &str,
    range: &str,
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let resp = c
        .get(url)
        .header(header::RANGE, range)
        .send()
        .await
        .expect("request");
    let (status, headers) = (resp.status(), resp.headers().clone());
    (status, headers, resp.bytes().await.expect("body").to_vec())
}

#[tokio::test]
async fn full_get_serves_the_exact_bytes_with_apples_headers() {
    let sim = start(config()).await;
    let r = res(Format::Jpeg, 1_884_695);
    let u = url(&sim, &r);
    assert!(
        u.contains("/B/AY6c-BsE0jjaXx9tmVGJM1D2VcEOAfUMnLhKAW8bwnMCwMMXLMKCslue/${f}?o="),
        "{u}"
    );
    assert!(u.contains("&k=Aj375aJi6sEmqgJPj64-7Q&"), "{u}");
    assert!(
        u.contains("&ckc=com.apple.photos.cloud&ckz=PrimarySync&"),
        "{u}"
    );
    let before = sim.state().stats.cdn_bytes();

    let resp = client().get(&u).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let h = resp.headers().clone();
    let body = resp.bytes().await.unwrap();
    assert_eq!(body.len() as u64, r.size);
    assert_eq!(&body[..], &bytes_of(&sim, &r, 0, r.size)[..]);
    let digest: [u8; 32] = Sha256::digest(&body).into();
    assert_eq!(digest, content::sha256(sim.state().config.seed, &r));

    assert_eq!(hval(&h, "content-length"), "1884695");
    assert_eq!(hval(&h, "content-type"), "application/octet-stream");
    assert_eq!(hval(&h, "accept-ranges"), "bytes");
    assert_eq!(
        hval(&h, "content-disposition"),
        "attachment; filename=\"%24%7Bf%7D\"; filename*=UTF-8''%24%7Bf%7D"
    );
    assert_eq!(
        hval(&h, "cache-control"),
        "no-transform,private,max-age=2592000,s-maxage=2592000"
    );
    assert!(hval(&h, "last-modified").ends_with(" GMT"));
    assert_eq!(
        hval(&h, "access-control-allow-origin"),
        sim.state().urls.home
    );
    assert_eq!(hval(&h, "access-control-allow-methods"), "GET,OPTIONS");
    let r_param = u.split("&r=").nth(1).unwrap().split('&').next().unwrap();
    let uuid = hval(&h, "x-apple-request-uuid");
    assert!(
        uuid.starts_with(r_param) && uuid.len() > r_param.len() + 10,
        "{uuid} after {r_param}"
    );

    assert_eq!(sim.state().stats.cdn_bytes() - before, r.size);
    assert!(sim.state().stats.cdn_requests() >= 1);
}

#[tokio::test]
async fn every_range_form_is_exact() {
    let sim = start(config()).await;
    let r = res(Format::Heic, 300_000);
    let u = url(&sim, &r);
    let c = client();
    let size = r.size;
    for (range, start, end) in [
        ("bytes=0-0", 0, 0),
        ("bytes=100-199", 100, 199),
        ("bytes=299999-299999", 299_999, 299_999),
        ("bytes=250000-", 250_000, size - 1),
        ("bytes=0-", 0, size - 1),
        ("bytes=-1000", size - 1000, size - 1),
        ("bytes=-999999", 0, size - 1),
        ("bytes=290000-999999", 290_000, size - 1),
    ] {
        let (status, h, body) = get_range(&c, &u, range).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            hval(&h, "content-range"),
            format!("bytes {start}-{end}/{size}"),
            "{range}"
        );
        assert_eq!(
            hval(&h, "content-length"),
            (end - start + 1).to_string(),
            "{range}"
        );
        assert_eq!(body, bytes_of(&sim, &r, start, end - start + 1), "{range}");
    }
    // Several ranges or a malformed header: the whole file, 200.
    for range in [
        "bytes=0-1,5-9",
        "bytes=9-5",
        "bytes=x-",
        "pages=1-2",
        "bytes=--1",
    ] {
        let (status, h, body) = get_range(&c, &u, range).await;
        assert_eq!(status, StatusCode::OK, "{range}");
        assert!(h.get("content-range").is_none(), "{range}");
        assert_eq!(body.len() as u64, size, "{range}");
    }
    // Starting at or past the end: 416 with the size.
    for range in [
        format!("bytes={size}-"),
        format!("bytes={}-", size + 10),
        "bytes=-0".to_string(),
    ] {
        let (status, h, _) = get_range(&c, &u, &range).await;
        assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(
            hval(&h, "content-range"),
            format!("bytes */{size}"),
            "{range}"
        );
    }
}

#[tokio::test]
async fn head_answers_like_get_without_a_body() {
    let sim = start(config()).await;
    let r = res(Format::Mov, 5_000_000);
    let u = url(&sim, &r);
    let c = client();
    let before = sim.state().stats.cdn_bytes();
    let resp = c.head(&u).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(hval(resp.headers(), "content-length"), "5000000");
    assert_eq!(hval(resp.headers(), "accept-ranges"), "bytes");
    assert!(resp.bytes().await.unwrap().is_empty());

    let resp = c
        .head(&u)
        .header(header::RANGE, "bytes=10-")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        hval(resp.headers(), "content-range"),
        "bytes 10-4999999/5000000"
    );
    assert_eq!(hval(resp.headers(), "content-length"), "4999990");
    assert_eq!(
        sim.state().stats.cdn_bytes(),
        before,
        "HEAD sends no body bytes"
    );
}

#[tokio::test]
async fn expired_urls_are_gone() {
    let sim = start(SimConfig {
        url_ttl: 0,
        ..config()
    })
    .await;
    let r = res(Format::Jpeg, 10_000);
    let resp = client().get(url(&sim, &r)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::GONE);
    let body = resp.text().await.unwrap();
    assert!(body.len() < 100 && body.contains("expired"), "{body}");
}

#[tokio::test]
async fn tampered_urls_are_forbidden() {
    let sim = start(config()).await;
    let r = res(Format::Jpeg, 10_000);
    let u = url(&sim, &r);
    let c = client();
    let param = |name: &str| {
        u.split(&format!("&{name}="))
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap()
            .to_string()
    };
    let (s, e) = (param("s"), param("e"));
    let flip = |v: &str| {
        let mut chars: Vec<char> = v.chars().collect();
        chars[3] = if chars[3] == 'A' { 'B' } else { 'A' };
        chars.into_iter().collect::<String>()
    };
    let other_token = {
        let o = u.split("?o=").nth(1).unwrap().split('&').next().unwrap();
        let big = url(&sim, &res(Format::Jpeg, 20_000));
        let o2 = big
            .split("?o=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap()
            .to_string();
        u.replace(o, &o2)
    };
    for (what, bad) in [
        (
            "signature",
            u.replace(&format!("&s={s}"), &format!("&s={}", flip(&s))),
        ),
        (
            "expiry",
            u.replace(
                &format!("&e={e}&"),
                &format!("&e={}&", e.parse::<u64>().unwrap() + 100),
            ),
        ),
        ("path", u.replace("/B/AY6c", "/B/AY6d")),
        ("token (a bigger size)", other_token),
    ] {
        let resp = c.get(&bad).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "tampered {what}");
    }
    let resp = c
        .get(u.replace(&format!("&s={s}"), ""))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::BAD_REQUEST,
        "no signature at all"
    );
    // The untouched URL still works.
    assert_eq!(c.get(&u).send().await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn any_last_path_segment_is_accepted() {
    let sim = start(config()).await;
    let r = res(Format::Png, 4096);
    let u = url(&sim, &r);
    let c = client();
    let expected = bytes_of(&sim, &r, 0, r.size);
    for (segment, disposition_name) in [
        ("$%7Bf%7D", "%24%7Bf%7D"),
        ("IMG_0001.PNG", "IMG_0001.PNG"),
        ("caf%C3%A9%20photo.png", "caf%C3%A9%20photo.png"),
    ] {
        let v = u.replace("/${f}?", &format!("/{segment}?"));
        let resp = c.get(&v).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{segment}");
        let disposition = hval(resp.headers(), "content-disposition").to_string();
        assert!(
            disposition.contains(&format!("filename=\"{disposition_name}\"")),
            "{disposition}"
        );
        assert_eq!(resp.bytes().await.unwrap().to_vec(), expected, "{segment}");
    }
    // The literal, unencoded `${f}` (reqwest would encode the braces): a raw HTTP/1.1 request.
    let path = &u[sim.endpoint().len()..];
    assert!(path.contains("/${f}?"));
    let mut tcp = tokio::net::TcpStream::connect(sim.addr()).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        sim.addr()
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).await.unwrap();
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end")
        + 4;
    let head = String::from_utf8_lossy(&raw[..head_end]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(&raw[head_end..], &expected[..]);
}

#[tokio::test]
async fn files_start_with_their_magic_bytes() {
    let sim = start(config()).await;
    let c = client();
    for (format, magic_at, magic) in [
        (Format::Jpeg, 0, &[0xFF, 0xD8, 0xFF, 0xE0][..]),
        (
            Format::Png,
            0,
            &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A][..],
        ),
        (Format::Heic, 4, b"ftypheic"),
        (Format::Mov, 4, b"ftypqt  "),
        (Format::Mp4, 4, b"ftypisom"),
        (Format::Dng, 0, b"II*\0"),
        (Format::Cr2, 0, b"II*\0\x10\0\0\0CR"),
    ] {
        let r = res(format, 50_000);
        let (status, _, body) = get_range(&c, &url(&sim, &r), "bytes=0-15").await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(&body[magic_at..magic_at + magic.len()], magic, "{format:?}");
    }
}

#[tokio::test]
async fn http2_and_concurrent_ranges_serve_the_same_bytes() {
    let sim = start(config()).await;
    let r = res(Format::Mp4, 3_000_000);
    let u = url(&sim, &r);
    let h2 = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let resp = h2.get(&u).send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(
        resp.bytes().await.unwrap().to_vec(),
        bytes_of(&sim, &r, 0, r.size)
    );

    let c = client();
    let tasks: Vec<_> = (0..16u64)
        .map(|i| {
            let (c, u) = (c.clone(), u.clone());
            tokio::spawn(async move {
                let start = i * 180_001;
                get_range(&c, &u, &format!("bytes={start}-{}", start + 99_999)).await
            })
        })
        .collect();
    for (i, t) in tasks.into_iter().enumerate() {
        let (status, _, body) = t.await.unwrap();
        assert_eq!(status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(
            body,
            bytes_of(&sim, &r, i as u64 * 180_001, 100_000),
            "range {i}"
        );
    }
}

// ---- faults -----------------------------------------------------------------------------

fn arm(sim: &Sim, kind: FaultKind, p: f64) {
    sim.state().faults.set(
        kind,
        FaultRule {
            p,
            ..FaultRule::default()
        },
    );
}

/// Read a body as far as it goes: the bytes received and whether it ended in an error.
async fn read_all(resp: reqwest::Response) -> (Vec<u8>, Option<reqwest::Error>) {
    let mut resp = resp;
    let mut got = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => got.extend_from_slice(&chunk),
            Ok(None) => return (got, None),
            Err(e) => return (got, Some(e)),
        }
    }
}

#[tokio::test]
async fn faults_fire_only_when_armed() {
    let sim = start(config()).await;
    let r = res(Format::Jpeg, 20_000);
    let u = url(&sim, &r);
    let c = client();
    for _ in 0..20 {
        let resp = c.get(&u).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.bytes().await.unwrap().len(), 20_000);
    }
    for kind in FaultKind::ALL.into_iter().filter(|k| k.is_cdn()) {
        assert_eq!(sim.state().faults.fired(kind), 0, "{kind}");
    }
}

/// What a client observed on one request.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Complete,
    Unavailable,
    Html,
    Gone,
    Incomplete,
}

async fn outcome(c: &reqwest::Client, u: &str, size: usize) -> Outcome {
    let resp = c.get(u).send().await.unwrap();
    match resp.status() {
        StatusCode::SERVICE_UNAVAILABLE => {
            assert_eq!(hval(resp.headers(), "retry-after"), "1");
            Outcome::Unavailable
        }
        StatusCode::GONE => Outcome::Gone,
        StatusCode::OK if hval(resp.headers(), "content-type").starts_with("text/html") => {
            Outcome::Html
        }
        StatusCode::OK => match read_all(resp).await {
            (got, None) if got.len() == size => Outcome::Complete,
            (_, Some(_)) => Outcome::Incomplete,
            (got, None) => panic!("body of {} bytes ended without an error", got.len()),
        },
        other => panic!("unexpected {other}"),
    }
}

#[tokio::test]
async fn each_cdn_fault_fires_at_its_rate() {
    // stall_secs 0: a stall sends half the body, then gives up at once.
    let sim = start(SimConfig {
        stall_secs: 0,
        ..config()
    })
    .await;
    let r = res(Format::Jpeg, 20_000);
    let u = url(&sim, &r);
    let c = client();
    for (kind, effect) in [
        (FaultKind::Cdn503, Outcome::Unavailable),
        (FaultKind::CdnHtml, Outcome::Html),
        (FaultKind::UrlExpire, Outcome::Gone),
        (FaultKind::CdnReset, Outcome::Incomplete),
        (FaultKind::CdnTruncate, Outcome::Incomplete),
        (FaultKind::CdnStall, Outcome::Incomplete),
    ] {
        sim.state().faults.clear();
        arm(&sim, kind, 0.25);
        let mut hits = 0;
        for _ in 0..200 {
            match outcome(&c, &u, 20_000).await {
                Outcome::Complete => {}
                o if o == effect => hits += 1,
                o => panic!("{kind}: unexpected {o:?}"),
            }
        }
        assert!((25..=75).contains(&hits), "{kind}: {hits} of 200 at p=0.25");
        assert_eq!(sim.state().faults.fired(kind), hits, "{kind}");
    }
    sim.state().faults.clear();
    assert_eq!(outcome(&c, &u, 20_000).await, Outcome::Complete);
}

#[tokio::test]
async fn cdn_html_serves_an_error_page_with_status_200() {
    let sim = start(config()).await;
    let r = res(Format::Jpeg, 500_000);
    arm(&sim, FaultKind::CdnHtml, 1.0);
    let resp = client().get(url(&sim, &r)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(hval(resp.headers(), "content-type").starts_with("text/html"));
    let length: usize = hval(resp.headers(), "content-length").parse().unwrap();
    let body = resp.text().await.unwrap();
    assert_eq!(body.len(), length);
    assert!(body.starts_with("<!DOCTYPE html>"), "{body}");
}

#[tokio::test]
async fn url_expire_fault_answers_as_an_expired_url() {
    let sim = start(config()).await;
    let r = res(Format::Jpeg, 5_000);
    arm(&sim, FaultKind::UrlExpire, 1.0);
    let c = client();
    assert_eq!(
        c.get(url(&sim, &r)).send().await.unwrap().status(),
        StatusCode::GONE
    );
    assert_eq!(
        c.head(url(&sim, &r)).send().await.unwrap().status(),
        StatusCode::GONE
    );
    assert_eq!(sim.state().faults.fired(FaultKind::UrlExpire), 2);
}

#[tokio::test]
async fn cdn_reset_and_truncate_cut_the_body_short() {
    let sim = start(config()).await;
    let r = res(Format::Mov, 2_000_000);
    let u = url(&sim, &r);
    let c = client();
    let expected = bytes_of(&sim, &r, 0, r.size);
    for kind in [FaultKind::CdnReset, FaultKind::CdnTruncate] {
        sim.state().faults.clear();
        arm(&sim, kind, 1.0);
        let resp = c.get(&u).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{kind}");
        assert_eq!(
            hval(resp.headers(), "content-length"),
            "2000000",
            "{kind}: full length announced"
        );
        let (got, err) = read_all(resp).await;
        assert!(err.is_some(), "{kind}: the client sees an incomplete body");
        assert!(got.len() < expected.len(), "{kind}");
        assert_eq!(
            &got[..],
            &expected[..got.len()],
            "{kind}: what arrived is correct"
        );
        assert_eq!(sim.state().faults.fired(kind), 1, "{kind}");
    }
    // A range is cut the same way, relative to its own length.
    sim.state().faults.clear();
    arm(&sim, FaultKind::CdnTruncate, 1.0);
    let resp = c
        .get(&u)
        .header(header::RANGE, "bytes=1000000-")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    let (got, err) = read_all(resp).await;
    assert!(err.is_some() && got.len() < 1_000_000);
    assert_eq!(&got[..], &expected[1_000_000..1_000_000 + got.len()]);
}

#[tokio::test]
async fn cdn_stall_stops_sending_until_the_client_gives_up() {
    let sim = start(SimConfig {
        stall_secs: 30,
        ..config()
    })
    .await;
    let r = res(Format::Mp4, 1_000_000);
    arm(&sim, FaultKind::CdnStall, 1.0);
    let c = reqwest::Client::builder()
        .no_proxy()
        .read_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let resp = c.get(url(&sim, &r)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let (got, err) = read_all(resp).await;
    let err = err.expect("the read times out");
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(got.len(), 500_000, "the first half arrives, then nothing");
    assert_eq!(got, bytes_of(&sim, &r, 0, 500_000));
}

#[tokio::test]
async fn targeted_faults_fire_only_for_their_asset() {
    let sim = start(config()).await;
    // A low key, so that once the library generates assets it names this one and the targeted
    // branch below runs too (with the library stub, only the untargeted path is exercised).
    let r = Resource {
        asset_key: 1,
        ..res(Format::Jpeg, 3_000)
    };
    // Asset keys resolve through the library; a rule for one asset id never fires for others.
    let id = sim.state().library.asset_id(r.asset_key);
    sim.state().faults.set(
        FaultKind::Cdn503,
        FaultRule {
            p: 1.0,
            asset_ids: Some(["SOME-OTHER-ASSET".to_string()].into()),
            remaining: None,
        },
    );
    let c = client();
    for _ in 0..5 {
        assert_eq!(
            c.get(url(&sim, &r)).send().await.unwrap().status(),
            StatusCode::OK
        );
    }
    if let Some(id) = id {
        sim.state().faults.set(
            FaultKind::Cdn503,
            FaultRule {
                p: 1.0,
                asset_ids: Some([id].into()),
                remaining: Some(1),
            },
        );
        let statuses = [
            c.get(url(&sim, &r)).send().await.unwrap().status(),
            c.get(url(&sim, &r)).send().await.unwrap().status(),
        ];
        assert_eq!(statuses, [StatusCode::SERVICE_UNAVAILABLE, StatusCode::OK]);
    }
}

/// Decodes a JPEG and a PNG from the CDN with Pillow. Needs a Python with Pillow:
/// `ICLOUDPD_TEST_PYTHON=/path/to/venv/bin/python cargo test --test sim_cdn -- --ignored`.
#[tokio::test]
#[ignore = "needs Python with Pillow (ICLOUDPD_TEST_PYTHON)"]
async fn jpeg_and_png_decode_with_pillow() {
    let python = std::env::var("ICLOUDPD_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let sim = start(config()).await;
    let dir = tempfile::tempdir().unwrap();
    let c = client();
    for (format, size, name, expect) in [
        (Format::Jpeg, 2_500_000, "a.jpg", "JPEG (8, 8) L 128"),
        (Format::Jpeg, 163, "b.jpg", "JPEG (8, 8) L 128"),
        (Format::Png, 1_000_000, "a.png", "PNG (1, 1) L 128"),
        (Format::Png, 82, "b.png", "PNG (1, 1) L 128"),
    ] {
        let r = res(format, size);
        let body = c
            .get(url(&sim, &r))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, &body).unwrap();
        let out = std::process::Command::new(&python)
            .arg("-c")
            .arg(
                "import sys; from PIL import Image\n\
                 im = Image.open(sys.argv[1]); im.load()\n\
                 print(im.format, im.size, im.mode, im.getpixel((0, 0)))",
            )
            .arg(&path)
            .output()
            .expect("run python");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(stdout.trim(), expect, "{name}");
    }
}

/// exiftool (an independent reader, installed by `scripts/test.sh`) recognises every format and
/// finds nothing to complain about. Passes with a note when exiftool is not installed.
#[test]
fn exiftool_validates_every_format() {
    let available = std::process::Command::new("exiftool")
        .arg("-ver")
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        eprintln!("exiftool not installed: skipped (apt-get install libimage-exiftool-perl)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (format, file_type) in [
        (Format::Jpeg, "JPEG"),
        (Format::Png, "PNG"),
        (Format::Heic, "HEIC"),
        (Format::Mov, "MOV"),
        (Format::Mp4, "MP4"),
        (Format::Dng, "DNG"),
        (Format::Cr2, "CR2"),
    ] {
        for size in [content::min_size(format), 300_007] {
            let r = res(format, size);
            let mut bytes = vec![0u8; size as usize];
            content::fill(5, &r, 0, &mut bytes);
            let path = dir
                .path()
                .join(format!("f{size}.{}", file_type.to_lowercase()));
            std::fs::write(&path, &bytes).unwrap();
            let out = std::process::Command::new("exiftool")
                .args(["-j", "-validate", "-warning", "-error", "-FileType", "-a"])
                .arg(&path)
                .output()
                .unwrap();
            let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let tags = &json[0];
            assert_eq!(tags["FileType"], file_type, "{format:?} {size}: {tags}");
            assert_eq!(tags["Validate"], "OK", "{format:?} {size}: {tags}");
            assert!(
                tags.get("Warning").is_none() && tags.get("Error").is_none(),
                "{tags}"
            );
        }
    }
}
