//! `fresco-platform healthcheck`: one GET of the platform's `/api/health`, exit 0 on
//! a 200 and 1 otherwise. The container image's HEALTHCHECK runs it (the slim image
//! has no curl). It prints only the status or the kind of failure: never a header,
//! a body or the environment.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use super::args::HealthcheckArgs;

/// Shorter than the image's HEALTHCHECK timeout, so a hung server is a failure
/// this command reports rather than a kill by Docker.
const TIMEOUT: Duration = Duration::from_secs(4);

/// The URL to probe: `--url`, else `/api/health` at the listen address.
pub(super) fn health_url(args: &HealthcheckArgs) -> String {
    if let Some(url) = &args.url {
        return url.clone();
    }
    let addr = args
        .listen_addr
        .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)));
    format!("http://{}/api/health", reachable(addr))
}

/// A server bound to every interface (0.0.0.0, ::) is reached on loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::from((Ipv4Addr::LOCALHOST, addr.port()))
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((Ipv6Addr::LOCALHOST, addr.port()))
        }
        _ => addr,
    }
}

pub(super) async fn run(args: &HealthcheckArgs) -> i32 {
    let url = health_url(args);
    let client = match reqwest::Client::builder()
        .timeout(TIMEOUT)
        .user_agent(concat!(
            "fresco-platform-healthcheck/",
            env!("CARGO_PKG_VERSION")
        ))
        .build()
    {
        Ok(client) => client,
        Err(_) => {
            eprintln!("unhealthy: cannot set up the HTTP client");
            return 1;
        }
    };
    match client.get(&url).send().await {
        Ok(response) if response.status() == reqwest::StatusCode::OK => {
            println!("healthy");
            0
        }
        Ok(response) => {
            eprintln!("unhealthy: HTTP {}", response.status().as_u16());
            1
        }
        Err(e) if e.is_timeout() => {
            eprintln!("unhealthy: no answer within {} s", TIMEOUT.as_secs());
            1
        }
        Err(_) => {
            eprintln!("unhealthy: cannot connect");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(url: Option<&str>, listen: Option<&str>) -> HealthcheckArgs {
        HealthcheckArgs {
            url: url.map(str::to_owned),
            listen_addr: listen.map(|a| a.parse().unwrap()),
        }
    }

    #[test]
    fn the_url_comes_from_the_flag_then_the_listen_address() {
        assert_eq!(
            health_url(&args(None, None)),
            "http://127.0.0.1:8080/api/health"
        );
        assert_eq!(
            health_url(&args(None, Some("127.0.0.1:8090"))),
            "http://127.0.0.1:8090/api/health"
        );
        assert_eq!(
            health_url(&args(None, Some("0.0.0.0:8090"))),
            "http://127.0.0.1:8090/api/health"
        );
        assert_eq!(
            health_url(&args(None, Some("[::]:8090"))),
            "http://[::1]:8090/api/health"
        );
        assert_eq!(
            health_url(&args(
                Some("http://10.0.0.2:9/api/health"),
                Some("0.0.0.0:8090")
            )),
            "http://10.0.0.2:9/api/health"
        );
    }
}
