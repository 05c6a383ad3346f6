//! The loop that drives every tenant from what is observed to what its owner
//! asked for. Level-triggered: a wake-up (NOTIFY from the API, a Docker event, the
//! retry clock, the periodic resync) only says "look again"; each pass compares
//! the tenant's row with Postgres and Docker and does whatever is still missing.
//! So a crash of this process, a container removed by hand or a Docker restart
//! converge without anyone acting.

pub mod backups;
mod converge;
mod cpu_boost;
mod crash_loop;
mod moves;
pub mod notifications;
mod restores;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use sqlx::PgPool;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn, Instrument};

use crate::config::{DataPlaneConfig, ReconcileConfig, TenantConfig};
use crate::domain::TenantId;
use crate::provision::copy::Copier;
use crate::provision::database::DbOrphans;
use crate::provision::{TenantDatabases, TenantRuntime};
use crate::store::{self, notify};
use crate::telemetry::Telemetry;

pub use converge::ConvergeError;

/// How often tenants waiting for a retry or for health are looked at.
const DUE_POLL: Duration = Duration::from_millis(500);

/// The loop counts as alive while it turned within this long (it turns at
/// least every `DUE_POLL`; a resync that lists many containers takes longer).
const ALIVE_WITHIN: Duration = Duration::from_secs(60);

#[derive(Debug)]
enum Wake {
    Tenant(TenantId),
    Resync,
}

#[derive(Default)]
struct Running {
    /// Tenants with a pass under way, and whether another pass was asked for meanwhile.
    passes: HashMap<TenantId, bool>,
}

#[derive(Clone)]
pub struct Reconciler {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    runtime: Arc<dyn TenantRuntime>,
    dbs: TenantDatabases,
    copier: Copier,
    /// Backups, when BACKUP_KEY_FILE is set.
    backups: Option<backups::BackupService>,
    tenants: TenantConfig,
    plane: DataPlaneConfig,
    cfg: ReconcileConfig,
    db_port: u16,
    limit: Semaphore,
    running: Mutex<Running>,
    tasks: TaskTracker,
    last_orphans: Mutex<Option<String>>,
    /// Restart counts at the start of each tenant's action (crash loops).
    crash_loops: crash_loop::Baselines,
    /// The tenants network's gateway, as last read (`:port` hosts are on it).
    gateway: Mutex<Option<Option<String>>>,
    telemetry: Arc<Telemetry>,
    /// When the loop last turned (Unix milliseconds; 0 before it starts), for
    /// the status page.
    heartbeat: AtomicI64,
    /// Asks the loop for a resync now (a drain begun).
    resync_now: tokio::sync::Notify,
}

/// What one orphan sweep found.
#[derive(Debug, Default, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrphanReport {
    /// Managed containers without a live tenant, removed by this sweep.
    pub containers_removed: Vec<String>,
    #[serde(flatten)]
    pub database: DbOrphans,
}

impl Reconciler {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        pool: PgPool,
        runtime: Arc<dyn TenantRuntime>,
        dbs: TenantDatabases,
        tenants: TenantConfig,
        plane: DataPlaneConfig,
        cfg: ReconcileConfig,
        db_port: u16,
        telemetry: Arc<Telemetry>,
        backups: Option<backups::BackupService>,
    ) -> Self {
        let copier = Copier::new(&plane);
        let limit = Semaphore::new(cfg.concurrency.max(1));
        Self {
            inner: Arc::new(Inner {
                pool,
                runtime,
                dbs,
                copier,
                backups,
                tenants,
                plane,
                cfg,
                db_port,
                limit,
                running: Mutex::new(Running::default()),
                tasks: TaskTracker::new(),
                last_orphans: Mutex::new(None),
                crash_loops: Default::default(),
                gateway: Mutex::new(None),
                telemetry,
                heartbeat: AtomicI64::new(0),
                resync_now: tokio::sync::Notify::new(),
            }),
        }
    }

    /// Is the loop running and turning? (The status page's "reconciler" check.)
    pub fn alive(&self) -> bool {
        let last = self.inner.heartbeat.load(Ordering::Relaxed);
        last > 0 && chrono::Utc::now().timestamp_millis() - last < ALIVE_WITHIN.as_millis() as i64
    }

    /// Runs until `shutdown` is cancelled, then waits for passes under way.
    pub async fn run(self, shutdown: CancellationToken) {
        let (tx, mut rx) = mpsc::unbounded_channel::<Wake>();
        tokio::spawn(listen_notifications(
            self.inner.pool.clone(),
            tx.clone(),
            shutdown.clone(),
        ));
        tokio::spawn(watch_docker(
            self.inner.runtime.clone(),
            tx.clone(),
            shutdown.clone(),
        ));
        let mut resync = tokio::time::interval(Duration::from_secs(
            self.inner.cfg.resync_interval_secs.max(1),
        ));
        let mut due = tokio::time::interval(DUE_POLL);
        due.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        info!("reconciler started");
        loop {
            self.inner
                .heartbeat
                .store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = resync.tick() => self.resync().await,
                _ = self.inner.resync_now.notified() => self.resync().await,
                _ = due.tick() => match store::tenants::due(&self.inner.pool).await {
                    Ok(ids) => {
                        self.inner.telemetry.reconcile_due.set(ids.len() as i64);
                        ids.into_iter().for_each(|id| self.dispatch(id))
                    }
                    Err(e) => warn!(error = %e, "could not look up tenants due for work"),
                },
                Some(wake) = rx.recv() => match wake {
                    Wake::Tenant(id) => self.dispatch(id),
                    Wake::Resync => self.resync().await,
                },
            }
        }
        self.inner.tasks.close();
        if tokio::time::timeout(Duration::from_secs(30), self.inner.tasks.wait())
            .await
            .is_err()
        {
            warn!("reconcile passes still running at shutdown; they resume at next start");
        }
        self.inner.heartbeat.store(0, Ordering::Relaxed);
        info!("reconciler stopped");
    }

    /// Looks at every live tenant and removes managed containers nobody owns.
    async fn resync(&self) {
        match self.sweep_orphans().await {
            Ok(report) => {
                let db = &report.database;
                let found =
                    !db.schemas.is_empty() || !db.roles.is_empty() || !db.databases.is_empty();
                // Said once per change, not at every resync.
                let summary = format!("{:?}{:?}{:?}", db.schemas, db.databases, db.roles);
                let changed = {
                    let mut last = self
                        .inner
                        .last_orphans
                        .lock()
                        .unwrap_or_else(|p| p.into_inner());
                    let changed = last.as_deref() != Some(summary.as_str());
                    *last = Some(summary);
                    changed
                };
                if found && changed {
                    warn!(
                        schemas = ?report.database.schemas,
                        databases = ?report.database.databases,
                        roles = ?report.database.roles,
                        "orphan tenant objects in Postgres (reported, not dropped)"
                    );
                }
            }
            Err(e) => warn!(error = %e, "orphan sweep failed"),
        }
        match store::tenants::live(&self.inner.pool).await {
            Ok(ids) => ids.into_iter().for_each(|id| self.dispatch(id)),
            Err(e) => warn!(error = %e, "resync could not list tenants"),
        }
        match moves::drain(self).await {
            Ok(ids) => ids.into_iter().for_each(|id| self.dispatch(id)),
            Err(e) => warn!(error = %e, "drain could not start moves"),
        }
    }

    /// Asks for a resync at the loop's next turn.
    pub fn resync_soon(&self) {
        self.inner.resync_now.notify_one();
    }

    /// The tenant databases (the API's moves and server checks use them too).
    pub fn databases(&self) -> &TenantDatabases {
        &self.inner.dbs
    }

    /// Removes managed containers of this instance whose tenant is gone, and
    /// reports tenant-looking Postgres objects without a tenant.
    pub async fn sweep_orphans(&self) -> Result<OrphanReport, ConvergeError> {
        // List containers before tenants: a container seen here was created from a
        // row committed earlier, so that row is in the list read next.
        let containers = self.inner.runtime.list_managed().await?;
        let live: HashSet<TenantId> = store::tenants::live(&self.inner.pool)
            .await?
            .into_iter()
            .collect();
        let mut report = OrphanReport::default();
        for c in containers {
            if c.tenant.is_none_or(|t| !live.contains(&t)) {
                info!(container = %c.id, tenant = ?c.tenant, "removing orphan managed container");
                self.inner.runtime.remove_by_id(&c.id).await?;
                report.containers_removed.push(c.id);
            }
        }
        let live: Vec<TenantId> = live.into_iter().collect();
        let servers: Vec<_> = store::db_servers::list(&self.inner.pool)
            .await?
            .into_iter()
            .map(|l| l.server)
            .collect();
        report.database = self.inner.dbs.orphans(&servers, &live).await?;
        Ok(report)
    }

    /// Schedules a pass for the tenant, or asks the pass under way to go again.
    fn dispatch(&self, id: TenantId) {
        {
            let mut running = self.inner.running.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(again) = running.passes.get_mut(&id) {
                *again = true;
                return;
            }
            running.passes.insert(id, false);
            self.inner.telemetry.reconcile_in_flight.inc();
        }
        let this = self.clone();
        let span = tracing::info_span!("reconcile", tenant_id = %id);
        self.inner.tasks.spawn(
            async move {
                loop {
                    match this.inner.limit.acquire().await {
                        Ok(_permit) => this.pass(id).await,
                        Err(_) => break,
                    }
                    let mut running = this.inner.running.lock().unwrap_or_else(|p| p.into_inner());
                    match running.passes.get_mut(&id) {
                        Some(again) if *again => *again = false,
                        _ => {
                            running.passes.remove(&id);
                            this.inner.telemetry.reconcile_in_flight.dec();
                            break;
                        }
                    }
                }
            }
            .instrument(span),
        );
    }
}

/// Wakes the tenant named by each notification on the reconciler's channel.
async fn listen_notifications(
    pool: PgPool,
    tx: mpsc::UnboundedSender<Wake>,
    shutdown: CancellationToken,
) {
    notify::listen(
        &pool,
        notify::TENANT_CHANNEL,
        &shutdown,
        |payload| match payload.parse() {
            Ok(id) => {
                let _ = tx.send(Wake::Tenant(id));
            }
            Err(_) => debug!(payload, "ignoring malformed notification"),
        },
    )
    .await
}

async fn watch_docker(
    runtime: Arc<dyn TenantRuntime>,
    tx: mpsc::UnboundedSender<Wake>,
    shutdown: CancellationToken,
) {
    loop {
        let mut events = runtime.events();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                event = events.next() => match event {
                    Some(Ok(e)) => {
                        debug!(tenant_id = %e.tenant, action = %e.action, "docker event");
                        let _ = tx.send(Wake::Tenant(e.tenant));
                    }
                    Some(Err(e)) => { warn!(error = %e, "docker event stream broke; reconnecting"); break; }
                    None => break,
                },
            }
        }
        // The engine may have restarted: look at everything once it is back.
        tokio::select! { _ = shutdown.cancelled() => return, _ = tokio::time::sleep(Duration::from_secs(1)) => {} }
        let _ = tx.send(Wake::Resync);
    }
}
