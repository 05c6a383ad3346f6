//! Showing a Postgres connection URL to a person: never its password.

/// `user@host:port/database` of a postgres URL, without its password.
pub fn redacted_dsn(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}@{}:{}{}",
            u.username(),
            u.host_str().unwrap_or("?"),
            u.port().unwrap_or(5432),
            u.path()
        ),
        Err(_) => "(unparsable URL)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redacted_dsn;

    #[test]
    fn a_server_is_shown_without_its_password() {
        let shown = redacted_dsn("postgres://fresco:s3cret@db2.internal:5433/postgres");
        assert_eq!(shown, "fresco@db2.internal:5433/postgres");
        assert!(!redacted_dsn("postgres://u:p%40ss@h/d").contains("p%40ss"));
    }
}
