//! Where a webhook may go. Unless `WEBHOOK_ALLOW_PRIVATE=true`, only
//! http(s) URLs whose address is public are delivered to: loopback,
//! private, link-local, unique-local, CGNAT, multicast, documentation,
//! unspecified and other reserved ranges are refused, IPv4 and IPv6 alike
//! (an IPv4-mapped, NAT64 or 6to4 IPv6 address is judged by the IPv4
//! address inside it).
//!
//! The check happens twice: when an event is accepted ([`check_url`], on the
//! URL as written, so `http://10.0.0.1/` or `http://localhost/` is refused
//! with a 400), and before every delivery ([`Destinations::connect_to`]):
//! the host name is resolved once, every address it resolves to is checked,
//! and the HTTP client is pinned to exactly those addresses. The connection
//! therefore goes where the check looked, and a name that answers a public
//! address to the check and a private one to the connection (DNS
//! rebinding) gets nowhere. Redirects are not followed and proxies are not
//! used: either would let the request go somewhere unchecked.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;

/// A URL's host, as the URL parser normalized it.
enum Host<'a> {
    Ip(IpAddr),
    Name(&'a str),
}

/// Reads the host of a parsed URL: the parser writes IPv4 addresses in
/// dotted decimal (whatever spelling was given) and IPv6 ones in brackets.
fn host_of(url: &Url) -> Option<Host<'_>> {
    let h = url.host_str().filter(|h| !h.is_empty())?;
    if let Some(v6) = h.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<Ipv6Addr>().ok().map(|ip| Host::Ip(IpAddr::V6(ip)));
    }
    Some(match h.parse::<Ipv4Addr>() {
        Ok(ip) => Host::Ip(IpAddr::V4(ip)),
        Err(_) => Host::Name(h),
    })
}

/// Which destinations deliveries may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestinationPolicy {
    /// Public addresses only (the default).
    PublicOnly,
    /// Any address, private and loopback ones included
    /// (`WEBHOOK_ALLOW_PRIVATE=true`: receivers on your own network).
    AnyAddress,
}

/// A destination that cannot be delivered to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    /// Not a URL at all.
    #[error("{url:?} is not a URL: {reason}")]
    NotUrl {
        /// What was given.
        url: String,
        /// What the parser said.
        reason: String,
    },
    /// Another scheme than http or https.
    #[error("cannot deliver to a {scheme}: URL; only http and https are allowed")]
    Scheme {
        /// The scheme.
        scheme: String,
    },
    /// An http URL without a host.
    #[error("{url:?} has no host")]
    NoHost {
        /// The URL.
        url: String,
    },
    /// The host is, or resolves to, an address that is not public.
    #[error(
        "refused to deliver to {host}: {addr} is a {kind} address, and webhooks go to public addresses only \
         (set WEBHOOK_ALLOW_PRIVATE=true to allow private destinations)"
    )]
    NotPublic {
        /// The URL's host.
        host: String,
        /// The address it is or resolved to.
        addr: IpAddr,
        /// What kind of address it is.
        kind: &'static str,
    },
    /// A `localhost` name (RFC 6761: always loopback).
    #[error(
        "refused to deliver to {host}: it names this machine, and webhooks go to public addresses only \
         (set WEBHOOK_ALLOW_PRIVATE=true to allow private destinations)"
    )]
    LocalName {
        /// The URL's host.
        host: String,
    },
    /// The pinned HTTP client could not be built (worth retrying).
    #[error("cannot build the HTTP client for {host}: {reason}")]
    Client {
        /// The URL's host.
        host: String,
        /// Why.
        reason: String,
    },
    /// The host name did not resolve (worth retrying: DNS can recover).
    #[error("cannot resolve {host}: {reason}")]
    Unresolved {
        /// The host name.
        host: String,
        /// Why.
        reason: String,
    },
}

impl DestinationError {
    /// `false` for a lookup (or client) that failed, which a retry may fix;
    /// every refusal of the destination itself is final.
    pub fn is_permanent(&self) -> bool {
        !matches!(self, DestinationError::Unresolved { .. } | DestinationError::Client { .. })
    }
}

/// What kind of non-public address `ip` is, or `None` when it is public.
pub fn non_public_kind(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_kind(v4),
        IpAddr::V6(v6) => v6_kind(v6),
    }
}

fn v4_kind(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    let kind = match (a, b, c) {
        (0, _, _) => "unspecified",
        (10, _, _) => "private",
        (100, 64..=127, _) => "shared (CGNAT)",
        (127, _, _) => "loopback",
        (169, 254, _) => "link-local",
        (172, 16..=31, _) => "private",
        (192, 0, 0) => "reserved",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (192, 88, 99) => "reserved",
        (192, 168, _) => "private",
        (198, 18..=19, _) => "benchmarking",
        (224..=239, _, _) => "multicast",
        (240..=255, _, _) => "reserved",
        _ => return None,
    };
    Some(kind)
}

fn v6_kind(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    // ::ffff:a.b.c.d reaches a.b.c.d.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_kind(v4);
    }
    match s {
        // ::a.b.c.d (IPv4-compatible, deprecated).
        [0, 0, 0, 0, 0, 0, _, _] => Some("reserved"),
        // 64:ff9b::/96, the NAT64 well-known prefix, reaches the IPv4 inside.
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => v4_kind(embedded(hi, lo)),
        // 64:ff9b:1::/48, local-use NAT64.
        [0x64, 0xff9b, 1, ..] => Some("private"),
        // 2002::/16, 6to4, reaches the IPv4 in bits 16-48.
        [0x2002, hi, lo, ..] => v4_kind(embedded(hi, lo)),
        [0x2001, 0xdb8, ..] => Some("documentation"),
        // 2001::/23: IETF protocol assignments (Teredo, ORCHID, benchmarking).
        [0x2001, second, ..] if second < 0x200 => Some("reserved"),
        // 3fff::/20, documentation (RFC 9637).
        [0x3fff, second, ..] if second < 0x1000 => Some("documentation"),
        [first, ..] if first & 0xfe00 == 0xfc00 => Some("unique-local"),
        [first, ..] if first & 0xffc0 == 0xfe80 => Some("link-local"),
        [first, ..] if first & 0xffc0 == 0xfec0 => Some("site-local"),
        [first, ..] if first & 0xff00 == 0xff00 => Some("multicast"),
        // Only 2000::/3 is allocated for global unicast.
        [first, ..] if first & 0xe000 != 0x2000 => Some("reserved"),
        _ => None,
    }
}

/// Checks `ip` against `policy`, naming `host` in the refusal.
fn check_ip(host: &str, ip: IpAddr, policy: DestinationPolicy) -> Result<(), DestinationError> {
    match (policy, non_public_kind(ip)) {
        (DestinationPolicy::PublicOnly, Some(kind)) => Err(DestinationError::NotPublic { host: host.to_string(), addr: ip, kind }),
        _ => Ok(()),
    }
}

/// Parses a destination: an http or https URL with a host.
pub fn parse(raw: &str) -> Result<Url, DestinationError> {
    let url = Url::parse(raw).map_err(|e| DestinationError::NotUrl { url: raw.to_string(), reason: e.to_string() })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(DestinationError::Scheme { scheme: url.scheme().to_string() });
    }
    if host_of(&url).is_none() {
        return Err(DestinationError::NoHost { url: raw.to_string() });
    }
    Ok(url)
}

/// The check made when an event is accepted: the URL as written. An IP
/// literal that is not public, or a `localhost` name, is refused; other
/// names are checked when they are resolved, before each delivery.
pub fn check_url(raw: &str, policy: DestinationPolicy) -> Result<Url, DestinationError> {
    let url = parse(raw)?;
    if policy == DestinationPolicy::AnyAddress {
        return Ok(url);
    }
    let host_text = url.host_str().unwrap_or_default().to_string();
    match host_of(&url) {
        Some(Host::Ip(ip)) => check_ip(&host_text, ip, policy)?,
        Some(Host::Name(name)) => {
            let name = name.trim_end_matches('.');
            if name == "localhost" || name.ends_with(".localhost") {
                return Err(DestinationError::LocalName { host: host_text });
            }
        }
        None => return Err(DestinationError::NoHost { url: raw.to_string() }),
    }
    Ok(url)
}

/// The addresses a lookup found.
pub type Lookup<'a> = Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send + 'a>>;

/// Resolves host names (the system resolver in the app; a fixed table in
/// tests).
pub trait HostResolver: Send + Sync {
    /// Every address `host` resolves to, with `port`.
    fn lookup<'a>(&'a self, host: &'a str, port: u16) -> Lookup<'a>;
}

/// The operating system's resolver (`getaddrinfo`, through tokio).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl HostResolver for SystemResolver {
    fn lookup<'a>(&'a self, host: &'a str, port: u16) -> Lookup<'a> {
        Box::pin(async move { Ok(tokio::net::lookup_host((host, port)).await?.collect()) })
    }
}

/// Builds the HTTP client of each delivery, pinned to checked addresses.
#[derive(Clone)]
pub struct Destinations {
    policy: DestinationPolicy,
    resolver: Arc<dyn HostResolver>,
    lookup_timeout: Duration,
}

impl std::fmt::Debug for Destinations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Destinations").field("policy", &self.policy).finish_non_exhaustive()
    }
}

impl Destinations {
    /// Deliveries under `policy`, resolving names with `resolver` (a lookup
    /// may take `lookup_timeout`).
    pub fn new(policy: DestinationPolicy, resolver: Arc<dyn HostResolver>, lookup_timeout: Duration) -> Destinations {
        Destinations { policy, resolver, lookup_timeout }
    }

    /// The policy.
    pub fn policy(&self) -> DestinationPolicy {
        self.policy
    }

    /// Resolves and checks `raw`, and returns the URL with a client that
    /// connects only to the addresses checked (no redirects, no proxy).
    pub async fn connect_to(&self, raw: &str) -> Result<(Url, reqwest::Client), DestinationError> {
        let url = parse(raw)?;
        let host_text = url.host_str().unwrap_or_default().to_string();
        let builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).no_proxy();
        let builder = match host_of(&url) {
            // An address needs no lookup: the connection goes to it.
            Some(Host::Ip(ip)) => {
                check_ip(&host_text, ip, self.policy)?;
                builder
            }
            Some(Host::Name(name)) => {
                let port = url.port_or_known_default().unwrap_or(80);
                let addrs = self.resolve(name, port).await?;
                builder.resolve_to_addrs(name, &addrs)
            }
            None => return Err(DestinationError::NoHost { url: raw.to_string() }),
        };
        let client = builder.build().map_err(|e| DestinationError::Client { host: host_text, reason: e.to_string() })?;
        Ok((url, client))
    }

    /// Every address `name` resolves to, each checked; one that is not
    /// public refuses the whole name.
    async fn resolve(&self, name: &str, port: u16) -> Result<Vec<SocketAddr>, DestinationError> {
        let unresolved = |reason: String| DestinationError::Unresolved { host: name.to_string(), reason };
        let addrs = match tokio::time::timeout(self.lookup_timeout, self.resolver.lookup(name, port)).await {
            Ok(Ok(addrs)) => addrs,
            Ok(Err(e)) => return Err(unresolved(e.to_string())),
            Err(_) => return Err(unresolved(format!("no answer within {:?}", self.lookup_timeout))),
        };
        if addrs.is_empty() {
            return Err(unresolved("no addresses".to_string()));
        }
        for a in &addrs {
            check_ip(name, a.ip(), self.policy)?;
        }
        Ok(addrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(s: &str) -> Option<&'static str> {
        non_public_kind(s.parse().unwrap())
    }

    #[test]
    fn non_public_addresses_are_named() {
        for (ip, want) in [
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("10.0.0.1", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("100.64.0.1", "shared (CGNAT)"),
            ("100.127.255.254", "shared (CGNAT)"),
            ("169.254.169.254", "link-local"),
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "reserved"),
            ("240.0.0.1", "reserved"),
            ("192.0.2.10", "documentation"),
            ("198.18.0.1", "benchmarking"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.1.2.3", "private"),
            ("::ffff:169.254.169.254", "link-local"),
            ("::127.0.0.1", "reserved"),
            ("64:ff9b::7f00:1", "loopback"),
            ("64:ff9b:1::1", "private"),
            ("2002:7f00:1::1", "loopback"),
            ("2001::1", "reserved"),
            ("2001:db8::1", "documentation"),
            ("3fff::1", "documentation"),
            ("fc00::1", "unique-local"),
            ("fd12:3456::1", "unique-local"),
            ("fe80::1", "link-local"),
            ("fec0::1", "site-local"),
            ("ff02::1", "multicast"),
            ("100::1", "reserved"),
            ("5f00::1", "reserved"),
        ] {
            assert_eq!(kind(ip), Some(want), "{ip}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.215.14",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.0.1",
            "172.32.0.1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "2001:4860:4860::8888",
            "2606:4700::1111",
            "2001:200::1",
        ] {
            assert_eq!(kind(ip), None, "{ip}");
        }
    }

    #[test]
    fn urls_are_checked_as_written() {
        let refused = |u: &str| check_url(u, DestinationPolicy::PublicOnly).unwrap_err();
        assert!(matches!(refused("http://127.0.0.1:9000/h"), DestinationError::NotPublic { kind: "loopback", .. }));
        // The URL parser reads IPv4 in every spelling.
        assert!(matches!(refused("http://2130706433/"), DestinationError::NotPublic { kind: "loopback", .. }));
        assert!(matches!(refused("http://0x7f.1/"), DestinationError::NotPublic { kind: "loopback", .. }));
        assert!(matches!(refused("http://[::ffff:127.0.0.1]/"), DestinationError::NotPublic { kind: "loopback", .. }));
        assert!(matches!(refused("http://LOCALHOST./"), DestinationError::LocalName { .. }));
        assert!(matches!(refused("http://api.localhost/"), DestinationError::LocalName { .. }));
        assert!(matches!(refused("ftp://example.com/"), DestinationError::Scheme { .. }));
        assert!(matches!(refused("file:///etc/passwd"), DestinationError::Scheme { .. }));
        assert!(matches!(refused("not a url"), DestinationError::NotUrl { .. }));
        assert!(refused("http://10.0.0.1/").to_string().contains("WEBHOOK_ALLOW_PRIVATE=true"));
        assert!(check_url("https://hooks.example.com/x", DestinationPolicy::PublicOnly).is_ok());
        assert!(check_url("http://127.0.0.1:9000/h", DestinationPolicy::AnyAddress).is_ok());
        assert!(check_url("gopher://127.0.0.1/", DestinationPolicy::AnyAddress).is_err());
    }
}
