//! How a command fails: `Failure` (with its exit code), the API's error envelope
//! turned into a message, and writing output, where a closed pipe ends the command
//! quietly instead of failing it.

use std::fmt;
use std::io::Write;

use reqwest::header::RETRY_AFTER;
use reqwest::{Response, StatusCode};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub(super) enum Failure {
    /// The command line or the configuration is wrong (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The API answered with an error (exit 1).
    #[error("{0}")]
    Api(ApiFailure),
    /// The API could not be reached, answered something unexpected, or a tenant
    /// reference matched nothing (exit 1).
    #[error("{0}")]
    Failed(String),
    /// Whoever reads our stdout has gone (`… | head`): stop quietly.
    #[error("output closed")]
    OutputClosed,
}

impl Failure {
    pub(super) fn exit_code(&self) -> i32 {
        match self {
            Self::Usage(_) => 2,
            Self::OutputClosed => 0,
            Self::Api(_) | Self::Failed(_) => 1,
        }
    }
}

/// A non-2xx answer, from the envelope `{"error":{"code","message"},"meta":{"requestId"}}`.
#[derive(Debug)]
pub(super) struct ApiFailure {
    status: StatusCode,
    code: Option<String>,
    message: String,
    request_id: Option<String>,
    retry_after: Option<String>,
}

impl ApiFailure {
    pub(super) async fn from_response(resp: Response) -> Self {
        let status = resp.status();
        let header = |name| {
            resp.headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let header_request_id = header("x-request-id");
        let retry_after = header(RETRY_AFTER.as_str());
        let text = resp.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let message = match body["error"]["message"].as_str() {
            Some(m) => m.to_owned(),
            // Not the platform's envelope (a proxy in between, say): show a bit of it.
            None if !text.trim().is_empty() => text.trim().chars().take(200).collect(),
            None => status
                .canonical_reason()
                .unwrap_or("request failed")
                .to_lowercase(),
        };
        Self {
            status,
            code: body["error"]["code"].as_str().map(str::to_owned),
            message,
            request_id: body["meta"]["requestId"]
                .as_str()
                .map(str::to_owned)
                .or(header_request_id),
            retry_after,
        }
    }
}

impl fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [", self.message)?;
        if let Some(code) = &self.code {
            write!(f, "{code}, ")?;
        }
        write!(f, "HTTP {}", self.status.as_u16())?;
        if let Some(id) = &self.request_id {
            write!(f, ", request id {id}")?;
        }
        write!(f, "]")?;
        if let Some(secs) = &self.retry_after {
            write!(f, "; retry after {secs} s")?;
        }
        Ok(())
    }
}

/// The innermost cause of a transport error ("Connection refused", "operation timed out").
pub(super) fn cause(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".to_owned();
    }
    let mut inner: &dyn std::error::Error = e;
    while let Some(next) = inner.source() {
        inner = next;
    }
    inner.to_string()
}

fn write_line(mut to: impl Write, line: &str) -> Result<(), Failure> {
    writeln!(to, "{line}").map_err(|e| match e.kind() {
        std::io::ErrorKind::BrokenPipe => Failure::OutputClosed,
        _ => Failure::Failed(format!("cannot write output: {e}")),
    })
}

pub(super) fn out(line: &str) -> Result<(), Failure> {
    write_line(std::io::stdout().lock(), line)
}

pub(super) fn err(line: &str) -> Result<(), Failure> {
    write_line(std::io::stderr().lock(), line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_failure_names_code_status_and_request_id() {
        let failure = ApiFailure {
            status: StatusCode::UNAUTHORIZED,
            code: Some("unauthorized".to_owned()),
            message: "send a valid API key".to_owned(),
            request_id: Some("r-1".to_owned()),
            retry_after: None,
        };
        assert_eq!(
            failure.to_string(),
            "send a valid API key [unauthorized, HTTP 401, request id r-1]"
        );
    }
}
