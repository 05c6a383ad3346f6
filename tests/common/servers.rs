//! The extra Postgres clusters `scripts/test` starts beside the main one (each
//! with its PgBouncer), and adding them to a platform as database servers.

use std::process::Command;

use super::{env, Platform};

/// The extra clusters: (name, admin URL, Postgres port, PgBouncer port).
pub fn cluster(n: u8) -> (String, String, String, String) {
    (
        format!("pg{n}"),
        env(&format!("FP_PG{n}_ADMIN_URL")),
        env(&format!("FP_PG{n}_PORT")),
        env(&format!("FP_PGBOUNCER{n}_PORT")),
    )
}

pub fn with_database(url: &str, db: &str) -> String {
    let (base, _) = url.rsplit_once('/').expect("url has a path");
    format!("{base}/{db}")
}

/// Adds cluster `n` as a database server through the CLI, as an operator would.
pub fn add_server(p: &Platform, n: u8, capacity: u32) -> String {
    let (name, url, port, bouncer) = cluster(n);
    let out = Command::new(env!("CARGO_BIN_EXE_fresco-platform"))
        .args(["db-servers", "add", "--name", &name])
        .args(["--tenant-host", &format!(":{port}")])
        .args(["--pooler-host", &format!(":{bouncer}")])
        .args(["--capacity", &capacity.to_string()])
        .env("DATABASE_URL", &p.db_url)
        .env("DB_SERVER_ADMIN_URL", &url)
        .output()
        .expect("run db-servers add");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "db-servers add failed: {stdout}{stderr}"
    );
    assert!(
        stdout.contains(&format!("database server {name} added")),
        "{stdout}"
    );
    assert!(
        !stdout.contains("fresco-dev-password"),
        "password printed: {stdout}"
    );
    name
}
