//! `fresco-platform backups`: `verify`, the recovery test (it reads the
//! platform's configuration and works on its databases and backup storage
//! directly, like `serve`), and `new-key`.

use rand::seq::SliceRandom;

use super::failure::{out, Failure};
use super::{BackupVerifyArgs, BackupsArgs, BackupsCommand};
use crate::provision::copy::Copier;
use crate::provision::seal::BackupKey;
use crate::provision::TenantDatabases;
use crate::reconcile::backups::BackupService;
use crate::store;

pub(super) async fn run(args: BackupsArgs) -> Result<(), Failure> {
    match args.command {
        BackupsCommand::NewKey => out(&BackupKey::generate()),
        BackupsCommand::Verify(v) => verify(*v).await,
    }
}

async fn verify(args: BackupVerifyArgs) -> Result<(), Failure> {
    let cfg = &args.serve;
    let pool = store::connect(&cfg.db)
        .await
        .map_err(|e| Failure::Failed(format!("connecting to the platform database: {e}")))?;
    store::migrate(&pool)
        .await
        .map_err(|e| Failure::Failed(format!("applying migrations: {e}")))?;
    let dbs = TenantDatabases::new(&cfg.db, &cfg.tenants, &cfg.data_plane)
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let svc = BackupService::from_config(
        pool.clone(),
        dbs,
        Copier::new(&cfg.data_plane),
        &cfg.data_plane.psql,
        &cfg.backups,
        &cfg.tenants.fresco_image,
    )
    .map_err(Failure::Usage)?
    .ok_or_else(|| Failure::Usage("backups are off: set BACKUP_KEY_FILE".into()))?;
    let tenant = match &args.tenant {
        None => None,
        Some(t) => Some(tenant_named(&pool, t).await?),
    };
    let mut latest = store::backups::latest_complete(&pool, tenant)
        .await
        .map_err(|e| Failure::Failed(e.to_string()))?;
    if let Some(n) = args.sample {
        latest.shuffle(&mut rand::thread_rng());
        latest.truncate(n);
    }
    if latest.is_empty() {
        return Err(Failure::Failed("no complete backup to verify".into()));
    }
    let (mut ok, mut failed) = (0, 0);
    for row in &latest {
        let name = store::tenants::get(&pool, row.tenant())
            .await
            .map(|t| t.subdomain)
            .unwrap_or_else(|_| row.tenant_id.to_string());
        let taken = row
            .completed_at
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default();
        match svc.verify(row).await {
            Ok(v) => {
                ok += 1;
                out(&format!(
                    "ok    {name}  backup {} ({taken}): {} tables, {} rows restored and counted in {:.1} s",
                    row.id, v.tables, v.rows, v.seconds
                ))?;
            }
            Err(e) => {
                failed += 1;
                out(&format!("FAIL  {name}  backup {} ({taken}): {e}", row.id))?;
            }
        }
    }
    out(&format!("{ok} verified, {failed} failed"))?;
    if failed > 0 {
        return Err(Failure::Failed(format!(
            "{failed} of {} backups failed verification",
            latest.len()
        )));
    }
    Ok(())
}

async fn tenant_named(pool: &sqlx::PgPool, name: &str) -> Result<crate::domain::TenantId, Failure> {
    if let Ok(id) = name.parse::<crate::domain::TenantId>() {
        return Ok(id);
    }
    let id: Option<uuid::Uuid> = sqlx::query_scalar(
        "SELECT id FROM tenants WHERE subdomain = $1 ORDER BY (status <> 'destroyed') DESC, created_at DESC LIMIT 1",
    )
    .bind(name)
    .fetch_optional(pool)
    .await
    .map_err(|e| Failure::Failed(e.to_string()))?;
    id.map(crate::domain::TenantId)
        .ok_or_else(|| Failure::Failed(format!("no tenant {name:?}")))
}
