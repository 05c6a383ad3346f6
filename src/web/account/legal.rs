//! The terms of service, the privacy notice and the service level: static
//! pages in plain language. The terms' body is a partial
//! (`account/terms_text.html`, no variables) that the signup wizard includes
//! in its scrollable terms box, so both show the same text.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::routing::get;
use axum::Router;

use crate::http::AppState;
use crate::web::layout::{Layout, Section};
use crate::web::session::Member;

fn layout(title: &str, member: Option<Member>) -> Layout {
    let caller = member.map(|Member(c)| c);
    Layout::new(title, Section::Home).signed_in(caller.as_ref())
}

#[derive(Template, WebTemplate)]
#[template(path = "account/terms.html")]
pub struct TermsPage {
    layout: Layout,
    version: String,
}

async fn terms(State(state): State<AppState>, member: Option<Member>) -> TermsPage {
    TermsPage {
        layout: layout("Terms of service", member),
        version: state.config.accounts.terms_version.clone(),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "account/privacy.html")]
pub struct PrivacyPage {
    layout: Layout,
    session_days: i64,
    metrics_days: i64,
}

async fn privacy(State(state): State<AppState>, member: Option<Member>) -> PrivacyPage {
    PrivacyPage {
        layout: layout("Privacy", member),
        session_days: state.config.accounts.session_remember_days,
        metrics_days: state.config.observe.metrics_retention_days,
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "account/service_level.html")]
pub struct ServiceLevelPage {
    layout: Layout,
    memory_mb: u32,
    cpus: f64,
    quota: i64,
}

async fn service_level(State(state): State<AppState>, member: Option<Member>) -> ServiceLevelPage {
    let tenants = &state.config.tenants;
    ServiceLevelPage {
        layout: layout("Service level", member),
        memory_mb: tenants.memory_mb,
        cpus: tenants.cpus,
        quota: state.config.accounts.tenant_quota,
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/terms", get(terms))
        .route("/privacy", get(privacy))
        .route("/service-level", get(service_level))
}
