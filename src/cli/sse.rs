//! A parser of `text/event-stream` following the WHATWG rules, fed bytes as they
//! arrive. `logs -f` reads the platform's log stream with it; the integration
//! tests read every event stream of the API with it too.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    /// `message` when the stream names none.
    pub event: String,
    /// The data lines, joined with newlines.
    pub data: String,
    /// The last `id:` seen on this connection, at or before this event.
    pub id: Option<String>,
}

/// An incremental parser of `text/event-stream` (the WHATWG rules): bytes may arrive
/// split anywhere, lines end in LF, CRLF or CR, a blank line dispatches.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    /// The last byte was CR: an LF right after it belongs to the same line end.
    after_cr: bool,
    started: bool,
    event: String,
    data: String,
    id: Option<String>,
    retry_ms: Option<u64>,
}

impl SseParser {
    /// The events the bytes complete, in order; a partial event waits for more.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut bytes = bytes;
        if !self.started && !bytes.is_empty() {
            self.started = true;
            bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        }
        let mut events = Vec::new();
        for &b in bytes {
            if std::mem::take(&mut self.after_cr) && b == b'\n' {
                continue;
            }
            match b {
                b'\n' => self.end_line(&mut events),
                b'\r' => {
                    self.after_cr = true;
                    self.end_line(&mut events);
                }
                _ => self.line.push(b),
            }
        }
        events
    }

    /// The reconnection delay the server asked for (`retry:`), if any.
    pub fn retry_ms(&self) -> Option<u64> {
        self.retry_ms
    }

    fn end_line(&mut self, events: &mut Vec<SseEvent>) {
        let raw = std::mem::take(&mut self.line);
        let line = String::from_utf8_lossy(&raw);
        if line.is_empty() {
            self.dispatch(events);
            return;
        }
        if line.starts_with(':') {
            return; // a comment: keepalive
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "event" => self.event = value.to_owned(),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            "id" if !value.contains('\0') => {
                self.id = (!value.is_empty()).then(|| value.to_owned());
            }
            "retry" => {
                if let Ok(ms) = value.parse() {
                    self.retry_ms = Some(ms);
                }
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, events: &mut Vec<SseEvent>) {
        let event = std::mem::take(&mut self.event);
        let mut data = std::mem::take(&mut self.data);
        if data.is_empty() {
            return;
        }
        data.pop(); // the newline after the last data line
        events.push(SseEvent {
            event: if event.is_empty() {
                "message".to_owned()
            } else {
                event
            },
            data,
            id: self.id.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event: &str, data: &str, id: Option<&str>) -> SseEvent {
        SseEvent {
            event: event.to_owned(),
            data: data.to_owned(),
            id: id.map(str::to_owned),
        }
    }

    #[test]
    fn sse_events_split_anywhere_across_chunks_come_out_whole() {
        let stream = b": keepalive\n\nevent: line\nid: c1\ndata: {\"text\":\"a\"}\n\n\
                       event: end\ndata: {\"reason\":\"stopped\"}\n\n";
        let expected = vec![
            event("line", "{\"text\":\"a\"}", Some("c1")),
            event("end", "{\"reason\":\"stopped\"}", Some("c1")),
        ];
        for size in 1..stream.len() {
            let mut parser = SseParser::default();
            let got: Vec<_> = stream
                .chunks(size)
                .flat_map(|chunk| parser.feed(chunk))
                .collect();
            assert_eq!(got, expected, "chunk size {size}");
        }
    }

    #[test]
    fn sse_multiple_data_lines_join_with_newlines_and_crlf_works() {
        let mut parser = SseParser::default();
        let mut got = parser.feed(b"data: one\r\ndata:two\r");
        assert!(got.is_empty());
        got.extend(parser.feed(b"\n\r\n"));
        assert_eq!(got, vec![event("message", "one\ntwo", None)]);
    }

    #[test]
    fn sse_event_without_blank_line_is_not_dispatched() {
        let mut parser = SseParser::default();
        assert!(parser.feed(b"event: line\nid: c9\ndata: {}\n").is_empty());
        // A comment-only block or an event with no data dispatches nothing either.
        let mut parser = SseParser::default();
        assert!(parser.feed(b":ping\n\nevent: restart\n\n").is_empty());
    }

    #[test]
    fn sse_retry_and_empty_id() {
        let mut parser = SseParser::default();
        let got = parser.feed(b"retry: 1500\nid: a\ndata: x\n\nid\ndata: y\n\n");
        assert_eq!(parser.retry_ms(), Some(1500));
        assert_eq!(
            got,
            vec![
                event("message", "x", Some("a")),
                event("message", "y", None)
            ]
        );
    }
}
