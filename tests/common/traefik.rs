//! Reaching tenants the way their users do: through Traefik, by Host header.

use std::time::{Duration, Instant};

use super::env;

/// GET through Traefik with the tenant's Host header; returns the status.
pub async fn through_traefik(subdomain: &str, path: &str) -> u16 {
    let port = env("TRAEFIK_HTTP_PORT");
    let host = format!("{subdomain}.{}", env("BASE_DOMAIN"));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    match client
        .get(format!("http://127.0.0.1:{port}{path}"))
        .header("Host", host)
        .send()
        .await
    {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

/// Path and query of a full URL (to send a tenant link through Traefik).
pub fn path_of(url: &str) -> String {
    let after_scheme = url.split_once("://").map(|(_, rest)| rest).unwrap();
    after_scheme[after_scheme.find('/').unwrap()..].to_owned()
}

/// A tenant's answer through Traefik: status, headers and body (redirects are
/// not followed).
pub async fn fetch_through_traefik(
    subdomain: &str,
    path: &str,
    cookie: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let port = env("TRAEFIK_HTTP_PORT");
    let host = format!("{subdomain}.{}", env("BASE_DOMAIN"));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut request = client
        .get(format!("http://127.0.0.1:{port}{path}"))
        .header("Host", host);
    if let Some(cookie) = cookie {
        request = request.header("Cookie", cookie);
    }
    let r = request.send().await.expect("Traefik answers");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.text().await.unwrap_or_default())
}

/// Traefik applies Docker changes after its provider throttle (~2 s): poll.
pub async fn wait_traefik(subdomain: &str, path: &str, expected: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let got = through_traefik(subdomain, path).await;
        if got == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "Traefik answered {got} for {subdomain}{path}, expected {expected}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Makes the tenant's stand-in write `n` lines of `text` to one of its streams
/// (a stand-in-only route, reached through Traefik).
pub async fn echo(subdomain: &str, stream: &str, text: &str, n: u32) {
    let port = env("TRAEFIK_HTTP_PORT");
    let host = format!("{subdomain}.{}", env("BASE_DOMAIN"));
    let url = format!("http://127.0.0.1:{port}/stand-in/echo?stream={stream}&text={text}&n={n}");
    let r = reqwest::Client::new()
        .get(url)
        .header("Host", host)
        .send()
        .await
        .expect("echo");
    assert_eq!(r.status(), 200, "stand-in echo refused");
}
