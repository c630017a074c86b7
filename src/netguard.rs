//! Where callproof may connect on someone else's say-so (a recording URL, a
//! `callback_url`): host allow lists, and the address check that keeps it off internal networks.
//!
//! Two rules hold for every such connection. A host must be allowed by name
//! (the allow list) or be reached over https on a public address; and an
//! address is checked after DNS resolution, by [`GuardedResolver`], so a name
//! that resolves to an internal address (DNS rebinding included) is refused
//! before any connection is made. IP literals never pass through DNS, so
//! [`check_literal`] checks them before a request is sent.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::Url;

/// True for addresses that are not on the public internet: loopback, private,
/// link-local, unique-local, carrier-grade NAT, multicast, documentation,
/// reserved, and IPv6 forms that embed such an IPv4 address.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => is_internal_v6(v6),
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT, 100.64.0.0/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments, 192.0.0.0/24
        || (a == 198 && (b == 18 || b == 19)) // benchmarking, 198.18.0.0/15
        || a >= 240 // reserved, 240.0.0.0/4
}

fn is_internal_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_internal_v4(v4);
    }
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local, fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link local, fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // site local (deprecated), fec0::/10
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation, 2001:db8::/32
        || (s[0] == 0x2001 && s[1] == 0) // Teredo, 2001::/32: tunnels to any IPv4 host
        || (s[..6] == [0; 6] && is_internal_v4(embedded(s[6], s[7]))) // IPv4-compatible, ::/96
        || (s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] && is_internal_v4(embedded(s[6], s[7]))) // NAT64
        || (s[..3] == [0x64, 0xff9b, 1]) // local-use NAT64, 64:ff9b:1::/48: any IPv4 inside
        || (s[..6] == [0, 0, 0, 0, 0xffff, 0] && is_internal_v4(embedded(s[6], s[7]))) // IPv4-translated, ::ffff:0:0:0/96
        || (s[0] == 0x2002 && is_internal_v4(embedded(s[1], s[2]))) // 6to4, 2002::/16
}

/// One allowed host: a scheme, a host name (lowercase) and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRule {
    /// `https` or `http`.
    pub https: bool,
    /// The host as it appears in URLs, lowercase; IPv6 literals without brackets.
    pub host: String,
    /// The port; `None` allows any.
    pub port: Option<u16>,
    /// True when the rule takes http and https alike (the callback list's `host[:port]`).
    pub any_scheme: bool,
}

impl HostRule {
    fn matches(&self, url: &Url) -> bool {
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            _ => return false,
        };
        (self.any_scheme || https == self.https)
            && host_of(url).is_some_and(|h| h == self.host)
            && self
                .port
                .is_none_or(|p| url.port_or_known_default() == Some(p))
    }
}

/// The host of a URL as allow lists spell it: lowercase, IPv6 without brackets.
pub fn host_of(url: &Url) -> Option<String> {
    match url.host()? {
        url::Host::Domain(d) => Some(d.to_ascii_lowercase()),
        url::Host::Ipv4(a) => Some(a.to_string()),
        url::Host::Ipv6(a) => Some(a.to_string()),
    }
}

/// A list of allowed hosts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList(pub Vec<HostRule>);

impl AllowList {
    /// Parses a comma-separated list of `host[:port]` (https; port 443 when
    /// omitted) and, when `http_ok`, `http://host:port` entries.
    pub fn parse(text: &str, http_ok: bool) -> Result<AllowList, String> {
        let mut rules = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (https, rest) = match item.split_once("://") {
                None => (true, item),
                Some(("https", r)) => (true, r),
                Some(("http", r)) if http_ok => (false, r),
                Some(_) => {
                    return Err(format!(
                        "{item}: use host[:port] for https{}",
                        if http_ok { " or http://host:port" } else { "" }
                    ))
                }
            };
            let url = Url::parse(&format!(
                "{}://{rest}",
                if https { "https" } else { "http" }
            ))
            .map_err(|e| format!("{item}: {e}"))?;
            if url.path() != "/" || url.query().is_some() || !url.username().is_empty() {
                return Err(format!("{item}: give a host and port only, no path"));
            }
            if !https && url.port().is_none() {
                return Err(format!("{item}: a plain-http entry needs its port"));
            }
            let host = host_of(&url).ok_or_else(|| format!("{item}: no host"))?;
            rules.push(HostRule {
                https,
                host,
                port: url.port_or_known_default(),
                any_scheme: false,
            });
        }
        Ok(AllowList(rules))
    }

    /// Parses a comma-separated list of `host[:port]` that allows http and
    /// https alike, any port when none is given.
    pub fn parse_hosts(text: &str) -> Result<AllowList, String> {
        let mut rules = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if item.contains("://") {
                return Err(format!("{item}: give host[:port] without a scheme"));
            }
            let url = Url::parse(&format!("http://{item}")).map_err(|e| format!("{item}: {e}"))?;
            if url.path() != "/" || url.query().is_some() || !url.username().is_empty() {
                return Err(format!("{item}: give a host and port only, no path"));
            }
            let host = host_of(&url).ok_or_else(|| format!("{item}: no host"))?;
            // The port as written: `url.port()` hides 80, the default of http.
            let port = match item.rsplit_once(':') {
                Some((h, p)) if !h.is_empty() && (!h.contains(':') || h.ends_with(']')) => Some(
                    p.parse::<u16>()
                        .map_err(|_| format!("{item}: the port is not a number"))?,
                ),
                _ => None,
            };
            rules.push(HostRule {
                https: true,
                host,
                port,
                any_scheme: true,
            });
        }
        Ok(AllowList(rules))
    }

    /// Loopback over plain http on any port (development's exception for the simulator).
    pub fn loopback_any_port() -> AllowList {
        AllowList(
            ["127.0.0.1", "localhost", "::1"]
                .into_iter()
                .map(|h| HostRule {
                    https: false,
                    host: h.to_owned(),
                    port: None,
                    any_scheme: false,
                })
                .collect(),
        )
    }

    /// This list followed by `other`'s rules.
    pub fn with(mut self, other: AllowList) -> AllowList {
        self.0.extend(other.0);
        self
    }

    /// True when `url`'s scheme, host and port are allowed.
    pub fn allows(&self, url: &Url) -> bool {
        self.0.iter().any(|r| r.matches(url))
    }

    /// True when `host` is named by some rule, whatever the port: such a host
    /// may resolve to an internal address.
    pub fn names_host(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.0.iter().any(|r| r.host.eq_ignore_ascii_case(host))
    }

    /// The entries, as they would be written in the setting.
    pub fn describe(&self) -> String {
        self.0
            .iter()
            .map(|r| {
                let host = if r.host.contains(':') {
                    format!("[{}]", r.host)
                } else {
                    r.host.clone()
                };
                if r.any_scheme {
                    return match r.port {
                        Some(p) => format!("{host}:{p}"),
                        None => host,
                    };
                }
                match (r.https, r.port) {
                    (true, Some(443)) => host,
                    (true, Some(p)) => format!("{host}:{p}"),
                    (false, Some(p)) => format!("http://{host}:{p}"),
                    (true, None) => format!("{host}:*"),
                    (false, None) => format!("http://{host}:*"),
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Why a URL may not be fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not a URL, or a scheme other than http(s).
    #[error("not an http(s) URL")]
    NotHttp,
    /// Plain http where https is required.
    #[error("plain http is not allowed here; use https")]
    NotHttps,
    /// The host is not on the allow list.
    #[error("host not allowed")]
    HostNotAllowed,
    /// The host is, or resolves to, an internal address.
    #[error("{0} is an internal address (loopback, private, link-local or unique-local)")]
    Internal(IpAddr),
    /// The name did not resolve.
    #[error("the host name does not resolve: {0}")]
    Unresolvable(String),
    /// A host the allow list names, at a scheme or port it does not list.
    #[error("{0} is a listed host at a port or scheme that is not listed")]
    UnlistedPort(String),
    /// Not the shape the URL must have.
    #[error("not a recording URL of this account: {0}")]
    Shape(String),
}

/// Refuses a URL whose host is an internal IP literal, unless the host is named
/// by `allowed`. (Names are checked after resolution by [`GuardedResolver`].)
pub fn check_literal(url: &Url, allowed: &AllowList) -> Result<(), Refusal> {
    let ip = match url.host() {
        Some(url::Host::Ipv4(a)) => IpAddr::V4(a),
        Some(url::Host::Ipv6(a)) => IpAddr::V6(a),
        Some(url::Host::Domain(_)) => return Ok(()),
        None => return Err(Refusal::NotHttp),
    };
    if is_internal(ip) && !allowed.names_host(&ip.to_string()) {
        return Err(Refusal::Internal(ip));
    }
    Ok(())
}

/// Checks a URL about to be requested: a host the allow list names may be
/// internal, so it is reached only at a scheme and port the list gives (never
/// at another service on the same machine); any other host must not be an
/// internal IP literal. Names are checked again by [`GuardedResolver`].
pub fn check_target(url: &Url, allowed: &AllowList) -> Result<(), Refusal> {
    let named = host_of(url).is_some_and(|h| allowed.names_host(&h));
    if named && !allowed.allows(url) {
        return Err(Refusal::UnlistedPort(url.origin().ascii_serialization()));
    }
    check_literal(url, allowed)
}

/// An HTTP client for requests on someone else's say-so: names resolve only
/// through [`GuardedResolver`] over `allowed`, no redirect is followed by
/// itself, and no proxy from the environment is used (a proxy would resolve
/// names past the guard).
pub fn guarded_client(
    allowed: &AllowList,
    timeout: std::time::Duration,
) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(std::time::Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver::new(allowed.clone())))
        .build()
}

/// Resolves `url`'s host and refuses it if any address is internal, unless the
/// host is named by `allowed`: the check made when a URL is accepted for later use.
pub async fn check_resolved(url: &Url, allowed: &AllowList) -> Result<(), Refusal> {
    check_literal(url, allowed)?;
    let Some(url::Host::Domain(name)) = url.host() else {
        return Ok(());
    };
    if allowed.names_host(name) {
        return Ok(());
    }
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name, port))
        .await
        .map_err(|e| Refusal::Unresolvable(e.to_string()))?
        .collect();
    if addrs.is_empty() {
        return Err(Refusal::Unresolvable(name.to_owned()));
    }
    match addrs.iter().find(|a| is_internal(a.ip())) {
        Some(a) => Err(Refusal::Internal(a.ip())),
        None => Ok(()),
    }
}

/// A DNS resolver for outgoing requests that drops internal addresses, except
/// for hosts the allow list names; a name with only internal addresses fails
/// to resolve, so no connection is ever made to it.
#[derive(Clone)]
pub struct GuardedResolver {
    allowed: Arc<AllowList>,
}

impl GuardedResolver {
    /// A resolver that lets the hosts named in `allowed` resolve to anything.
    pub fn new(allowed: AllowList) -> Self {
        GuardedResolver {
            allowed: Arc::new(allowed),
        }
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allowed = self.allowed.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let open = allowed.names_host(&host);
            let kept: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| open || !is_internal(a.ip()))
                .collect();
            if kept.is_empty() {
                let e: Box<dyn std::error::Error + Send + Sync> = format!(
                    "{host} resolves only to internal addresses, which callproof does not connect to"
                )
                .into();
                return Err(e);
            }
            let addrs: reqwest::dns::Addrs = Box::new(kept.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_addresses_are_recognised() {
        for a in [
            "127.0.0.1",
            "127.255.0.9",
            "10.0.0.5",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "192.0.0.170",
            "198.18.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.1.2.3",
            "::10.1.2.3",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:0001::1",
            "2001:db8::1",
            "2001:0:4136:e378::1",
            "64:ff9b:1::a00:5",
            "::ffff:0:a00:5",
        ] {
            assert!(is_internal(ip(a)), "{a} should be internal");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for a in [
            "54.172.60.0",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2600:1f18::1",
            "::ffff:8.8.8.8",
            "2002:0808:0808::1",
        ] {
            assert!(!is_internal(ip(a)), "{a} should be public");
        }
    }

    #[test]
    fn allow_lists_parse_and_match_scheme_host_and_port() {
        let list = AllowList::parse(
            "api.twilio.com, media.example.com:8443, http://127.0.0.1:9000",
            true,
        )
        .unwrap();
        let ok = |u: &str| list.allows(&Url::parse(u).unwrap());
        assert!(ok(
            "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1"
        ));
        assert!(ok("https://API.Twilio.com/x"));
        assert!(ok("https://media.example.com:8443/r"));
        assert!(ok("http://127.0.0.1:9000/media/RE1"));
        assert!(!ok("http://api.twilio.com/x"), "http to an https host");
        assert!(!ok("https://api.twilio.com:444/x"), "another port");
        assert!(!ok("https://media.example.com/r"), "443 is not 8443");
        assert!(!ok("http://127.0.0.1:9001/media"), "another loopback port");
        assert!(!ok("https://api.twilio.com.evil.example/x"));
        assert!(!ok("ftp://api.twilio.com/x"));
        assert_eq!(
            list.describe(),
            "api.twilio.com,media.example.com:8443,http://127.0.0.1:9000"
        );
    }

    #[test]
    fn callback_host_lists_take_either_scheme_and_any_port_when_none_is_given() {
        let port80 = AllowList::parse_hosts("127.0.0.1:80").unwrap();
        assert!(port80.allows(&Url::parse("http://127.0.0.1/hook").unwrap()));
        assert!(
            !port80.allows(&Url::parse("http://127.0.0.1:6379/").unwrap()),
            "port 80 written is port 80, not any port"
        );
        let list = AllowList::parse_hosts("127.0.0.1:9000, hooks.internal").unwrap();
        let ok = |u: &str| list.allows(&Url::parse(u).unwrap());
        assert!(ok("http://127.0.0.1:9000/hook"));
        assert!(ok("https://127.0.0.1:9000/hook"));
        assert!(!ok("http://127.0.0.1:9001/hook"));
        assert!(ok("http://hooks.internal:8080/x"));
        assert!(AllowList::parse_hosts("http://x:1").is_err());
        assert_eq!(list.describe(), "127.0.0.1:9000,hooks.internal");
    }

    #[test]
    fn bad_allow_list_entries_are_named() {
        assert!(AllowList::parse("http://127.0.0.1", true)
            .unwrap_err()
            .contains("port"));
        assert!(AllowList::parse("http://127.0.0.1:80", false).is_err());
        assert!(AllowList::parse("host.example/path", true)
            .unwrap_err()
            .contains("no path"));
        assert!(AllowList::parse("ftp://x", true).is_err());
    }

    #[test]
    fn the_development_loopback_rule_takes_any_port_but_only_loopback() {
        let list = AllowList::loopback_any_port();
        assert!(list.allows(&Url::parse("http://127.0.0.1:1234/m").unwrap()));
        assert!(list.allows(&Url::parse("http://[::1]:5/m").unwrap()));
        assert!(!list.allows(&Url::parse("http://10.0.0.5:1234/m").unwrap()));
        assert!(!list.allows(&Url::parse("http://169.254.169.254/latest").unwrap()));
    }

    #[test]
    fn internal_literals_are_refused_unless_named() {
        let none = AllowList::default();
        for u in [
            "http://127.0.0.1:8080/x",
            "https://10.0.0.5/x",
            "http://169.254.169.254/latest/meta-data/",
            "https://[::1]/x",
            "https://[fd00::1]/x",
            "https://[::ffff:127.0.0.1]/x",
        ] {
            assert!(
                matches!(
                    check_literal(&Url::parse(u).unwrap(), &none),
                    Err(Refusal::Internal(_))
                ),
                "{u}"
            );
        }
        let named = AllowList::parse("127.0.0.1:8080", false).unwrap();
        assert!(check_literal(&Url::parse("http://127.0.0.1:8080/x").unwrap(), &named).is_ok());
        assert!(check_literal(&Url::parse("https://93.184.216.34/x").unwrap(), &none).is_ok());
    }

    #[test]
    fn a_listed_internal_host_is_reached_only_at_its_listed_port() {
        let list = AllowList::parse("http://127.0.0.1:9000", true).unwrap();
        let at = |u: &str| check_target(&Url::parse(u).unwrap(), &list);
        assert_eq!(at("http://127.0.0.1:9000/media"), Ok(()));
        assert!(matches!(
            at("https://127.0.0.1:9001/x"),
            Err(Refusal::UnlistedPort(_))
        ));
        assert!(matches!(
            at("http://127.0.0.1:6379/"),
            Err(Refusal::UnlistedPort(_))
        ));
        assert!(matches!(
            at("https://10.0.0.5/x"),
            Err(Refusal::Internal(_))
        ));
        assert_eq!(at("https://media.example.com/x"), Ok(()));
    }

    #[tokio::test]
    async fn names_that_resolve_inside_are_refused_after_resolution() {
        // `localhost` resolves through the system resolver, without any network.
        let url = Url::parse("https://localhost:8443/hook").unwrap();
        assert!(matches!(
            check_resolved(&url, &AllowList::default()).await,
            Err(Refusal::Internal(_))
        ));
        let named = AllowList::parse("localhost:8443", false).unwrap();
        assert!(check_resolved(&url, &named).await.is_ok());
        use reqwest::dns::Resolve;
        let guarded = GuardedResolver::new(AllowList::default());
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        assert!(guarded.resolve(name).await.is_err());
        let open = GuardedResolver::new(named);
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        assert!(open.resolve(name).await.is_ok());
    }
}
