//! Admin-only platform endpoints.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use super::auth::Caller;
use super::error::ApiError;
use crate::app::AppState;
use crate::reconcile::OrphanReport;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/admin/orphans", get(orphans))
}

/// Runs an orphan sweep now: removes managed containers without a live tenant
/// and lists tenant-looking Postgres objects without one (never dropped).
async fn orphans(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<OrphanReport>, ApiError> {
    caller.require_admin()?;
    let report = state
        .reconciler
        .sweep_orphans()
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(report))
}
