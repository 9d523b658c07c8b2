//! Password hashing: argon2id with OWASP parameters (m=19 MiB, t=2, p=1), run on the
//! blocking pool with a bound on concurrent hashes so a login flood cannot take the CPU;
//! a caller that waits too long for its turn gets `Busy` (503) instead of queueing
//! without bound.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use portcullis_protocol::Secret;
use tokio::sync::Semaphore;

use crate::crypto::random_bytes;
use crate::error::{Error, Result};

#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    params: Params,
    /// A hash of a random password, verified when the user does not exist so that the
    /// answer takes as long either way and does not reveal which usernames exist.
    dummy_hash: Arc<String>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("available", &self.permits.available_permits())
            .finish()
    }
}

/// The longest a hash waits for a free slot before the request is answered `Busy`.
const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Minimum password length accepted for new passwords (NIST SP 800-63B §5.1.1.2).
pub const MIN_PASSWORD_LEN: usize = 8;

impl PasswordHasher {
    /// `max_concurrent` hashes at once; further callers wait their turn.
    pub fn new(max_concurrent: usize) -> Result<Self> {
        let params = Params::new(19 * 1024, 2, 1, None).map_err(|e| Error::Unexpected(e.to_string()))?;
        let dummy = hash_with(&params, &crate::crypto::random_token()?)?;
        Ok(Self {
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            params,
            dummy_hash: Arc::new(dummy),
        })
    }

    async fn permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>> {
        match tokio::time::timeout(MAX_WAIT, self.permits.acquire()).await {
            Ok(Ok(p)) => Ok(p),
            _ => Err(Error::Busy),
        }
    }

    /// Checks a new password's strength; returns the reason if it is refused.
    pub fn check_policy(password: &str) -> Result<()> {
        if password.chars().count() < MIN_PASSWORD_LEN {
            return Err(Error::invalid(
                "password",
                format!("must be at least {MIN_PASSWORD_LEN} characters"),
            ));
        }
        if password.len() > 1024 {
            return Err(Error::invalid("password", "must be at most 1024 bytes"));
        }
        Ok(())
    }

    pub async fn hash(&self, password: &Secret) -> Result<String> {
        let _permit = self.permit().await?;
        let params = self.params.clone();
        let pw = password.clone();
        tokio::task::spawn_blocking(move || hash_with(&params, pw.expose()))
            .await
            .map_err(|e| Error::Unexpected(e.to_string()))?
    }

    /// Verifies `password` against a PHC string, or against a dummy hash when `phc` is
    /// `None`, which always fails but costs the same.
    pub async fn verify(&self, password: &Secret, phc: Option<&str>) -> Result<bool> {
        let _permit = self.permit().await?;
        let known = phc.is_some();
        let phc = phc
            .map(str::to_owned)
            .unwrap_or_else(|| self.dummy_hash.as_ref().clone());
        let pw = password.clone();
        let ok = tokio::task::spawn_blocking(move || {
            let parsed =
                PasswordHash::new(&phc).map_err(|e| Error::Unexpected(format!("stored password hash: {e}")))?;
            Ok::<bool, Error>(
                Argon2::default()
                    .verify_password(pw.expose().as_bytes(), &parsed)
                    .is_ok(),
            )
        })
        .await
        .map_err(|e| Error::Unexpected(e.to_string()))??;
        Ok(ok && known)
    }
}

fn hash_with(params: &Params, password: &str) -> Result<String> {
    let salt_bytes = random_bytes::<16>()?;
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| Error::Unexpected(e.to_string()))?;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Unexpected(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_and_verify() {
        let h = PasswordHasher::new(2).unwrap();
        let phc = h.hash(&Secret::new("correct horse")).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(h.verify(&Secret::new("correct horse"), Some(&phc)).await.unwrap());
        assert!(!h.verify(&Secret::new("wrong horse"), Some(&phc)).await.unwrap());
        assert!(!h.verify(&Secret::new("correct horse"), None).await.unwrap());
    }
}
