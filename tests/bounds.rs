//! Every request has a bound: a body over 64 KiB is a 413, a path and query over
//! 8 KiB a 414, headers over 32 KiB a 431, each with the error envelope; past
//! hyper's own limits the client still gets a status, not a reset. Text that
//! Postgres cannot store (a NUL) is a 422, not a server error.

mod common;

use std::io::{Read, Write};

use common::{Options, Platform};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The answer's status, its error code and whether it carries the request id.
async fn refusal(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    let body: Value = response.json().await.expect("an error envelope");
    assert!(
        body["meta"]["requestId"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{body}"
    );
    (
        status,
        body["error"]["code"].as_str().unwrap_or("").to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_uris_and_headers_get_414_and_431_and_bodies_within_bounds_pass() {
    let p = Platform::start(Options::default()).await;

    // A body just under the bound is read (and judged on its content).
    let fits = p
        .http
        .post(p.url("/api/v1/auth/password-strength"))
        .json(&json!({ "password": "a".repeat(60 * 1024) }))
        .send()
        .await
        .unwrap();
    assert_ne!(fits.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let long_query = p
        .http
        .get(p.url(&format!("/api/v1/tenants?search={}", "q".repeat(9 * 1024))))
        .bearer_auth(&p.key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        refusal(long_query).await,
        (StatusCode::URI_TOO_LONG, "uri_too_long".into())
    );

    let fat_headers = p
        .http
        .get(p.url("/api/health"))
        .header("x-filler", "h".repeat(40 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(
        refusal(fat_headers).await,
        (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large".into()
        )
    );

    // Ordinary requests are untouched.
    let (status, _) = p
        .request(reqwest::Method::GET, "/api/v1/tenants?search=abc", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    p.cleanup().await;
}

/// Sends a whole request on a fresh connection, even if the server answers and
/// closes before reading all of it (as it does for an oversized body, which
/// an HTTP client library reports as a broken pipe instead of the answer), and
/// returns the status code and the JSON body.
fn exchange(addr: &str, request: &[u8]) -> (u16, Value) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no answer: {answer:?}"));
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_413_whether_declared_or_chunked() {
    let p = Platform::start(Options::default()).await;
    let addr = p.base.trim_start_matches("http://").to_owned();
    let body = format!(
        r#"{{"email":"a@example.org","password":"{}"}}"#,
        "a".repeat(100 * 1024)
    );
    // A declared length over the bound: refused before anything reads the body.
    let declared = [
        format!(
            "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
        body.as_bytes(),
    ]
    .concat();
    // A chunked body (no length) is cut at the same size while it is read.
    let chunked = [
        "POST /api/v1/wizard/sessions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            .as_bytes(),
        body.as_bytes()
            .chunks(8 * 1024)
            .flat_map(|c| {
                [
                    format!("{:x}\r\n", c.len()).into_bytes(),
                    c.to_vec(),
                    b"\r\n".to_vec(),
                ]
            })
            .flatten()
            .collect::<Vec<u8>>()
            .as_slice(),
        b"0\r\n\r\n",
    ]
    .concat();
    let answers = tokio::task::spawn_blocking(move || {
        [exchange(&addr, &declared), exchange(&addr, &chunked)]
    })
    .await
    .unwrap();
    for (status, body) in answers {
        assert_eq!(status, 413, "{body}");
        assert_eq!(body["error"]["code"], "payload_too_large", "{body}");
        assert!(body["meta"]["requestId"].is_string(), "{body}");
    }
    p.cleanup().await;
}

/// Sends `head` on a fresh connection and returns the status line it gets back.
fn status_line(addr: &str, head: &[u8]) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    stream.write_all(head).expect("the server reads the head");
    let mut answer = [0u8; 64];
    let n = stream.read(&mut answer).expect("an answer, not a reset");
    String::from_utf8_lossy(&answer[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_hypers_own_limits_get_a_status_not_a_reset() {
    let p = Platform::start(Options::default()).await;
    let addr = p.base.trim_start_matches("http://").to_owned();
    // hyper reads at most about 400 KiB of request head and 100 headers, and
    // answers beyond that itself (without our envelope, closing the connection).
    let huge_header = [
        b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Filler: ".as_slice(),
        &vec![b'x'; 600 * 1024],
        b"\r\n\r\n",
    ]
    .concat();
    let many_headers: String = (0..120).map(|i| format!("X-H{i}: v\r\n")).collect();
    let many_headers = format!("GET /api/health HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n");
    let huge_uri = format!(
        "GET /api/health?x={} HTTP/1.1\r\nHost: x\r\n\r\n",
        "u".repeat(100 * 1024)
    );
    let answers = tokio::task::spawn_blocking(move || {
        [
            status_line(&addr, &huge_header),
            status_line(&addr, many_headers.as_bytes()),
            status_line(&addr, huge_uri.as_bytes()),
        ]
    })
    .await
    .unwrap();
    assert_eq!(answers[0], "HTTP/1.1 431 Request Header Fields Too Large");
    assert_eq!(answers[1], "HTTP/1.1 431 Request Header Fields Too Large");
    assert_eq!(answers[2], "HTTP/1.1 414 URI Too Long");
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_with_a_nul_is_a_422_naming_the_field_not_a_server_error() {
    let p = Platform::start(Options::default()).await;
    let (status, body) = p
        .request(
            reqwest::Method::POST,
            "/api/v1/api-keys",
            Some(json!({ "name": "ci\u{0}key" })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["details"]["field"], "name", "{body}");
    assert_eq!(body["error"]["details"]["rule"], "no_nul", "{body}");

    let (status, body) = p
        .request(reqwest::Method::GET, "/api/v1/tenants?search=a%00b", None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["details"]["field"], "search", "{body}");

    // Nothing was stored, and the platform still answers.
    let (status, body) = p
        .request(reqwest::Method::GET, "/api/v1/api-keys", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!body.to_string().contains("ci\\u0000key"), "{body}");
    p.cleanup().await;
}
