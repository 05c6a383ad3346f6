//! The subdomain a tenant is served at: the only user-typed part of a tenant's
//! address. It never reaches DDL or a Docker name; those derive from the id.

use std::fmt;

/// Names that belong to the platform or are easily mistaken for it.
pub const RESERVED_SUBDOMAINS: &[&str] = &[
    "www",
    "api",
    "admin",
    "app",
    "traefik",
    "mail",
    "smtp",
    "imap",
    "pop",
    "ftp",
    "static",
    "assets",
    "cdn",
    "status",
    "docs",
    "dashboard",
    "platform",
    "auth",
    "login",
    "signup",
    "account",
    "accounts",
    "billing",
    "support",
    "help",
    "blog",
    "dev",
    "staging",
    "test",
    "localhost",
    "root",
    "system",
    "fresco",
    "networkcanvas",
    "ns1",
    "ns2",
    "mx",
    "webmail",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubdomainError {
    #[error("subdomain must be between 3 and 63 characters long (got {0})")]
    Length(usize),
    #[error("subdomain may contain only lowercase letters a-z, digits and hyphens")]
    Characters,
    #[error("subdomain must start and end with a letter or digit")]
    Hyphens,
    #[error("subdomain must not have \"--\" at positions 3-4 (reserved for punycode)")]
    Punycode,
    #[error("subdomain \"{0}\" is reserved")]
    Reserved(String),
}

impl SubdomainError {
    /// A stable name for the rule that was broken, for clients.
    pub fn rule(&self) -> &'static str {
        match self {
            Self::Length(_) => "length",
            Self::Characters => "characters",
            Self::Hyphens => "hyphens",
            Self::Punycode => "punycode",
            Self::Reserved(_) => "reserved",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Subdomain(String);

impl Subdomain {
    /// Validates a subdomain. Uppercase input is refused rather than folded, so
    /// what the user typed is exactly what they get.
    pub fn parse(input: &str) -> Result<Self, SubdomainError> {
        let len = input.chars().count();
        if !(3..=63).contains(&len) {
            return Err(SubdomainError::Length(len));
        }
        if !input
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(SubdomainError::Characters);
        }
        if input.starts_with('-') || input.ends_with('-') {
            return Err(SubdomainError::Hyphens);
        }
        if input.get(2..4) == Some("--") {
            return Err(SubdomainError::Punycode);
        }
        if RESERVED_SUBDOMAINS.contains(&input) {
            return Err(SubdomainError::Reserved(input.to_owned()));
        }
        Ok(Self(input.to_owned()))
    }

    /// `parse`, also refusing the platform's own host label (`platform_label`)
    /// as `reserved`: a tenant there would take the platform's address.
    pub fn parse_beside(input: &str, platform_label: Option<&str>) -> Result<Self, SubdomainError> {
        let subdomain = Self::parse(input)?;
        if platform_label == Some(input) {
            return Err(SubdomainError::Reserved(input.to_owned()));
        }
        Ok(subdomain)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The label of the platform's host right under `base_domain` (its first
    /// label when it sits directly under it: `platform` for
    /// `https://platform.example.org` and `example.org`): a tenant there would
    /// take the platform's address or could set cookies for it.
    pub fn platform_label(platform_url: &str, base_domain: &str) -> Option<String> {
        let rest = platform_url
            .split_once("://")
            .map_or(platform_url, |(_, rest)| rest);
        let authority = rest.split(['/', '?', '#']).next()?;
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let host = host
            .split(':')
            .next()?
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let base = base_domain.trim_matches('.').to_ascii_lowercase();
        let under = host.strip_suffix(&base)?.strip_suffix('.')?;
        under
            .rsplit('.')
            .next()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
    }
}

impl fmt::Display for Subdomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_platform_host_label_is_reserved_beside_the_fixed_list() {
        let label = Subdomain::platform_label("https://platform.example.org/", "example.org");
        assert_eq!(label.as_deref(), Some("platform"));
        let label = Subdomain::platform_label("https://console.example.org:8443/x", "example.org");
        assert_eq!(label.as_deref(), Some("console"));
        let err = Subdomain::parse_beside("console", label.as_deref()).unwrap_err();
        assert_eq!(err.rule(), "reserved");
        assert!(Subdomain::parse_beside("consoles", label.as_deref()).is_ok());
        // The label next to the base domain is the one a tenant would collide with.
        assert_eq!(
            Subdomain::platform_label("https://a.ops.example.org", "example.org").as_deref(),
            Some("ops")
        );
        assert_eq!(
            Subdomain::platform_label("https://example.org", "example.org"),
            None
        );
        assert_eq!(
            Subdomain::platform_label("https://platform.other.org", "example.org"),
            None
        );
        assert_eq!(
            Subdomain::platform_label("http://127.0.0.1:8080", "fresco.localhost"),
            None
        );
        assert_eq!(
            Subdomain::platform_label("https://notexample.org", "example.org"),
            None
        );
    }

    #[test]
    fn accepts_ordinary_names() {
        for ok in ["abc", "my-study", "lab42", "a1b", &"a".repeat(63)] {
            assert!(Subdomain::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_each_rule_with_its_name() {
        let cases = [
            ("ab", "length"),
            ("", "length"),
            (&"a".repeat(64) as &str, "length"),
            ("MyStudy", "characters"),
            ("my_study", "characters"),
            ("a;drop", "characters"),
            ("$(rm)", "characters"),
            ("café", "characters"),
            ("-abc", "hyphens"),
            ("abc-", "hyphens"),
            ("xn--abc", "punycode"),
            ("www", "reserved"),
            ("admin", "reserved"),
        ];
        for (input, rule) in cases {
            let err = Subdomain::parse(input).expect_err(input);
            assert_eq!(err.rule(), rule, "{input}");
        }
    }

    #[test]
    fn hyphens_elsewhere_are_fine() {
        assert!(Subdomain::parse("ab-c--d").is_ok());
    }
}
