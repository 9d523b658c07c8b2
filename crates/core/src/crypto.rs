//! Random values, digests, constant-time comparison and the key-encryption key.
//! All randomness comes from the OS CSPRNG through aws-lc-rs.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use subtle::ConstantTimeEq;

use crate::error::Error;
use crate::model::Digest;

/// `n` random bytes from the OS CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], Error> {
    let mut buf = [0u8; N];
    aws_lc_rs::rand::fill(&mut buf).map_err(|_| Error::Unexpected("the OS random generator failed".into()))?;
    Ok(buf)
}

/// A random (version 4) UUID from aws-lc's generator. `Uuid::new_v4` asks the kernel
/// (`getrandom`) for every id, a system call per token on the hot paths (issue 7).
pub fn random_uuid() -> Result<uuid::Uuid, Error> {
    Ok(uuid::Builder::from_random_bytes(random_bytes::<16>()?).into_uuid())
}

/// A time-ordered (version 7) UUID for `now`, its random bits from aws-lc's generator.
pub fn time_ordered_uuid(now: time::OffsetDateTime) -> Result<uuid::Uuid, Error> {
    let millis = u64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    Ok(uuid::Builder::from_unix_timestamp_millis(millis, &random_bytes::<10>()?).into_uuid())
}

/// A 256-bit random token, base64url without padding (43 characters).
pub fn random_token() -> Result<String, Error> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes::<32>()?))
}

pub fn sha256(data: &[u8]) -> Digest {
    let d = digest::digest(&digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Constant-time equality of two digests.
pub fn digest_eq(a: &Digest, b: &Digest) -> bool {
    a.ct_eq(b).into()
}

/// Constant-time equality of two byte strings (false for different lengths).
pub fn digest_eq_slice(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

pub fn b64url(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// RFC 7636 §4.6: BASE64URL-ENCODE(SHA256(ASCII(code_verifier))) == code_challenge,
/// compared in constant time.
pub fn pkce_s256_matches(verifier: &str, challenge: &str) -> bool {
    let computed = b64url(&sha256(verifier.as_bytes()));
    computed.as_bytes().ct_eq(challenge.as_bytes()).into()
}

/// The key-encryption key: 32 bytes that encrypt private signing keys and webhook
/// secrets at rest with AES-256-GCM. It never enters the database. While the KEK is being
/// replaced it also carries the keys it replaces (`previous_keks`): it opens what any of
/// them sealed, and seals with the current one only (`Portcullis::rewrap_sealed`).
#[derive(Clone)]
pub struct Kek {
    current: [u8; 32],
    previous: Vec<[u8; 32]>,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek([redacted])")
    }
}

impl Kek {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self {
            current: bytes,
            previous: Vec::new(),
        }
    }

    /// This key, which seals, with `previous` keys that only open (tried in order after
    /// it): what they sealed stays readable until it is sealed again with this one.
    #[must_use]
    pub fn with_previous(mut self, previous: impl IntoIterator<Item = Kek>) -> Self {
        self.previous = previous.into_iter().map(|k| k.current).collect();
        self
    }

    /// Whether keys this one replaces are configured (`previous_keks`).
    pub fn has_previous(&self) -> bool {
        !self.previous.is_empty()
    }

    /// Whether `other` seals with the same key as this one.
    pub fn same_current(&self, other: &Kek) -> bool {
        bool::from(self.current.ct_eq(&other.current))
    }

    pub fn generate() -> Result<Self, Error> {
        Ok(Self::from_bytes(random_bytes::<32>()?))
    }

    /// Parses 32 bytes written as base64 (standard or url-safe, padded or not) or hex.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        // Said in characters: `abcd` is hex to the eye and 3 bytes of base64 to a decoder.
        let wrong_length = || {
            format!(
                "must be 32 bytes, written as 64 hex digits or 43 base64 characters (44 with padding); \
                 got {} characters",
                t.chars().count()
            )
        };
        if !matches!(t.len(), 43 | 44 | 64) {
            return Err(wrong_length());
        }
        let decoded = if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&t[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|e| e.to_string())?
        } else {
            let unpadded = t.trim_end_matches('=');
            URL_SAFE_NO_PAD
                .decode(unpadded)
                .or_else(|_| STANDARD.decode(t))
                .map_err(|_| "not base64 or hex".to_owned())?
        };
        let bytes: [u8; 32] = decoded.try_into().map_err(|_| wrong_length())?;
        Ok(Self::from_bytes(bytes))
    }

    /// The key as base64url, for writing a generated key file.
    pub fn to_text(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.current)
    }

    fn key(bytes: &[u8; 32]) -> Result<LessSafeKey, Error> {
        UnboundKey::new(&AES_256_GCM, bytes)
            .map(LessSafeKey::new)
            .map_err(|_| Error::Unexpected("bad key-encryption key".into()))
    }

    /// HMAC-SHA256 tags of `message` under keys derived from this key and the previous
    /// ones (current first) for `purpose`: what every node with the same KEK can make and
    /// check without sharing anything else. The KEK itself never signs.
    /// Lazy: a caller that needs only the current key's tag computes only that one.
    pub fn tags<'a>(&'a self, purpose: &'a str, message: &'a [u8]) -> impl Iterator<Item = [u8; 32]> + 'a {
        use aws_lc_rs::hmac;
        std::iter::once(&self.current).chain(&self.previous).map(move |k| {
            let derived = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, k), purpose.as_bytes());
            let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()), message);
            let mut out = [0u8; 32];
            out.copy_from_slice(tag.as_ref());
            out
        })
    }

    /// Encrypts `plaintext`, binding it to `aad` (the key id). Output: nonce || ciphertext || tag.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, Error> {
        let nonce_bytes = random_bytes::<NONCE_LEN>()?;
        let mut buf = plaintext.to_vec();
        Self::key(&self.current)?
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce_bytes), Aad::from(aad), &mut buf)
            .map_err(|_| Error::Unexpected("encryption failed".into()))?;
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Decrypts what [`Kek::seal`] produced with this key or one of the previous ones;
    /// fails if none of them sealed it or `aad` differs.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, Error> {
        self.open_noting_key(sealed, aad).map(|(plain, _)| plain)
    }

    /// [`Kek::open`], saying also whether a previous key sealed it (so it should be
    /// sealed again with this one, `kek rewrap`).
    pub fn open_noting_key(&self, sealed: &[u8], aad: &[u8]) -> Result<(Vec<u8>, bool), Error> {
        if sealed.len() < NONCE_LEN + 16 {
            return Err(Error::Unexpected("sealed key is too short".into()));
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        for (i, bytes) in std::iter::once(&self.current).chain(&self.previous).enumerate() {
            let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Error::Unexpected("bad nonce".into()))?;
            let mut buf = rest.to_vec();
            if let Ok(plain) = Self::key(bytes)?.open_in_place(nonce, Aad::from(aad), &mut buf) {
                return Ok((plain.to_vec(), i > 0));
            }
        }
        Err(Error::invalid(
            "kek",
            "cannot decrypt a stored secret: it was sealed with another key-encryption key (set kek / \
             kek_file / PORTCULLIS_KEK to that one, or list it in previous_keks while replacing it)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open_round_trip_and_bind_aad() {
        let kek = Kek::generate().unwrap();
        let sealed = kek.seal(b"private", b"kid-1").unwrap();
        assert_eq!(kek.open(&sealed, b"kid-1").unwrap(), b"private");
        assert!(kek.open(&sealed, b"kid-2").is_err());
        assert!(Kek::generate().unwrap().open(&sealed, b"kid-1").is_err());
    }

    #[test]
    fn previous_keks_open_but_never_seal() {
        let (old, other) = (Kek::generate().unwrap(), Kek::generate().unwrap());
        let sealed_by_old = old.seal(b"private", b"kid-1").unwrap();
        let new = Kek::generate().unwrap().with_previous([other.clone(), old.clone()]);
        assert_eq!(new.open(&sealed_by_old, b"kid-1").unwrap(), b"private");
        assert!(new.open(&sealed_by_old, b"kid-2").is_err(), "aad still binds");
        // New seals use the current key: the previous ones cannot open them.
        let sealed_by_new = new.seal(b"private", b"kid-1").unwrap();
        assert!(old.open(&sealed_by_new, b"kid-1").is_err());
        assert!(!new.same_current(&old) && new.same_current(&new.clone().with_previous([])));
        // Without the old key in the ring, what it sealed is unreadable.
        let without = Kek::generate().unwrap().with_previous([other]);
        assert!(without.open(&sealed_by_old, b"kid-1").is_err());
        assert!(new.open_noting_key(&sealed_by_old, b"kid-1").unwrap().1);
        assert!(!new.open_noting_key(&sealed_by_new, b"kid-1").unwrap().1);
        assert!(without.open_noting_key(&sealed_by_old, b"kid-1").is_err());
        assert!(new.has_previous() && !old.has_previous());
    }

    #[test]
    fn kek_parses_base64_and_hex() {
        let kek = Kek::generate().unwrap();
        let again = Kek::parse(&kek.to_text()).unwrap();
        assert_eq!(again.to_text(), kek.to_text());
        assert!(Kek::parse(&"ab".repeat(32)).is_ok());
        assert!(Kek::parse("short").is_err());
        // A wrong length is said in characters, whatever the input looks like.
        for (text, got) in [("abcd", 4), (&*"ab".repeat(31), 62), (&*"A".repeat(45), 45)] {
            let e = Kek::parse(text).err().unwrap();
            assert!(
                e.contains("64 hex digits") && e.ends_with(&format!("got {got} characters")),
                "{e}"
            );
        }
        assert_eq!(Kek::parse(&"!".repeat(43)).err().unwrap(), "not base64 or hex");
    }

    #[test]
    fn pkce_rfc7636_appendix_b() {
        assert!(pkce_s256_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!pkce_s256_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXx",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
    }
}
