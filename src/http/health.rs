//! Liveness and readiness.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::error::ApiError;
use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/health", get(health))
        .route("/api/ready", get(ready))
}

/// The process is up.
async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Postgres and Docker both answer.
async fn ready(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let postgres = sqlx::query_scalar::<_, i32>("SELECT 1")
        .fetch_one(&state.pool)
        .await
        .is_ok();
    let docker = state.runtime.ping().await.is_ok();
    if postgres && docker {
        Ok(Json(
            json!({ "status": "ready", "postgres": "ok", "docker": "ok" }),
        ))
    } else {
        let down: Vec<&str> = [("postgres", postgres), ("docker", docker)]
            .into_iter()
            .filter(|(_, ok)| !ok)
            .map(|(name, _)| name)
            .collect();
        Err(ApiError::Unavailable(format!(
            "not ready: {} unreachable",
            down.join(" and ")
        )))
    }
}
