//! Is a subdomain valid and free, and which close ones are, when it is not.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::http::error::ApiError;
use crate::http::extract::ApiQuery;
use crate::http::AppState;
use crate::store::tenants;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SubdomainQuery {
    pub subdomain: String,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubdomainCheck {
    pub subdomain: String,
    pub valid: bool,
    pub available: bool,
    /// The rule an invalid subdomain breaks (`length`, `characters`, `hyphens`, `punycode`, `reserved`).
    pub rule: Option<String>,
    pub message: Option<String>,
    /// Three available alternatives when the subdomain is taken or reserved.
    pub suggestions: Vec<String>,
}

/// Up to three available subdomains close to `wanted`.
pub(super) async fn suggestions(state: &AppState, wanted: &str) -> Result<Vec<String>, ApiError> {
    let mut base: String = wanted
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    while base.contains("--") {
        base = base.replace("--", "-");
    }
    let mut base = base.trim_matches('-').chars().take(50).collect::<String>();
    if base.len() < 3 {
        base = format!("study-{base}").trim_end_matches('-').to_owned();
    }
    let mut candidates: Vec<String> = ["study", "lab", "research", "team", "project"]
        .iter()
        .map(|s| format!("{base}-{s}"))
        .chain((2..12).map(|n| format!("{base}{n}")))
        .filter(|c| state.config.subdomain(c).is_ok())
        .collect();
    candidates.dedup();
    let taken = tenants::taken_subdomains(&state.pool, &candidates).await?;
    Ok(candidates
        .into_iter()
        .filter(|c| !taken.contains(c))
        .take(3)
        .collect())
}

pub(super) async fn taken(state: &AppState, subdomain: &str) -> Result<bool, ApiError> {
    let wanted = [subdomain.to_owned()];
    Ok(!tenants::taken_subdomains(&state.pool, &wanted)
        .await?
        .is_empty())
}

/// The answer of `wizard.checkSubdomain`, shared with the wizard's pages.
pub(crate) async fn check(state: &AppState, wanted: &str) -> Result<SubdomainCheck, ApiError> {
    let mut answer = SubdomainCheck {
        subdomain: wanted.to_owned(),
        valid: true,
        available: false,
        rule: None,
        message: None,
        suggestions: vec![],
    };
    match state.config.subdomain(wanted) {
        Err(e) => {
            answer.valid = false;
            answer.rule = Some(e.rule().to_owned());
            answer.message = Some(e.to_string());
            if e.rule() == "reserved" {
                answer.suggestions = suggestions(state, wanted).await?;
            }
        }
        Ok(s) if taken(state, s.as_str()).await? => {
            answer.message = Some(format!("\"{s}\" is already taken"));
            answer.suggestions = suggestions(state, wanted).await?;
        }
        Ok(_) => answer.available = true,
    }
    Ok(answer)
}

/// Is this subdomain valid and free? With suggestions when it is not.
#[utoipa::path(get, path = "/api/v1/wizard/subdomain-check", operation_id = "wizard.checkSubdomain", tag = "wizard",
    params(SubdomainQuery), responses((status = 200, body = SubdomainCheck)))]
pub async fn check_subdomain(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<SubdomainQuery>,
) -> Result<Json<SubdomainCheck>, ApiError> {
    Ok(Json(check(&state, q.subdomain.trim()).await?))
}
