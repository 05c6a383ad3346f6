//! A tenant's restore to a backup, one phase per step, each saved before the
//! next begins (`store::restores`): fetch the sealed backup and check its
//! SHA-256 and every chunk's seal; stop the container; back up the state about
//! to be replaced (so the restore can be undone); replace the data in one
//! transaction that checks the manifest's row counts; converge the tenant like
//! any start. Until the data is replaced a failure leaves it as it was and the
//! tenant is started again; a crash anywhere resumes from the saved phase.
//!
//! A restore into a new tenant (a copy for inspection, or a destroyed tenant
//! brought back) has no stop and no safety backup: the new tenant is placed,
//! its empty database gets the backup's data, and then it is created.

use std::path::PathBuf;

use tracing::{info, warn};

use super::converge::{ConvergeError, Outcome};
use super::Reconciler;
use crate::domain::{Action, DesiredState, TenantId};
use crate::provision::backup::{BackupError, Placement};
use crate::store::backups::{self, kind, BackupRow};
use crate::store::restores::{self, Phase, RestoreRow};
use crate::store::tenants::Tenant;
use crate::store::{self, db_servers};

impl Reconciler {
    /// Where a restore keeps the sealed backup it fetched and checked.
    fn fetched_path(&self, r: &RestoreRow) -> Option<PathBuf> {
        let svc = self.inner.backups.as_ref()?;
        Some(
            svc.backups()
                .work_dir()
                .join(format!("fresco-restore-{}.fpbk", r.id)),
        )
    }

    /// One step of the tenant's open restore.
    pub(super) async fn converge_restore(
        &self,
        tenant: &Tenant,
        r: RestoreRow,
    ) -> Result<Outcome, ConvergeError> {
        let id = tenant.tenant_id();
        let pool = &self.inner.pool;
        let Some(svc) = self.inner.backups.clone() else {
            return self
                .restore_failed(tenant, &r, "backups are off (no BACKUP_KEY_FILE)")
                .await;
        };
        let backup = backups::get(pool, r.backup_id).await?;
        match r.phase() {
            Phase::Pending => {
                store::tenants::set_progress(pool, id, "verifying backup").await?;
                match self.fetch(&r, &backup).await {
                    Ok(()) => {}
                    Err(e @ (BackupError::Seal(_) | BackupError::Checksum { .. })) => {
                        return self.restore_failed(tenant, &r, &e.to_string()).await;
                    }
                    Err(BackupError::Storage(
                        e @ crate::provision::storage::StorageError::Missing(_),
                    )) => {
                        return self.restore_failed(tenant, &r, &e.to_string()).await;
                    }
                    Err(e) => return self.restore_retry(tenant, &r, e.to_string()).await,
                }
                restores::advance(pool, r.id, Phase::Verified).await?;
                info!(
                    restore_id = r.id,
                    backup_id = backup.id,
                    "restore: backup fetched and verified"
                );
                self.continue_restore(tenant).await
            }
            Phase::Verified if r.into_new => {
                store::tenants::set_progress(pool, id, "database").await?;
                let isolation = backup.db_isolation.unwrap_or(self.inner.dbs.isolation());
                let (server, loc) = self.place_as(tenant, isolation).await?;
                self.inner.dbs.ensure(&server, &loc, id).await?;
                self.replace_data(tenant, &r, &backup).await
            }
            Phase::Verified => {
                store::tenants::set_progress(pool, id, "stopping").await?;
                self.inner
                    .runtime
                    .stop(id, self.inner.tenants.stop_timeout_secs as i64)
                    .await?;
                restores::advance(pool, r.id, Phase::Stopped).await?;
                info!(restore_id = r.id, "restore: container stopped");
                self.continue_restore(tenant).await
            }
            Phase::Stopped => {
                store::tenants::set_progress(pool, id, "backing up the current data").await?;
                let safety = match r.safety_backup_id {
                    Some(b) => b,
                    None => {
                        let row =
                            backups::request(pool, id, kind::PRE_RESTORE, r.requested_by).await?;
                        restores::set_safety(pool, r.id, row.id).await?;
                        row.id
                    }
                };
                match svc.take_now(id, Some(safety), kind::PRE_RESTORE).await {
                    Ok(row) => info!(
                        restore_id = r.id,
                        backup_id = row.id,
                        "restore: the current data is backed up"
                    ),
                    Err(e) => {
                        return self
                            .restore_retry(
                                tenant,
                                &r,
                                format!(
                                    "could not back up the current data before the restore: {e}"
                                ),
                            )
                            .await
                    }
                }
                restores::advance(pool, r.id, Phase::BackedUp).await?;
                self.continue_restore(tenant).await
            }
            Phase::BackedUp => self.replace_data(tenant, &r, &backup).await,
            Phase::Restored => {
                let outcome = match tenant.desired_state {
                    DesiredState::Running => self.converge_running(tenant).await?,
                    _ => self.converge_stopped(tenant).await?,
                };
                if let Outcome::Reached { .. } = &outcome {
                    restores::finish(pool, r.id, Phase::Done, None).await?;
                    info!(restore_id = r.id, "restore: done");
                }
                Ok(outcome)
            }
            Phase::Done | Phase::Failed | Phase::Abandoned => Ok(Outcome::Waiting),
        }
    }

    async fn continue_restore(&self, tenant: &Tenant) -> Result<Outcome, ConvergeError> {
        let id = tenant.tenant_id();
        let fresh = store::tenants::get(&self.inner.pool, id).await?;
        match restores::open_for(&self.inner.pool, id).await? {
            Some(r) => Box::pin(self.converge_restore(&fresh, r)).await,
            None => Ok(Outcome::Waiting),
        }
    }

    /// Fetches the sealed backup to the work folder, checking it whole.
    async fn fetch(&self, r: &RestoreRow, backup: &BackupRow) -> Result<(), BackupError> {
        let (Some(svc), Some(path)) = (self.inner.backups.as_ref(), self.fetched_path(r)) else {
            return Ok(());
        };
        let (Some(key), Some(sha), true) = (&backup.object_key, &backup.sha256, backup.complete())
        else {
            return Err(crate::provision::storage::StorageError::Missing(format!(
                "of backup {} (it is {})",
                backup.id, backup.status
            ))
            .into());
        };
        svc.backups().check(key, sha, Some(&path)).await.map(|_| ())
    }

    /// Replaces the tenant's data with the backup's, in one transaction.
    async fn replace_data(
        &self,
        tenant: &Tenant,
        r: &RestoreRow,
        backup: &BackupRow,
    ) -> Result<Outcome, ConvergeError> {
        let id = tenant.tenant_id();
        let pool = &self.inner.pool;
        let svc = self.inner.backups.clone().expect("checked by the caller");
        store::tenants::set_progress(pool, id, "restoring").await?;
        let path = self.fetched_path(r).expect("backups are on");
        if tokio::fs::metadata(&path).await.is_err() {
            // Fetched before a restart of the platform, and gone since: again.
            if let Err(e) = self.fetch(r, backup).await {
                return self.restore_retry(tenant, r, e.to_string()).await;
            }
        }
        let (server, loc) = self.placed(tenant).await?;
        if backup.db_isolation.is_some_and(|i| i != loc.isolation) {
            return self
                .restore_failed(
                    tenant,
                    r,
                    &format!(
                        "the backup holds a {} of its own; this instance's data is a {}",
                        backup
                            .db_isolation
                            .map(|i| i.to_string())
                            .unwrap_or_default(),
                        loc.isolation
                    ),
                )
                .await;
        }
        let at = Placement {
            isolation: loc.isolation,
            dumped_tenant: TenantId(backup.tenant_id),
            tenant: id,
        };
        let conn = self.inner.dbs.conn_params(&server, &loc.database)?;
        match svc
            .backups()
            .replace(&conn, &at, &path, &backup.counts())
            .await
        {
            Ok(()) => {}
            Err(e) => return self.restore_retry(tenant, r, e.to_string()).await,
        }
        let _ = tokio::fs::remove_file(&path).await;
        restores::advance(pool, r.id, Phase::Restored).await?;
        info!(
            restore_id = r.id,
            backup_id = backup.id,
            "restore: the data is the backup's"
        );
        self.continue_restore(tenant).await
    }

    /// A step that may work when tried again; at the attempt limit the
    /// restore ends failed.
    async fn restore_retry(
        &self,
        tenant: &Tenant,
        r: &RestoreRow,
        why: String,
    ) -> Result<Outcome, ConvergeError> {
        if tenant.attempts + 1 >= self.inner.cfg.max_attempts {
            return self.restore_failed(tenant, r, &why).await;
        }
        Err(ConvergeError::Container(why))
    }

    /// Before the data is replaced: the restore ends failed with the reason,
    /// the data is as it was, and the tenant goes back to what it was (an
    /// in-place restore: started again; a new tenant: in error, to destroy).
    async fn restore_failed(
        &self,
        tenant: &Tenant,
        r: &RestoreRow,
        why: &str,
    ) -> Result<Outcome, ConvergeError> {
        let pool = &self.inner.pool;
        if let Some(path) = self.fetched_path(r) {
            let _ = tokio::fs::remove_file(&path).await;
        }
        let message = format!("restore refused: {why}");
        restores::finish(pool, r.id, Phase::Failed, Some(&message)).await?;
        warn!(
            restore_id = r.id,
            reason = why,
            "restore failed; nothing was replaced"
        );
        if r.into_new {
            return Err(ConvergeError::Refused(message));
        }
        store::tenants::rolled_back(pool, tenant, Action::Restore, &message).await?;
        Ok(Outcome::Waiting)
    }

    /// A new tenant's place, with the isolation its backup was taken in.
    async fn place_as(
        &self,
        tenant: &Tenant,
        isolation: crate::domain::Isolation,
    ) -> Result<(db_servers::DbServer, crate::domain::DbLocation), ConvergeError> {
        let loc = match tenant.location() {
            Some(loc) => loc,
            None => {
                db_servers::place(
                    &self.inner.pool,
                    tenant.tenant_id(),
                    isolation,
                    self.inner.dbs.tenants_database(),
                )
                .await?
            }
        };
        let server = db_servers::get(&self.inner.pool, loc.server).await?;
        Ok((server, loc))
    }

    /// A destroy's last backup, unless the owner asked for the backups to go
    /// now or there is no data. Taken once per destroy.
    pub(super) async fn final_backup(&self, tenant: &Tenant) -> Result<(), ConvergeError> {
        let Some(svc) = &self.inner.backups else {
            return Ok(());
        };
        if tenant
            .backups_kept_until
            .is_some_and(|until| until <= chrono::Utc::now())
        {
            return Ok(());
        }
        let id = tenant.tenant_id();
        let Ok((server, loc)) = self.placed(tenant).await else {
            return Ok(());
        };
        if tenant.first_started_at.is_none()
            || !self.inner.dbs.data_exists(&server, &loc, id).await?
        {
            return Ok(());
        }
        let since = tenant.action_started_at.unwrap_or(tenant.updated_at);
        let earlier = backups::of_tenant(&self.inner.pool, id, 20)
            .await?
            .into_iter()
            .find(|b| b.kind == kind::FINAL && b.created_at >= since && b.status != "deleted");
        match earlier {
            Some(b) if b.complete() => return Ok(()),
            other => {
                store::tenants::set_progress(&self.inner.pool, id, "final backup").await?;
                let row = svc
                    .take_now(id, other.map(|b| b.id), kind::FINAL)
                    .await
                    .map_err(|e| {
                        ConvergeError::Container(format!(
                            "the final backup before destroy failed (the instance is kept until \
                             it succeeds, or until its owner asks for its backups to be deleted \
                             now): {e}"
                        ))
                    })?;
                info!(backup_id = row.id, "final backup taken before destroy");
            }
        }
        Ok(())
    }
}
