//! The landing page: what Fresco is, what the service gives, and the way in.

use askama::Template;
use askama_web::WebTemplate;
use axum::http::HeaderMap;
use axum::routing::get;
use axum::Router;

use super::layout::{Layout, Section};
use super::session::Member;
use crate::http::AppState;

#[derive(Template, WebTemplate)]
#[template(path = "landing.html")]
pub struct Landing {
    layout: Layout,
    domain: String,
}

async fn landing(
    axum::extract::State(state): axum::extract::State<AppState>,
    member: Option<Member>,
    headers: HeaderMap,
) -> Landing {
    let caller = member.map(|Member(c)| c);
    Landing {
        layout: Layout::new("Fresco, hosted for your study", Section::Home)
            .signed_in(caller.as_ref())
            .with_notice(&headers),
        domain: state.config.tenants.base_domain.clone(),
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/", get(landing))
}
