//! `GET /admin/orphans` explains the orphan sweep; `POST /admin/orphans` runs
//! it (the admin API's `sweep_orphans`: it removes managed containers without
//! a live tenant, so no GET may trigger it) and shows what it found. Postgres
//! objects without a tenant are listed, never dropped.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::http::admin::sweep_orphans;
use crate::http::AppState;
use crate::reconcile::OrphanReport;
use crate::web::error::WebError;
use crate::web::layout::{Layout, Section};
use crate::web::session::Admin;

pub fn router() -> Router<AppState> {
    Router::new().route("/admin/orphans", get(page).post(sweep))
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/orphans.html")]
pub struct OrphansPage {
    layout: Layout,
    report: Option<OrphanReport>,
}

/// The report alone, for htmx to swap in.
#[derive(Template, WebTemplate)]
#[template(path = "admin/orphan_report.html")]
pub struct ReportPartial {
    report: Option<OrphanReport>,
}

async fn page(Admin(caller): Admin, headers: HeaderMap) -> OrphansPage {
    OrphansPage {
        layout: Layout::member("Orphans", Section::Admin, &caller).with_notice(&headers),
        report: None,
    }
}

async fn sweep(
    State(state): State<AppState>,
    Admin(caller): Admin,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let report = Some(sweep_orphans(&state).await?);
    if headers.contains_key("hx-request") {
        return Ok(ReportPartial { report }.into_response());
    }
    Ok(OrphansPage {
        layout: Layout::member("Orphans", Section::Admin, &caller),
        report,
    }
    .into_response())
}
