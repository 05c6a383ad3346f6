//! The backup service: the scheduler that queues each live tenant's backup
//! once per slot of the schedule, the workers that take queued backups (a
//! few at a time), retention, and the removal of backups whose time is up.
//! The reconciler uses it too, for the backup a restore takes of the state it
//! replaces and the one a destroy takes last.
//!
//! A backup is a `pg_dump` of the tenant's data in a snapshot whose row
//! counts go into its manifest, sealed as it streams into the storage
//! (`provision::backup`). Its queue row (`store::backups`) makes it happen
//! once: a worker that dies leaves a lease to run out, and the next attempt
//! writes an object of its own.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Instrument};

use crate::config::BackupConfig;
use crate::domain::backup::{Retention, Schedule};
use crate::domain::TenantId;
use crate::provision::backup::{BackupError, Backups};
use crate::provision::copy::Copier;
use crate::provision::database::DatabaseError;
use crate::provision::storage::{BackupStorage, StorageError};
use crate::provision::TenantDatabases;
use crate::store::backups::{self, kind, BackupRow, Manifest};
use crate::store::{self, db_servers, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Backup(#[from] BackupError),
    #[error(transparent)]
    Database(#[from] DatabaseError),
    #[error("platform database: {0}")]
    Store(#[from] StoreError),
    /// Nothing to back up (the tenant is gone, or has no data yet).
    #[error("{0}")]
    Nothing(String),
    #[error("another worker took this backup over")]
    Lost,
}

impl From<StorageError> for JobError {
    fn from(e: StorageError) -> Self {
        Self::Backup(e.into())
    }
}

#[derive(Clone)]
pub struct BackupService {
    inner: Arc<Inner>,
}

struct Inner {
    pool: sqlx::PgPool,
    dbs: TenantDatabases,
    backups: Backups,
    schedule: Option<Schedule>,
    retention: Retention,
    cfg: BackupConfig,
    fresco_image: String,
    limit: Arc<Semaphore>,
    wake: Notify,
}

impl BackupService {
    /// The service, or None when no BACKUP_KEY_FILE is set (backups are off).
    pub fn from_config(
        pool: sqlx::PgPool,
        dbs: TenantDatabases,
        copier: Copier,
        psql: &str,
        cfg: &BackupConfig,
        fresco_image: &str,
    ) -> Result<Option<Self>, String> {
        let Some(key) = cfg.key()? else {
            return Ok(None);
        };
        let schedule = cfg.schedule()?;
        let storage = BackupStorage::from_config(cfg).map_err(|e| e.to_string())?;
        let backups = Backups::new(key, storage, copier, psql, cfg.work_dir());
        Ok(Some(Self {
            inner: Arc::new(Inner {
                pool,
                dbs,
                backups,
                schedule,
                retention: cfg.backup_retention,
                cfg: cfg.clone(),
                fresco_image: fresco_image.to_owned(),
                limit: Arc::new(Semaphore::new(cfg.backup_concurrency.max(1))),
                wake: Notify::new(),
            }),
        }))
    }

    pub fn backups(&self) -> &Backups {
        &self.inner.backups
    }

    pub fn config(&self) -> &BackupConfig {
        &self.inner.cfg
    }

    /// Looks at the queue now (a backup asked for by hand).
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Queues due backups, takes what is queued and removes what expired,
    /// every BACKUP_TICK_SECS (or when woken), until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut tick =
            tokio::time::interval(Duration::from_secs(self.inner.cfg.backup_tick_secs.max(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        info!(
            storage = self.inner.backups.storage().name(),
            key_id = %self.inner.backups.key_id(),
            schedule = %self.inner.cfg.backup_schedule,
            "backups on"
        );
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
                _ = self.inner.wake.notified() => {}
            }
            if let Err(e) = self.turn().await {
                warn!(error = %e, "backup scheduler could not look at its queue");
            }
        }
    }

    async fn turn(&self) -> Result<(), StoreError> {
        let pool = &self.inner.pool;
        if let Some(schedule) = &self.inner.schedule {
            let now = Utc::now();
            let slots: Vec<_> = backups::schedulable(pool)
                .await?
                .into_iter()
                .map(|id| (id, schedule.slot(id, now)))
                .collect();
            let queued = backups::enqueue_scheduled(pool, &slots).await?;
            if queued > 0 {
                info!(queued, "scheduled backups queued");
            }
        }
        let free = self.inner.limit.available_permits() as i64;
        for row in backups::claim(pool, free, self.inner.cfg.backup_lease_secs).await? {
            let Ok(permit) = self.inner.limit.clone().try_acquire_owned() else {
                // Claimed beyond what is free: its lease runs out and it is
                // taken again.
                break;
            };
            let this = self.clone();
            let span =
                tracing::info_span!("backup", backup_id = row.id, tenant_id = %row.tenant_id);
            tokio::spawn(
                async move {
                    this.attempt(row).await;
                    drop(permit);
                }
                .instrument(span),
            );
        }
        self.sweep().await
    }

    /// One attempt at a claimed backup, its outcome recorded.
    async fn attempt(&self, row: BackupRow) {
        let pool = &self.inner.pool;
        match self.take(&row).await {
            Ok(m) => info!(
                kind = %row.kind,
                dump_bytes = m.dump_bytes,
                stored_bytes = m.stored_bytes,
                attempt = row.attempts,
                "backup complete"
            ),
            Err(JobError::Nothing(why)) => {
                info!(reason = %why, "backup not taken");
                let _ = backups::give_up(pool, row.id, &why).await;
            }
            Err(JobError::Lost) => info!("backup taken over by another worker"),
            Err(e) => {
                let message = e.to_string();
                let backoff = 30i64 << (row.attempts.clamp(1, 7) - 1);
                let retry_at = Utc::now() + chrono::Duration::seconds(backoff);
                match backups::attempt_failed(
                    pool,
                    row.id,
                    row.attempts,
                    &message,
                    self.inner.cfg.backup_max_attempts,
                    retry_at,
                )
                .await
                {
                    Ok(true) => warn!(error = %message, "backup failed; giving up"),
                    Ok(false) => {
                        warn!(error = %message, retry_in_s = backoff, "backup failed; will retry")
                    }
                    Err(e) => warn!(error = %e, "could not record a backup's failure"),
                }
            }
        }
    }

    /// Takes a backup now, in the caller's task (the reconciler's, during a
    /// restore or a destroy): a queued row `id` (or a new one of `kind`), its
    /// next attempt, to the end.
    pub async fn take_now(
        &self,
        tenant: TenantId,
        id: Option<i64>,
        kind: &str,
    ) -> Result<BackupRow, JobError> {
        let pool = &self.inner.pool;
        let id = match id {
            Some(id) => id,
            None => backups::request(pool, tenant, kind, None).await?.id,
        };
        let existing = backups::get(pool, id).await?;
        if existing.complete() {
            return Ok(existing);
        }
        let _permit = self.inner.limit.acquire().await;
        let row = backups::take_over(pool, id, self.inner.cfg.backup_lease_secs)
            .await?
            .ok_or(JobError::Lost)?;
        match self.take(&row).await {
            Ok(_) => Ok(backups::get(pool, id).await?),
            Err(e) => {
                let _ = backups::attempt_failed(
                    pool,
                    row.id,
                    row.attempts,
                    &e.to_string(),
                    i32::MAX,
                    Utc::now(),
                )
                .await;
                Err(e)
            }
        }
    }

    /// The attempt itself: snapshot, dump, seal, store, manifest.
    async fn take(&self, row: &BackupRow) -> Result<Manifest, JobError> {
        let pool = &self.inner.pool;
        let tenant = match store::tenants::get(pool, row.tenant()).await {
            Ok(t) => t,
            Err(StoreError::NotFound) => return Err(JobError::Nothing("no such tenant".into())),
            Err(e) => return Err(e.into()),
        };
        if tenant.status == crate::domain::TenantStatus::Destroyed {
            return Err(JobError::Nothing(
                "the instance was destroyed before its backup".into(),
            ));
        }
        let Some(loc) = tenant.location() else {
            return Err(JobError::Nothing("the instance has no database yet".into()));
        };
        let server = db_servers::get(pool, loc.server).await?;
        let id = row.tenant();
        if !self.inner.dbs.data_exists(&server, &loc, id).await? {
            return Err(JobError::Nothing("the instance has no data yet".into()));
        }
        let storage = self.inner.backups.storage();
        // What earlier attempts may have left.
        for attempt in 1..row.attempts {
            let key = backups::object_key(row.tenant_id, row.id, attempt);
            storage.delete(&key).await?;
            storage.delete(&format!("{key}.manifest.json")).await?;
        }
        let key = backups::object_key(row.tenant_id, row.id, row.attempts);
        let lease = self.keep_leased(row);
        let result = async {
            let snapshot = self.inner.dbs.snapshot(&server, &loc, id).await?;
            let conn = self.inner.dbs.conn_params(&server, &loc.database)?;
            let taken = self
                .inner
                .backups
                .take(&conn, loc.isolation, id, Some(&snapshot.id), &key)
                .await;
            let (counts, schema_version) =
                (snapshot.counts.clone(), snapshot.schema_version.clone());
            snapshot.release().await;
            let taken = taken?;
            let manifest = Manifest {
                backup_id: row.id,
                tenant_id: row.tenant_id,
                kind: row.kind.clone(),
                storage: storage.name().to_owned(),
                object_key: key.clone(),
                server: server.name.clone(),
                database: loc.database.clone(),
                isolation: loc.isolation,
                fresco_image: tenant
                    .image
                    .clone()
                    .unwrap_or_else(|| self.inner.fresco_image.clone()),
                schema_version,
                dump_bytes: taken.dump_bytes as i64,
                stored_bytes: taken.stored_bytes as i64,
                sha256: taken.sha256,
                key_id: self.inner.backups.key_id(),
                row_counts: counts,
                taken_at: Utc::now(),
            };
            let json = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
            storage
                .put_small(&format!("{key}.manifest.json"), json)
                .await?;
            Ok::<_, JobError>(manifest)
        }
        .await;
        lease.cancel();
        let manifest = result?;
        if !backups::complete(pool, row.id, row.attempts, &manifest).await? {
            storage.delete(&key).await?;
            storage.delete(&format!("{key}.manifest.json")).await?;
            return Err(JobError::Lost);
        }
        if row.kind == kind::SCHEDULED {
            if let Err(e) = self.retain(id).await {
                warn!(error = %e, "could not apply the retention policy");
            }
        }
        Ok(manifest)
    }

    /// Renews the attempt's lease until the returned token is cancelled.
    fn keep_leased(&self, row: &BackupRow) -> CancellationToken {
        let token = CancellationToken::new();
        let (pool, id, attempt) = (self.inner.pool.clone(), row.id, row.attempts);
        let lease = self.inner.cfg.backup_lease_secs.max(3);
        let done = token.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(lease / 3));
            every.tick().await;
            loop {
                tokio::select! {
                    _ = done.cancelled() => return,
                    _ = every.tick() => {
                        if let Ok(false) = backups::renew(&pool, id, attempt, lease).await {
                            return;
                        }
                    }
                }
            }
        });
        token
    }

    /// Applies BACKUP_RETENTION to the tenant's scheduled backups.
    async fn retain(&self, tenant: TenantId) -> Result<(), JobError> {
        let rows = backups::scheduled_complete(&self.inner.pool, tenant).await?;
        let slots: Vec<_> = rows
            .iter()
            .filter_map(|r| r.slot.map(|s| (r.id, s)))
            .collect();
        let keep = self.inner.retention.keep(&slots);
        for row in rows.iter().filter(|r| !keep.contains(&r.id)) {
            self.delete(row, "retention (BACKUP_RETENTION)").await?;
        }
        Ok(())
    }

    /// Removes backups whose time is up (by-hand ones past their retention, a
    /// destroyed tenant's past its grace period).
    async fn sweep(&self) -> Result<(), StoreError> {
        let keep = self.inner.cfg.backup_manual_retention.as_secs();
        for (row, why) in backups::expired(&self.inner.pool, keep, 100).await? {
            if let Err(e) = self.delete(&row, &why).await {
                warn!(backup_id = row.id, error = %e, "could not delete an expired backup");
            }
        }
        Ok(())
    }

    async fn delete(&self, row: &BackupRow, why: &str) -> Result<(), JobError> {
        if let Some(key) = &row.object_key {
            let storage = self.inner.backups.storage();
            storage.delete(key).await?;
            storage.delete(&format!("{key}.manifest.json")).await?;
        }
        backups::mark_deleted(&self.inner.pool, row.id, why).await?;
        info!(backup_id = row.id, tenant_id = %row.tenant_id, reason = why, "backup deleted");
        Ok(())
    }

    /// Recovery test of one backup: fetched and checked, restored into a
    /// scratch database (a role and database, or schema, of a throwaway
    /// tenant id) in one transaction that checks the manifest's row counts,
    /// counted again, dropped. The result is recorded on the backup.
    pub async fn verify(&self, row: &BackupRow) -> Result<Verified, String> {
        let started = std::time::Instant::now();
        let result = self.verify_inner(row).await;
        let error = result.as_ref().err().map(String::as_str);
        if let Err(e) = backups::set_verified(&self.inner.pool, row.id, error).await {
            warn!(error = %e, "could not record the verification");
        }
        result.map(|(tables, rows)| Verified {
            tables,
            rows,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    async fn verify_inner(&self, row: &BackupRow) -> Result<(usize, i64), String> {
        let pool = &self.inner.pool;
        let (Some(key), Some(sha)) = (&row.object_key, &row.sha256) else {
            return Err(format!("backup {} is {}, not complete", row.id, row.status));
        };
        let server = match &row.server_name {
            Some(name) => db_servers::by_name(pool, name).await,
            None => db_servers::get(pool, db_servers::DEFAULT_SERVER).await,
        }
        .map_err(|e| format!("database server {:?}: {e}", row.server_name))?;
        let isolation = row.db_isolation.unwrap_or(self.inner.dbs.isolation());
        let scratch = TenantId::new();
        let loc = crate::domain::DbLocation {
            server: server.id,
            database: match isolation {
                crate::domain::Isolation::Database => scratch.database_name(),
                crate::domain::Isolation::Schema => self.inner.dbs.tenants_database().to_owned(),
            },
            isolation,
        };
        let path = self
            .inner
            .backups
            .work_dir()
            .join(format!("fresco-verify-{}.fpbk", row.id));
        let expected = row.counts();
        let run = async {
            self.inner
                .backups
                .check(key, sha, Some(&path))
                .await
                .map_err(|e| e.to_string())?;
            self.inner
                .dbs
                .ensure(&server, &loc, scratch)
                .await
                .map_err(|e| format!("could not make the scratch database: {e}"))?;
            let conn = self
                .inner
                .dbs
                .conn_params(&server, &loc.database)
                .map_err(|e| e.to_string())?;
            let at = crate::provision::backup::Placement {
                isolation,
                dumped_tenant: row.tenant(),
                tenant: scratch,
            };
            self.inner
                .backups
                .replace(&conn, &at, &path, &expected)
                .await
                .map_err(|e| format!("the restore failed: {e}"))?;
            let found = self
                .inner
                .dbs
                .row_counts(&server, &loc, scratch)
                .await
                .map_err(|e| e.to_string())?;
            if found != expected {
                return Err(format!(
                    "row counts differ from the manifest: expected {expected:?}, found {found:?}"
                ));
            }
            Ok((found.len(), found.values().sum()))
        }
        .await;
        let _ = tokio::fs::remove_file(&path).await;
        if let Err(e) = self.inner.dbs.teardown(&server, &loc, scratch).await {
            warn!(error = %e, "could not drop the scratch database of a verification");
        }
        run
    }
}

/// What a recovery test restored.
#[derive(Debug, Clone)]
pub struct Verified {
    pub tables: usize,
    pub rows: i64,
    pub seconds: f64,
}
