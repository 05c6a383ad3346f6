//! The email preferences page (`/settings/notifications`): which mails about
//! their instances an owner gets. The mails themselves are the notifier's
//! (`reconcile::notifications`); this page only switches kinds on and off.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::error::WebError;
use super::form::PageForm;
use super::layout::{Layout, Notice, Section};
use super::session::Member;
use crate::http::AppState;
use crate::store::notifications::{self, Kind, Preferences};

/// One checkbox: the kind's form name, its label and what it is about.
pub struct Choice {
    pub name: &'static str,
    pub label: &'static str,
    pub explanation: &'static str,
    pub checked: bool,
}

fn choices(prefs: &Preferences) -> Vec<Choice> {
    Kind::ALL
        .into_iter()
        .map(|kind| {
            let (label, explanation) = describe(kind);
            Choice {
                name: kind.as_str(),
                label,
                explanation,
                checked: prefs.wants(kind),
            }
        })
        .collect()
}

fn describe(kind: Kind) -> (&'static str, &'static str) {
    match kind {
        Kind::Deployment => (
            "Deployments",
            "When a new instance or its new settings finish deploying, or when a deployment or action fails.",
        ),
        Kind::InstanceDown => (
            "Instance down",
            "When a running instance stops unexpectedly, stops answering its health check or keeps crashing; one that goes up and down sends one mail, not many.",
        ),
        Kind::ResourceAlert => (
            "Resource alerts",
            "When an instance has used most of its memory or CPU limit for several minutes.",
        ),
        Kind::SetupDeadline => (
            "Setup deadline",
            "When an instance's first-run setup window is about to close and nobody has set it up yet.",
        ),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "notifications/preferences.html")]
pub struct PreferencesPage {
    layout: Layout,
    choices: Vec<Choice>,
}

async fn show(
    State(state): State<AppState>,
    Member(caller): Member,
    headers: HeaderMap,
) -> Result<PreferencesPage, WebError> {
    let prefs = notifications::preferences(&state.pool, caller.user.id).await?;
    Ok(PreferencesPage {
        layout: Layout::member("Email preferences", Section::Settings, &caller)
            .with_notice(&headers),
        choices: choices(&prefs),
    })
}

/// A checkbox is sent only when ticked.
#[derive(Deserialize)]
pub struct PreferencesForm {
    deployment: Option<String>,
    instance_down: Option<String>,
    resource_alert: Option<String>,
    setup_deadline: Option<String>,
}

async fn save(
    State(state): State<AppState>,
    Member(caller): Member,
    PageForm(form): PageForm<PreferencesForm>,
) -> Result<Response, WebError> {
    let prefs = Preferences {
        deployment: form.deployment.is_some(),
        instance_down: form.instance_down.is_some(),
        resource_alert: form.resource_alert.is_some(),
        setup_deadline: form.setup_deadline.is_some(),
    };
    notifications::save_preferences(&state.pool, caller.user.id, prefs).await?;
    Ok((
        [Notice::PreferencesSaved.cookie()],
        Redirect::to("/settings/notifications"),
    )
        .into_response())
}

pub fn router() -> Router<AppState> {
    Router::new().route("/settings/notifications", get(show).post(save))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_checkbox_named_after_its_column() {
        let prefs = Preferences {
            resource_alert: false,
            ..Preferences::default()
        };
        let list = choices(&prefs);
        let names: Vec<_> = list.iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                "deployment",
                "instance_down",
                "resource_alert",
                "setup_deadline"
            ]
        );
        assert!(list
            .iter()
            .all(|c| c.checked == (c.name != "resource_alert")));
        assert!(list.iter().all(|c| c.explanation.ends_with('.')));
    }
}
