//! What every handler can reach. The HTTP layer owns this type; `app` fills it.

use std::sync::Arc;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::rate_limit::Limiters;
use crate::config::ServeConfig;
use crate::mail::Mailer;
use crate::provision::TenantRuntime;
use crate::reconcile::Reconciler;
use crate::store::notify::Activity;
use crate::telemetry::Telemetry;
use crate::usage::Usage;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub runtime: Arc<dyn TenantRuntime>,
    pub reconciler: Reconciler,
    pub config: Arc<ServeConfig>,
    pub mailer: Mailer,
    pub limits: Arc<Limiters>,
    pub telemetry: Arc<Telemetry>,
    /// Tenant resource usage: the sampler's latest readings and history.
    pub usage: Usage,
    /// Tenant activity as Postgres reports it, for event streams.
    pub activity: Activity,
    /// Fires when the process shuts down; long-lived streams end on it.
    pub shutdown: CancellationToken,
    /// Backups, when BACKUP_KEY_FILE is set.
    pub backups: Option<crate::reconcile::backups::BackupService>,
}
