//! The simulator's CDN over real HTTP: signed URLs, exact bytes, every `Range` form, HEAD,
//! expiry, tampering, any last path segment, magic bytes, HTTP/2.

use icloudpd_rs::sim::SimConfig;
use icloudpd_rs::sim::content::{self, Format};
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cdn_support::{bytes_of, client, config, hval, res, start, url};

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
