//! The support page (`/support`): documentation links, answers to the common
//! questions, a contact form that mails `SUPPORT_EMAIL` (rate-limited, the
//! sender as Reply-To, plain text only), and the status panel, also served
//! alone at `/status` and as the fragment htmx refreshes (`/status/panel`).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::error::WebError;
use super::form::{FieldErrors, PageForm};
use super::layout::{Layout, Notice, Section};
use super::session::Member;
use crate::domain::Email;
use crate::http::client::Client;
use crate::http::health::readiness;
use crate::http::AppState;
use crate::mail::OutgoingMail;
use crate::store::audit::Origin;

const MAX_SUBJECT: usize = 150;
const MAX_MESSAGE: usize = 5000;

/// One line of the status panel.
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: &'static str,
}

pub struct StatusPanel {
    pub checks: Vec<Check>,
    pub checked_at: DateTime<Utc>,
}

impl StatusPanel {
    pub fn all_ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    pub fn time(&self) -> String {
        self.checked_at.format("%H:%M:%S UTC").to_string()
    }

    pub fn iso_time(&self) -> String {
        self.checked_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }
}

/// The API's readiness checks, and whether the reconciler's loop turns.
async fn status_panel(state: &AppState) -> StatusPanel {
    let ready = readiness(state).await;
    let reconciler = state.reconciler.alive();
    StatusPanel {
        checks: vec![
            Check {
                name: "Database",
                ok: ready.postgres,
                detail: if ready.postgres {
                    "The platform's database answers."
                } else {
                    "The platform's database does not answer; pages and deployments wait for it."
                },
            },
            Check {
                name: "Container engine",
                ok: ready.docker,
                detail: if ready.docker {
                    "Docker answers; instances can be started and stopped."
                } else {
                    "Docker does not answer; running instances keep running, changes wait."
                },
            },
            Check {
                name: "Reconciler",
                ok: reconciler,
                detail: if reconciler {
                    "Deployments and lifecycle actions are being carried out."
                } else {
                    "Deployments and actions are queued until the reconciler runs again."
                },
            },
        ],
        checked_at: Utc::now(),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "support/support.html")]
pub struct SupportPage {
    layout: Layout,
    panel: StatusPanel,
    configured: bool,
    sandbox_url: String,
    memory_mb: u32,
    cpus: f64,
    email: String,
    subject: String,
    message: String,
    errors: FieldErrors,
}

#[derive(Template, WebTemplate)]
#[template(path = "support/status.html")]
pub struct StatusPage {
    layout: Layout,
    panel: StatusPanel,
}

#[derive(Template, WebTemplate)]
#[template(path = "support/_status_panel.html")]
pub struct StatusPanelFragment {
    panel: StatusPanel,
}

async fn support_page(
    state: &AppState,
    member: Option<&Member>,
    form: ContactForm,
    errors: FieldErrors,
) -> SupportPage {
    let caller = member.map(|Member(c)| c);
    let email = if form.email.is_empty() {
        caller.map(|c| c.user.email.clone()).unwrap_or_default()
    } else {
        form.email
    };
    SupportPage {
        layout: Layout::new("Support", Section::Support).signed_in(caller),
        panel: status_panel(state).await,
        configured: state.config.notify.support_email.is_some(),
        sandbox_url: state.config.accounts.sandbox_url.clone(),
        memory_mb: state.config.tenants.memory_mb,
        cpus: state.config.tenants.cpus,
        email,
        subject: form.subject,
        message: form.message,
        errors,
    }
}

async fn show(
    State(state): State<AppState>,
    member: Option<Member>,
    headers: HeaderMap,
) -> SupportPage {
    let mut page = support_page(
        &state,
        member.as_ref(),
        ContactForm::default(),
        FieldErrors::new(),
    )
    .await;
    page.layout = page.layout.with_notice(&headers);
    page
}

#[derive(Deserialize, Default)]
pub struct ContactForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    message: String,
}

/// Field errors for the form; the subject becomes a mail header, so a line
/// break (or any control character) in it is refused, never cleaned up.
fn validate(form: &ContactForm) -> FieldErrors {
    let mut errors = FieldErrors::new();
    if Email::parse(&form.email).is_err() {
        errors.add(
            "email",
            "Enter the email address we should answer, like name@example.org.",
        );
    }
    let subject = form.subject.trim();
    if subject.is_empty() {
        errors.add("subject", "Enter a subject.");
    } else if form.subject.chars().any(char::is_control) {
        errors.add("subject", "The subject must be a single line.");
    } else if subject.chars().count() > MAX_SUBJECT {
        errors.add(
            "subject",
            format!("Keep the subject under {MAX_SUBJECT} characters."),
        );
    }
    if form.message.trim().is_empty() {
        errors.add("message", "Write your message.");
    } else if form.message.chars().count() > MAX_MESSAGE {
        errors.add(
            "message",
            format!("Keep the message under {MAX_MESSAGE} characters."),
        );
    }
    errors
}

/// The mail to the support address: the sender's words as plain text.
fn support_mail(to: &str, form: &ContactForm, account: Option<&str>) -> OutgoingMail {
    let who = match account {
        Some(account) => format!("signed in as {account}"),
        None => "not signed in".to_owned(),
    };
    OutgoingMail {
        to: to.to_owned(),
        subject: format!("[Support] {}", form.subject.trim()),
        body: format!(
            "From {} ({who}), through the support form. Reply to this mail to answer.\n\n{}\n",
            form.email.trim(),
            form.message.trim_end()
        ),
    }
}

const NOT_CONFIGURED: &str = "Support mail is not configured on this platform, so the message \
was not sent. Ask the people who run it for a contact address.";

async fn send(
    State(state): State<AppState>,
    member: Option<Member>,
    Client(origin): Client,
    PageForm(form): PageForm<ContactForm>,
) -> Result<Response, WebError> {
    let mut errors = validate(&form);
    let mut status = StatusCode::UNPROCESSABLE_ENTITY;
    if errors.is_empty() {
        match deliver(&state, member.as_ref(), &origin, &form).await {
            // The form posted to `/support#contact`; a fragment here replaces
            // the one the browser would keep, so the notice at the top is in view.
            Ok(()) => {
                let to = Redirect::to("/support#main");
                return Ok(([Notice::MessageSent.cookie()], to).into_response());
            }
            Err((refused, message)) => {
                status = refused;
                errors.form = Some(message);
            }
        }
    }
    let page = support_page(&state, member.as_ref(), form, errors).await;
    Ok((status, page).into_response())
}

/// Mails a valid message to the support address, or says why not: not
/// configured, over the rate limit, or the mail server refused.
async fn deliver(
    state: &AppState,
    member: Option<&Member>,
    origin: &Origin,
    form: &ContactForm,
) -> Result<(), (StatusCode, String)> {
    let Some(to) = &state.config.notify.support_email else {
        return Err((StatusCode::UNPROCESSABLE_ENTITY, NOT_CONFIGURED.to_owned()));
    };
    let caller = member.map(|Member(c)| c);
    state
        .limits
        .support_message(origin, caller.map(|c| c.user.id))
        .map_err(|e| (StatusCode::TOO_MANY_REQUESTS, e.to_string()))?;
    let mail = support_mail(to, form, caller.map(|c| c.user.email.as_str()));
    state
        .mailer
        .send_with_reply_to(mail, form.email.trim())
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "support mail could not be sent");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "Your message could not be sent just now. Try again in a few minutes.".to_owned(),
            )
        })
}

async fn status(
    State(state): State<AppState>,
    member: Option<Member>,
    headers: HeaderMap,
) -> StatusPage {
    let caller = member.map(|Member(c)| c);
    StatusPage {
        layout: Layout::new("Platform status", Section::Support)
            .signed_in(caller.as_ref())
            .with_notice(&headers),
        panel: status_panel(&state).await,
    }
}

async fn panel(State(state): State<AppState>) -> StatusPanelFragment {
    StatusPanelFragment {
        panel: status_panel(&state).await,
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/support", get(show).post(send))
        .route("/status", get(status))
        .route("/status/panel", get(panel))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(email: &str, subject: &str, message: &str) -> ContactForm {
        ContactForm {
            email: email.into(),
            subject: subject.into(),
            message: message.into(),
        }
    }

    #[test]
    fn a_line_break_in_the_subject_is_refused_beside_the_field() {
        let errors = validate(&form("ada@example.org", "Help\r\nBcc: x@example.org", "Hi"));
        assert_eq!(
            errors.get("subject"),
            Some("The subject must be a single line.")
        );
        assert!(validate(&form("ada@example.org", "Help", "Hi")).is_empty());
    }

    #[test]
    fn empty_fields_and_bad_addresses_get_their_own_errors() {
        let errors = validate(&form("nope", " ", ""));
        assert!(errors.has("email") && errors.has("subject") && errors.has("message"));
    }

    #[test]
    fn the_mail_quotes_the_message_as_plain_text_and_says_who_sent_it() {
        let mail = support_mail(
            "support@example.org",
            &form("ada@example.org", " Setup ", "<b>hi</b>\nline two"),
            None,
        );
        assert_eq!(mail.subject, "[Support] Setup");
        assert!(mail.body.contains("<b>hi</b>\nline two"));
        assert!(mail.body.contains("ada@example.org (not signed in)"));
    }
}
