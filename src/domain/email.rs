//! An email address as the platform accepts it: one `@`, a dotted domain, no
//! whitespace or control characters, at most 254 bytes. Surrounding whitespace
//! is trimmed; case is kept (lookups compare case-insensitively in the store).

use std::fmt;

/// The longest address SMTP can carry (RFC 5321's path limit less the brackets).
pub const MAX_LENGTH: usize = 254;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an email address")]
pub struct EmailError;

impl Email {
    pub fn parse(input: &str) -> Result<Self, EmailError> {
        let email = input.trim();
        let Some((local, domain)) = email.split_once('@') else {
            return Err(EmailError);
        };
        let valid = (3..=MAX_LENGTH).contains(&email.len())
            && !local.is_empty()
            && !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !email.chars().any(|c| c.is_whitespace() || c.is_control());
        if valid {
            Ok(Self(email.to_owned()))
        } else {
            Err(EmailError)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_addresses_and_trims_them() {
        for ok in ["a@b.c", "someone@example.org", "x.y+tag@lab.uni.ac.uk"] {
            assert_eq!(Email::parse(ok).unwrap().as_str(), ok);
        }
        assert_eq!(
            Email::parse("  me@example.org\n").unwrap().as_str(),
            "me@example.org"
        );
    }

    #[test]
    fn refuses_what_is_not_an_address() {
        let long = format!("{}@example.org", "a".repeat(250));
        for bad in [
            "",
            "@",
            "plain",
            "@example.org",
            "me@example",
            "me@.example.org",
            "me@example.org.",
            "me@@example.org",
            "m e@example.org",
            "me@exa\u{7}mple.org",
            long.as_str(),
        ] {
            assert_eq!(Email::parse(bad), Err(EmailError), "{bad:?}");
        }
    }
}
