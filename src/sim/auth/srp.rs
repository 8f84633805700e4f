//! Server side of Apple's SRP-6a variant (icloud-auth.md section 3): the 2048-bit RFC 5054 group,
//! SHA-256, PBKDF2 password pre-processing (`s2k` / `s2k_fo`), no user name in `x`, and a client
//! that sends both proofs. Proofs are accepted in the section-3 form (py, kei) or rclone's padded
//! form (appendix A.5), because which one Apple checks is unknown.

use std::sync::LazyLock;

use num_bigint::BigUint;
use sha2::{Digest, Sha256};

use crate::sim::SrpProtocol;

/// Length in bytes of the group modulus N; `PAD()` pads to this.
pub const N_LEN: usize = 256;

/// The group modulus N (RFC 5054, 2048-bit group).
static N: LazyLock<BigUint> = LazyLock::new(|| srp::groups::G_2048.n.clone());
/// The generator g = 2.
static G: LazyLock<BigUint> = LazyLock::new(|| BigUint::from(2u8));
/// The multiplier k = H(PAD(N) | PAD(g)).
static K_MULT: LazyLock<BigUint> = LazyLock::new(|| {
    BigUint::from_bytes_be(&hash(&[
        &pad(&N).unwrap_or_default(),
        &pad(&G).unwrap_or_default(),
    ]))
});
/// H(bytes(N)) XOR H(PAD(g)), the first term of M1.
static NG_XOR: LazyLock<[u8; 32]> = LazyLock::new(|| {
    let hn = hash(&[&N.to_bytes_be()]);
    let hg = hash(&[&pad(&G).unwrap_or_default()]);
    let mut out = [0u8; 32];
    for (o, (a, b)) in out.iter_mut().zip(hn.iter().zip(hg.iter())) {
        *o = a ^ b;
    }
    out
});

/// Why an SRP exchange was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SrpError {
    /// A is 0 modulo N (a client trying to force S = 0) or longer than N.
    #[error("client public value A is invalid")]
    InvalidA,
    /// The scrambling parameter u came out as 0.
    #[error("scrambling parameter u is zero")]
    ZeroU,
    /// M1 (or M2) matches neither accepted form: wrong password.
    #[error("client proof does not match")]
    BadProof,
}

/// Which encoding of the proofs the client used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofForm {
    /// icloud-auth.md section 3: A, B and S unpadded in K, M1, M2 (py, kei).
    Minimal,
    /// Appendix A.5: A, B and S padded to 256 bytes (rclone).
    Padded,
}

/// The group modulus N.
pub fn modulus() -> BigUint {
    N.clone()
}

/// SHA-256 of the concatenation of `parts`.
fn hash(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// `PAD(n)`: big-endian, left-padded with zeros to 256 bytes; `None` if n does not fit.
fn pad(n: &BigUint) -> Option<Vec<u8>> {
    let bytes = n.to_bytes_be();
    if bytes.len() > N_LEN {
        return None;
    }
    let mut out = vec![0u8; N_LEN - bytes.len()];
    out.extend_from_slice(&bytes);
    Some(out)
}

/// The 32-byte key derived from the password that replaces it in `x` (section 3.2).
pub fn password_key(
    password: &str,
    salt: &[u8],
    iterations: u32,
    protocol: SrpProtocol,
) -> [u8; 32] {
    let digest: [u8; 32] = Sha256::digest(password.as_bytes()).into();
    let input: Vec<u8> = match protocol {
        SrpProtocol::S2k => digest.to_vec(),
        SrpProtocol::S2kFo => hex::encode(digest).into_bytes(),
    };
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(&input, salt, iterations, &mut out);
    out
}

/// The verifier `v = g^x mod N` with `x = H(salt | H(":" | p))` (no user name in x).
pub fn verifier(salt: &[u8], password_key: &[u8; 32]) -> BigUint {
    let inner = hash(&[b":", password_key]);
    let x = BigUint::from_bytes_be(&hash(&[salt, &inner]));
    G.modpow(&x, &N)
}

/// The server's public value `B = (k·v + g^b) mod N` for the secret `b`.
pub fn server_public(verifier: &BigUint, b: &BigUint) -> BigUint {
    (&*K_MULT * verifier + G.modpow(b, &N)) % &*N
}

/// Check a client's public value A as received in `signin/init`.
pub fn check_client_public(a: &BigUint) -> Result<(), SrpError> {
    if (a % &*N) == BigUint::ZERO || a.to_bytes_be().len() > N_LEN {
        return Err(SrpError::InvalidA);
    }
    Ok(())
}

/// Everything the server keeps between `signin/init` and `signin/complete`.
#[derive(Clone)]
pub struct ServerExchange {
    pub salt: Vec<u8>,
    pub verifier: BigUint,
    /// Client public value A.
    pub a_pub: BigUint,
    /// Server secret b.
    pub b_secret: BigUint,
    /// Server public value B.
    pub b_pub: BigUint,
}

impl ServerExchange {
    /// Start an exchange with a random 32-byte secret b.
    pub fn new(salt: Vec<u8>, verifier: BigUint, a_pub: BigUint) -> Result<Self, SrpError> {
        let mut secret = [0u8; 32];
        rand::fill(&mut secret);
        Self::with_secret(salt, verifier, a_pub, BigUint::from_bytes_be(&secret))
    }

    /// Start an exchange with a given secret b (tests reproduce the spec's vectors with it).
    pub fn with_secret(
        salt: Vec<u8>,
        verifier: BigUint,
        a_pub: BigUint,
        b_secret: BigUint,
    ) -> Result<Self, SrpError> {
        check_client_public(&a_pub)?;
        let b_pub = server_public(&verifier, &b_secret);
        Ok(ServerExchange {
            salt,
            verifier,
            a_pub,
            b_secret,
            b_pub,
        })
    }

    /// Verify the client's proofs `m1`/`m2` for the user name `username` (exactly as sent).
    /// M2 is checked in the same form M1 matched.
    pub fn verify(&self, username: &str, m1: &[u8], m2: &[u8]) -> Result<ProofForm, SrpError> {
        let (pa, pb) = match (pad(&self.a_pub), pad(&self.b_pub)) {
            (Some(pa), Some(pb)) => (pa, pb),
            _ => return Err(SrpError::InvalidA),
        };
        let u = BigUint::from_bytes_be(&hash(&[&pa, &pb]));
        if u == BigUint::ZERO {
            return Err(SrpError::ZeroU);
        }
        // S = (A · v^u)^b mod N
        let base = (&self.a_pub * self.verifier.modpow(&u, &N)) % &*N;
        let s = base.modpow(&self.b_secret, &N);
        let user_hash = hash(&[username.as_bytes()]);
        let a_min = self.a_pub.to_bytes_be();
        let b_min = self.b_pub.to_bytes_be();
        let s_min = s.to_bytes_be();
        let s_pad = pad(&s).unwrap_or_default();

        for form in [ProofForm::Minimal, ProofForm::Padded] {
            let (a_bytes, b_bytes, s_bytes) = match form {
                ProofForm::Minimal => (&a_min, &b_min, &s_min),
                ProofForm::Padded => (&pa, &pb, &s_pad),
            };
            let k = hash(&[s_bytes]);
            let expected_m1 = hash(&[&*NG_XOR, &user_hash, &self.salt, a_bytes, b_bytes, &k]);
            if !constant_time_eq(&expected_m1, m1) {
                continue;
            }
            let expected_m2 = hash(&[a_bytes, &expected_m1, &k]);
            return if constant_time_eq(&expected_m2, m2) {
                Ok(form)
            } else {
                Err(SrpError::BadProof)
            };
        }
        Err(SrpError::BadProof)
    }
}

/// Compare two byte strings without an early exit on the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn big(hex_str: &str) -> BigUint {
        BigUint::parse_bytes(hex_str.as_bytes(), 16).expect("hex")
    }

    fn bytes(hex_str: &str) -> Vec<u8> {
        hex::decode(hex_str).expect("hex")
    }

    const N_HEX: &str = "AC6BDB41324A9A9BF166DE5E1389582FAF72B6651987EE07FC3192943DB56050A37329CBB4A099ED8193E0757767A13DD52312AB4B03310DCD7F48A9DA04FD50E8083969EDB767B0CF6095179A163AB3661A05FBD5FAAAE82918A9962F0B93B855F97993EC975EEAA80D740ADBF4FF747359D041D5C33EA71D281E446B14773BCA97B43A23FB801676BD207A436C6481F1D2B9078717461A5B9D32E688F87748544523B524B0D57D5EA77A2775D2ECFA032CFBDBF52FB3786160279004E57AE6AF874E7303CE53299CCC041C7BC308D82A5698F3A8D0C38271AE35F8E9DBFBB694B5C803D89F7AE435DE236D525F54759B65E372FCD68EF20FA7111F9E4AFF73";

    #[test]
    fn group_constants_match_the_spec() {
        assert_eq!(*N, big(N_HEX));
        assert_eq!(
            hex::encode(K_MULT.to_bytes_be()),
            "05b9e8ef059c6b32ea59fc1d322d37f04aa30bae5aa9003b8321e21ddb04e300"
        );
        assert_eq!(
            hex::encode(*NG_XOR),
            "a2b80ee3d957ede6b072f76f67415f3d1a7158bb8f0e765e34d87844031acc9c"
        );
    }

    struct Vector {
        salt: &'static str,
        iterations: u32,
        protocol: SrpProtocol,
        p: &'static str,
        v: &'static str,
        a_pub: &'static str,
        b: &'static str,
        b_pub: &'static str,
        m1: &'static str,
        m2: &'static str,
    }

    const A1: &str = "4b700f8d48e69c9aae40c684ac7c7c03121e2b7602eb4c3514804ccada0ed4019193a351ecc65a6f854ede91eb096e721b22d701c7adc64e9cedacd75f2e26bb2f5e45dd53dc8dbeafffe82aa49fca0573444691212537a73cf80e25039258205a7edf4749b30adaf25877c62fcd09d6613598bcd4baf2a9727a53706a278148992b2abb23ad5d512d269e16ca11bc0895b5a3b5ec4721cde40a8c39c796e94f0be86dbbeb33da7037018983921aba3f5053195d5ac1da4e567e3c0e75d9e0609f92e850657b2be4771f415b9cacc5c1ecedc30133bf6474f5022c6519d780760ca4d8d3b966b034bd73877c1b3b33f474b9c3c5299a1968f3e6cd3bfe84445a";
    const B1: &str = "e487cb59d31ac550471e81f00f6928e01dda08e974a004f49e61f5d105284d20";

    const VECTOR1_S2K: Vector = Vector {
        salt: "0102030405060708090a0b0c0d0e0f10",
        iterations: 20000,
        protocol: SrpProtocol::S2k,
        p: "c70d5acb20db2df3e5599170e09578118995ff5358a5f5916724e669f34043fc",
        v: "7d4c2f579d5a5c99b43f903c1eddf2c8778b97fefec9a4be6d784bb732df647df692efd5a100c0aee814202192481cc56bcc648f03038147b2b41d70b97ee960502782bf586245190f8442fc6d24c8ff83c6d2d6d88d0ed5e6daaf149e8403a9e5d778b39d96ca413ae31bbf46bc09017c58ffd320b749a05958db2d8c580ecaaca06278f7de3b20c4c89a2916fba0946167acf91de7099604bade423befcf00fe4f901c7716027a04f1a14dd909cb61c70fd159946ac5d1c26f17644b3e9dba09cdc76b3a6d4c4e5a44541696f92f0753a63c80863b279f241c75f567d9222b2b698b5ad4216c874149b6a267f263895abf0f8696674915ecd66933b291b2db",
        a_pub: A1,
        b: B1,
        b_pub: "a6cde58703f7c19eac6ec5afbf70cafaede347d721fdc3289d46cb6e55e2027b17d7a7abc4b5ce3a94f2dabaf59e47b6801d0581e2517b3d37bb381657fe49c13f3b84a621ce9d35ad15f16720456bdea9ccff846dc1bdf3e93bf0a5cc2068433466157fca442203af9266bad30bdadb75d116d1de74e7a82ee5f12d13f966eb75c03912399d3ca6a3fca6209b9c362603d35a44db7ca983e3b96f95c2d1a5b0ef5411e30cadead60e92dad12bad7360ec1f3b59f9330ff349c1b139e5d3e52b041b105d23279f68f60edd84612c683d5507ef12e99e51e73f30ecf10ee24be4b2d2d6865a7cfb95e023c49c3fd3bffa6b2ac2a629b980208af8c038c8cbd030",
        m1: "e24a603250f5ad3a1b179617030f326db87f00876162d32d52fd3383bc5af8b8",
        m2: "4504e347055ede64297f9f52bb96b4e5f315b27e776f6d68845f07b35a205a36",
    };

    const VECTOR1_S2K_FO: Vector = Vector {
        salt: "0102030405060708090a0b0c0d0e0f10",
        iterations: 20000,
        protocol: SrpProtocol::S2kFo,
        p: "c4c7eb86ce060dc111648f92d648de4165126f87f5bf659c671aad83b1e88124",
        v: "63d30855eb7ad19bab53909426dbc8de33df2e88c7f0f260cf2b34c4d18e19233eb618da8506731c392308586a1328d96dfa7450e8e8b7ac0981d327d181a1b9ad95c09af4431b3bdc9f49b0c8426b8cf39ed3e5ae055635a7f9a8bf49597b17ddb95a6cc6d8d78992163833bd5d0048c759401339b2c9bef5c45e51e29ac429e05b309d0b2a913a4c3571f435fe8b294ef9c6ab003b33a422e30b0050100d43e3517bea48236181f2370541f633b92749f28e1b99f949ea57ab5339c3f1f4a82c9b6e304dab173a4f674a529e4ebc29072afaf5b0a21103b3ee922d0e6376b10a5ee0e82eec9fd846a04b1e42b2aeb70e5e6286900d3f8830ce014846e6263f",
        a_pub: A1,
        b: B1,
        b_pub: "3837b1317d19765a7fdfa71b59d47654006506827543183d0cadf9665fb2cbba77730a047a5d7015313923134bde038c37be557648f6a2076d3df523cff67abea49b38a5160c2d52c785ad3025dd2110b9248523b0ae7a93f24779fe5abcb6752bc34804842a94d5db32b6ecbec909a89dc72ae7cebdbaf867156f6f6c33c77c2087d17e2bc04eee9980f69ea3deeb03667fe8f2ad9cdfdb0564817a39ae750b50335d89df26ea23c438c3d9ed5a1a4c62c23fc68d7ce68e2d12076751387647f8535261d320ed53305acc90d53922878d42207717784f9fcfd801c2b074e1d45feec032bdfea47a6ebef65e9412a24b4ac155338348e997ef488d9dd691da6d",
        m1: "993faddff2fbe9b646cf57f1b97a7b85a54020b8770c5045c6ca30faf6daabca",
        m2: "99bb7c3da802d87630a4ef5d2f211e499ceaeac072b4c663c87242c3b357682a",
    };

    const VECTOR2: Vector = Vector {
        salt: "f0e1d2c3b4a5968778695a4b3c2d1e0f",
        iterations: 1000,
        protocol: SrpProtocol::S2k,
        p: "c892cd0d897b268d41d24807423f72ee1fffc45c62eab24fd140acc0951c15db",
        v: "0beff844b88db8a0e7e94c2d3fc668f18b965fe417137ff417f5f8c81d84aa80097b3d057bb3942196f8f13e962f01e95e279e9539da1805c7f40dddf17fb3e2ca9c619c793c38fe4fcaf112d455cae95a3be937935ac4756d787ddf5754b23c16c14b6d6150b6f8aa6f0af1c9af37c535984c6e83911bd6196b061c634b83ee08cacef7a344160d1bdf4e7cc19444643cf92bd716916e0e63588da1f00ad5f7951bedd788a963a2f6d09c5e59cccd2eaffbaf53efbe093c0ccb693fb2132bea83f4b4bfe372ba2fc3e90f3eb24e35cac160e3bbfeaac439d39f2664836bf2fbfba533f1df693a4ff802be7c017d2382e4fde665a29e0e522e9a9f4adc321193",
        a_pub: "c6e60232e9319241d3fec59b9005d595f872badce8525281e475f8186eeae277f07d2e2536348ad2a14688a023b9fccca0ff8ef95ae75ff80ab1300f26a3d52c527485ab7d53afb5210c09286a7fc330bb52d585f0b4618a29ccafda9d2298c085eb5c9ef040a0a9d4d92e6789c60c9726c9496e115857a28ffbb3a4df15b36404f824f06dca4ff1b89f81170ffc7669aa587c1b8aca90c28a9d8711c50437eb4e292d640f4270a8313789756bbcc77b6bb15e058bf3f7c314787700ff8106e853d17ef6973788a95a1d23c0f171cd97369b19e8c1cba27f184db6119f1bc93f86286e1b140a0a85e675bda26209d85adffce250539037a5ab764188621c15",
        b: "77d514648f38ddf048837ab67c71dbf23a40dcbfb54da19d540a78394a668471",
        b_pub: "efd34d9f353dd02f382aee7b8c8ec21b9daa75ab6398e4fa0d56a2f2d65bcd8457059f207c7941419d24dc5957897519465df9b50855bb27978086d8adc80744be306e94bbbc29fa90626b21b4b0cc81ec7d115e9abb036a47fa0a8da003d7d950db9c7a7bb2277fca2b2e89b41b3f384db916fffa17a370f3926066dbbf2b46f334f3c6cd41aef892b394173a1b1c67bde57702daf0e0bcb92dcb0fb171e49219ed5273e6fc1186ff358a4b2d66be9fdaa18fc9e8eb4d1220b6d689110f485a2b58f348c974cd12f64c3fae3d65c03a9c56325ea9849949f959ec7e310119500757b0681a3f657eb622d7070d5b327f5e0515601594d04745a6f8096286c1",
        m1: "662debe4186ded2fee527c0958366f68b08341083975742133840b9faaa029ab",
        m2: "303e388dbf2d1adec7c42d34baddd24c60cca94dd2922a03c56f486621fef4fe",
    };

    const USER: &str = "jdoe@example.com";
    const PASSWORD: &str = "password1";

    fn exchange_for(v: &Vector) -> ServerExchange {
        let salt = bytes(v.salt);
        let p = password_key(PASSWORD, &salt, v.iterations, v.protocol);
        assert_eq!(hex::encode(p), v.p, "password key");
        let verifier = verifier(&salt, &p);
        assert_eq!(verifier, big(v.v), "verifier");
        let ex =
            ServerExchange::with_secret(salt, verifier, big(v.a_pub), big(v.b)).expect("valid A");
        assert_eq!(ex.b_pub, big(v.b_pub), "B");
        ex
    }

    fn check_vector(v: &Vector) {
        let ex = exchange_for(v);
        assert_eq!(
            ex.verify(USER, &bytes(v.m1), &bytes(v.m2)),
            Ok(ProofForm::Minimal)
        );
        // A different user name, a flipped proof bit or a wrong M2 must all be refused.
        assert_eq!(
            ex.verify("JDOE@example.com", &bytes(v.m1), &bytes(v.m2)),
            Err(SrpError::BadProof)
        );
        let mut bad = bytes(v.m1);
        bad[31] ^= 1;
        assert_eq!(ex.verify(USER, &bad, &bytes(v.m2)), Err(SrpError::BadProof));
        assert_eq!(
            ex.verify(USER, &bytes(v.m1), &bytes(v.m1)),
            Err(SrpError::BadProof)
        );
    }

    #[test]
    fn vector1_s2k() {
        check_vector(&VECTOR1_S2K);
    }

    #[test]
    fn vector1_s2k_fo() {
        check_vector(&VECTOR1_S2K_FO);
    }

    #[test]
    fn vector2_short_a_and_b() {
        check_vector(&VECTOR2);
        let ex = exchange_for(&VECTOR2);
        assert_eq!(ex.a_pub.to_bytes_be().len(), 255);
        assert_eq!(ex.b_pub.to_bytes_be().len(), 255);
    }

    #[test]
    fn vector2_rclone_padded_proofs_are_accepted() {
        let ex = exchange_for(&VECTOR2);
        let m1 = bytes("3439c185d2b94b0b8aa9c5f2fc02727e1e6611c01555f187e906516351142840");
        let m2 = bytes("feb39714e2d62fcc0a119558e52214ff9831592f6535c10e8fd15ef7a2dc4f72");
        assert_eq!(ex.verify(USER, &m1, &m2), Ok(ProofForm::Padded));
        // The padded M2 does not validate a minimal M1, and vice versa.
        assert_eq!(
            ex.verify(USER, &m1, &bytes(VECTOR2.m2)),
            Err(SrpError::BadProof)
        );
        assert_eq!(
            ex.verify(USER, &bytes(VECTOR2.m1), &m2),
            Err(SrpError::BadProof)
        );
    }

    #[test]
    fn rclone_padded_a_decodes_to_the_same_value() {
        // rclone sends A left-padded to 256 bytes; decoding to an integer removes the padding.
        let mut padded = vec![0u8];
        padded.extend(bytes(VECTOR2.a_pub));
        use base64::Engine;
        let text = base64::engine::general_purpose::STANDARD.encode(&padded);
        assert!(text.starts_with("AMbmAjLp"));
        assert_eq!(BigUint::from_bytes_be(&padded), big(VECTOR2.a_pub));
    }

    #[test]
    fn degenerate_a_is_refused() {
        let v = BigUint::from(5u8);
        assert_eq!(check_client_public(&BigUint::ZERO), Err(SrpError::InvalidA));
        assert_eq!(check_client_public(&N), Err(SrpError::InvalidA));
        assert_eq!(check_client_public(&(&*N * 3u8)), Err(SrpError::InvalidA));
        let too_long = BigUint::from(1u8) << (8 * N_LEN + 1);
        assert_eq!(check_client_public(&too_long), Err(SrpError::InvalidA));
        assert!(ServerExchange::new(vec![1; 16], v, BigUint::ZERO).is_err());
    }
}
