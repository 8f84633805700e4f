//! Where the sign-in calls go: Apple's real hosts for the `com` or `cn` domain, or one base URL
//! serving everything (the simulator, `--endpoint`), laid out as kei's test mode does.

use std::fmt;

/// Apple's two iCloud domains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Domain {
    /// icloud.com (everywhere but mainland China).
    #[default]
    Com,
    /// icloud.com.cn (mainland China).
    Cn,
}

impl Domain {
    /// The value of `--domain`.
    pub fn as_str(self) -> &'static str {
        match self {
            Domain::Com => "com",
            Domain::Cn => "cn",
        }
    }

    /// The domain Apple names in a `domainToUse` answer, if it is one we know.
    pub fn from_domain_to_use(value: &str) -> Option<Domain> {
        let v = value.trim().trim_end_matches('.').to_ascii_lowercase();
        if v.ends_with(".cn") {
            Some(Domain::Cn)
        } else if v.ends_with("icloud.com") {
            Some(Domain::Com)
        } else {
            None
        }
    }

    /// The OAuth redirect URI the web client announces for this domain.
    pub fn redirect_uri(self) -> &'static str {
        match self {
            Domain::Com => "https://www.icloud.com",
            Domain::Cn => "https://www.icloud.com.cn",
        }
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An `--endpoint` value that is not an absolute http(s) URL.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid endpoint URL {url:?}: {reason}")]
pub struct EndpointError {
    pub url: String,
    pub reason: String,
}

/// The roots of every sign-in URL (icloud-auth.md section 1.1 placeholders).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// `{AUTH_ROOT}`: origin of idmsa, used as Origin/Referer of the SRP calls.
    pub auth_root: String,
    /// `{AUTH}` = `{AUTH_ROOT}/appleauth/auth`.
    pub auth: String,
    /// `{HOME}`: the web app origin, default Origin/Referer.
    pub home: String,
    /// `{SETUP}`: the setup service (`accountLogin`, `validate`).
    pub setup: String,
    /// Domain whose OAuth constants are sent.
    pub domain: Domain,
}

impl Endpoints {
    /// Apple's real hosts.
    pub fn apple(domain: Domain) -> Self {
        let (auth_root, home, setup) = match domain {
            Domain::Com => (
                "https://idmsa.apple.com",
                "https://www.icloud.com",
                "https://setup.icloud.com/setup/ws/1",
            ),
            Domain::Cn => (
                "https://idmsa.apple.com.cn",
                "https://www.icloud.com.cn",
                "https://setup.icloud.com.cn/setup/ws/1",
            ),
        };
        Endpoints {
            auth_root: auth_root.to_string(),
            auth: format!("{auth_root}/appleauth/auth"),
            home: home.to_string(),
            setup: setup.to_string(),
            domain,
        }
    }

    /// One base URL serving every path (`B/appleauth/auth`, `B/setup/ws/1`, home = `B`).
    pub fn custom(base: &str, domain: Domain) -> Result<Self, EndpointError> {
        let err = |reason: &str| EndpointError {
            url: base.to_string(),
            reason: reason.to_string(),
        };
        let url = reqwest::Url::parse(base).map_err(|e| err(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(err("the scheme must be http or https"));
        }
        if url.host_str().is_none() {
            return Err(err("no host"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(err("no query or fragment allowed"));
        }
        let root = base.trim_end_matches('/').to_string();
        Ok(Endpoints {
            auth: format!("{root}/appleauth/auth"),
            setup: format!("{root}/setup/ws/1"),
            auth_root: root.clone(),
            home: root,
            domain,
        })
    }

    /// Full URL of an idmsa path such as `/signin/init` (empty for `{AUTH}` itself).
    pub fn auth_url(&self, path: &str) -> String {
        format!("{}{}", self.auth, path)
    }

    /// Full URL of a setup path such as `/accountLogin`.
    pub fn setup_url(&self, path: &str) -> String {
        format!("{}{}", self.setup, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apple_hosts_per_domain() {
        let com = Endpoints::apple(Domain::Com);
        assert_eq!(
            com.auth_url("/signin/init"),
            "https://idmsa.apple.com/appleauth/auth/signin/init"
        );
        assert_eq!(
            com.setup_url("/accountLogin"),
            "https://setup.icloud.com/setup/ws/1/accountLogin"
        );
        assert_eq!(com.home, "https://www.icloud.com");
        let cn = Endpoints::apple(Domain::Cn);
        assert_eq!(cn.auth, "https://idmsa.apple.com.cn/appleauth/auth");
        assert_eq!(cn.setup, "https://setup.icloud.com.cn/setup/ws/1");
        assert_eq!(cn.domain.redirect_uri(), "https://www.icloud.com.cn");
    }

    #[test]
    fn custom_base_serves_everything() {
        let e = Endpoints::custom("http://127.0.0.1:8080/", Domain::Com).expect("valid");
        assert_eq!(e.auth, "http://127.0.0.1:8080/appleauth/auth");
        assert_eq!(e.setup, "http://127.0.0.1:8080/setup/ws/1");
        assert_eq!(e.home, "http://127.0.0.1:8080");
        assert_eq!(e.auth_root, "http://127.0.0.1:8080");
        assert!(Endpoints::custom("ftp://x", Domain::Com).is_err());
        assert!(Endpoints::custom("not a url", Domain::Com).is_err());
        assert!(Endpoints::custom("http://x/?a=b", Domain::Com).is_err());
    }

    #[test]
    fn domain_to_use_values() {
        assert_eq!(
            Domain::from_domain_to_use("icloud.com.cn"),
            Some(Domain::Cn)
        );
        assert_eq!(Domain::from_domain_to_use("iCloud.com"), Some(Domain::Com));
        assert_eq!(Domain::from_domain_to_use("example.org"), None);
    }
}
