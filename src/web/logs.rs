//! The log viewer: `GET /instances/{id}/logs` renders the container's last
//! lines (enough without JavaScript: filters are a GET form, and a Refresh
//! link reads again), and `GET /instances/{id}/logs/stream` follows the output
//! as Server-Sent Events for `assets/logs.js`. The stream is the API's followed
//! log (`http::logs::follow_all`): the same cursors, per-user stream cap and
//! access re-checks. Each event's `id:` is its cursor, so the browser's
//! automatic reconnect (`Last-Event-ID`) resumes after the last line it got;
//! the page's script resumes the same way after its own reconnects (`?after=`).
//!
//! Owners see their own instances' logs; admins any instance's; anyone else
//! gets the 404 page, exactly as for an instance that does not exist.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::error::{urlencode, WebError};
use super::layout::{Layout, Section};
use super::session::Member;
use crate::domain::TenantId;
use crate::http::caller::Caller;
use crate::http::extract::TenantPath;
use crate::http::logs::{follow_all, recent_lines, Cursor, LineView};
use crate::http::tenants::load_visible;
use crate::http::AppState;
use crate::provision::runtime::LogStream;
use crate::store::tenants::Tenant;

/// Lines the page shows when it opens (the stream adds the ones after).
const SNAPSHOT_LINES: u64 = 500;
/// The most the download link asks the API's text export for (its cap).
const DOWNLOAD_LINES: u64 = 100_000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/instances/{id}/logs", get(page))
        .route("/instances/{id}/logs/stream", get(stream))
}

/// The instance, if the caller may see it; otherwise the 404 page.
pub(super) async fn visible_tenant(
    state: &AppState,
    caller: &Caller,
    raw: &str,
) -> Result<Tenant, WebError> {
    let id: TenantId = raw.parse().map_err(|_| WebError::NotFound)?;
    Ok(load_visible(state, caller, &TenantPath(id)).await?)
}

/// What the reader chose to see. The form sends `applied` so an unticked
/// checkbox (which sends nothing) is told apart from a first visit.
#[derive(Debug, Default, Deserialize)]
pub struct ViewQuery {
    stream: Option<String>,
    q: Option<String>,
    only: Option<String>,
    timestamps: Option<String>,
    applied: Option<String>,
}

/// The filters, settled: the server applies them to the first lines, the
/// script to every line after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// `all`, `stdout` or `stderr`.
    pub stream: &'static str,
    pub q: String,
    /// Hide lines that do not contain `q` (else only highlight the ones that do).
    pub only_matching: bool,
    pub timestamps: bool,
}

impl View {
    fn of(q: &ViewQuery) -> Self {
        let applied = q.applied.is_some();
        Self {
            stream: match q.stream.as_deref() {
                Some("stdout") => "stdout",
                Some("stderr") => "stderr",
                _ => "all",
            },
            q: q.q.as_deref().unwrap_or("").trim().to_owned(),
            only_matching: !applied || q.only.is_some(),
            timestamps: !applied || q.timestamps.is_some(),
        }
    }

    /// Whether a line of `stream` with `text` is shown.
    fn shows(&self, stream: &str, text: &str) -> bool {
        let stream_ok = self.stream == "all" || self.stream == stream;
        let text_ok = !self.only_matching || self.q.is_empty() || text.contains(&self.q);
        stream_ok && text_ok
    }

    /// The API's text export of the same lines (its search is the same
    /// case-sensitive substring match as this page's).
    fn download_url(&self, id: &str) -> String {
        let mut url = format!(
            "/api/v1/tenants/{id}/logs?format=text&tail={DOWNLOAD_LINES}&timestamps={}",
            self.timestamps
        );
        if self.stream != "all" {
            url.push_str(&format!("&stream={}", self.stream));
        }
        if self.only_matching && !self.q.is_empty() {
            url.push_str(&format!("&q={}", urlencode(&self.q)));
        }
        url
    }
}

/// A piece of a line's text; `mark` when it is a search match.
#[derive(Debug, PartialEq, Eq)]
pub struct Piece {
    pub text: String,
    pub mark: bool,
}

/// `text` cut around each occurrence of `q` (none when `q` is empty).
fn pieces(text: &str, q: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    if q.is_empty() {
        out.push(Piece {
            text: text.to_owned(),
            mark: false,
        });
        return out;
    }
    let mut rest = text;
    while let Some(at) = rest.find(q) {
        if at > 0 {
            out.push(Piece {
                text: rest[..at].to_owned(),
                mark: false,
            });
        }
        out.push(Piece {
            text: q.to_owned(),
            mark: true,
        });
        rest = &rest[at + q.len()..];
    }
    if !rest.is_empty() || out.is_empty() {
        out.push(Piece {
            text: rest.to_owned(),
            mark: false,
        });
    }
    out
}

/// One rendered line.
pub struct Row {
    pub id: String,
    pub stream: &'static str,
    /// RFC 3339, for `<time datetime>`.
    pub at: String,
    /// What is shown: the time of day in UTC, to the millisecond.
    pub clock: String,
    pub pieces: Vec<Piece>,
    pub matched: bool,
    pub hidden: bool,
}

impl Row {
    fn new(line: LineView, view: &View) -> Self {
        let stream = match line.stream {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        };
        let pieces = pieces(&line.text, &view.q);
        Self {
            matched: pieces.iter().any(|p| p.mark),
            hidden: !view.shows(stream, &line.text),
            id: line.id,
            stream,
            at: line.timestamp.to_rfc3339(),
            clock: line.timestamp.format("%H:%M:%S%.3f").to_string(),
            pieces,
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "logs/page.html")]
pub struct LogsPage {
    layout: Layout,
    id: String,
    subdomain: String,
    /// Viewing another user's instance (an admin).
    as_admin: bool,
    view: View,
    rows: Vec<Row>,
    shown: usize,
    /// The last line's cursor: the stream starts after it.
    after: Option<String>,
    download: String,
}

async fn page(
    State(state): State<AppState>,
    Member(caller): Member,
    Path(raw): Path<String>,
    headers: HeaderMap,
    Query(q): Query<ViewQuery>,
) -> Result<LogsPage, WebError> {
    let tenant = visible_tenant(&state, &caller, &raw).await?;
    let view = View::of(&q);
    let lines = recent_lines(&state, &tenant, SNAPSHOT_LINES).await?;
    let after = lines.last().map(|l| l.id.clone());
    let rows: Vec<Row> = lines.into_iter().map(|l| Row::new(l, &view)).collect();
    let as_admin = tenant.user_id != caller.user.id;
    let section = if as_admin {
        Section::Admin
    } else {
        Section::Dashboard
    };
    let id = tenant.id.to_string();
    Ok(LogsPage {
        layout: Layout::member(format!("Logs of {}", tenant.subdomain), section, &caller)
            .with_notice(&headers),
        download: view.download_url(&id),
        shown: rows.iter().filter(|r| !r.hidden).count(),
        id,
        subdomain: tenant.subdomain,
        as_admin,
        view,
        rows,
        after,
    })
}

#[derive(Debug, Default, Deserialize)]
pub struct StreamQuery {
    /// Resume after this cursor (the page's last line, or the script's last
    /// line when it reconnects by itself).
    after: Option<String>,
}

/// The followed log. `Last-Event-ID` (the browser's own reconnect) wins over
/// `after`, which the reconnecting browser repeats from the first URL.
async fn stream(
    State(state): State<AppState>,
    Member(caller): Member,
    Path(raw): Path<String>,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> Result<Response, WebError> {
    let tenant = visible_tenant(&state, &caller, &raw).await?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(Cursor::parse)
        .or_else(|| q.after.as_deref().and_then(Cursor::parse));
    Ok(follow_all(&state, &caller, &headers, &tenant, resume)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(query: &str) -> View {
        let uri: axum::http::Uri = format!("/x?{query}").parse().unwrap();
        View::of(&Query::<ViewQuery>::try_from_uri(&uri).unwrap().0)
    }

    #[test]
    fn a_first_visit_shows_everything_with_timestamps_and_the_form_can_turn_them_off() {
        let first = view("");
        assert_eq!(first.stream, "all");
        assert!(first.timestamps && first.only_matching);
        let off = view("applied=1&stream=stderr&q=boom");
        assert!(!off.timestamps && !off.only_matching);
        assert!(off.shows("stderr", "no match: only highlighted"));
        assert!(!off.shows("stdout", "boom"));
        let only = view("applied=1&only=on&q=boom&stream=nonsense");
        assert_eq!(only.stream, "all");
        assert!(only.shows("stdout", "a boom") && !only.shows("stdout", "quiet"));
    }

    #[test]
    fn matches_are_cut_out_for_highlighting() {
        let got = pieces("a-x-b-x", "x");
        let marks: Vec<(&str, bool)> = got.iter().map(|p| (p.text.as_str(), p.mark)).collect();
        assert_eq!(
            marks,
            vec![("a-", false), ("x", true), ("-b-", false), ("x", true)]
        );
        assert_eq!(pieces("", "x").len(), 1);
        assert_eq!(pieces("abc", "").len(), 1);
    }

    #[test]
    fn the_download_is_the_api_text_export_of_the_same_lines() {
        let url = view("applied=1&stream=stderr&q=a+b&only=on").download_url("abc");
        assert_eq!(
            url,
            "/api/v1/tenants/abc/logs?format=text&tail=100000&timestamps=false&stream=stderr&q=a%20b"
        );
    }
}
