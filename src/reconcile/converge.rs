//! One reconcile pass for one tenant: take the tenant's advisory lock, compare
//! its row with Postgres and Docker, and take the next idempotent steps.

use std::time::Duration;

use chrono::Utc;
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde_json::json;
use tracing::{info, warn};

use super::{crash_loop, Reconciler};
use crate::domain::{Action, DbLocation, DesiredState, TenantId, TenantStatus};
use crate::provision::database::DatabaseError;
use crate::provision::labels::SPEC_HASH;
use crate::provision::runtime::ContainerInfo;
use crate::provision::spec::{self, DbTarget, ResourceLimits, SpecInput};
use crate::provision::{ContainerSpec, Health, RunState, RuntimeError};
use crate::store::db_servers::{DbServer, PlacementError};
use crate::store::locks::TenantLock;
use crate::store::tenants::{Completion, Tenant};
use crate::store::{self, StoreError};

/// How soon a tenant whose container is still starting is looked at again (a
/// Docker health event usually wakes it sooner).
const HEALTH_RECHECK: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ConvergeError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Database(#[from] DatabaseError),
    #[error("platform database: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Placement(#[from] PlacementError),
    #[error(transparent)]
    Copy(#[from] crate::provision::copy::CopyError),
    #[error("{0}")]
    Container(String),
    /// The container keeps exiting during start-up: retrying cannot help.
    #[error("{0}")]
    CrashLoop(String),
    /// The tenant's spec cannot be run as it is (a pinned image that would route
    /// itself): retrying cannot help.
    #[error("{0}")]
    Refused(String),
}

impl From<sqlx::Error> for ConvergeError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(StoreError::Db(e))
    }
}

pub(super) enum Outcome {
    /// The tenant is where its owner wants it.
    Reached {
        status: TenantStatus,
        container_id: Option<String>,
        deployed: bool,
    },
    /// Progressing (a container starting); look again later.
    Waiting,
}

fn new_password() -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

/// Where a started container stands, once it is known not to be crashing.
#[derive(Debug, PartialEq, Eq)]
enum StartVerdict {
    Ready,
    Waiting,
    TimedOut(String),
}

/// Seconds since the tenant's action began.
fn waited_secs(tenant: &Tenant) -> i64 {
    let started = tenant.action_started_at.unwrap_or(tenant.updated_at);
    (Utc::now() - started).num_seconds()
}

/// Running and healthy (or without a check) is ready. Starting, or unhealthy for
/// now, is waited for: Docker keeps checking, and a busy host can make a start
/// outlast the start period; only the health timeout ends the wait.
fn start_verdict(c: &ContainerInfo, waited_secs: i64, timeout_secs: u64) -> StartVerdict {
    if c.state == RunState::Running && matches!(c.health, Health::Healthy | Health::None) {
        return StartVerdict::Ready;
    }
    if waited_secs <= timeout_secs as i64 {
        return StartVerdict::Waiting;
    }
    let said = c
        .last_health_output
        .as_deref()
        .map(|o| format!("; last health check said: {o}"))
        .unwrap_or_default();
    StartVerdict::TimedOut(format!(
        "container did not become healthy within {timeout_secs} s{said}"
    ))
}

impl Reconciler {
    pub(super) async fn pass(&self, id: TenantId) {
        // Serialise work on a tenant across processes: the lock is held on one
        // connection for the whole pass.
        let lock = match TenantLock::try_acquire(&self.inner.pool, id).await {
            Ok(Some(lock)) => lock,
            Ok(None) => return,
            Err(e) => return warn!(error = %e, "could not take the tenant lock"),
        };
        if let Err(e) = self.pass_locked(id).await {
            warn!(error = %e, "reconcile pass failed");
        }
        lock.release().await;
    }

    async fn pass_locked(&self, id: TenantId) -> Result<(), ConvergeError> {
        let pool = &self.inner.pool;
        let mut tenant = match store::tenants::get(pool, id).await {
            Ok(t) => t,
            Err(StoreError::NotFound) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if !tenant.converged() && tenant.attempts > 0 && tenant.next_attempt_at > Utc::now() {
            // Backing off after a failure; an owner's new intent resets the clock.
            return Ok(());
        }
        if tenant.converged() {
            match self.drift(&tenant).await? {
                None => return Ok(()),
                Some((action, reason)) => {
                    info!(%action, reason, "tenant drifted from its desired state");
                    store::tenants::begin_own_action(pool, id, action, &reason).await?;
                    tenant = store::tenants::get(pool, id).await?;
                }
            }
        }
        match self.converge(&tenant).await {
            Ok(Outcome::Reached {
                status,
                container_id,
                deployed,
            }) => {
                let metadata =
                    json!({ "containerId": container_id, "image": self.image_of(&tenant) });
                let done = Completion {
                    generation: tenant.generation,
                    status,
                    container_id: container_id.as_deref(),
                    deployed,
                    metadata,
                };
                store::tenants::complete(pool, &tenant, done).await?;
                if deployed {
                    self.note_fresco_start(&tenant).await;
                }
                self.observe(&tenant, "success");
                info!(%status, "tenant converged");
            }
            Ok(Outcome::Waiting) => {
                let at =
                    Utc::now() + chrono::Duration::from_std(HEALTH_RECHECK).unwrap_or_default();
                store::tenants::recheck_at(pool, id, at).await?;
            }
            Err(e) => {
                match &e {
                    ConvergeError::Runtime(_) => self.inner.telemetry.docker_errors.inc(),
                    ConvergeError::Database(_)
                    | ConvergeError::Store(_)
                    | ConvergeError::Placement(_)
                    | ConvergeError::Copy(_) => self.inner.telemetry.postgres_errors.inc(),
                    ConvergeError::Container(_)
                    | ConvergeError::CrashLoop(_)
                    | ConvergeError::Refused(_) => {}
                }
                let message = e.to_string();
                let retry_in = self.inner.cfg.backoff(tenant.attempts);
                let retry_at =
                    Utc::now() + chrono::Duration::from_std(retry_in).unwrap_or_default();
                // A crash loop ends the action now; anything else has its attempts.
                let max_attempts = match e {
                    ConvergeError::CrashLoop(_) | ConvergeError::Refused(_) => tenant.attempts + 1,
                    _ => self.inner.cfg.max_attempts,
                };
                let final_failure =
                    store::tenants::fail(pool, &tenant, &message, max_attempts, retry_at).await?;
                if final_failure {
                    self.observe(&tenant, "failed");
                    warn!(error = %message, "tenant failed; giving up until its owner acts");
                } else {
                    self.inner.telemetry.reconcile_retries.inc();
                    warn!(error = %message, retry_in_ms = retry_in.as_millis() as u64, "step failed; will retry");
                }
            }
        }
        Ok(())
    }

    /// Reads when Fresco recorded its first start, once; best effort (the
    /// setup deadline falls back to the platform's first sight of it).
    async fn note_fresco_start(&self, tenant: &Tenant) {
        if tenant.fresco_initialized_at.is_some() {
            return;
        }
        let id = tenant.tenant_id();
        let read = async {
            let (server, loc) = self.placed(tenant).await?;
            Ok::<_, ConvergeError>(
                self.inner
                    .dbs
                    .fresco_initialized_at(&server, &loc, id)
                    .await?,
            )
        };
        match read.await {
            Ok(Some(at)) => {
                if let Err(e) =
                    store::tenants::set_fresco_initialized_at(&self.inner.pool, id, at).await
                {
                    warn!(error = %e, "could not record Fresco's initializedAt");
                }
            }
            Ok(None) => {}
            Err(e) => warn!(error = %e, "could not read Fresco's initializedAt"),
        }
    }

    /// Records how long the tenant's action took, by action and outcome.
    fn observe(&self, tenant: &Tenant, outcome: &str) {
        if let (Some(action), Some(started)) = (tenant.current_action, tenant.action_started_at) {
            let seconds = (Utc::now() - started).num_milliseconds().max(0) as f64 / 1000.0;
            self.inner
                .telemetry
                .provisioning_duration
                .with_label_values(&[action.as_str(), outcome])
                .observe(seconds);
        }
    }

    /// An admin-pinned image that carries `traefik.*` labels could route itself
    /// (the container's own labels are the platform's); checked here because it
    /// may not have been present when the tenant was created.
    async fn refuse_routing_image(&self, tenant: &Tenant) -> Result<(), ConvergeError> {
        let Some(image) = &tenant.image else {
            return Ok(());
        };
        let labels = self.inner.runtime.image_labels(image).await?;
        let routing = crate::provision::runtime::routing_labels(labels.iter().flatten());
        if routing.is_empty() {
            return Ok(());
        }
        Err(ConvergeError::Refused(format!(
            "image {image} carries Traefik labels ({}); pin an image without traefik.* labels",
            routing.join(", ")
        )))
    }

    fn image_of(&self, tenant: &Tenant) -> String {
        tenant
            .image
            .clone()
            .unwrap_or_else(|| self.inner.tenants.fresco_image.clone())
    }

    /// For a converged tenant: has the world moved away from what it should be?
    async fn drift(&self, tenant: &Tenant) -> Result<Option<(Action, String)>, ConvergeError> {
        let id = tenant.tenant_id();
        let status = tenant.status;
        if matches!(status, TenantStatus::Error | TenantStatus::Destroyed) {
            return Ok(None);
        }
        let info = self.inner.runtime.inspect(id).await?;
        let drift = match tenant.desired_state {
            DesiredState::Running => match &info {
                None => Some((Action::Recover, "container is missing".to_owned())),
                Some(c)
                    if matches!(
                        c.state,
                        RunState::Exited | RunState::Dead | RunState::Created
                    ) =>
                {
                    Some((
                        Action::Recover,
                        format!("container is not running (exit code {:?})", c.exit_code),
                    ))
                }
                Some(c) if c.spec_hash != self.desired_hash(tenant).await? => {
                    Some((Action::Update, "container spec changed".to_owned()))
                }
                Some(c) => {
                    // Not at its limit with no start under way (the control plane
                    // stopped between healthy and the update, or a hand): put back
                    // in place, no recreate.
                    self.settle_cpus(tenant, c).await?;
                    None
                }
            },
            DesiredState::Stopped => match &info {
                Some(c) if matches!(c.state, RunState::Running | RunState::Restarting) => Some((
                    Action::Recover,
                    "container is running although the tenant is stopped".to_owned(),
                )),
                _ => None,
            },
            DesiredState::Destroyed => info.map(|_| {
                (
                    Action::Recover,
                    "container of a destroyed tenant".to_owned(),
                )
            }),
        };
        Ok(drift)
    }

    /// The tenants network's gateway: where a host written as `:port` is.
    /// Drift checks reuse the last answer; `refresh` (before a container is
    /// created) makes sure the network exists and reads it again.
    async fn gateway(&self, refresh: bool) -> Result<Option<String>, ConvergeError> {
        if !refresh {
            let cached = self
                .inner
                .gateway
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            if let Some(gateway) = cached {
                return Ok(gateway);
            }
        }
        let gateway = self
            .inner
            .runtime
            .ensure_network(&self.inner.tenants.tenants_network)
            .await?;
        *self.inner.gateway.lock().unwrap_or_else(|p| p.into_inner()) = Some(gateway.clone());
        Ok(gateway)
    }

    /// Where containers find the tenant's database: its server's direct and
    /// pooled addresses as seen from inside the container.
    async fn db_target(
        &self,
        server: &DbServer,
        loc: &DbLocation,
        refresh: bool,
    ) -> Result<DbTarget, ConvergeError> {
        let cfg = &self.inner.tenants;
        let gateway = self.gateway(refresh).await?;
        let on_gateway = |port: &str| match &gateway {
            Some(gw) => Ok(format!("{gw}:{port}")),
            None => Err(ConvergeError::Container(format!(
                "network {} has no gateway address; give database server {} a full host:port",
                cfg.tenants_network, server.name
            ))),
        };
        let resolve = |host: &str| match host.strip_prefix(':') {
            Some(port) => on_gateway(port),
            None => Ok(host.to_owned()),
        };
        let direct = match (&server.tenant_host, &cfg.tenant_db_host) {
            (Some(h), _) => resolve(h)?,
            (None, Some(h)) if h.contains(':') => h.clone(),
            (None, Some(h)) => format!("{h}:{}", self.inner.db_port),
            (None, None) => on_gateway(&self.inner.db_port.to_string())?,
        };
        // A legacy schema in the platform database is not reachable through
        // PgBouncer, whose lookup role has no CONNECT there.
        let pooled = match (&server.pooler_host, self.inner.plane.tenant_db_pooler_port) {
            _ if self.inner.dbs.is_legacy(loc) => None,
            (Some(h), _) => Some(resolve(h)?),
            (None, Some(port)) if server.tenant_host.is_none() => {
                let host = direct.rsplit_once(':').map_or(direct.as_str(), |(h, _)| h);
                Some(format!("{host}:{port}"))
            }
            (None, _) => None,
        };
        Ok(DbTarget {
            direct,
            pooled,
            database: loc.database.clone(),
            isolation: loc.isolation,
        })
    }

    /// The tenant's place (server and location); placing it first when it has none.
    pub(super) async fn place(
        &self,
        tenant: &Tenant,
    ) -> Result<(DbServer, DbLocation), ConvergeError> {
        let loc = match tenant.location() {
            Some(loc) => loc,
            None => {
                store::db_servers::place(
                    &self.inner.pool,
                    tenant.tenant_id(),
                    self.inner.dbs.isolation(),
                    self.inner.dbs.tenants_database(),
                )
                .await?
            }
        };
        let server = store::db_servers::get(&self.inner.pool, loc.server).await?;
        Ok((server, loc))
    }

    /// The tenant's place, if it has one (None: never placed, nothing to find).
    pub(super) async fn placed(
        &self,
        tenant: &Tenant,
    ) -> Result<(DbServer, DbLocation), ConvergeError> {
        let loc = tenant
            .location()
            .ok_or_else(|| ConvergeError::Container("the tenant has no database yet".to_owned()))?;
        let server = store::db_servers::get(&self.inner.pool, loc.server).await?;
        Ok((server, loc))
    }

    pub(super) fn limits(tenant: &Tenant) -> ResourceLimits {
        serde_json::from_value(tenant.resource_limits.clone()).unwrap_or_default()
    }

    /// The container spec this tenant should have; without a password it is
    /// only good for its hash.
    pub(super) fn spec_for(
        &self,
        tenant: &Tenant,
        db: &DbTarget,
        password: Option<&str>,
    ) -> ContainerSpec {
        let image = self.image_of(tenant);
        let limits = Self::limits(tenant);
        let input = SpecInput {
            tenant: tenant.tenant_id(),
            subdomain: &tenant.subdomain,
            image: &image,
            limits: &limits,
            db,
            settings: tenant.settings(),
            password,
        };
        spec::build(&self.inner.tenants, &input)
    }

    async fn desired_hash(&self, tenant: &Tenant) -> Result<Option<String>, ConvergeError> {
        let (server, loc) = self.placed(tenant).await?;
        let target = self.db_target(&server, &loc, false).await?;
        Ok(self
            .spec_for(tenant, &target, None)
            .labels
            .get(SPEC_HASH)
            .cloned())
    }

    async fn converge(&self, tenant: &Tenant) -> Result<Outcome, ConvergeError> {
        if tenant.desired_state != DesiredState::Destroyed {
            if let Some(m) = store::moves::open_for(&self.inner.pool, tenant.tenant_id()).await? {
                return self.converge_move(tenant, m).await;
            }
            if let Some(r) = store::restores::open_for(&self.inner.pool, tenant.tenant_id()).await? {
                return self.converge_restore(tenant, r).await;
            }
        }
        match tenant.desired_state {
            DesiredState::Running => {
                let outcome = self.converge_running(tenant).await;
                if outcome.is_err() {
                    // Never left above its share, whatever ended the start.
                    self.settle_cpus_after_failure(tenant).await;
                }
                outcome
            }
            DesiredState::Stopped => self.converge_stopped(tenant).await,
            DesiredState::Destroyed => self.converge_destroyed(tenant).await,
        }
    }

    pub(super) async fn converge_running(&self, tenant: &Tenant) -> Result<Outcome, ConvergeError> {
        let id = tenant.tenant_id();
        let runtime = &self.inner.runtime;
        if tenant.status != TenantStatus::Provisioning {
            store::tenants::set_status(&self.inner.pool, id, TenantStatus::Provisioning).await?;
        }
        let progress =
            |step: &'static str| store::tenants::set_progress(&self.inner.pool, id, step);
        progress("database").await?;
        let (server, loc) = self.place(tenant).await?;
        let role_created = self.inner.dbs.ensure(&server, &loc, id).await?;
        progress("image").await?;
        runtime.ensure_image(&self.image_of(tenant)).await?;
        self.refuse_routing_image(tenant).await?;
        progress("container").await?;
        let target = self.db_target(&server, &loc, true).await?;
        let wanted_hash = self
            .spec_for(tenant, &target, None)
            .labels
            .get(SPEC_HASH)
            .cloned();
        let mut info = runtime.inspect(id).await?;
        let stale = info.as_ref().is_none_or(|c| c.spec_hash != wanted_hash);
        if stale || role_created {
            if info.is_some() {
                runtime.remove(id).await?;
            }
            // A fresh password at every (re)create: set on the role, handed to the
            // container, stored nowhere else.
            let password = new_password();
            self.inner.dbs.set_password(&server, id, &password).await?;
            let mut spec = self.spec_for(tenant, &target, Some(&password));
            // Created boosted; its spec hash (a label) counts the declared limit.
            spec.nano_cpus = self.start_cpus(tenant).await?;
            runtime.create(&spec).await?;
            runtime.start(id).await?;
            info = runtime.inspect(id).await?;
        } else if let Some(c) = &info {
            let restart_pending = tenant.current_action == Some(Action::Restart)
                && c.started_at
                    .zip(tenant.action_started_at)
                    .is_none_or(|(s, a)| s < a);
            if restart_pending {
                self.boost_cpus(tenant, c).await?;
                runtime
                    .restart(id, self.inner.tenants.stop_timeout_secs as i64)
                    .await?;
                info = runtime.inspect(id).await?;
            } else if !matches!(c.state, RunState::Running | RunState::Restarting) {
                self.boost_cpus(tenant, c).await?;
                runtime.start(id).await?;
                info = runtime.inspect(id).await?;
            }
        }
        progress("health").await?;
        let Some(c) = info else {
            return Err(ConvergeError::Container(
                "container disappeared right after it was started".into(),
            ));
        };
        self.health_outcome(tenant, c).await
    }

    async fn health_outcome(
        &self,
        tenant: &Tenant,
        c: ContainerInfo,
    ) -> Result<Outcome, ConvergeError> {
        let id = tenant.tenant_id();
        let restarts =
            self.inner
                .crash_loops
                .restarts_since_action(id, tenant.action_started_at, &c);
        // Fresco never exits on its own: an exit during start-up, or restarts
        // piling up while Docker's policy brings it back, is its start failing.
        let exited = matches!(c.state, RunState::Exited | RunState::Dead);
        let looping = restarts >= self.inner.cfg.crash_loop_restarts && c.health != Health::Healthy;
        if exited || looping {
            // Stop it, or Docker's restart policy loops it forever.
            let message = crash_loop::describe(&*self.inner.runtime, id, &c, restarts).await;
            self.inner
                .runtime
                .stop(id, self.inner.tenants.stop_timeout_secs as i64)
                .await?;
            self.inner.crash_loops.forget(id);
            return Err(ConvergeError::CrashLoop(message));
        }
        match start_verdict(&c, waited_secs(tenant), self.inner.cfg.health_timeout_secs) {
            StartVerdict::Ready => {
                // Back at its limit before the start counts as done.
                self.settle_cpus(tenant, &c).await?;
                Ok(Outcome::Reached {
                    status: TenantStatus::Active,
                    container_id: Some(c.id.clone()),
                    deployed: true,
                })
            }
            StartVerdict::Waiting => Ok(Outcome::Waiting),
            StartVerdict::TimedOut(message) => Err(ConvergeError::Container(message)),
        }
    }

    pub(super) async fn converge_stopped(&self, tenant: &Tenant) -> Result<Outcome, ConvergeError> {
        let id = tenant.tenant_id();
        if let Some(c) = self.inner.runtime.inspect(id).await? {
            if matches!(
                c.state,
                RunState::Running | RunState::Restarting | RunState::Paused
            ) {
                self.inner
                    .runtime
                    .stop(id, self.inner.tenants.stop_timeout_secs as i64)
                    .await?;
            }
            // A stop during a start: whatever starts it next starts at the limit.
            self.settle_cpus(tenant, &c).await?;
        }
        Ok(Outcome::Reached {
            status: TenantStatus::Stopped,
            container_id: None,
            deployed: false,
        })
    }

    async fn converge_destroyed(&self, tenant: &Tenant) -> Result<Outcome, ConvergeError> {
        let id = tenant.tenant_id();
        if tenant.status != TenantStatus::Destroying {
            store::tenants::set_status(&self.inner.pool, id, TenantStatus::Destroying).await?;
        }
        self.inner.runtime.remove(id).await?;
        if let Some(r) = store::restores::open_for(&self.inner.pool, id).await? {
            store::restores::finish(
                &self.inner.pool,
                r.id,
                store::restores::Phase::Abandoned,
                Some("the instance was destroyed"),
            )
            .await?;
        }
        // Its backups are kept for the grace period; this one is its last.
        self.final_backup(tenant).await?;
        // A move under way leaves a second copy: both go.
        if let Some(m) = store::moves::open_for(&self.inner.pool, id).await? {
            for loc in [m.to(), m.from()] {
                let server = store::db_servers::get(&self.inner.pool, loc.server).await?;
                self.inner.dbs.teardown(&server, &loc, id).await?;
            }
            store::moves::finish(
                &self.inner.pool,
                m.id,
                store::moves::Phase::Abandoned,
                Some("the instance was destroyed"),
            )
            .await?;
        }
        if let Some(loc) = tenant.location() {
            let server = store::db_servers::get(&self.inner.pool, loc.server).await?;
            self.inner.dbs.teardown(&server, &loc, id).await?;
        }
        Ok(Outcome::Reached {
            status: TenantStatus::Destroyed,
            container_id: None,
            deployed: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(state: RunState, health: Health) -> ContainerInfo {
        ContainerInfo {
            id: "c".into(),
            state,
            health,
            started_at: None,
            spec_hash: None,
            exit_code: None,
            restart_count: 0,
            last_health_output: Some("Health check exceeded timeout (10s)".into()),
            nano_cpus: 500_000_000,
        }
    }

    #[test]
    fn an_unhealthy_start_is_waited_out_until_the_health_timeout() {
        let healthy = container(RunState::Running, Health::Healthy);
        assert_eq!(start_verdict(&healthy, 5, 300), StartVerdict::Ready);
        let unchecked = container(RunState::Running, Health::None);
        assert_eq!(start_verdict(&unchecked, 5, 300), StartVerdict::Ready);
        for health in [Health::Starting, Health::Unhealthy] {
            let c = container(RunState::Running, health);
            assert_eq!(
                start_verdict(&c, 150, 300),
                StartVerdict::Waiting,
                "{health:?}"
            );
        }
        let late = container(RunState::Running, Health::Unhealthy);
        match start_verdict(&late, 301, 300) {
            StartVerdict::TimedOut(m) => {
                assert!(
                    m.contains("within 300 s") && m.contains("exceeded timeout"),
                    "{m}"
                )
            }
            other => panic!("{other:?}"),
        }
    }
}
