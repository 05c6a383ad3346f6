//! `GET /admin/servers`: the Postgres servers tenant data lives on, with their
//! load against capacity, where tenants reach them (directly and through
//! PgBouncer), whether they drain, and the moves under way. Changes go
//! through the CLI or the admin API (`fresco-platform db-servers`).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use axum::Router;

use crate::domain::redacted_dsn;
use crate::http::AppState;
use crate::store::db_servers;
use crate::web::error::WebError;
use crate::web::layout::{Layout, Section};
use crate::web::session::Admin;

pub fn router() -> Router<AppState> {
    Router::new().route("/admin/servers", get(page))
}

pub struct ServerRow {
    pub name: String,
    pub admin: String,
    pub tenant_host: String,
    pub pooler_host: String,
    pub tenants: i64,
    pub capacity: i32,
    /// Share of its capacity in use, 0–100.
    pub percent: i64,
    pub draining: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/servers.html")]
pub struct ServersPage {
    layout: Layout,
    rows: Vec<ServerRow>,
    /// Moves under way: (subdomain, from, to, phase).
    moving: Vec<(String, String, String, String)>,
}

async fn page(
    State(state): State<AppState>,
    Admin(caller): Admin,
    headers: HeaderMap,
) -> Result<ServersPage, WebError> {
    let servers = db_servers::list(&state.pool).await?;
    let name_of = |id: uuid::Uuid| {
        servers
            .iter()
            .find(|l| l.server.id == id)
            .map(|l| l.server.name.clone())
            .unwrap_or_else(|| id.to_string())
    };
    let moving = db_servers::moves_under_way(&state.pool)
        .await?
        .into_iter()
        .map(|(sub, from, to, phase)| (sub, name_of(from), name_of(to), phase))
        .collect();
    let rows = servers
        .iter()
        .map(|l| ServerRow {
            name: l.server.name.clone(),
            admin: l
                .server
                .admin_url
                .as_deref()
                .map(redacted_dsn)
                .unwrap_or_else(|| "the platform's own (DATABASE_URL)".to_owned()),
            tenant_host: l
                .server
                .tenant_host
                .clone()
                .unwrap_or_else(|| "TENANT_DB_HOST".to_owned()),
            pooler_host: l
                .server
                .pooler_host
                .clone()
                .unwrap_or_else(|| "TENANT_DB_POOLER_PORT".to_owned()),
            tenants: l.tenants,
            capacity: l.server.capacity,
            percent: (l.tenants * 100 / (l.server.capacity.max(1) as i64)).min(100),
            draining: l.server.draining,
        })
        .collect();
    Ok(ServersPage {
        layout: Layout::member("Database servers", Section::Admin, &caller).with_notice(&headers),
        rows,
        moving,
    })
}
