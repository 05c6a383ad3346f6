//! Copying one tenant's data between databases with Postgres' own tools:
//! `pg_dump` (custom format, into a file of the move's work folder) and
//! `pg_restore` (as the tenant's role, in one transaction, stopping at the
//! first error), so the target copy is all or nothing. Passwords travel in the
//! programs' environment, never on their command lines; what they print is
//! kept short and never holds one.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

use super::database::ConnParams;
use crate::config::DataPlaneConfig;
use crate::domain::{DbLocation, Isolation, TenantId};

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("{program} could not be run: {reason}")]
    Spawn { program: String, reason: String },
    #[error("{program} failed ({status}): {output}")]
    Failed {
        program: String,
        status: String,
        output: String,
    },
    #[error("work folder: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Clone)]
pub struct Copier {
    pg_dump: String,
    pg_restore: String,
    work_dir: PathBuf,
    lock_timeout: String,
}

/// The most of a program's output kept in an error.
const OUTPUT_LIMIT: usize = 2000;

impl Copier {
    pub fn new(cfg: &DataPlaneConfig) -> Self {
        Self {
            pg_dump: cfg.pg_dump.clone(),
            pg_restore: cfg.pg_restore.clone(),
            work_dir: cfg.move_work_dir.clone().unwrap_or_else(std::env::temp_dir),
            lock_timeout: cfg.ddl_lock_timeout.clone(),
        }
    }

    /// Where the dump of move `id` is kept.
    pub fn dump_path(&self, move_id: i64, tenant: TenantId) -> PathBuf {
        self.work_dir
            .join(format!("fresco-move-{move_id}-{}.dump", tenant.simple()))
    }

    fn command(&self, program: &str, conn: &ConnParams) -> Command {
        self.command_as(program, conn, "fresco-platform-move")
    }

    /// A Postgres program reaching `conn`, its session named `app`, with the
    /// platform's lock timeout and the password in its environment.
    pub(crate) fn command_as(&self, program: &str, conn: &ConnParams, app: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("PGHOST", &conn.host)
            .env("PGPORT", conn.port.to_string())
            .env("PGUSER", &conn.user)
            .env("PGDATABASE", &conn.database)
            .env("PGAPPNAME", app)
            .env("PGCONNECT_TIMEOUT", "10")
            .env(
                "PGOPTIONS",
                format!("-c lock_timeout={}", self.lock_timeout),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(password) = &conn.password {
            cmd.env("PGPASSWORD", password);
        }
        cmd
    }

    pub(crate) async fn run(program: &str, mut cmd: Command) -> Result<Vec<u8>, CopyError> {
        let out = cmd.output().await.map_err(|e| CopyError::Spawn {
            program: program.to_owned(),
            reason: e.to_string(),
        })?;
        if out.status.success() {
            return Ok(out.stdout);
        }
        Err(CopyError::Failed {
            program: program.to_owned(),
            status: out.status.to_string(),
            output: shorten(&out.stderr),
        })
    }

    pub fn pg_dump(&self) -> &str {
        &self.pg_dump
    }

    pub fn pg_restore(&self) -> &str {
        &self.pg_restore
    }

    pub fn lock_timeout(&self) -> &str {
        &self.lock_timeout
    }

    /// Dumps the tenant's data at `from` into `file`; returns its size in bytes.
    pub async fn dump(
        &self,
        from: &ConnParams,
        loc: &DbLocation,
        tenant: TenantId,
        file: &Path,
    ) -> Result<u64, CopyError> {
        tokio::fs::create_dir_all(&self.work_dir).await?;
        let mut cmd = self.command(&self.pg_dump, from);
        cmd.args(["--format=custom", "--no-owner", "--no-privileges"])
            .arg(format!("--lock-wait-timeout={}", self.lock_timeout))
            .arg(format!("--file={}", file.display()));
        match loc.isolation {
            Isolation::Schema => cmd.arg(format!("--schema={}", tenant.schema_name())),
            // Everything of the tenant's own database but PgBouncer's lookup
            // function, which every database gets from template1.
            Isolation::Database => cmd.arg("--exclude-schema=pgbouncer"),
        };
        Self::run(&self.pg_dump, cmd).await?;
        Ok(tokio::fs::metadata(file).await?.len())
    }

    /// Restores `file` into `to` as the tenant's role, in one transaction. The
    /// schema that holds the data (the tenant's own in schema mode, `public` in
    /// database mode) already exists there, owned by the role, so its entry is
    /// left out of the restore list.
    pub async fn restore(
        &self,
        to: &ConnParams,
        loc: &DbLocation,
        tenant: TenantId,
        file: &Path,
    ) -> Result<(), CopyError> {
        let mut list_cmd = self.command(&self.pg_restore, to);
        list_cmd.arg("--list").arg(file);
        let listing = Self::run(&self.pg_restore, list_cmd).await?;
        let schema = match loc.isolation {
            Isolation::Schema => tenant.schema_name(),
            Isolation::Database => "public".to_owned(),
        };
        let list = restore_list(&String::from_utf8_lossy(&listing), &schema);
        let list_file = file.with_extension("list");
        tokio::fs::write(&list_file, list).await?;
        let mut cmd = self.command(&self.pg_restore, to);
        cmd.args([
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "--single-transaction",
        ])
        .arg(format!("--role={}", tenant.role_name()))
        .arg(format!("--use-list={}", list_file.display()))
        .arg(format!("--dbname={}", to.database))
        .arg(file);
        let restored = Self::run(&self.pg_restore, cmd).await;
        let _ = tokio::fs::remove_file(&list_file).await;
        restored.map(|_| ())
    }
}

/// A program's error output as kept in an error: trimmed, at most
/// `OUTPUT_LIMIT` bytes.
pub(crate) fn shorten(stderr: &[u8]) -> String {
    let mut output = String::from_utf8_lossy(stderr).trim().to_owned();
    if output.len() > OUTPUT_LIMIT {
        let cut = (0..=OUTPUT_LIMIT)
            .rev()
            .find(|i| output.is_char_boundary(*i))
            .unwrap_or(0);
        output.truncate(cut);
        output.push('…');
    }
    output
}

/// A `pg_restore --list` without the entries of `schema` itself (its CREATE
/// and COMMENT): the objects in it stay.
pub(crate) fn restore_list(listing: &str, schema: &str) -> String {
    listing
        .lines()
        .filter(|line| {
            let entry = line.split_once(';').map(|(_, rest)| rest).unwrap_or("");
            let words: Vec<&str> = entry.split_whitespace().collect();
            // "<dump id>; <catalog oid> <oid> SCHEMA - <name> <owner>" and
            // "…; … COMMENT - SCHEMA <name> <owner>".
            let is_schema = words.get(2) == Some(&"SCHEMA") && words.get(4) == Some(&schema);
            let is_comment = words.get(2) == Some(&"COMMENT")
                && words.get(4) == Some(&"SCHEMA")
                && words.get(5) == Some(&schema);
            line.starts_with(';') || !(is_schema || is_comment)
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_restore_list_leaves_out_only_the_schema_entry() {
        let listing = "\
;
; Archive created at 2026-12-04
;
5; 2615 16390 SCHEMA - tenant_ab tenant_user_ab
6; 0 0 COMMENT - SCHEMA tenant_ab tenant_user_ab
214; 1259 16391 TABLE tenant_ab AppSettings tenant_user_ab
215; 1259 16399 TABLE tenant_ab Interview tenant_user_ab
3301; 0 16391 TABLE DATA tenant_ab AppSettings tenant_user_ab
";
        let list = restore_list(listing, "tenant_ab");
        assert!(!list.contains("SCHEMA - tenant_ab"), "{list}");
        assert!(!list.contains("COMMENT - SCHEMA"), "{list}");
        assert!(list.contains("TABLE tenant_ab AppSettings"), "{list}");
        assert!(list.contains("TABLE DATA tenant_ab AppSettings"), "{list}");
        assert!(list.contains("TABLE tenant_ab Interview"), "{list}");
        // Another schema's entry stays.
        let other = restore_list("7; 2615 1 SCHEMA - extra tenant_user_ab\n", "public");
        assert!(other.contains("SCHEMA - extra"), "{other}");
    }
}
