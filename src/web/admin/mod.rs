//! The admin pages (admins only; anyone else signed in gets the 403 page):
//! an overview, every instance with its owner (`instances`), users and their
//! roles (`users`), the audit log with filters (`audit`), the database servers
//! (`servers`), backup health (`backups`) and the orphan sweep (`orphans`). Each calls the admin API's own operations and store queries
//! (`http::admin`), so a rule such as "an admin cannot demote themselves" lives
//! in one place.

mod audit;
mod backups;
mod instances;
mod orphans;
mod servers;
mod users;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use axum::Router;

use super::error::{urlencode, WebError};
use super::layout::{Layout, Section};
use super::session::Admin;
use crate::http::AppState;
use crate::store::{tenants, users as user_store};

/// Rows on one page of an admin table.
const PER_PAGE: i64 = 50;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(overview))
        .merge(instances::router())
        .merge(users::router())
        .merge(audit::router())
        .merge(orphans::router())
        .merge(servers::router())
        .merge(backups::router())
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/overview.html")]
pub struct Overview {
    layout: Layout,
    users: i64,
    /// (status, count), for every status that has instances.
    statuses: Vec<(String, i64)>,
    instances: i64,
}

async fn overview(
    State(state): State<AppState>,
    Admin(caller): Admin,
    headers: HeaderMap,
) -> Result<Overview, WebError> {
    let (_, users) = user_store::list_accounts(&state.pool, 1, 0).await?;
    let statuses = tenants::count_by_status(&state.pool).await?;
    Ok(Overview {
        layout: Layout::member("Admin", Section::Admin, &caller).with_notice(&headers),
        users,
        instances: statuses.iter().map(|(_, n)| n).sum(),
        statuses,
    })
}

/// The page number from a query (`?page=`); anything unreadable is page 1.
fn page_number(raw: Option<&str>) -> i64 {
    raw.and_then(|p| p.trim().parse::<i64>().ok())
        .filter(|p| (1..=1_000_000).contains(p))
        .unwrap_or(1)
}

/// Links to the neighbouring pages of a table, keeping its filters.
pub struct Pager {
    pub page: i64,
    pub pages: i64,
    pub total: i64,
    pub prev: Option<String>,
    pub next: Option<String>,
}

impl Pager {
    /// `filters` are (name, value) pairs; empty values are left out.
    fn new(path: &str, filters: &[(&str, &str)], page: i64, total: i64) -> Self {
        let pages = ((total + PER_PAGE - 1) / PER_PAGE).max(1);
        let link = |n: i64| {
            let mut query: Vec<String> = filters
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| format!("{k}={}", urlencode(v)))
                .collect();
            query.push(format!("page={n}"));
            format!("{path}?{}", query.join("&"))
        };
        Self {
            page,
            pages,
            total,
            prev: (page > 1).then(|| link(page - 1)),
            next: (page < pages).then(|| link(page + 1)),
        }
    }
}

/// The badge class of a tenant status (the shared styles call a live
/// instance "running").
fn badge(status: &str) -> &str {
    match status {
        "active" => "running",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_link_to_their_neighbours_with_the_filters_kept() {
        let pager = Pager::new(
            "/admin/audit",
            &[("action", "auth.login"), ("user", "")],
            2,
            120,
        );
        assert_eq!(pager.pages, 3);
        assert_eq!(
            pager.prev.as_deref(),
            Some("/admin/audit?action=auth.login&page=1")
        );
        assert_eq!(
            pager.next.as_deref(),
            Some("/admin/audit?action=auth.login&page=3")
        );
        let only = Pager::new("/admin/users", &[], 1, 0);
        assert_eq!((only.pages, only.prev, only.next), (1, None, None));
        assert_eq!(page_number(Some("x")), 1);
        assert_eq!(page_number(Some("0")), 1);
        assert_eq!(page_number(Some("4")), 4);
    }
}
