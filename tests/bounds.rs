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
async fn oversized_body_uri_and_headers_get_413_414_431_with_the_envelope() {
    let p = Platform::start(Options::default()).await;
    let big = "a".repeat(100 * 1024);

    // A declared length over the bound: refused before anything reads the body.
    let declared = p
        .http
        .post(p.url("/api/v1/auth/login"))
        .json(&json!({ "email": "a@example.org", "password": big }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        refusal(declared).await,
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large".into())
    );

    // A chunked body (no length) is cut at the same size while it is read.
    let chunks: Vec<Result<String, std::io::Error>> = vec![
        Ok(r#"{"email":"a@example.org","password":""#.into()),
        Ok(big.clone()),
        Ok(r#""}"#.into()),
    ];
    let chunked = p
        .http
        .post(p.url("/api/v1/wizard/sessions"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(
        refusal(chunked).await,
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large".into())
    );

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
