//! The client side of Apple's SRP-6a variant (icloud-auth.md section 3): RFC 5054 2048-bit
//! group, SHA-256, no username in `x`, and a password pre-hashed with PBKDF2 (`s2k`, `s2k_fo`).
//!
//! The `srp` crate's own protocol math differs from Apple's (username in `x`, padding rules), so
//! only its group constants are used; everything else follows the spec's numbered steps, whose
//! padding rules are the interoperability traps (section 3.5).

use num_bigint::BigUint;
use sha2::{Digest, Sha256};

/// Bytes in N (2048 bits); the width of `PAD()`.
const N_LEN: usize = 256;
/// Refuse iteration counts beyond this: a hostile or broken server could make us spin for hours.
pub const MAX_ITERATIONS: u32 = 1_000_000;

/// Password pre-processing the server asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// PBKDF2 over the raw SHA-256 of the password.
    S2k,
    /// PBKDF2 over the lower-case hex of the SHA-256 of the password.
    S2kFo,
}

impl Protocol {
    /// Parse the `protocol` field of the init answer.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "s2k" => Some(Protocol::S2k),
            "s2k_fo" => Some(Protocol::S2kFo),
            _ => None,
        }
    }
}

/// Why proofs could not be computed from the server's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SrpError {
    #[error("server sent an iteration count of {0}, above the limit of {MAX_ITERATIONS}")]
    TooManyIterations(u64),
    #[error("server sent an iteration count of 0")]
    ZeroIterations,
    #[error("server sent an invalid public value B (B mod N = 0)")]
    InvalidB,
    #[error("SRP scrambling parameter u is 0")]
    ZeroU,
}

/// The proofs sent in `signin/complete`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proofs {
    pub m1: [u8; 32],
    pub m2: [u8; 32],
}

/// One SRP exchange: the private `a` and public `A`.
pub struct SrpClient {
    a: BigUint,
    a_pub: BigUint,
}

impl std::fmt::Debug for SrpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrpClient").finish_non_exhaustive()
    }
}

fn n() -> &'static BigUint {
    &srp::groups::G_2048.n
}

fn g() -> &'static BigUint {
    &srp::groups::G_2048.g
}

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// Big-endian bytes left-padded with zeros to the length of N.
fn pad(n: &BigUint) -> Vec<u8> {
    let bytes = n.to_bytes_be();
    let mut out = vec![0u8; N_LEN.saturating_sub(bytes.len())];
    out.extend_from_slice(&bytes);
    out
}

impl SrpClient {
    /// A new exchange with a random 256-bit private value.
    pub fn new() -> Self {
        let mut a = [0u8; 32];
        rand::fill(&mut a[..]);
        Self::with_private(&a)
    }

    /// An exchange with a given private value (tests reproduce the spec's vectors with it).
    pub fn with_private(a: &[u8]) -> Self {
        let a = BigUint::from_bytes_be(a);
        let a_pub = g().modpow(&a, n());
        SrpClient { a, a_pub }
    }

    /// `A` as minimal big-endian bytes (what goes, base64-encoded, into `signin/init`).
    pub fn public_bytes(&self) -> Vec<u8> {
        self.a_pub.to_bytes_be()
    }

    /// Compute M1 and M2 from the password and the server's init answer.
    pub fn proofs(
        &self,
        account_name: &str,
        password: &str,
        protocol: Protocol,
        salt: &[u8],
        iterations: u64,
        b_pub: &[u8],
    ) -> Result<Proofs, SrpError> {
        if iterations > u64::from(MAX_ITERATIONS) {
            return Err(SrpError::TooManyIterations(iterations));
        }
        let iterations =
            u32::try_from(iterations).map_err(|_| SrpError::TooManyIterations(iterations))?;
        if iterations == 0 {
            return Err(SrpError::ZeroIterations);
        }
        let n = n();
        let b = BigUint::from_bytes_be(b_pub);
        if (&b % n) == BigUint::ZERO {
            return Err(SrpError::InvalidB);
        }
        let p = derive_password_key(password, protocol, salt, iterations);
        let u = BigUint::from_bytes_be(&sha256(&[&pad(&self.a_pub), &pad(&b)]));
        if u == BigUint::ZERO {
            return Err(SrpError::ZeroU);
        }
        let k = BigUint::from_bytes_be(&sha256(&[&n.to_bytes_be(), &pad(g())]));
        let x = BigUint::from_bytes_be(&sha256(&[salt, &sha256(&[b":", &p])]));
        let v = g().modpow(&x, n);
        // (B - k*v) mod N, kept non-negative.
        let kv = (&k * &v) % n;
        let base = ((&b % n) + n - kv) % n;
        let s = base.modpow(&(&self.a + &u * &x), n);
        let key = sha256(&[&s.to_bytes_be()]);

        let h_n = sha256(&[&n.to_bytes_be()]);
        let h_g = sha256(&[&pad(g())]);
        let mut h_xor = [0u8; 32];
        for (i, byte) in h_xor.iter_mut().enumerate() {
            *byte = h_n[i] ^ h_g[i];
        }
        let a_bytes = self.a_pub.to_bytes_be();
        let m1 = sha256(&[
            &h_xor,
            &sha256(&[account_name.as_bytes()]),
            salt,
            &a_bytes,
            &b.to_bytes_be(),
            &key,
        ]);
        let m2 = sha256(&[&a_bytes, &m1, &key]);
        Ok(Proofs { m1, m2 })
    }
}

impl Default for SrpClient {
    fn default() -> Self {
        Self::new()
    }
}

/// The 32-byte value that replaces the password in `x` (section 3.2).
fn derive_password_key(
    password: &str,
    protocol: Protocol,
    salt: &[u8],
    iterations: u32,
) -> [u8; 32] {
    let digest = sha256(&[password.as_bytes()]);
    let hex_digest;
    let input: &[u8] = match protocol {
        Protocol::S2k => &digest,
        Protocol::S2kFo => {
            hex_digest = hex::encode(digest);
            hex_digest.as_bytes()
        }
    };
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(input, salt, iterations, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).expect("test hex")
    }

    const A1: &str = "60975527035cf2ad1989806f0407210bc81edc04e2762a56afd529ddda2d4393";
    const SALT1: &str = "0102030405060708090a0b0c0d0e0f10";
    const A1_PUB: &str = "4b700f8d48e69c9aae40c684ac7c7c03121e2b7602eb4c3514804ccada0ed4019193a351ecc65a6f854ede91eb096e721b22d701c7adc64e9cedacd75f2e26bb2f5e45dd53dc8dbeafffe82aa49fca0573444691212537a73cf80e25039258205a7edf4749b30adaf25877c62fcd09d6613598bcd4baf2a9727a53706a278148992b2abb23ad5d512d269e16ca11bc0895b5a3b5ec4721cde40a8c39c796e94f0be86dbbeb33da7037018983921aba3f5053195d5ac1da4e567e3c0e75d9e0609f92e850657b2be4771f415b9cacc5c1ecedc30133bf6474f5022c6519d780760ca4d8d3b966b034bd73877c1b3b33f474b9c3c5299a1968f3e6cd3bfe84445a";
    const B1_S2K: &str = "a6cde58703f7c19eac6ec5afbf70cafaede347d721fdc3289d46cb6e55e2027b17d7a7abc4b5ce3a94f2dabaf59e47b6801d0581e2517b3d37bb381657fe49c13f3b84a621ce9d35ad15f16720456bdea9ccff846dc1bdf3e93bf0a5cc2068433466157fca442203af9266bad30bdadb75d116d1de74e7a82ee5f12d13f966eb75c03912399d3ca6a3fca6209b9c362603d35a44db7ca983e3b96f95c2d1a5b0ef5411e30cadead60e92dad12bad7360ec1f3b59f9330ff349c1b139e5d3e52b041b105d23279f68f60edd84612c683d5507ef12e99e51e73f30ecf10ee24be4b2d2d6865a7cfb95e023c49c3fd3bffa6b2ac2a629b980208af8c038c8cbd030";
    const B1_S2K_FO: &str = "3837b1317d19765a7fdfa71b59d47654006506827543183d0cadf9665fb2cbba77730a047a5d7015313923134bde038c37be557648f6a2076d3df523cff67abea49b38a5160c2d52c785ad3025dd2110b9248523b0ae7a93f24779fe5abcb6752bc34804842a94d5db32b6ecbec909a89dc72ae7cebdbaf867156f6f6c33c77c2087d17e2bc04eee9980f69ea3deeb03667fe8f2ad9cdfdb0564817a39ae750b50335d89df26ea23c438c3d9ed5a1a4c62c23fc68d7ce68e2d12076751387647f8535261d320ed53305acc90d53922878d42207717784f9fcfd801c2b074e1d45feec032bdfea47a6ebef65e9412a24b4ac155338348e997ef488d9dd691da6d";

    #[test]
    fn k_and_hash_xor_constants_match_the_spec() {
        let k = sha256(&[&n().to_bytes_be(), &pad(g())]);
        assert_eq!(
            hex::encode(k),
            "05b9e8ef059c6b32ea59fc1d322d37f04aa30bae5aa9003b8321e21ddb04e300"
        );
        let h_n = sha256(&[&n().to_bytes_be()]);
        let h_g = sha256(&[&pad(g())]);
        let x: Vec<u8> = h_n.iter().zip(h_g).map(|(a, b)| a ^ b).collect();
        assert_eq!(
            hex::encode(x),
            "a2b80ee3d957ede6b072f76f67415f3d1a7158bb8f0e765e34d87844031acc9c"
        );
    }

    #[test]
    fn vector_1_s2k() {
        let client = SrpClient::with_private(&unhex(A1));
        assert_eq!(hex::encode(client.public_bytes()), A1_PUB);
        assert_eq!(
            hex::encode(derive_password_key(
                "password1",
                Protocol::S2k,
                &unhex(SALT1),
                20000
            )),
            "c70d5acb20db2df3e5599170e09578118995ff5358a5f5916724e669f34043fc"
        );
        let proofs = client
            .proofs(
                "jdoe@example.com",
                "password1",
                Protocol::S2k,
                &unhex(SALT1),
                20000,
                &unhex(B1_S2K),
            )
            .expect("proofs");
        assert_eq!(
            hex::encode(proofs.m1),
            "e24a603250f5ad3a1b179617030f326db87f00876162d32d52fd3383bc5af8b8"
        );
        assert_eq!(
            hex::encode(proofs.m2),
            "4504e347055ede64297f9f52bb96b4e5f315b27e776f6d68845f07b35a205a36"
        );
    }

    #[test]
    fn vector_1_s2k_fo() {
        let client = SrpClient::with_private(&unhex(A1));
        assert_eq!(
            hex::encode(derive_password_key(
                "password1",
                Protocol::S2kFo,
                &unhex(SALT1),
                20000
            )),
            "c4c7eb86ce060dc111648f92d648de4165126f87f5bf659c671aad83b1e88124"
        );
        let proofs = client
            .proofs(
                "jdoe@example.com",
                "password1",
                Protocol::S2kFo,
                &unhex(SALT1),
                20000,
                &unhex(B1_S2K_FO),
            )
            .expect("proofs");
        assert_eq!(
            hex::encode(proofs.m1),
            "993faddff2fbe9b646cf57f1b97a7b85a54020b8770c5045c6ca30faf6daabca"
        );
        assert_eq!(
            hex::encode(proofs.m2),
            "99bb7c3da802d87630a4ef5d2f211e499ceaeac072b4c663c87242c3b357682a"
        );
    }

    #[test]
    fn vector_2_padding_edge_case() {
        let a = "3e969c08e0286226efa7160b0bbfe947647f81725a5803600b5b0ce185012d54";
        let salt = unhex("f0e1d2c3b4a5968778695a4b3c2d1e0f");
        let b = "efd34d9f353dd02f382aee7b8c8ec21b9daa75ab6398e4fa0d56a2f2d65bcd8457059f207c7941419d24dc5957897519465df9b50855bb27978086d8adc80744be306e94bbbc29fa90626b21b4b0cc81ec7d115e9abb036a47fa0a8da003d7d950db9c7a7bb2277fca2b2e89b41b3f384db916fffa17a370f3926066dbbf2b46f334f3c6cd41aef892b394173a1b1c67bde57702daf0e0bcb92dcb0fb171e49219ed5273e6fc1186ff358a4b2d66be9fdaa18fc9e8eb4d1220b6d689110f485a2b58f348c974cd12f64c3fae3d65c03a9c56325ea9849949f959ec7e310119500757b0681a3f657eb622d7070d5b327f5e0515601594d04745a6f8096286c1";
        let client = SrpClient::with_private(&unhex(a));
        assert_eq!(
            client.public_bytes().len(),
            255,
            "the vector's A has a leading zero byte"
        );
        assert_eq!(
            hex::encode(client.public_bytes()),
            "c6e60232e9319241d3fec59b9005d595f872badce8525281e475f8186eeae277f07d2e2536348ad2a14688a023b9fccca0ff8ef95ae75ff80ab1300f26a3d52c527485ab7d53afb5210c09286a7fc330bb52d585f0b4618a29ccafda9d2298c085eb5c9ef040a0a9d4d92e6789c60c9726c9496e115857a28ffbb3a4df15b36404f824f06dca4ff1b89f81170ffc7669aa587c1b8aca90c28a9d8711c50437eb4e292d640f4270a8313789756bbcc77b6bb15e058bf3f7c314787700ff8106e853d17ef6973788a95a1d23c0f171cd97369b19e8c1cba27f184db6119f1bc93f86286e1b140a0a85e675bda26209d85adffce250539037a5ab764188621c15"
        );
        let proofs = client
            .proofs(
                "jdoe@example.com",
                "password1",
                Protocol::S2k,
                &salt,
                1000,
                &unhex(b),
            )
            .expect("proofs");
        assert_eq!(
            hex::encode(proofs.m1),
            "662debe4186ded2fee527c0958366f68b08341083975742133840b9faaa029ab"
        );
        assert_eq!(
            hex::encode(proofs.m2),
            "303e388dbf2d1adec7c42d34baddd24c60cca94dd2922a03c56f486621fef4fe"
        );
    }

    #[test]
    fn hostile_server_values_are_refused() {
        let client = SrpClient::with_private(&unhex(A1));
        let salt = unhex(SALT1);
        let n_bytes = n().to_bytes_be();
        assert_eq!(
            client.proofs("u", "p", Protocol::S2k, &salt, 10, &n_bytes),
            Err(SrpError::InvalidB)
        );
        assert_eq!(
            client.proofs("u", "p", Protocol::S2k, &salt, 10, &[]),
            Err(SrpError::InvalidB)
        );
        assert_eq!(
            client.proofs("u", "p", Protocol::S2k, &salt, 1_000_001, &[2]),
            Err(SrpError::TooManyIterations(1_000_001))
        );
        assert_eq!(
            client.proofs("u", "p", Protocol::S2k, &salt, 0, &[2]),
            Err(SrpError::ZeroIterations)
        );
    }

    #[test]
    fn random_exchanges_differ() {
        assert_ne!(
            SrpClient::new().public_bytes(),
            SrpClient::new().public_bytes()
        );
    }
}
