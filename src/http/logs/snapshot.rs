//! A container's output without follow, written to the client while it is read
//! from Docker, a batch of lines at a time. Collecting it first held up to
//! `MAX_LINES` lines twice (as lines, then as the rendered body: 140 MB of peak
//! memory for a 70 MB answer); streaming keeps the same cap and the same bytes
//! (`Json(LogsView)`, JSON Lines, the text download) for a few buffers' worth.
//! A lower cap would have broken `tail` requests that work today. The status is
//! settled by the first line: an engine failure before it is a 500 as before;
//! one after it cuts the body short, which clients see as a broken response.

use std::io;

use axum::body::{Body, Bytes};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use futures::{stream, Stream, StreamExt, TryStreamExt};

use super::cursor::{Cursor, Filter, Numbering};
use super::{LineView, LogsQuery, DEFAULT_TAIL, MAX_LINES};
use crate::domain::TenantId;
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::provision::runtime::{LogLine, LogRequest};
use crate::provision::RuntimeError;

/// Lines encoded into one chunk of the body, when Docker has that many ready.
const BATCH: usize = 256;

/// How the lines are written: JSON (`{"data":[…]}`), JSON Lines, or text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Ndjson,
    Text { timestamps: bool },
}

impl Format {
    pub fn of(q: &LogsQuery) -> Result<Self, ApiError> {
        match q.format.as_deref().unwrap_or("json") {
            "json" => Ok(Self::Json),
            "ndjson" => Ok(Self::Ndjson),
            "text" => Ok(Self::Text {
                timestamps: q.timestamps.unwrap_or(false),
            }),
            _ => Err(ApiError::validation(
                "format",
                "one_of",
                "format must be json, ndjson or text",
            )),
        }
    }

    fn head(self) -> &'static [u8] {
        match self {
            Self::Json => b"{\"data\":[",
            _ => b"",
        }
    }

    fn tail(self) -> &'static [u8] {
        match self {
            Self::Json => b"]}",
            _ => b"",
        }
    }

    /// Appends one line; `first` says whether it is the first of the answer.
    fn line(self, line: &LineView, first: bool, out: &mut Vec<u8>) {
        match self {
            Self::Json => {
                if !first {
                    out.push(b',');
                }
                // A LineView has no map with non-string keys: it always serializes.
                let _ = serde_json::to_writer(&mut *out, line);
            }
            Self::Ndjson => {
                let _ = serde_json::to_writer(&mut *out, line);
                out.push(b'\n');
            }
            Self::Text { timestamps: true } => {
                let stamped = format!("{} {}\n", line.timestamp.to_rfc3339(), line.text);
                out.extend_from_slice(stamped.as_bytes());
            }
            Self::Text { timestamps: false } => {
                out.extend_from_slice(line.text.as_bytes());
                out.push(b'\n');
            }
        }
    }
}

/// The lines available now (at most `MAX_LINES`; the last `DEFAULT_TAIL` unless
/// the query says otherwise), streamed in `format`.
pub async fn respond(
    state: &AppState,
    id: TenantId,
    request: LogRequest,
    filter: Filter,
    resume: Option<Cursor>,
    format: Format,
    subdomain: &str,
) -> Result<Response, ApiError> {
    let request = LogRequest {
        tail: request.tail.or(Some(DEFAULT_TAIL)),
        ..request
    };
    let mut lines = kept(state.runtime.logs(id, request), resume, filter).boxed();
    let first = match lines.next().await {
        Some(Err(e)) => return Err(ApiError::Internal(e.to_string())),
        first => first,
    };
    let mut written = 0usize;
    let body = stream::iter(first)
        .chain(lines)
        .ready_chunks(BATCH)
        .map(move |batch| {
            let mut out = Vec::new();
            for item in batch {
                let line = item.map_err(|e| {
                    tracing::warn!(error = %e, "reading logs failed mid-answer");
                    io::Error::other("reading the container's logs failed")
                })?;
                format.line(&line, written == 0, &mut out);
                written += 1;
            }
            Ok::<_, io::Error>(Bytes::from(out))
        });
    let head = stream::once(async move { Ok(Bytes::from_static(format.head())) });
    let tail = stream::once(async move { Ok(Bytes::from_static(format.tail())) });
    let mut response = Body::from_stream(head.chain(body).chain(tail)).into_response();
    let headers = response.headers_mut();
    let content_type = match format {
        Format::Json => "application/json",
        Format::Ndjson => "application/x-ndjson",
        Format::Text { .. } => "text/plain; charset=utf-8",
    };
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Format::Text { .. } = format {
        let filename = format!("{subdomain}-{}.log", Utc::now().format("%Y%m%dT%H%M%SZ"));
        let disposition = format!("attachment; filename=\"{filename}\"");
        if let Ok(value) = HeaderValue::from_str(&disposition) {
            headers.insert(CONTENT_DISPOSITION, value);
        }
    }
    Ok(response)
}

/// The lines available now, collected (for a page that renders them).
pub async fn collect(
    state: &AppState,
    id: TenantId,
    request: LogRequest,
    filter: Filter,
) -> Result<Vec<LineView>, RuntimeError> {
    let request = LogRequest {
        tail: request.tail.or(Some(DEFAULT_TAIL)),
        ..request
    };
    kept(state.runtime.logs(id, request), None, filter)
        .try_collect()
        .await
}

/// The lines past the resume point that the filter keeps, at most `MAX_LINES`.
fn kept(
    source: impl Stream<Item = Result<LogLine, RuntimeError>>,
    resume: Option<Cursor>,
    filter: Filter,
) -> impl Stream<Item = Result<LineView, RuntimeError>> {
    let mut numbering = Numbering::new(resume);
    source
        .filter_map(move |item| {
            let kept = match item {
                Ok(line) => numbering
                    .number(&line)
                    .filter(|_| filter.keeps(&line))
                    .map(|cursor| Ok(view(line, cursor))),
                Err(e) => Some(Err(e)),
            };
            futures::future::ready(kept)
        })
        .take(MAX_LINES as usize)
}

fn view(line: LogLine, cursor: Cursor) -> LineView {
    LineView {
        id: cursor.encode(),
        timestamp: line.timestamp,
        stream: line.stream,
        text: line.text,
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;
    use crate::http::logs::LogsView;
    use crate::provision::runtime::LogStream;

    fn lines() -> Vec<LineView> {
        [
            "plain",
            "with \"quotes\" and \\ and \u{e9}",
            "tab\there",
            "",
        ]
        .iter()
        .enumerate()
        .map(|(i, text)| LineView {
            id: format!("{i}-0"),
            timestamp: DateTime::from_timestamp_nanos(1_700_000_000_123_456_789 + i as i64),
            stream: if i % 2 == 0 {
                LogStream::Stdout
            } else {
                LogStream::Stderr
            },
            text: (*text).to_owned(),
        })
        .collect()
    }

    fn encode(format: Format, lines: &[LineView]) -> Vec<u8> {
        let mut out = format.head().to_vec();
        for (i, line) in lines.iter().enumerate() {
            format.line(line, i == 0, &mut out);
        }
        out.extend_from_slice(format.tail());
        out
    }

    #[test]
    fn streamed_answers_are_byte_for_byte_the_collected_ones() {
        for lines in [lines(), vec![]] {
            let collected = serde_json::to_vec(&LogsView {
                data: lines.clone(),
            })
            .unwrap();
            assert_eq!(encode(Format::Json, &lines), collected);
            let ndjson: String = lines
                .iter()
                .map(|l| serde_json::to_string(l).unwrap() + "\n")
                .collect();
            assert_eq!(encode(Format::Ndjson, &lines), ndjson.into_bytes());
            let stamped: String = lines
                .iter()
                .map(|l| format!("{} {}\n", l.timestamp.to_rfc3339(), l.text))
                .collect();
            let text = Format::Text { timestamps: true };
            assert_eq!(encode(text, &lines), stamped.into_bytes());
            let plain: String = lines.iter().map(|l| format!("{}\n", l.text)).collect();
            let text = Format::Text { timestamps: false };
            assert_eq!(encode(text, &lines), plain.into_bytes());
        }
    }
}
