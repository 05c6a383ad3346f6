//! Reading Server-Sent Events from a streaming response with the CLI's parser
//! (`fresco_platform::cli::sse`), so tests read every stream by the same WHATWG
//! rules as `logs -f`: chunks split anywhere, LF, CRLF or CR line ends.

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use serde_json::Value;

use fresco_platform::cli::sse::{SseEvent, SseParser};

/// One Server-Sent Event.
#[derive(Debug, Clone, Default)]
pub struct Sse {
    pub event: String,
    /// The last `id:` of the stream, at or before this event (what a client sends
    /// back as `Last-Event-ID`).
    pub id: Option<String>,
    pub data: String,
}

impl Sse {
    /// The data as JSON; null when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or(Value::Null)
    }
}

impl From<SseEvent> for Sse {
    fn from(e: SseEvent) -> Self {
        Self {
            event: e.event,
            id: e.id,
            data: e.data,
        }
    }
}

/// Reads Server-Sent Events from a streaming response.
pub struct SseReader {
    body: Pin<Box<dyn Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    parser: SseParser,
    /// Events parsed from chunks already read, not yet handed out.
    ready: VecDeque<Sse>,
}

impl SseReader {
    pub fn new(response: reqwest::Response) -> Self {
        Self {
            body: Box::pin(response.bytes_stream()),
            parser: SseParser::default(),
            ready: VecDeque::new(),
        }
    }

    /// The next event (comments skipped), or None when the stream ends or
    /// nothing arrives within `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<Sse> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some(event);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match tokio::time::timeout(left, self.body.next()).await {
                Ok(Some(Ok(chunk))) => self
                    .ready
                    .extend(self.parser.feed(&chunk).into_iter().map(Sse::from)),
                _ => return None,
            }
        }
    }

    /// Reads for `duration`, or until the stream ends: the events that arrived,
    /// and whether the server ended the stream.
    pub async fn read_for(&mut self, duration: Duration) -> (Vec<Sse>, bool) {
        let deadline = Instant::now() + duration;
        let mut seen: Vec<Sse> = self.ready.drain(..).collect();
        loop {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return (seen, false);
            };
            match tokio::time::timeout(left, self.body.next()).await {
                Ok(Some(Ok(chunk))) => {
                    seen.extend(self.parser.feed(&chunk).into_iter().map(Sse::from))
                }
                Ok(Some(Err(_)) | None) => return (seen, true),
                Err(_) => return (seen, false),
            }
        }
    }
}
