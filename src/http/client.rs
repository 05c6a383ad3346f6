//! Who is on the other end of a request: address and user agent, for rate limits
//! and the audit trail.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::header::USER_AGENT;
use axum::http::request::Parts;
use axum::http::HeaderMap;

use crate::http::AppState;
use crate::store::audit::Origin;

/// An address or network (`10.0.0.5`, `172.18.0.0/16`, `::1`) a proxy speaks from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyNet {
    addr: IpAddr,
    prefix: u8,
}

impl ProxyNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            // A v4 client on a dual-stack socket shows up as ::ffff:a.b.c.d.
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for ProxyNet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (addr, prefix) = s.split_once('/').unwrap_or((s, ""));
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            max
        } else {
            prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to {max}"))?
        };
        Ok(Self { addr, prefix })
    }
}

/// The client's address: the peer's, unless the peer is a trusted proxy; then the
/// nearest address in `X-Forwarded-For` that is not itself a trusted proxy (the
/// entries to its left were written by whoever sent the request, and prove nothing).
pub fn client_ip(
    proxies: Option<&[ProxyNet]>,
    forwarded_for: Option<&str>,
    peer: Option<IpAddr>,
) -> Option<IpAddr> {
    let (Some(proxies), Some(forwarded), Some(peer)) = (proxies, forwarded_for, peer) else {
        return peer;
    };
    let trusted = |ip: IpAddr| proxies.iter().any(|p| p.contains(ip));
    if !trusted(peer) {
        return Some(peer);
    }
    let mut nearest = None;
    for hop in forwarded.rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) if trusted(ip) => nearest = Some(ip),
            Ok(ip) => return Some(ip),
            // A hop we cannot read: what lies left of it cannot be vouched for.
            Err(_) => break,
        }
    }
    nearest.or(Some(peer))
}

fn ip_from(
    state: &AppState,
    headers: &HeaderMap,
    connect: Option<&ConnectInfo<SocketAddr>>,
) -> Option<String> {
    let accounts = &state.config.accounts;
    let proxies = accounts
        .trust_proxy_headers
        .then_some(accounts.trusted_proxies.as_slice());
    // Several X-Forwarded-For headers count as one list, in order.
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    let forwarded = Some(forwarded.as_str()).filter(|f| !f.is_empty());
    client_ip(proxies, forwarded, connect.map(|c| c.0.ip())).map(|ip| ip.to_string())
}

pub fn ip_of(state: &AppState, request: &Request) -> Option<String> {
    ip_from(
        state,
        request.headers(),
        request.extensions().get::<ConnectInfo<SocketAddr>>(),
    )
}

/// The request's origin, as recorded in the audit log.
pub struct Client(pub Origin);

impl FromRequestParts<AppState> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let ip = ip_from(
            state,
            &parts.headers,
            parts.extensions.get::<ConnectInfo<SocketAddr>>(),
        );
        let user_agent = parts
            .headers
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(Self(Origin { ip, user_agent }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<ProxyNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn forwarded_for_counts_only_when_the_peer_is_a_trusted_proxy() {
        let loopback = nets(&["127.0.0.1", "::1"]);
        let trusted = Some(loopback.as_slice());
        // Traefik on the host: its X-Forwarded-For names the client.
        assert_eq!(
            client_ip(trusted, Some("203.0.113.7"), ip("127.0.0.1")),
            ip("203.0.113.7")
        );
        // Anyone else sending the header is taken at its own address.
        assert_eq!(
            client_ip(trusted, Some("203.0.113.7"), ip("198.51.100.2")),
            ip("198.51.100.2")
        );
        // Switched off: the peer, whatever the header says.
        assert_eq!(
            client_ip(None, Some("203.0.113.7"), ip("127.0.0.1")),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn a_client_cannot_spoof_its_address_through_a_trusted_proxy() {
        let proxies = nets(&["127.0.0.1", "172.18.0.0/16"]);
        let trusted = Some(proxies.as_slice());
        // The client wrote "1.2.3.4"; the proxy appended the address it saw.
        assert_eq!(
            client_ip(trusted, Some("1.2.3.4, 198.51.100.9"), ip("127.0.0.1")),
            ip("198.51.100.9")
        );
        // Proxies in a chain are skipped, right to left.
        assert_eq!(
            client_ip(
                trusted,
                Some("1.2.3.4, 198.51.100.9, 172.18.0.5"),
                ip("127.0.0.1")
            ),
            ip("198.51.100.9")
        );
        // Garbage stops the walk; the last trusted hop stands.
        assert_eq!(
            client_ip(
                trusted,
                Some("198.51.100.9, junk, 172.18.0.5"),
                ip("127.0.0.1")
            ),
            ip("172.18.0.5")
        );
        assert_eq!(
            client_ip(trusted, Some("junk"), ip("127.0.0.1")),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn networks_parse_and_match() {
        let net: ProxyNet = "172.18.0.0/16".parse().unwrap();
        assert!(net.contains("172.18.200.1".parse().unwrap()));
        assert!(!net.contains("172.19.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:172.18.0.9".parse().unwrap()));
        let v6: ProxyNet = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("fe80::1".parse().unwrap()));
        let all: ProxyNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        for bad in ["", "10.0.0.0/33", "::/129", "example.org", "10.0.0.0/x"] {
            assert!(bad.parse::<ProxyNet>().is_err(), "{bad:?}");
        }
    }
}
