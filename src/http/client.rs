//! Where a request came from: the TCP peer of its connection, or, when that
//! peer is a trusted proxy (`CALLPROOF_TRUSTED_PROXIES`), the client it names in `X-Forwarded-For`.
//!
//! The server puts each connection's peer into the request as
//! [`axum::extract::ConnectInfo`]; [`ClientAddr`] reads it. `X-Forwarded-For`
//! is read right to left, skipping trusted proxies, so a client cannot choose
//! its own address by sending the header itself.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;

use super::{ApiError, AppState};

/// An IP address, or a block of them (`10.0.0.0/8`, `fd00::/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpBlock {
    network: IpAddr,
    prefix: u8,
}

impl IpBlock {
    /// True when `ip` lies in the block. An IPv4 address mapped into IPv6
    /// (`::ffff:10.0.0.1`) counts as the IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.network, ip) {
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

/// `::ffff:a.b.c.d` as `a.b.c.d`; anything else as it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl FromStr for IpBlock {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let network = canonical(addr.parse::<IpAddr>().map_err(|_| {
            format!("{text:?} is not an IP address or a CIDR block like 10.0.0.0/8")
        })?);
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => {
                    return Err(format!(
                        "{text:?} has a prefix length that is not a number from 0 to {max}"
                    ))
                }
            },
        };
        Ok(IpBlock { network, prefix })
    }
}

impl fmt::Display for IpBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The proxies whose `X-Forwarded-For` is believed; none by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpBlock>);

impl TrustedProxies {
    /// Parses comma-separated IP addresses and CIDR blocks.
    pub fn parse(text: &str) -> Result<TrustedProxies, String> {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(IpBlock::from_str)
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }

    /// True when `ip` is one of the trusted proxies.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|b| b.contains(ip))
    }

    /// The client of a request whose connection came from `peer`: `peer`
    /// itself unless it is a trusted proxy; then the right-most address of
    /// `X-Forwarded-For` (all such headers, in order) that is not a trusted
    /// proxy. When every address is trusted, the left-most; when an entry
    /// does not parse, the last address before it (a proxy that appended it).
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = canonical(peer);
        if !self.contains(client) {
            return client;
        }
        let forwarded: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        for entry in forwarded.iter().rev() {
            let Some(ip) = parse_forwarded(entry) else {
                break;
            };
            client = ip;
            if !self.contains(ip) {
                break;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, perhaps with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_forwarded(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    entry.parse::<SocketAddr>().ok().map(|s| canonical(s.ip()))
}

/// The client address of a request, as [`TrustedProxies::client`] resolves
/// it; `None` when the request did not come over a connection the server
/// accepted (a router driven in memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub Option<IpAddr>);

impl fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(ip) => write!(f, "{ip}"),
            None => f.write_str("unknown"),
        }
    }
}

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        Ok(ClientAddr(peer.map(|p| {
            s.config.trusted_proxies.client(p, &parts.headers)
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    #[test]
    fn addresses_and_blocks_parse_and_bad_ones_are_named() {
        let t = TrustedProxies::parse(" 10.0.0.0/8, 192.168.1.7 ,fd00::/8,").expect("parses");
        assert!(t.contains(ip("10.200.3.4")));
        assert!(!t.contains(ip("11.0.0.1")));
        assert!(t.contains(ip("192.168.1.7")));
        assert!(!t.contains(ip("192.168.1.8")));
        assert!(t.contains(ip("fd12::1")));
        assert!(!t.contains(ip("fe80::1")));
        assert!(
            t.contains(ip("::ffff:10.1.1.1")),
            "IPv4-mapped counts as IPv4"
        );
        assert!(TrustedProxies::parse("0.0.0.0/0")
            .expect("parses")
            .contains(ip("8.8.8.8")));
        assert_eq!(
            TrustedProxies::parse("").expect("empty"),
            TrustedProxies::default()
        );
        for bad in ["10.0.0.0/33", "proxy.example", "10.0.0.0/x", "::/129"] {
            let e = TrustedProxies::parse(bad).expect_err(bad);
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn forwarded_for_is_read_only_from_a_trusted_peer() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client(ip("127.0.0.1"), &xff(&["203.0.113.9"])),
            ip("127.0.0.1")
        );
        let t = TrustedProxies::parse("127.0.0.1,10.0.0.0/8").expect("parses");
        assert_eq!(
            t.client(ip("198.51.100.1"), &xff(&["203.0.113.9"])),
            ip("198.51.100.1")
        );
        assert_eq!(
            t.client(ip("127.0.0.1"), &xff(&["203.0.113.9"])),
            ip("203.0.113.9")
        );
        assert_eq!(
            t.client(ip("127.0.0.1"), &HeaderMap::new()),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn the_right_most_untrusted_address_is_the_client() {
        let t = TrustedProxies::parse("127.0.0.1,10.0.0.0/8").expect("parses");
        // A client that sends its own header cannot pick the address: the
        // proxy appends the real one, which is read first.
        assert_eq!(
            t.client(ip("127.0.0.1"), &xff(&["1.1.1.1, 198.51.100.7, 10.0.0.5"])),
            ip("198.51.100.7")
        );
        assert_eq!(
            t.client(
                ip("127.0.0.1"),
                &xff(&["1.1.1.1", "198.51.100.7:4711, 10.0.0.5"])
            ),
            ip("198.51.100.7"),
            "several headers are one list; a port is dropped"
        );
        assert_eq!(
            t.client(ip("127.0.0.1"), &xff(&["10.0.0.9, 10.0.0.5"])),
            ip("10.0.0.9"),
            "all trusted: the left-most"
        );
        assert_eq!(
            t.client(ip("127.0.0.1"), &xff(&["198.51.100.7, garbage, 10.0.0.5"])),
            ip("10.0.0.5"),
            "an unreadable entry stops the walk at the proxy that appended it"
        );
        assert_eq!(
            t.client(ip("::ffff:127.0.0.1"), &xff(&["[2001:db8::1]:443"])),
            ip("2001:db8::1")
        );
    }
}
