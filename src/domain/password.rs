//! Password rules, the strength score shown by the wizard's indicator, and
//! argon2id hashing. Hashing is CPU work: call it off the async runtime.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::Serialize;

pub const MIN_LENGTH: usize = 10;
pub const MAX_LENGTH: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("password must be at least {MIN_LENGTH} characters long")]
    TooShort,
    #[error("password must be at most {MAX_LENGTH} characters long")]
    TooLong,
    #[error("password must not be your email address")]
    IsEmail,
}

impl PasswordError {
    pub fn rule(&self) -> &'static str {
        match self {
            Self::TooShort => "min_length",
            Self::TooLong => "max_length",
            Self::IsEmail => "not_email",
        }
    }
}

/// zxcvbn's 0–4 score and its advice, for the strength indicator.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Strength {
    pub score: u8,
    pub warning: Option<String>,
    pub suggestions: Vec<String>,
}

pub fn check(password: &str, email: &str) -> Result<(), PasswordError> {
    let len = password.chars().count();
    if len < MIN_LENGTH {
        return Err(PasswordError::TooShort);
    }
    if len > MAX_LENGTH {
        return Err(PasswordError::TooLong);
    }
    let email = email.trim().to_lowercase();
    let lowered = password.trim().to_lowercase();
    let local = email.split('@').next().unwrap_or_default();
    if lowered == email || (!local.is_empty() && lowered == local) {
        return Err(PasswordError::IsEmail);
    }
    Ok(())
}

pub fn strength(password: &str, email: &str) -> Strength {
    let clipped: String = password.chars().take(MAX_LENGTH).collect();
    let inputs: Vec<&str> = email.split(['@', '.']).filter(|p| !p.is_empty()).collect();
    let entropy = zxcvbn::zxcvbn(&clipped, &inputs);
    let feedback = entropy.feedback();
    Strength {
        score: u8::from(entropy.score()),
        warning: feedback.and_then(|f| f.warning()).map(|w| w.to_string()),
        suggestions: feedback
            .map(|f| f.suggestions().iter().map(|s| s.to_string()).collect())
            .unwrap_or_default(),
    }
}

pub fn hash(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

pub fn verify(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A hash to verify against when there is no user, so a login for an unknown
/// email costs as much time as one for a known email.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash("not-a-real-password-for-timing").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert_eq!(check("short", "a@b.c"), Err(PasswordError::TooShort));
        assert_eq!(
            check("someone@example.org", "Someone@example.org"),
            Err(PasswordError::IsEmail)
        );
        assert_eq!(
            check("someone123", "someone123@example.org"),
            Err(PasswordError::IsEmail)
        );
        assert!(check("correct horse battery", "a@b.c").is_ok());
    }

    #[test]
    fn strength_orders_passwords() {
        assert!(
            strength("password12", "a@b.c").score
                < strength("violet-tundra-42-kettle!", "a@b.c").score
        );
    }

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let h = hash("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse battery", &h));
        assert!(!verify("wrong horse battery", &h));
    }
}
