//! Steps 5 and 6: the deployment's progress, live over Server-Sent Events
//! (HTML fragments for htmx's SSE extension, rendered from the same
//! `http::tenants::deployments::progress` the API's progress endpoint
//! answers with), a retry after a failure (the API's owner action), and the
//! success page with the setup link and its deadline.
//!
//! The signup session is gone by now: the person is signed in, and the pages
//! name the tenant; another user's tenant is a 404 like anywhere else.

use std::collections::VecDeque;
use std::time::Duration;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::Event;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use tokio::sync::broadcast;
use tokio::time::{interval_at, Instant, MissedTickBehavior};

use super::super::error::WebError;
use super::super::layout::{Layout, Section};
use super::super::session::Member;
use crate::domain::lifecycle::OwnerAction;
use crate::domain::TenantId;
use crate::http::caller::Caller;
use crate::http::client::Client;
use crate::http::extract::TenantPath;
use crate::http::streams::{self, StreamAccess};
use crate::http::tenants::actions::act;
use crate::http::tenants::deployments::{progress, DeploymentStatus};
use crate::http::tenants::load_visible;
use crate::http::AppState;
use crate::store::notify::Change;
use crate::store::tenants::{self, Tenant};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/signup/progress/{id}", get(progress_page))
        .route("/signup/progress/{id}/stream", get(stream))
        .route("/signup/progress/{id}/retry", post(retry))
        .route("/signup/done/{id}", get(done_page))
}

/// How often an open stream refreshes the estimate when nothing happens.
const TICK: Duration = Duration::from_secs(5);

/// The caller's tenant named in the path; anything else is a 404 page.
async fn tenant(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<(TenantPath, Tenant), WebError> {
    let id: TenantId = id.parse().map_err(|_| WebError::NotFound)?;
    let path = TenantPath(id);
    let tenant = load_visible(state, caller, &path).await?;
    Ok((path, tenant))
}

/// One line of the step list.
pub struct StepLine {
    pub label: String,
    /// done, current, failed or "" (still to come): the CSS class and, in
    /// words, what screen readers hear.
    pub class: &'static str,
    pub state: &'static str,
}

/// What the progress page shows; the same for the full page and each live
/// fragment.
pub struct ProgressView {
    pub id: String,
    pub url: String,
    pub headline: &'static str,
    pub percentage: u8,
    pub estimate: Option<String>,
    pub steps: Vec<StepLine>,
    pub error: Option<String>,
    pub retry_possible: bool,
    pub active: bool,
    /// Nothing more will happen by itself: the stream ends.
    pub settled: bool,
}

fn headline(phase: &str) -> &'static str {
    match phase {
        "queued" => "Your request is queued",
        "database" => "Creating your database",
        "image" => "Preparing Fresco",
        "container" => "Starting your instance",
        "health" => "Waiting for Fresco to finish its first start",
        "active" => "Your instance is ready",
        "failed" => "The deployment failed",
        "stopped" => "Your instance is stopped",
        _ => "Your instance is being removed",
    }
}

fn estimate(seconds: i64) -> String {
    if seconds < 60 {
        format!("about {seconds} seconds left")
    } else {
        format!("about {} minutes left", (seconds + 30) / 60)
    }
}

impl ProgressView {
    /// `last_phase` is the phase the reconciler last reported (the tenant's
    /// `progress`): after a failure it names the step that failed.
    fn new(s: DeploymentStatus, last_phase: Option<&str>) -> Self {
        let active = s.phase == "active";
        let failed = s.phase == "failed";
        let running = matches!(
            s.phase.as_str(),
            "queued" | "database" | "image" | "container" | "health"
        );
        // Unknown (no phase reported): no step is blamed.
        let failed_at = last_phase
            .and_then(|p| s.steps.iter().position(|step| step.name == p))
            .filter(|_| failed);
        let mut first_open = true;
        let steps = s
            .steps
            .into_iter()
            .enumerate()
            .map(|(i, step)| {
                let (class, state) = if step.done || failed_at.is_some_and(|at| i < at) {
                    ("done", "done")
                } else if failed_at == Some(i) {
                    ("failed", "failed")
                } else if running && first_open {
                    first_open = false;
                    ("current", "in progress")
                } else {
                    ("", "to come")
                };
                StepLine {
                    label: step.label,
                    class,
                    state,
                }
            })
            .collect();
        Self {
            id: s.tenant_id.to_string(),
            url: s.url,
            headline: headline(&s.phase),
            percentage: s.percentage,
            estimate: s.estimated_seconds_left.map(estimate),
            steps,
            error: s.error,
            retry_possible: s.retry_possible,
            active,
            settled: !running,
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "signup/progress.html")]
pub struct ProgressPage {
    layout: Layout,
    step: u8,
    subdomain: String,
    view: ProgressView,
}

/// Step 5: where the deployment stands; with JavaScript it follows the stream.
async fn progress_page(
    State(state): State<AppState>,
    Member(caller): Member,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<ProgressPage, WebError> {
    let (_, t) = tenant(&state, &caller, &id).await?;
    let view = ProgressView::new(progress(&state, &caller, &t).await?, t.progress.as_deref());
    Ok(ProgressPage {
        layout: Layout::member("Deploying your instance", Section::Home, &caller)
            .with_notice(&headers),
        step: 5,
        subdomain: t.subdomain,
        view,
    })
}

#[derive(Template)]
#[template(path = "signup/progress_body.html")]
struct ProgressBody<'a> {
    view: &'a ProgressView,
}

/// The live progress: a `progress` event (the page's body fragment) whenever
/// the tenant changes (and every few seconds, for the estimate), an `announce`
/// event (plain words for the page's live region) when the phase changes, and
/// `done` (which closes the page's EventSource) once the deployment settles.
struct Watch {
    state: AppState,
    caller: Caller,
    tenant: TenantId,
    receiver: broadcast::Receiver<Change>,
    ticks: tokio::time::Interval,
    last_body: Option<String>,
    last_headline: Option<&'static str>,
    pending: VecDeque<Event>,
    started: bool,
    finished: bool,
}

impl Watch {
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            if self.finished {
                return None;
            }
            if self.started {
                tokio::select! {
                    change = self.receiver.recv() => match change {
                        Ok(c) if c.tenant_id != self.tenant.0 => continue,
                        // Lagged: some notifications were missed; the table has it all.
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => return None,
                    },
                    _ = self.ticks.tick() => {}
                }
            }
            self.started = true;
            self.render().await;
        }
    }

    /// Reads the tenant again and queues what changed on the page. A failed
    /// read queues nothing: the next change or tick tries again.
    async fn render(&mut self) {
        let Ok(t) = tenants::get(&self.state.pool, self.tenant).await else {
            return;
        };
        let Ok(status) = progress(&self.state, &self.caller, &t).await else {
            return;
        };
        let view = ProgressView::new(status, t.progress.as_deref());
        let Ok(body) = (ProgressBody { view: &view }).render() else {
            return;
        };
        if self.last_body.as_deref() != Some(body.as_str()) {
            let data = body.replace('\r', "");
            self.pending
                .push_back(Event::default().event("progress").data(data));
            self.last_body = Some(body);
        }
        if self.last_headline != Some(view.headline) {
            self.last_headline = Some(view.headline);
            // Plain words, but swapped in as HTML: no markup characters in them.
            let words = format!("{}. {}% done.", view.headline, view.percentage);
            self.pending
                .push_back(Event::default().event("announce").data(words));
        }
        if view.settled {
            self.pending
                .push_back(Event::default().event("done").data("settled"));
            self.finished = true;
        }
    }
}

async fn stream(
    State(state): State<AppState>,
    Member(caller): Member,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let (_, t) = tenant(&state, &caller, &id).await?;
    let access = StreamAccess::open(&state, &caller, &headers, &t)?;
    let mut ticks = interval_at(Instant::now() + TICK, TICK);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let watch = Watch {
        receiver: state.activity.subscribe(),
        state,
        caller,
        tenant: t.tenant_id(),
        ticks,
        last_body: None,
        last_headline: None,
        pending: VecDeque::new(),
        started: false,
        finished: false,
    };
    let events =
        futures::stream::unfold(watch, |mut w| async move { w.next().await.map(|e| (e, w)) });
    Ok(streams::respond(access, events))
}

/// Re-queues a failed deployment (the API's `tenants.retry`: the same
/// lifecycle rule, rate limit and audit entry), then shows the progress again.
async fn retry(
    State(state): State<AppState>,
    Member(caller): Member,
    Client(origin): Client,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let (path, _) = tenant(&state, &caller, &id).await?;
    let _accepted = act(&state, &caller, &origin, &path, OwnerAction::Retry).await?;
    Ok(Redirect::to(&format!("/signup/progress/{}", path.0)).into_response())
}

/// The setup link and its deadline, as the success page shows them.
pub struct SetupView {
    pub link: String,
    pub deadline: String,
    pub deadline_text: String,
    pub left: String,
}

fn time_left(deadline: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let minutes = (deadline - now).num_minutes().max(0);
    match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m} min left"),
        (h, m) => format!("{h} h {m} min left"),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "signup/done.html")]
pub struct DonePage {
    layout: Layout,
    step: u8,
    subdomain: String,
    url: String,
    setup: Option<SetupView>,
}

/// Step 6: the instance's address, its setup link with the deadline, and what
/// to do next.
async fn done_page(
    State(state): State<AppState>,
    Member(caller): Member,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let (path, t) = tenant(&state, &caller, &id).await?;
    let status = progress(&state, &caller, &t).await?;
    if status.phase != "active" {
        return Ok(Redirect::to(&format!("/signup/progress/{}", path.0)).into_response());
    }
    let setup = status.setup.map(|s| SetupView {
        link: s.claim_url.unwrap_or(s.url),
        deadline: s
            .deadline
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        deadline_text: s.deadline.format("%H:%M UTC on %d %B %Y").to_string(),
        left: time_left(s.deadline, Utc::now()),
    });
    Ok(DonePage {
        layout: Layout::member("Your instance is ready", Section::Home, &caller)
            .with_notice(&headers),
        step: 6,
        subdomain: t.subdomain,
        url: status.url,
        setup,
    }
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::tenants::deployments::ProgressStep;

    fn status(phase: &str, done: usize) -> DeploymentStatus {
        let names = ["queued", "database", "image", "container", "health"];
        DeploymentStatus {
            tenant_id: uuid::Uuid::new_v4(),
            phase: phase.into(),
            percentage: 40,
            steps: names
                .iter()
                .enumerate()
                .map(|(i, n)| ProgressStep {
                    name: (*n).into(),
                    label: n.to_uppercase(),
                    done: i < done,
                })
                .collect(),
            estimated_seconds_left: Some(12),
            error: None,
            retry_possible: phase == "failed",
            url: "http://x.example".into(),
            setup: None,
            quick_start: None,
        }
    }

    #[test]
    fn the_step_list_marks_the_current_step_and_where_a_deployment_failed() {
        let running = ProgressView::new(status("image", 2), Some("image"));
        let classes: Vec<_> = running.steps.iter().map(|s| s.class).collect();
        assert_eq!(classes, ["done", "done", "current", "", ""]);
        assert!(!running.settled);
        let failed = ProgressView::new(status("failed", 0), Some("container"));
        let classes: Vec<_> = failed.steps.iter().map(|s| s.class).collect();
        assert_eq!(classes, ["done", "done", "done", "failed", ""]);
        assert!(failed.settled && failed.retry_possible);
        let unknown = ProgressView::new(status("failed", 0), None);
        assert!(unknown.steps.iter().all(|s| s.class.is_empty()));
    }

    #[test]
    fn the_time_left_reads_in_hours_and_minutes() {
        let now = Utc::now();
        assert_eq!(
            time_left(now + chrono::Duration::minutes(119), now),
            "1 h 59 min left"
        );
        assert_eq!(
            time_left(now + chrono::Duration::minutes(5), now),
            "5 min left"
        );
        assert_eq!(
            time_left(now - chrono::Duration::minutes(5), now),
            "0 min left"
        );
        assert_eq!(estimate(20), "about 20 seconds left");
        assert_eq!(estimate(100), "about 2 minutes left");
    }
}
