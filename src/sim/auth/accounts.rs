//! The simulated account's sign-in secrets: salt, iteration count and one SRP verifier per
//! protocol, each computed once, at its first use (PBKDF2 is slow in debug builds, and most
//! simulator runs in tests never sign in). Unknown names get a
//! decoy salt so that `signin/init` does not reveal which accounts exist (Apple answers it for
//! any name, see the `failed_auth` recording).

use std::sync::OnceLock;

use num_bigint::BigUint;

use super::srp;
use crate::sim::{SimAccount, SimConfig, SrpProtocol, seeded_hash};

/// Salt length, as recorded.
const SALT_LEN: usize = 16;

/// How the account signs in beyond the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondFactorKind {
    /// Password only (the server answers 412 to a correct proof).
    None,
    /// HSA2 codes to trusted devices or phone numbers.
    Codes,
    /// FIDO security keys, which web clients cannot use.
    SecurityKeys,
}

/// Salt, iterations and verifiers of the simulated account.
pub struct AccountSecrets {
    username: String,
    salt: Vec<u8>,
    iterations: u32,
    preferred: SrpProtocol,
    verifier_s2k: OnceLock<BigUint>,
    verifier_s2k_fo: OnceLock<BigUint>,
    pub second_factor: SecondFactorKind,
    pub locked: bool,
    decoy_key: [u8; 32],
}

/// The SRP parameters `signin/init` answers with.
pub struct SrpParams {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub protocol: SrpProtocol,
    pub verifier: BigUint,
}

/// A salt whose first byte is never 0x00 (one Python back end drops leading zero bytes).
fn salt_from(hash: &[u8; 32]) -> Vec<u8> {
    let mut salt = hash[..SALT_LEN].to_vec();
    if salt[0] == 0 {
        salt[0] = 0x5a;
    }
    salt
}

impl AccountSecrets {
    /// Derive the secrets for the configured account.
    pub fn new(config: &SimConfig, account: &SimAccount) -> Self {
        let salt = salt_from(&seeded_hash(config.seed, b"srp-salt"));
        let second_factor = if config.fido {
            SecondFactorKind::SecurityKeys
        } else if config.two_factor {
            SecondFactorKind::Codes
        } else {
            SecondFactorKind::None
        };
        AccountSecrets {
            username: account.username.clone(),
            salt,
            iterations: config.iterations,
            preferred: config.protocol,
            verifier_s2k: OnceLock::new(),
            verifier_s2k_fo: OnceLock::new(),
            second_factor,
            locked: config.locked,
            decoy_key: seeded_hash(config.seed, b"srp-decoy"),
        }
    }

    /// `name` is this account's Apple ID (compared case-insensitively, as Apple does).
    pub fn is_account(&self, name: &str) -> bool {
        name.trim().eq_ignore_ascii_case(&self.username)
    }

    /// The account uses a second factor of some kind (HSA2 document flags apply).
    pub fn has_second_factor(&self) -> bool {
        self.second_factor != SecondFactorKind::None
    }

    /// Pick the protocol among those the client offers: the configured one if offered, else
    /// the other one; `None` if the client offers neither.
    pub fn choose_protocol(&self, offered: &[&str]) -> Option<SrpProtocol> {
        let other = match self.preferred {
            SrpProtocol::S2k => SrpProtocol::S2kFo,
            SrpProtocol::S2kFo => SrpProtocol::S2k,
        };
        [self.preferred, other]
            .into_iter()
            .find(|p| offered.contains(&p.as_str()))
    }

    /// Parameters for this account with `protocol`; `password` is the account's (the verifier is
    /// derived from it on first use only).
    pub fn params(&self, protocol: SrpProtocol, password: &str) -> SrpParams {
        let cell = match protocol {
            SrpProtocol::S2k => &self.verifier_s2k,
            SrpProtocol::S2kFo => &self.verifier_s2k_fo,
        };
        let verifier = cell
            .get_or_init(|| {
                let key = srp::password_key(password, &self.salt, self.iterations, protocol);
                srp::verifier(&self.salt, &key)
            })
            .clone();
        SrpParams {
            salt: self.salt.clone(),
            iterations: self.iterations,
            protocol,
            verifier,
        }
    }

    /// Plausible parameters for a name that is not an account: a salt stable per name and a
    /// verifier no password matches.
    pub fn decoy_params(&self, name: &str, protocol: SrpProtocol) -> SrpParams {
        let mut label = self.decoy_key.to_vec();
        label.extend_from_slice(name.trim().to_lowercase().as_bytes());
        let salt = salt_from(&seeded_hash(0, &label));
        let mut x = [0u8; 32];
        rand::fill(&mut x);
        SrpParams {
            verifier: BigUint::from(2u8).modpow(&BigUint::from_bytes_be(&x), &srp::modulus()),
            salt,
            iterations: self.iterations,
            protocol,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(config: &SimConfig) -> AccountSecrets {
        AccountSecrets::new(config, &SimAccount::from_config(config))
    }

    #[test]
    fn salt_is_stable_and_never_starts_with_zero() {
        for seed in 0..64 {
            let cfg = SimConfig {
                seed,
                iterations: 1,
                ..SimConfig::default()
            };
            let a = secrets(&cfg);
            assert_eq!(a.salt.len(), SALT_LEN);
            assert_ne!(a.salt[0], 0);
            assert_eq!(a.salt, secrets(&cfg).salt);
        }
        assert_ne!(salt_from(&[0u8; 32])[0], 0);
    }

    #[test]
    fn names_compare_case_insensitively_and_protocol_choice() {
        let cfg = SimConfig {
            username: Some("Jdoe@Example.com".into()),
            iterations: 1,
            protocol: SrpProtocol::S2kFo,
            ..SimConfig::default()
        };
        let a = secrets(&cfg);
        assert!(a.is_account("jdoe@example.com"));
        assert!(a.is_account("JDOE@EXAMPLE.COM"));
        assert!(!a.is_account("jdoe@example.org"));
        assert_eq!(
            a.choose_protocol(&["s2k", "s2k_fo"]),
            Some(SrpProtocol::S2kFo)
        );
        assert_eq!(a.choose_protocol(&["s2k"]), Some(SrpProtocol::S2k));
        assert_eq!(a.choose_protocol(&["plain"]), None);
        let pw = "pw";
        assert_ne!(
            a.params(SrpProtocol::S2k, pw).verifier,
            a.params(SrpProtocol::S2kFo, pw).verifier
        );
        // Computed once: a different password later does not change it.
        assert_eq!(
            a.params(SrpProtocol::S2k, pw).verifier,
            a.params(SrpProtocol::S2k, "other").verifier
        );
        let d1 = a.decoy_params("nobody@example.com", SrpProtocol::S2k);
        let d2 = a.decoy_params("NOBODY@example.com", SrpProtocol::S2k);
        assert_eq!(d1.salt, d2.salt);
        assert_ne!(d1.salt, a.params(SrpProtocol::S2k, pw).salt);
    }
}
