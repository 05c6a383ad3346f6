//! `fresco-platform logs`: one request for past lines, or a followed stream of
//! Server-Sent Events that resumes with `Last-Event-ID` when the connection drops.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Method, Response};
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::{list_items, resolve, Api};
use super::failure::{cause, err, out, ApiFailure, Failure};
use super::sse::{SseEvent, SseParser};
use super::LogsArgs;

/// Reconnects in a row, without an event in between, before `logs -f` gives up.
const MAX_RECONNECTS: u32 = 5;
/// A connection that lasted this long counts as working, events or not (a quiet
/// container behind a proxy that cuts long requests).
const STABLE_CONNECTION: Duration = Duration::from_secs(30);
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Past lines in one answer, or with `-f` a stream followed until it ends.
pub(super) async fn run(args: &LogsArgs) -> Result<(), Failure> {
    let api = args.client.connect()?;
    let tenant = resolve(&api, &args.tenant).await?;
    let path = tenant.path("/logs");
    let query = log_query(args);
    if args.follow {
        return follow(&api, &path, &query, args.timestamps).await;
    }
    let (text, body) = api.get(&path, &query).await?;
    if api.json {
        return api.print_raw(&text);
    }
    for item in list_items(&body)? {
        let line: LogLine = serde_json::from_value(item.clone())
            .map_err(|e| Failure::Failed(format!("unexpected log line from the platform ({e})")))?;
        print_log_line(&line, args.timestamps)?;
    }
    Ok(())
}

fn log_query(args: &LogsArgs) -> Vec<(&'static str, String)> {
    let stream = match (args.stdout, args.stderr) {
        (true, false) => "stdout",
        (false, true) => "stderr",
        _ => "all",
    };
    let moment = |t: &DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::AutoSi, true);
    let mut query = vec![("stream", stream.to_owned())];
    if let Some(n) = args.tail {
        query.push(("tail", n.to_string()));
    }
    if let Some(t) = &args.since {
        query.push(("since", moment(t)));
    }
    if let Some(t) = &args.until {
        query.push(("until", moment(t)));
    }
    if args.timestamps {
        query.push(("timestamps", "true".to_owned()));
    }
    if let Some(text) = &args.grep {
        query.push(("q", text.clone()));
    }
    if args.follow {
        query.push(("follow", "true".to_owned()));
    }
    query
}

#[derive(Debug, Deserialize)]
struct LogLine {
    #[serde(default)]
    timestamp: Option<String>,
    stream: String,
    text: String,
}

/// stdout lines to our stdout, stderr lines to our stderr, like `docker logs`.
fn print_log_line(line: &LogLine, timestamps: bool) -> Result<(), Failure> {
    let text = line.text.strip_suffix('\n').unwrap_or(&line.text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    let rendered = match (&line.timestamp, timestamps) {
        (Some(ts), true) => format!("{ts} {text}"),
        _ => text.to_owned(),
    };
    if line.stream == "stderr" {
        err(&rendered)
    } else {
        out(&rendered)
    }
}

/// How one connection of a followed stream ended.
enum StreamEnd {
    /// The server sent `end`: the container is gone or stopped.
    Finished,
    /// The connection broke; resume from the last event.
    Dropped(String),
}

struct FollowState {
    /// Cursor of the last event printed, sent back as `Last-Event-ID`.
    last_id: Option<String>,
    /// Failed connections since the stream last made progress.
    failures: u32,
    /// Reconnection delay asked for by the server (`retry:`).
    retry: Option<Duration>,
    timestamps: bool,
    json: bool,
}

async fn follow(
    api: &Api,
    path: &str,
    query: &[(&'static str, String)],
    timestamps: bool,
) -> Result<(), Failure> {
    let mut state = FollowState {
        last_id: None,
        failures: 0,
        retry: None,
        timestamps,
        json: api.json,
    };
    let mut connected = false;
    loop {
        // No time limit: a quiet container may not write for hours.
        let mut request = api
            .request(Method::GET, path)
            .query(query)
            .header(ACCEPT, "text/event-stream");
        if let Some(id) = &state.last_id {
            request = request.header("Last-Event-ID", id);
        }
        let opened = std::time::Instant::now();
        let end = match request.send().await {
            Ok(resp) if resp.status().is_success() => {
                connected = true;
                let end = read_events(resp, &mut state).await?;
                if opened.elapsed() >= STABLE_CONNECTION {
                    state.failures = 0;
                }
                end
            }
            // Only once the stream has worked is a failure worth retrying: at first it
            // means a wrong URL or a server that is down, and the user should know now.
            Ok(resp) if connected && resp.status().is_server_error() => {
                StreamEnd::Dropped(format!("HTTP {}", resp.status().as_u16()))
            }
            Ok(resp) => return Err(Failure::Api(ApiFailure::from_response(resp).await)),
            Err(e) if connected => StreamEnd::Dropped(cause(&e)),
            Err(e) => return Err(api.unreachable(&e)),
        };
        let reason = match end {
            StreamEnd::Finished => return Ok(()),
            StreamEnd::Dropped(reason) => reason,
        };
        if state.failures >= MAX_RECONNECTS {
            return Err(Failure::Failed(format!(
                "the log stream broke ({reason}) and {MAX_RECONNECTS} reconnects failed"
            )));
        }
        state.failures += 1;
        let delay = state.retry.unwrap_or_else(|| {
            FIRST_BACKOFF
                .saturating_mul(1 << (state.failures - 1))
                .min(MAX_BACKOFF)
        });
        err(&format!(
            "-- connection lost ({reason}); reconnecting ({}/{MAX_RECONNECTS})",
            state.failures
        ))?;
        tokio::time::sleep(delay).await;
    }
}

async fn read_events(resp: Response, state: &mut FollowState) -> Result<StreamEnd, Failure> {
    let content_type = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if !content_type.starts_with("text/event-stream") {
        return Err(Failure::Failed(format!(
            "expected an event stream from the platform, got {content_type:?}"
        )));
    }
    // A fresh parser per connection: half an event from a broken one is dropped, and
    // the server resends it after `Last-Event-ID`.
    let mut parser = SseParser::default();
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => return Ok(StreamEnd::Dropped(cause(&e))),
        };
        for event in parser.feed(&chunk) {
            // An `error` event is the server giving up on this connection: no progress.
            if event.event != "error" {
                state.failures = 0;
            }
            if let Some(id) = &event.id {
                state.last_id = Some(id.clone());
            }
            if let Some(message) = access_ended(&event) {
                return Err(Failure::Failed(message));
            }
            if handle_event(&event, state)? {
                return Ok(StreamEnd::Finished);
            }
        }
        if let Some(ms) = parser.retry_ms() {
            state.retry = Some(Duration::from_millis(ms).min(MAX_BACKOFF));
        }
    }
    Ok(StreamEnd::Dropped(
        "the server closed the stream".to_owned(),
    ))
}

/// The server's message when it ended the stream because this client lost access
/// (signed out, key revoked): a failure of the command, not the container's end.
fn access_ended(event: &SseEvent) -> Option<String> {
    let data: Value = serde_json::from_str(&event.data).ok()?;
    (event.event == "end" && data["reason"] == "unauthorized").then(|| {
        let message = data["message"].as_str().unwrap_or("access ended");
        format!("the platform ended the stream: {message}")
    })
}

/// Prints one event; true when it ends the stream.
fn handle_event(event: &SseEvent, state: &FollowState) -> Result<bool, Failure> {
    let data: Value = match serde_json::from_str(&event.data) {
        Ok(data) => data,
        Err(_) => {
            err(&format!("-- skipped an unreadable {:?} event", event.event))?;
            return Ok(false);
        }
    };
    let ends = event.event == "end";
    if state.json {
        // The event's own JSON, with its name and cursor so a script can tell them apart.
        let mut value = match data {
            Value::Object(map) => Value::Object(map),
            other => json!({ "data": other }),
        };
        if let Value::Object(map) = &mut value {
            map.insert("event".to_owned(), Value::String(event.event.clone()));
            if let Some(id) = &event.id {
                map.insert("id".to_owned(), Value::String(id.clone()));
            }
        }
        out(&value.to_string())?;
        return Ok(ends);
    }
    match event.event.as_str() {
        "line" => match serde_json::from_value::<LogLine>(data) {
            Ok(line) => print_log_line(&line, state.timestamps)?,
            Err(e) => err(&format!("-- skipped an unreadable log line ({e})"))?,
        },
        "restart" | "end" | "error" => {
            let message = data["message"]
                .as_str()
                .or(data["reason"].as_str())
                .unwrap_or(event.event.as_str());
            err(&format!("-- {message}"))?;
        }
        // Events this client does not know are left out rather than guessed at.
        _ => {}
    }
    Ok(ends)
}
