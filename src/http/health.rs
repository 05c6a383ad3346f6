//! Liveness and readiness.

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use super::error::{ApiError, ErrorBody};
use super::ApiRouter;
use crate::http::AppState;
use utoipa_axum::routes;

pub fn router() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ready))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct HealthView {
    pub status: &'static str,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ReadyView {
    pub status: &'static str,
    pub postgres: &'static str,
    pub docker: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/api/health", operation_id = "platform.health", tag = "platform",
    responses((status = 200, body = HealthView)))]
pub async fn health() -> Json<HealthView> {
    Json(HealthView { status: "ok" })
}

/// What readiness looks at; the status page shows the same checks.
pub(crate) struct Readiness {
    pub postgres: bool,
    pub docker: bool,
}

/// Asks Postgres and Docker whether they answer.
pub(crate) async fn readiness(state: &AppState) -> Readiness {
    let (postgres, docker) = tokio::join!(crate::store::ping(&state.pool), state.runtime.ping());
    Readiness {
        postgres,
        docker: docker.is_ok(),
    }
}

/// Postgres and Docker both answer.
#[utoipa::path(get, path = "/api/ready", operation_id = "platform.ready", tag = "platform",
    responses((status = 200, body = ReadyView), (status = 503, body = ErrorBody)))]
pub async fn ready(State(state): State<AppState>) -> Result<Json<ReadyView>, ApiError> {
    let Readiness { postgres, docker } = readiness(&state).await;
    if postgres && docker {
        Ok(Json(ReadyView {
            status: "ready",
            postgres: "ok",
            docker: "ok",
        }))
    } else {
        let down: Vec<&str> = [("postgres", postgres), ("docker", docker)]
            .into_iter()
            .filter(|(_, ok)| !ok)
            .map(|(n, _)| n)
            .collect();
        Err(ApiError::Unavailable(format!(
            "not ready: {} unreachable",
            down.join(" and ")
        )))
    }
}
