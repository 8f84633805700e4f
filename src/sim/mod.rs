//! The iCloud simulator: a local, faithful fake of Apple's sign-in service (idmsa + setup),
//! the CloudKit Photos database and the download CDN, over a deterministic synthetic library of
//! any size, with fault injection.
//!
//! It is the test bed, the benchmark target and the demo. It is written from the protocol notes
//! (`shared/docs`) as a *server*, independently of the client modules, so that a
//! misunderstanding shared by client and fake cannot hide a protocol bug.
//!
//! Layout of the module:
//! - [`server`]: listener, optional TLS, Apple host names, latency, request statistics, and the
//!   API-level faults applied in front of every Apple endpoint;
//! - [`auth`]: SRP-6a sign-in, two-factor, trust, `accountLogin` / `validate`, web sessions;
//! - [`library`]: the synthetic library, its indexes, change log and mutations;
//! - [`cloudkit`]: the `ckdatabasews` endpoints rendering the library as CloudKit records;
//! - [`cdn`] and [`content`]: signed download URLs and deterministic file bytes;
//! - [`faults`]: fault names, rates and deterministic firing decisions;
//! - [`admin`]: the `/_sim/` endpoints (manifest, stats, mutate, faults).

pub mod admin;
pub mod auth;
pub mod cdn;
pub mod cloudkit;
pub mod content;
pub mod faults;
pub mod library;
pub mod server;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest, Sha256};

pub use server::{BackgroundSim, Sim, SimError};

/// SRP password-processing protocol the simulated account uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum SrpProtocol {
    #[value(name = "s2k")]
    S2k,
    #[value(name = "s2k_fo")]
    S2kFo,
}

impl SrpProtocol {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            SrpProtocol::S2k => "s2k",
            SrpProtocol::S2kFo => "s2k_fo",
        }
    }
}

/// Everything that configures a simulator run. Doubles as the `sim` subcommand's arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct SimConfig {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Number of assets in the primary library.
    #[arg(long, default_value_t = 1000)]
    pub assets: usize,
    /// Seed of the synthetic library, credentials and fault decisions.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Scale of file sizes (1.0 = realistic: photos 1-8 MB, videos 10 MB-2 GB).
    #[arg(long, default_value_t = 1.0)]
    pub size_scale: f64,
    /// The account uses two-factor authentication (HSA2).
    #[arg(long)]
    pub two_factor: bool,
    /// The account has Advanced Data Protection on (web access to photos refused).
    #[arg(long)]
    pub adp: bool,
    /// The account protects its sign-in with FIDO security keys (unsupported by web clients).
    #[arg(long)]
    pub fido: bool,
    /// The account is locked: sign-in is refused.
    #[arg(long)]
    pub locked: bool,
    /// Add an iCloud Shared Photo Library zone.
    #[arg(long)]
    pub shared_library: bool,
    /// Number of assets in the shared library zone.
    #[arg(long, default_value_t = 50)]
    pub shared_assets: usize,
    /// Hand out Apple's host names (idmsa.apple.com, setup.icloud.com, ...) in URLs.
    #[arg(long)]
    pub apple_hosts: bool,
    /// PEM certificate chain: serve HTTPS.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Added delay in milliseconds before every API answer and every CDN response start.
    #[arg(long, default_value_t = 0)]
    pub latency: u64,
    /// Per-connection CDN bandwidth limit in bytes per second.
    #[arg(long)]
    pub cdn_bandwidth: Option<u64>,
    /// Fault to inject, as NAME=PROBABILITY (repeatable), e.g. --fault cdn-503=0.05.
    #[arg(long = "fault", value_name = "NAME=P")]
    pub faults: Vec<String>,
    /// Apple ID of the simulated account (default derived from the seed).
    #[arg(long)]
    pub username: Option<String>,
    /// Password of the simulated account (default derived from the seed).
    #[arg(long)]
    pub password: Option<String>,
    /// SRP protocol the server chooses.
    #[arg(long, value_enum, default_value = "s2k")]
    pub protocol: SrpProtocol,
    /// PBKDF2 iterations the server asks for.
    #[arg(long, default_value_t = 20_000)]
    pub iterations: u32,
    /// Lifetime of signed CDN URLs, seconds.
    #[arg(long, default_value_t = 3600)]
    pub url_ttl: u64,
    /// Lifetime of the web session (cookies, session token), seconds.
    #[arg(long, default_value_t = 30 * 86400)]
    pub session_ttl: u64,
    /// Lifetime of a two-factor trust token, seconds.
    #[arg(long, default_value_t = 60 * 86400)]
    pub trust_ttl: u64,
    /// How long a `cdn-stall` fault holds a response before giving up, seconds.
    #[arg(long, default_value_t = 600)]
    pub stall_secs: u64,
    /// Fake-only quirk: also give a trust token to accounts without 2FA (rclone needs one).
    #[arg(long)]
    pub trust_token_without_2fa: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            listen: "127.0.0.1:0".parse().expect("literal address"),
            assets: 1000,
            seed: 1,
            size_scale: 1.0,
            two_factor: false,
            adp: false,
            fido: false,
            locked: false,
            shared_library: false,
            shared_assets: 50,
            apple_hosts: false,
            tls_cert: None,
            tls_key: None,
            latency: 0,
            cdn_bandwidth: None,
            faults: Vec::new(),
            username: None,
            password: None,
            protocol: SrpProtocol::S2k,
            iterations: 20_000,
            url_ttl: 3600,
            session_ttl: 30 * 86400,
            trust_ttl: 60 * 86400,
            stall_secs: 600,
            trust_token_without_2fa: false,
        }
    }
}

/// The simulated Apple account's credentials, as printed on the ready line.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SimAccount {
    pub username: String,
    pub password: String,
    /// The code every trusted-device push and SMS "delivers" (only with two-factor).
    pub two_factor_code: String,
    /// Account directory id (`dsInfo.dsid`).
    pub dsid: String,
}

impl SimAccount {
    /// Credentials for a config: explicit ones win, else derived from the seed.
    pub fn from_config(config: &SimConfig) -> Self {
        let h = seeded_hash(config.seed, b"account");
        let code = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) % 1_000_000;
        let dsid = 10_000_000_000u64
            + u64::from_be_bytes(h[4..12].try_into().expect("8 bytes")) % 90_000_000_000;
        SimAccount {
            username: config
                .username
                .clone()
                .unwrap_or_else(|| format!("sim-user-{}@example.com", config.seed)),
            password: config
                .password
                .clone()
                .unwrap_or_else(|| format!("sim-pass-{}", hex::encode(&h[12..18]))),
            two_factor_code: format!("{code:06}"),
            dsid: dsid.to_string(),
        }
    }
}

/// Base URLs the simulator hands out to clients.
#[derive(Debug, Clone)]
pub struct SimUrls {
    /// Where the simulator really listens (`http://127.0.0.1:PORT`).
    pub endpoint: String,
    /// Root of `/appleauth/auth` (idmsa).
    pub auth_root: String,
    /// Root of `/setup/ws/1`.
    pub setup_root: String,
    /// `webservices.ckdatabasews.url` (clients append `/database/1/...`).
    pub ckdatabasews: String,
    /// Root of CDN URLs (`/B/...`).
    pub cdn: String,
    /// The "home" origin (`https://www.icloud.com`).
    pub home: String,
}

impl SimUrls {
    /// URLs for a listener address, with or without Apple's host names.
    pub fn new(addr: SocketAddr, tls: bool, apple_hosts: bool) -> Self {
        let scheme = if tls { "https" } else { "http" };
        let endpoint = format!("{scheme}://{addr}");
        if !apple_hosts {
            return SimUrls {
                auth_root: endpoint.clone(),
                setup_root: endpoint.clone(),
                ckdatabasews: endpoint.clone(),
                cdn: endpoint.clone(),
                home: endpoint.clone(),
                endpoint,
            };
        }
        let port = addr.port();
        let default_port = if tls { 443 } else { 80 };
        let host = |name: &str, explicit: bool| {
            if port == default_port {
                if explicit {
                    format!("{scheme}://{name}:{port}")
                } else {
                    format!("{scheme}://{name}")
                }
            } else {
                format!("{scheme}://{name}:{port}")
            }
        };
        SimUrls {
            endpoint,
            auth_root: host("idmsa.apple.com", false),
            setup_root: host("setup.icloud.com", false),
            // Apple hands this one out with an explicit `:443`, and clients keep it verbatim.
            // The partition (`pNN-`) varies by account (the recordings show p61); p01 is the
            // one our Apple host list names, for DNS set up from it.
            ckdatabasews: host("p01-ckdatabasews.icloud.com", true),
            cdn: host("cvws.icloud-content.com", false),
            home: host("www.icloud.com", false),
        }
    }
}

/// Shared state of a running simulator: configuration plus each part's own state.
pub struct SimState {
    pub config: SimConfig,
    pub urls: SimUrls,
    pub account: SimAccount,
    /// Key for signing CDN URLs and minting tokens, derived from the seed.
    pub secret: [u8; 32],
    pub auth: auth::AuthState,
    pub library: library::LibraryState,
    pub faults: faults::Faults,
    pub stats: server::Stats,
}

/// Shared handle used by every handler.
pub type SharedState = Arc<SimState>;

/// SHA-256 of the seed and a label: the root of every deterministic choice in the simulator.
pub fn seeded_hash(seed: u64, label: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(seed.to_be_bytes());
    h.update(label);
    h.finalize().into()
}
