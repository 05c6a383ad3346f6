//! A tenant's move between databases, one phase per step, each saved before
//! the next begins (`store::moves`): stop the container, copy the data
//! (`pg_dump`, `pg_restore` as the tenant's role, row counts compared), switch
//! the tenant's location in one transaction, converge it there like any start,
//! and drop the old copy only once it is healthy. Before the switch the source
//! is the one authoritative copy and a failure rolls back; after it, the target
//! is, and the old copy waits until the tenant is healthy. A crash anywhere
//! resumes from the saved phase.

use serde_json::json;
use tracing::{info, warn};

use super::converge::{ConvergeError, Outcome};
use super::Reconciler;
use crate::domain::{DesiredState, TenantId};
use crate::store::moves::{MoveRow, Phase};
use crate::store::tenants::Tenant;
use crate::store::{self, db_servers};

/// Why a copy was refused: the data on the target differs from the source.
fn mismatch(
    source: &std::collections::BTreeMap<String, i64>,
    target: &std::collections::BTreeMap<String, i64>,
) -> Option<String> {
    if source == target {
        return None;
    }
    let mut diffs = Vec::new();
    for (table, n) in source {
        match target.get(table) {
            Some(m) if m == n => {}
            Some(m) => diffs.push(format!(
                "{table}: {n} rows at the source, {m} at the target"
            )),
            None => diffs.push(format!("{table}: missing at the target")),
        }
    }
    for table in target.keys().filter(|t| !source.contains_key(*t)) {
        diffs.push(format!("{table}: only at the target"));
    }
    Some(diffs.join("; "))
}

impl Reconciler {
    /// One step of the tenant's open move; `Waiting` until it is done.
    pub(super) async fn converge_move(
        &self,
        tenant: &Tenant,
        m: MoveRow,
    ) -> Result<Outcome, ConvergeError> {
        let id = tenant.tenant_id();
        let pool = &self.inner.pool;
        match m.phase() {
            Phase::Pending => {
                store::tenants::set_progress(pool, id, "stopping").await?;
                self.inner
                    .runtime
                    .stop(id, self.inner.tenants.stop_timeout_secs as i64)
                    .await?;
                store::moves::advance(pool, m.id, Phase::Stopped, None, None).await?;
                info!(move_id = m.id, "move: container stopped");
                self.continue_move(tenant).await
            }
            Phase::Stopped => match self.copy(tenant, &m).await {
                Ok(()) => self.continue_move(tenant).await,
                // The data on the target is not the source's: retrying cannot
                // make it so. Roll back now.
                Err(ConvergeError::Refused(why)) => self.roll_back(tenant, &m, &why).await,
                Err(e) if tenant.attempts + 1 >= self.inner.cfg.max_attempts => {
                    self.roll_back(tenant, &m, &e.to_string()).await
                }
                Err(e) => Err(e),
            },
            Phase::Copied => {
                store::moves::switch(pool, &m).await?;
                info!(
                    move_id = m.id,
                    "move: the tenant's location is the target now"
                );
                self.continue_move(tenant).await
            }
            Phase::Switched => self.settle(tenant, &m).await,
            // Closed moves are not open; nothing to do.
            Phase::Done | Phase::RolledBack | Phase::Abandoned => Ok(Outcome::Waiting),
        }
    }

    /// Reads the tenant again and takes the move's next step in the same pass.
    async fn continue_move(&self, tenant: &Tenant) -> Result<Outcome, ConvergeError> {
        let id = tenant.tenant_id();
        let fresh = store::tenants::get(&self.inner.pool, id).await?;
        match store::moves::open_for(&self.inner.pool, id).await? {
            Some(m) => Box::pin(self.converge_move(&fresh, m)).await,
            None => Ok(Outcome::Waiting),
        }
    }

    /// Copies the data: the target made fresh (what an interrupted attempt left
    /// is dropped first), dumped, restored, counted on both sides.
    async fn copy(&self, tenant: &Tenant, m: &MoveRow) -> Result<(), ConvergeError> {
        let id = tenant.tenant_id();
        let pool = &self.inner.pool;
        let dbs = &self.inner.dbs;
        store::tenants::set_progress(pool, id, "copying").await?;
        let (from, to) = (m.from(), m.to());
        let source = db_servers::get(pool, from.server).await?;
        let target = db_servers::get(pool, to.server).await?;
        dbs.drop_copy(&target, &to, id).await?;
        dbs.ensure(&target, &to, id).await?;
        let file = self.inner.copier.dump_path(m.id, id);
        let copied = async {
            let bytes = self
                .inner
                .copier
                .dump(&dbs.conn_params(&source, &from.database)?, &from, id, &file)
                .await?;
            self.inner
                .copier
                .restore(&dbs.conn_params(&target, &to.database)?, &to, id, &file)
                .await?;
            Ok::<_, ConvergeError>(bytes)
        }
        .await;
        let _ = tokio::fs::remove_file(&file).await;
        let bytes = copied?;
        let before = dbs.row_counts(&source, &from, id).await?;
        let after = dbs.row_counts(&target, &to, id).await?;
        if let Some(diff) = mismatch(&before, &after) {
            return Err(ConvergeError::Refused(format!(
                "the copy on {} does not match the source ({diff}); the move was rolled back",
                target.name
            )));
        }
        let counts = json!(before);
        store::moves::advance(pool, m.id, Phase::Copied, Some(&counts), Some(bytes as i64)).await?;
        info!(
            move_id = m.id,
            bytes,
            tables = before.len(),
            "move: data copied and verified"
        );
        Ok(())
    }

    /// After the switch: converge at the new location like any start (or stop);
    /// once there, drop the old copy and close the move and the action.
    async fn settle(&self, tenant: &Tenant, m: &MoveRow) -> Result<Outcome, ConvergeError> {
        let outcome = match tenant.desired_state {
            DesiredState::Running => self.converge_running(tenant).await?,
            _ => self.converge_stopped(tenant).await?,
        };
        let Outcome::Reached { .. } = &outcome else {
            return Ok(outcome);
        };
        let id = tenant.tenant_id();
        let pool = &self.inner.pool;
        let from = m.from();
        let source = db_servers::get(pool, from.server).await?;
        if from.server == m.to_server_id {
            self.inner.dbs.drop_copy(&source, &from, id).await?;
        } else {
            // The role has nothing left on the old server either.
            self.inner.dbs.teardown(&source, &from, id).await?;
        }
        store::moves::finish(pool, m.id, Phase::Done, None).await?;
        info!(move_id = m.id, "move: done; the old copy is dropped");
        Ok(outcome)
    }

    /// Before the switch: the target copy goes, the tenant goes back to what it
    /// was where it was, and the action ends `failed` with the reason.
    async fn roll_back(
        &self,
        tenant: &Tenant,
        m: &MoveRow,
        why: &str,
    ) -> Result<Outcome, ConvergeError> {
        let id = tenant.tenant_id();
        let pool = &self.inner.pool;
        let to = m.to();
        let target = db_servers::get(pool, to.server).await?;
        // On another server the role made there for the copy goes too.
        let dropped = if to.server == m.from_server_id {
            self.inner.dbs.drop_copy(&target, &to, id).await
        } else {
            self.inner.dbs.teardown(&target, &to, id).await
        };
        if let Err(e) = dropped {
            warn!(error = %e, "move roll-back could not drop the target copy; it is left as an orphan");
        }
        store::moves::finish(pool, m.id, Phase::RolledBack, Some(why)).await?;
        warn!(move_id = m.id, reason = why, "move rolled back");
        // The move action ends `failed`; a running tenant is started again where
        // it was, as a `start` of its own in the log.
        store::tenants::rolled_back(pool, tenant, crate::domain::Action::Move, why).await?;
        Ok(Outcome::Waiting)
    }
}

/// Starts a move of each settled tenant on a draining server to the
/// least-loaded other server (the drain); tenants busy now are taken at a
/// later resync.
pub(super) async fn drain(this: &Reconciler) -> Result<Vec<TenantId>, ConvergeError> {
    let pool = &this.inner.pool;
    let mut started = Vec::new();
    for id in store::moves::drain_candidates(pool).await? {
        let mut tx = pool.begin().await.map_err(store::StoreError::from)?;
        db_servers::lock_placement(&mut tx).await?;
        let tenant = store::tenants::get_for_update(&mut tx, id).await?;
        let Some(from) = tenant.location() else {
            continue;
        };
        let Some(server) = db_servers::least_loaded(&mut tx, Some(from.server)).await? else {
            warn!(tenant_id = %id, "drain: no other server has room; the tenant stays");
            break;
        };
        let to = this.target_location(&from, id, server.id);
        match store::moves::begin(&mut tx, &tenant, &to, "drain of its server").await {
            Ok(_) => {
                tx.commit().await.map_err(store::StoreError::from)?;
                info!(tenant_id = %id, to = %server.name, "drain: move started");
                started.push(id);
            }
            // Busy or gone meanwhile: a later resync looks again.
            Err(e) => info!(tenant_id = %id, reason = %e, "drain: not moving it now"),
        }
    }
    Ok(started)
}

impl Reconciler {
    /// Where the tenant's data goes on `server`: the same isolation, its own
    /// database or the server's shared tenants database (a legacy schema in
    /// the platform database goes to the tenants database).
    pub fn target_location(
        &self,
        from: &crate::domain::DbLocation,
        tenant: TenantId,
        server: uuid::Uuid,
    ) -> crate::domain::DbLocation {
        crate::domain::DbLocation {
            server,
            database: match from.isolation {
                crate::domain::Isolation::Database => tenant.database_name(),
                crate::domain::Isolation::Schema => self.inner.dbs.tenants_database().to_owned(),
            },
            isolation: from.isolation,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn a_copy_that_lost_or_gained_rows_is_named_table_by_table() {
        let source = BTreeMap::from([("AppSettings".to_owned(), 3), ("Interview".to_owned(), 10)]);
        assert_eq!(mismatch(&source, &source.clone()), None);
        let mut target = source.clone();
        target.insert("Interview".into(), 9);
        target.insert("Extra".into(), 0);
        let why = mismatch(&source, &target).unwrap();
        assert!(
            why.contains("Interview: 10 rows at the source, 9 at the target"),
            "{why}"
        );
        assert!(why.contains("Extra: only at the target"), "{why}");
        target.remove("AppSettings");
        assert!(mismatch(&source, &target)
            .unwrap()
            .contains("AppSettings: missing"));
    }
}
