//! Backups' configuration: the key, the schedule and retention, and the storage.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::domain::backup::{parse_schedule, Retention, Schedule};
use crate::provision::seal::BackupKey;
use crate::provision::storage::StorageError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StorageKind {
    Local,
    S3,
}

#[derive(Clone, Args)]
pub struct BackupConfig {
    /// File holding the key backups are sealed with (64 hex digits; make one with
    /// `fresco-platform backups new-key`). Keep it apart from the backups (a
    /// Docker secret, a file only the platform reads). Unset: no backups are
    /// taken, and `serve` says so at start.
    #[arg(long, env = "BACKUP_KEY_FILE")]
    pub backup_key_file: Option<PathBuf>,
    /// How often every live tenant is backed up: `daily`, `hourly`, `weekly`, a
    /// duration (`6h`), or `off` (owners can still take backups by hand).
    #[arg(long, env = "BACKUP_SCHEDULE", default_value = "daily")]
    pub backup_schedule: String,
    /// The window (from midnight UTC for `daily`) over which the tenants'
    /// scheduled backups are spread, each tenant at a fixed offset in it.
    #[arg(long, env = "BACKUP_SPREAD", default_value = "6h", value_parser = humantime::parse_duration)]
    pub backup_spread: Duration,
    /// Scheduled backups kept per tenant: the newest of each of the last N days,
    /// weeks and months.
    #[arg(long, env = "BACKUP_RETENTION", default_value = "7d,4w,6m")]
    pub backup_retention: Retention,
    /// How long backups taken by hand, and those a restore took of the state it
    /// replaced, are kept.
    #[arg(long, env = "BACKUP_MANUAL_RETENTION", default_value = "30d", value_parser = humantime::parse_duration)]
    pub backup_manual_retention: Duration,
    /// How long a destroyed tenant's backups are kept (the owner is told at
    /// destroy time, and can ask for them to go at once).
    #[arg(long, env = "BACKUP_DESTROYED_GRACE", default_value = "30d", value_parser = humantime::parse_duration)]
    pub backup_destroyed_grace: Duration,
    /// An owner may ask for a backup of an instance at most this often.
    #[arg(long, env = "BACKUP_MANUAL_INTERVAL", default_value = "10m", value_parser = humantime::parse_duration)]
    pub backup_manual_interval: Duration,
    /// Backups (and restores' fetches) taken at the same time.
    #[arg(long, env = "BACKUP_CONCURRENCY", default_value_t = 2)]
    pub backup_concurrency: usize,
    /// Tries of one backup before it is recorded as failed.
    #[arg(long, env = "BACKUP_MAX_ATTEMPTS", default_value_t = 3)]
    pub backup_max_attempts: i32,
    /// A worker's hold on a backup it is taking, renewed while it works; one
    /// held by a worker that died is taken over when it runs out.
    #[arg(long, env = "BACKUP_LEASE_SECS", default_value_t = 120)]
    pub backup_lease_secs: u64,
    /// How often the scheduler looks for due backups and expired ones.
    #[arg(long, env = "BACKUP_TICK_SECS", default_value_t = 30)]
    pub backup_tick_secs: u64,
    /// Where backups are kept: `local` (BACKUP_DIR) or `s3` (an S3-compatible
    /// bucket, the off-site option).
    #[arg(long, env = "BACKUP_STORAGE", value_enum, default_value = "local")]
    pub backup_storage: StorageKind,
    /// The local backup directory.
    #[arg(
        long,
        env = "BACKUP_DIR",
        default_value = "/var/lib/fresco-platform/backups"
    )]
    pub backup_dir: PathBuf,
    /// S3 endpoint URL (unset: AWS itself); `http://` is allowed for a local one.
    #[arg(long, env = "BACKUP_S3_ENDPOINT")]
    pub backup_s3_endpoint: Option<String>,
    #[arg(long, env = "BACKUP_S3_BUCKET")]
    pub backup_s3_bucket: Option<String>,
    #[arg(long, env = "BACKUP_S3_REGION", default_value = "us-east-1")]
    pub backup_s3_region: String,
    /// Key prefix inside the bucket.
    #[arg(long, env = "BACKUP_S3_PREFIX", default_value = "")]
    pub backup_s3_prefix: String,
    #[arg(long, env = "BACKUP_S3_ACCESS_KEY_ID")]
    pub backup_s3_access_key_id: Option<String>,
    /// The S3 secret; prefer BACKUP_S3_SECRET_ACCESS_KEY_FILE.
    #[arg(long, env = "BACKUP_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub backup_s3_secret_access_key: Option<String>,
    /// File holding the S3 secret (a Docker secret).
    #[arg(long, env = "BACKUP_S3_SECRET_ACCESS_KEY_FILE")]
    pub backup_s3_secret_access_key_file: Option<PathBuf>,
    /// Folder for a restore's fetched (still sealed) backup and for `backups
    /// verify`. Default: the system's temporary folder.
    #[arg(long, env = "BACKUP_WORK_DIR")]
    pub backup_work_dir: Option<PathBuf>,
}

impl std::fmt::Debug for BackupConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupConfig")
            .field("backup_key_file", &self.backup_key_file)
            .field("backup_schedule", &self.backup_schedule)
            .field("backup_storage", &self.backup_storage)
            .field("backup_dir", &self.backup_dir)
            .field("backup_s3_endpoint", &self.backup_s3_endpoint)
            .field("backup_s3_bucket", &self.backup_s3_bucket)
            .finish_non_exhaustive()
    }
}

impl BackupConfig {
    /// The sealing key, when backups are on.
    pub fn key(&self) -> Result<Option<BackupKey>, String> {
        let Some(path) = &self.backup_key_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("BACKUP_KEY_FILE {}: {e}", path.display()))?;
        BackupKey::parse(&text)
            .map(Some)
            .map_err(|e| format!("BACKUP_KEY_FILE {}: {e}", path.display()))
    }

    /// The schedule, or None when scheduled backups are off.
    pub fn schedule(&self) -> Result<Option<Schedule>, String> {
        Ok(
            parse_schedule(&self.backup_schedule)?.map(|interval| Schedule {
                interval,
                spread: self.backup_spread,
            }),
        )
    }

    pub(crate) fn s3_secret(&self) -> Result<Option<String>, StorageError> {
        if let Some(path) = &self.backup_s3_secret_access_key_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                StorageError::Config(format!(
                    "BACKUP_S3_SECRET_ACCESS_KEY_FILE {}: {e}",
                    path.display()
                ))
            })?;
            let secret = text.trim();
            return Ok((!secret.is_empty()).then(|| secret.to_owned()));
        }
        Ok(self
            .backup_s3_secret_access_key
            .clone()
            .filter(|s| !s.is_empty()))
    }

    pub fn work_dir(&self) -> PathBuf {
        self.backup_work_dir
            .clone()
            .unwrap_or_else(std::env::temp_dir)
    }
}
