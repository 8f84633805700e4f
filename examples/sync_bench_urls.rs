//! For `scripts/bench-sync.sh`: the download URLs of every file a default `sync` would fetch,
//! so a plain parallel fetcher (curl) can download the same bytes for comparison.
//!
//! Usage: ICLOUD_PASSWORD=... sync_bench_urls ENDPOINT USERNAME DATA_DIR
//! Prints one `SIZE URL` line per file (All Photos of the personal library, default sizes).

use icloudpd_rs::auth::{AuthOptions, Authenticator, Endpoints, Password, PasswordSources};
use icloudpd_rs::cloudkit::{CloudKitClient, Index, WalkOptions};
use icloudpd_rs::layout::{self, LayoutPolicy};
use icloudpd_rs::model::Library;

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [endpoint, username, data] = args.as_slice() else {
        eprintln!(
            "usage: sync_bench_urls ENDPOINT USERNAME DATA_DIR (password in ICLOUD_PASSWORD)"
        );
        std::process::exit(2);
    };
    let password = std::env::var("ICLOUD_PASSWORD").ok().map(Password::new);
    let sources = PasswordSources {
        literal: password,
        file: None,
        command: None,
    };
    let mut opts = AuthOptions::new(username, sources, data.into());
    opts.endpoints = Endpoints::custom(endpoint, Default::default()).expect("endpoint");
    let session = Authenticator::resume(opts).await.expect("sign-in");
    let client = CloudKitClient::for_session(&session).expect("client");
    let policy = LayoutPolicy::default();
    let mut walk = client.walk(
        &Library::primary(),
        Index::AllPhotos,
        WalkOptions::default(),
    );
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    while let Some(page) = walk.next_page().await {
        for listed in &page.assets {
            for file in layout::plan_asset(&listed.asset, &policy) {
                if let Some(url) = listed.url(file.version) {
                    use std::io::Write;
                    writeln!(out, "{} {url}", file.size).expect("stdout");
                }
            }
        }
    }
    walk.finish().await.expect("complete listing");
}
