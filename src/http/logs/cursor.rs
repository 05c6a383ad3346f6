//! Positions in a container's output: cursors that survive a reconnect
//! (`Last-Event-ID`), the numbering that drops lines already delivered, and the
//! reader's filter.

use chrono::{DateTime, Utc};

use crate::provision::runtime::LogLine;

/// Where a reader is in a container's output: the last line's timestamp and how
/// many earlier lines share it (one write of several lines shares a timestamp).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub nanos: i64,
    pub seq: u32,
}

impl Cursor {
    pub fn encode(&self) -> String {
        format!("{}-{}", self.nanos, self.seq)
    }

    pub fn parse(raw: &str) -> Option<Self> {
        let (nanos, seq) = raw.trim().split_once('-')?;
        Some(Self {
            nanos: nanos.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }

    pub fn time(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_nanos(self.nanos)
    }
}

/// Numbers lines by timestamp and drops the ones at or before a resume point.
pub struct Numbering {
    pub last: Option<Cursor>,
    after: Option<Cursor>,
}

impl Numbering {
    pub fn new(after: Option<Cursor>) -> Self {
        Self { last: None, after }
    }

    /// The line's cursor, or None when it was already delivered.
    pub fn number(&mut self, line: &LogLine) -> Option<Cursor> {
        let nanos = line.timestamp.timestamp_nanos_opt().unwrap_or(i64::MAX);
        let seq = match self.last {
            Some(c) if c.nanos == nanos => c.seq + 1,
            _ => 0,
        };
        let cursor = Cursor { nanos, seq };
        self.last = Some(cursor);
        match self.after {
            Some(a) if (cursor.nanos, cursor.seq) <= (a.nanos, a.seq) => None,
            _ => Some(cursor),
        }
    }
}

/// What a reader asked to see of the lines Docker sends.
pub struct Filter {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub q: Option<String>,
}

impl Filter {
    pub fn keeps(&self, line: &LogLine) -> bool {
        self.since.is_none_or(|s| line.timestamp >= s)
            && self.until.is_none_or(|u| line.timestamp <= u)
            && self.q.as_deref().is_none_or(|q| line.text.contains(q))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provision::runtime::LogStream;

    fn line(nanos: i64) -> LogLine {
        LogLine {
            timestamp: DateTime::from_timestamp_nanos(nanos),
            stream: LogStream::Stdout,
            text: String::new(),
        }
    }

    #[test]
    fn numbering_resumes_after_the_cursor_even_within_one_timestamp() {
        let mut first = Numbering::new(None);
        let cursors: Vec<Cursor> = [10, 20, 20, 20, 30]
            .iter()
            .map(|n| first.number(&line(*n)).unwrap())
            .collect();
        assert_eq!(cursors[2], Cursor { nanos: 20, seq: 1 });
        // Resume after the second line stamped 20: the third 20 and the 30 remain.
        let mut again = Numbering::new(Some(cursors[2]));
        let kept: Vec<Cursor> = [10, 20, 20, 20, 30]
            .iter()
            .filter_map(|n| again.number(&line(*n)))
            .collect();
        assert_eq!(kept, vec![cursors[3], cursors[4]]);
        assert_eq!(Cursor::parse(&cursors[3].encode()), Some(cursors[3]));
    }
}
