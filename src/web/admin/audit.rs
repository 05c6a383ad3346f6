//! `GET /admin/audit`: the audit trail, newest first, filtered by action, by
//! the acting user's email, by tenant (subdomain or id) and by date range,
//! through a GET form, a page at a time. The query is the admin API's
//! (`store::audit::list_filtered`, which `GET /api/v1/admin/audit-log` uses).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Deserialize;

use super::{page_number, Pager, PER_PAGE};
use crate::http::AppState;
use crate::store::audit::{self, AuditFilter};
use crate::store::users;
use crate::web::error::WebError;
use crate::web::form::FieldErrors;
use crate::web::layout::{Layout, Section};
use crate::web::session::Admin;

pub fn router() -> Router<AppState> {
    Router::new().route("/admin/audit", get(audit_log))
}

/// The filter form's fields, as typed (shown back in the form).
#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    action: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    page: Option<String>,
}

pub struct AuditEntry {
    pub at: DateTime<Utc>,
    pub action: String,
    pub user: String,
    pub target: String,
    /// The target's page, for an instance.
    pub target_link: Option<String>,
    pub ip: String,
    pub details: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/audit.html")]
pub struct AuditPage {
    layout: Layout,
    q: AuditQuery,
    errors: FieldErrors,
    rows: Vec<AuditEntry>,
    pager: Pager,
}

/// A date from the form (`YYYY-MM-DD`, UTC midnight), or a field error.
fn day(errors: &mut FieldErrors, field: &str, raw: &str) -> Option<DateTime<Utc>> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    match NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        Ok(d) => d.and_hms_opt(0, 0, 0).map(|t| t.and_utc()),
        Err(_) => {
            errors.add(field, "Enter a date as YYYY-MM-DD.");
            None
        }
    }
}

async fn audit_log(
    State(state): State<AppState>,
    Admin(caller): Admin,
    headers: HeaderMap,
    Query(q): Query<AuditQuery>,
) -> Result<AuditPage, WebError> {
    let layout = Layout::member("Audit log", Section::Admin, &caller).with_notice(&headers);
    let page = page_number(q.page.as_deref());
    let mut errors = FieldErrors::new();
    let from = day(&mut errors, "from", &q.from);
    // The range includes its last day.
    let before = day(&mut errors, "to", &q.to).map(|d| d + Duration::days(1));
    let user_email = q.user.trim();
    let user_id = if user_email.is_empty() {
        None
    } else {
        match users::account_by_email(&state.pool, user_email).await? {
            Some(account) => Some(account.id),
            None => {
                errors.add("user", "No user has this email address.");
                None
            }
        }
    };
    let action = q.action.trim();
    let tenant = q.tenant.trim();
    let filter = AuditFilter {
        user_id,
        action: (!action.is_empty()).then_some(action),
        tenant: (!tenant.is_empty()).then_some(tenant),
        from,
        before,
    };
    // A filter that could not be read shows nothing rather than everything.
    let (rows, total) = if errors.is_empty() {
        audit::list_filtered(&state.pool, &filter, PER_PAGE, (page - 1) * PER_PAGE).await?
    } else {
        (Vec::new(), 0)
    };
    // Users who acted, and users acted on, by email.
    let people: Vec<uuid::Uuid> = rows
        .iter()
        .flat_map(|r| {
            let target = match (r.target_type.as_deref(), r.target_id.as_deref()) {
                (Some("user"), Some(id)) => id.parse().ok(),
                _ => None,
            };
            r.user_id.into_iter().chain(target)
        })
        .collect();
    let emails = users::emails_of(&state.pool, &people).await?;
    let rows = rows
        .into_iter()
        .map(|r| AuditEntry {
            at: r.created_at,
            user: r
                .user_id
                .map(|id| emails.get(&id).cloned().unwrap_or_else(|| id.to_string()))
                .unwrap_or_default(),
            target_link: match (r.target_type.as_deref(), r.target_id.as_deref()) {
                (Some("tenant"), Some(id)) => Some(format!("/instances/{id}")),
                _ => None,
            },
            target: match (r.target_type, r.target_id) {
                (Some(kind), Some(id)) => {
                    let email = id.parse().ok().and_then(|u: uuid::Uuid| emails.get(&u));
                    match (kind.as_str(), email) {
                        ("user", Some(email)) => format!("user {email}"),
                        _ => format!("{kind} {id}"),
                    }
                }
                (Some(kind), None) => kind,
                _ => String::new(),
            },
            ip: r.ip.unwrap_or_default(),
            details: match &r.metadata {
                serde_json::Value::Object(m) if m.is_empty() => String::new(),
                other => other.to_string(),
            },
            action: r.action,
        })
        .collect();
    let pager = Pager::new(
        "/admin/audit",
        &[
            ("action", action),
            ("user", user_email),
            ("tenant", tenant),
            ("from", q.from.trim()),
            ("to", q.to.trim()),
        ],
        page,
        total,
    );
    Ok(AuditPage {
        layout,
        q,
        errors,
        rows,
        pager,
    })
}
