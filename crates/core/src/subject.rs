//! Subject identifiers (OIDC Core §8): what `sub` a client sees for a person.
//!
//! A client without a sector sees the public identifier, the person's id, the same for
//! every client. A client with one (`pairwise_sector`, OIDC Core §8.1) sees a pairwise
//! identifier: HMAC-SHA256, keyed with a secret of the server's, of the sector and the
//! person's id, base64url. Clients of one sector see the same value, clients of two
//! sectors cannot tell that they see the same person, and nobody without the secret can
//! get back to the person's id. The secret is made at first start and kept in the
//! database sealed with the key-encryption key, like signing keys: it must never change,
//! or every pairwise `sub` changes with it.

use aws_lc_rs::hmac;
use uuid::Uuid;

use crate::crypto::{Kek, b64url, random_bytes};
use crate::error::{Error, Result};
use crate::model::Client;
use crate::repo::Store;
use crate::service::Portcullis;

/// The name of the pairwise key among the server's secrets.
pub(crate) const PAIRWISE_SECRET: &str = "pairwise_subject_key";

/// What a server secret is sealed with besides the KEK: its name, so one cannot stand
/// in for another.
pub(crate) fn secret_aad(name: &str) -> Vec<u8> {
    format!("server_secret:{name}").into_bytes()
}

/// The key pairwise identifiers are computed with.
pub struct PairwiseKey(hmac::Key);

impl std::fmt::Debug for PairwiseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PairwiseKey(..)")
    }
}

impl PairwiseKey {
    fn new(secret: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    /// The pairwise identifier of person `user` in `sector`: 43 characters, never a
    /// UUID, so it cannot be taken for a public identifier.
    pub fn subject(&self, sector: &str, user: Uuid) -> String {
        let mut ctx = hmac::Context::with_key(&self.0);
        // The sector is a host name or a client id, neither of which holds a NUL: the
        // separator keeps ("a", id) and ("a\0…", …) apart.
        ctx.update(sector.as_bytes());
        ctx.update(&[0]);
        ctx.update(user.as_bytes());
        b64url(ctx.sign().as_ref())
    }

    /// Loads the server's pairwise key, making and storing it first if `create` and no
    /// node has yet. `None` when it does not exist and may not be made.
    pub(crate) async fn load(
        store: &dyn Store,
        kek: &Kek,
        create: bool,
        now: time::OffsetDateTime,
    ) -> Result<Option<Self>> {
        let aad = secret_aad(PAIRWISE_SECRET);
        let sealed = match store.server_secret(PAIRWISE_SECRET).await? {
            Some(s) => s,
            None if create => {
                let secret = random_bytes::<32>()?;
                store
                    .insert_server_secret(PAIRWISE_SECRET, &kek.seal(&secret, &aad)?, now)
                    .await?;
                // Another node may have made its own first: everyone keeps the stored one.
                store
                    .server_secret(PAIRWISE_SECRET)
                    .await?
                    .ok_or_else(|| Error::Unexpected("the pairwise subject key was not stored".into()))?
            }
            None => return Ok(None),
        };
        Ok(Some(Self::new(&kek.open(&sealed, &aad)?)))
    }
}

impl Portcullis {
    /// The `sub` `client` sees for person `user` (OIDC Core §8).
    pub fn subject(&self, client: &Client, user: Uuid) -> Result<String> {
        self.subject_in(client.pairwise_sector.as_deref(), user)
    }

    /// The `sid` `client` sees for browser session `sid` (OIDC Front-Channel and
    /// Back-Channel Logout: a session "at an RP"): the session's own for a public client;
    /// for a pairwise one, HMAC-SHA256 of its id and the session's, so that two clients
    /// signed in from one browser cannot match their people up by the session either.
    pub fn session_id(&self, client: &Client, sid: &str) -> Result<String> {
        if client.pairwise_sector.is_none() {
            return Ok(sid.to_owned());
        }
        let mut ctx = hmac::Context::with_key(&self.pairwise_key()?.0);
        ctx.update(b"sid\0");
        ctx.update(client.id.as_str().as_bytes());
        ctx.update(&[0]);
        ctx.update(sid.as_bytes());
        Ok(b64url(ctx.sign().as_ref()))
    }

    /// The `sub` a client of `sector` sees for `user`: the public identifier without one.
    pub fn subject_in(&self, sector: Option<&str>, user: Uuid) -> Result<String> {
        match sector {
            None => Ok(user.to_string()),
            Some(sector) => Ok(self.pairwise_key()?.subject(sector, user)),
        }
    }

    /// The pairwise key; an error after a read-only start on a database without one.
    fn pairwise_key(&self) -> Result<&PairwiseKey> {
        self.pairwise
            .as_ref()
            .ok_or_else(|| Error::Unexpected("the pairwise subject key is not loaded (read-only start)".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairwise_identifiers_depend_on_sector_and_person_only() {
        let key = PairwiseKey::new(&[7; 32]);
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let s = key.subject("app.example.com", a);
        assert_eq!(s.len(), 43);
        assert!(Uuid::parse_str(&s).is_err());
        assert_eq!(s, key.subject("app.example.com", a), "stable");
        assert_ne!(s, key.subject("other.example.com", a), "per sector");
        assert_ne!(s, key.subject("app.example.com", b), "per person");
        assert_ne!(
            s,
            PairwiseKey::new(&[8; 32]).subject("app.example.com", a),
            "per server"
        );
        // HMAC-SHA256(key = 32 × 0x07, "app.example.com" || 0x00 || 16-byte UUID 1),
        // computed independently with Python's hmac module.
        assert_eq!(s, EXPECTED);
    }

    const EXPECTED: &str = "AVmtopfIbpGl3z3BiYWl_3biRglKMFKavvHryIkuZ1Y";
}
