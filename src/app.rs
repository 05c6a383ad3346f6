//! Wiring: builds the HTTP layer's state from the configuration, and `launch`, which serves the API and
//! runs the reconciler on a given listener until a shutdown token fires.

use std::future::IntoFuture;
use std::sync::Arc;

use anyhow::Context;
use sqlx::postgres::PgConnectOptions;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::ServeConfig;
use crate::http::rate_limit::Limiters;
use crate::http::{self, AppState};
use crate::mail::Mailer;
use crate::provision::docker::DockerRuntime;
use crate::provision::{TenantDatabases, TenantRuntime};
use crate::reconcile::notifications::Notifier;
use crate::reconcile::backups::BackupService;
use crate::reconcile::Reconciler;
use crate::store::{self, notify::Activity};
use crate::telemetry::Telemetry;
use crate::usage::Usage;

/// How long open connections get to finish after shutdown starts.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Connects to Postgres (applying migrations) and Docker, and builds the state.
pub async fn prepare(mut config: ServeConfig) -> anyhow::Result<AppState> {
    if config.tenants.setup_guard_url.is_none() {
        let platform = config.accounts.platform_url.trim_end_matches('/');
        config.tenants.setup_guard_url = Some(format!("{platform}/api/v1/setup-guard"));
    }
    if config.tenants.memory_mb < crate::provision::spec::MIN_MEMORY_MB {
        anyhow::bail!(
            "TENANT_MEMORY_MB must be at least {}",
            crate::provision::spec::MIN_MEMORY_MB
        );
    }
    let pool = store::connect(&config.db)
        .await
        .context("connecting to the platform database")?;
    store::migrate(&pool).await.context("applying migrations")?;
    let runtime: Arc<dyn TenantRuntime> = Arc::new(
        DockerRuntime::connect(&config.tenants.platform_instance)
            .await
            .context("connecting to Docker")?,
    );
    let options: PgConnectOptions = config
        .db
        .database_url
        .parse()
        .context("parsing DATABASE_URL")?;
    let telemetry = Arc::new(Telemetry::new());
    let dbs = TenantDatabases::new(&config.db, &config.tenants, &config.data_plane)
        .context("tenant databases")?;
    let backups = BackupService::from_config(
        pool.clone(),
        dbs.clone(),
        crate::provision::copy::Copier::new(&config.data_plane),
        &config.data_plane.psql,
        &config.backups,
        &config.tenants.fresco_image,
    )
    .map_err(|e| anyhow::anyhow!("backups: {e}"))?;
    if backups.is_none() {
        tracing::warn!(
            "backups are off: set BACKUP_KEY_FILE (make a key with `fresco-platform backups new-key`)"
        );
    }
    let reconciler = Reconciler::new(
        pool.clone(),
        runtime.clone(),
        dbs,
        config.tenants.clone(),
        config.data_plane.clone(),
        config.reconcile.clone(),
        options.get_port(),
        telemetry.clone(),
        backups.clone(),
    );
    warn_on_connection_budget(&pool, &reconciler, &config).await;
    let mailer = Mailer::new(&config.mail).context("setting up mail")?;
    let usage = Usage::new(
        pool.clone(),
        runtime.clone(),
        config.tenants.clone(),
        config.observe.clone(),
        telemetry.clone(),
    );
    let limits = Arc::new(Limiters::new(&config.limits));
    Ok(AppState {
        pool,
        runtime,
        reconciler,
        config: Arc::new(config),
        mailer,
        limits,
        usage,
        activity: Activity::new(),
        shutdown: CancellationToken::new(),
        telemetry,
        backups,
    })
}

/// Says so at start when the platform's own server could run out of
/// connections: its capacity of tenants, each at its CONNECTION LIMIT, plus
/// what the platform keeps for itself must fit in `max_connections`.
async fn warn_on_connection_budget(
    pool: &sqlx::PgPool,
    reconciler: &Reconciler,
    config: &ServeConfig,
) {
    let Ok(server) = store::db_servers::get(pool, store::db_servers::DEFAULT_SERVER).await else {
        return;
    };
    let Ok((max, reserved)) = reconciler.databases().connection_settings(&server).await else {
        return;
    };
    if let Err(why) = crate::domain::budget::check_budget(
        server.capacity as i64,
        config.tenants.connection_limit as i64,
        max,
        reserved,
        config.data_plane.platform_reserved_connections as i64,
    ) {
        tracing::warn!(
            "database server {}: tenants at their limit could starve the platform: {why} \
             (`fresco-platform db-servers update {} --capacity N`)",
            server.name,
            server.name
        );
    }
}

pub fn app(state: AppState) -> axum::Router {
    http::router(state)
}

/// Serves the API on `listener` and runs the reconciler until `shutdown` fires.
pub async fn launch(
    listener: TcpListener,
    config: ServeConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut state = prepare(config).await?;
    state.shutdown = shutdown.clone();
    let reconciler = tokio::spawn(state.reconciler.clone().run(shutdown.clone()));
    tokio::spawn(state.usage.clone().run(shutdown.clone()));
    if let Some(backups) = state.backups.clone() {
        tokio::spawn(backups.run(shutdown.clone()));
    }
    tokio::spawn(
        state
            .activity
            .clone()
            .run(state.pool.clone(), shutdown.clone()),
    );
    tokio::spawn(
        Notifier::new(
            state.pool.clone(),
            state.runtime.clone(),
            state.mailer.clone(),
            state.config.notify.clone(),
            state.config.tenants.clone(),
            &state.config.accounts.platform_url,
        )
        .run(state.activity.clone(), shutdown.clone()),
    );
    tracing::info!(addr = %listener.local_addr()?, "API listening");
    let token = shutdown.clone();
    // Client addresses feed rate limits and the audit trail.
    let service = app(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = axum::serve(listener, service)
        .with_graceful_shutdown(async move { token.cancelled().await })
        .into_future();
    // Streams end themselves at shutdown; a client that holds a connection
    // open anyway is not waited for forever.
    let patience = async {
        shutdown.cancelled().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        served = server => served?,
        _ = patience => tracing::warn!("connections still open {} s after shutdown; closing them", SHUTDOWN_GRACE.as_secs()),
    }
    shutdown.cancel();
    reconciler.await.context("reconciler task")?;
    Ok(())
}
