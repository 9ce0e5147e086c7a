//! The client's address behind reverse proxies: `http.client_ip`.
//!
//! A proxy that forwards a request appends the address it received it from to
//! `X-Forwarded-For` (nginx, Envoy, AWS ALB, Traefik, Kubernetes ingress controllers) or to
//! `Forwarded` (RFC 7239). Everything left of what the proxies appended is whatever the client
//! sent, so the first entry can be forged at will. The address of the client is found the way
//! nginx's `real_ip_recursive` and Envoy's `xff_num_trusted_hops` find it: from the right.
//!
//! - Without trusted proxies (the default) the header is ignored: the client is the peer of the
//!   TCP connection.
//! - `trusted_proxies` (CIDRs): the header is read only when the peer is one of them; walking it
//!   from the right, trusted addresses are skipped and the first other address is the client.
//! - `trusted_hops: N`: N proxies in front of the service each append an entry; the client is the
//!   N-th entry from the right.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use http::{HeaderMap, Request};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use microframework_core::{Validate, Validation};

/// Which header the proxies in front of the service write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (default).
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239).
    Forwarded,
}

/// The `http.client_ip` section: whom to believe about the client's address.
///
/// ```yaml
/// http:
///   client_ip:
///     header: x-forwarded-for     # or forwarded
///     trusted_proxies: [10.0.0.0/8]   # your ingress / pod ranges; or trusted_hops: 1
/// ```
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ClientIpConfig {
    /// The header the proxies write (default `x-forwarded-for`). Only that header is read: a
    /// client can send the other one too, and nothing vouches for it.
    pub header: ForwardedHeader,
    /// CIDRs (or single addresses) of the proxies in front of the service, such as the pod and
    /// ingress ranges of a cluster. Empty (the default) trusts no proxy.
    pub trusted_proxies: Vec<String>,
    /// The number of proxies in front of the service, when their addresses are not known in
    /// advance (default 0). Set either this or `trusted_proxies`.
    pub trusted_hops: u8,
}

impl Validate for ClientIpConfig {
    fn validate(&self, v: &mut Validation) {
        for (i, cidr) in self.trusted_proxies.iter().enumerate() {
            let key = format!("trusted_proxies.{i}");
            match parse_net(cidr) {
                Some(net) if net.prefix_len() == 0 => v.error(
                    &key,
                    "a range narrower than every address: trusting every peer lets any client choose its own address \
                     (list your proxies' ranges, or use trusted_hops)",
                ),
                Some(_) => {}
                None => v.error(&key, "a CIDR such as 10.0.0.0/8 or fd00::/8, or a single address"),
            }
        }
        v.check(
            self.trusted_proxies.is_empty() || self.trusted_hops == 0,
            "trusted_hops",
            "0 when trusted_proxies is set (use one or the other)",
        );
    }
}

fn parse_net(s: &str) -> Option<IpNet> {
    let s = s.trim();
    s.parse::<IpNet>().ok().or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

/// Resolves the client address of requests according to a [`ClientIpConfig`].
#[derive(Debug, Clone, Default)]
pub struct ClientIpResolver {
    header: ForwardedHeader,
    trusted: Vec<IpNet>,
    hops: usize,
}

impl ClientIpResolver {
    /// A resolver for `cfg` (entries that do not parse, which validation reports, are skipped).
    pub fn new(cfg: &ClientIpConfig) -> Self {
        Self {
            header: cfg.header,
            trusted: cfg.trusted_proxies.iter().filter_map(|c| parse_net(c)).collect(),
            hops: usize::from(cfg.trusted_hops),
        }
    }

    /// Whether any proxy is trusted (otherwise the peer address is always the answer).
    pub fn trusts_proxies(&self) -> bool {
        !self.trusted.is_empty() || self.hops > 0
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The client address of `req`: the peer address (`ConnectInfo<SocketAddr>`), or the address a
    /// trusted proxy forwarded. `None` when the request carries no peer address and no trusted
    /// header names one.
    pub fn resolve<B>(&self, req: &Request<B>) -> Option<IpAddr> {
        let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_canonical());
        self.resolve_from(peer, req.headers())
    }

    /// [`resolve`](Self::resolve) from the peer address and the headers.
    pub fn resolve_from(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        if !self.trusts_proxies() {
            return peer;
        }
        if self.hops == 0 {
            // Only a trusted peer's header is believed.
            match peer {
                Some(p) if self.is_trusted(p) => {}
                _ => return peer,
            }
        }
        let chain = self.chain(headers);
        if chain.is_empty() {
            return peer;
        }
        if self.hops > 0 {
            let index = chain.len().saturating_sub(self.hops);
            // An entry that is not an address (`unknown`, an obfuscated name): the nearest
            // address known, that of the proxy to its right, or the peer.
            return chain[index].or_else(|| chain[index + 1..].iter().flatten().next().copied()).or(peer);
        }
        let mut nearest = peer;
        for entry in chain.iter().rev() {
            match entry {
                Some(ip) if self.is_trusted(*ip) => nearest = Some(*ip),
                Some(ip) => return Some(*ip),
                None => return nearest,
            }
        }
        // Every entry is a trusted proxy: the leftmost is the closest to the client.
        nearest
    }

    /// The forwarded addresses, left to right, over every instance of the header; `None` for an
    /// entry that is not an address.
    fn chain(&self, headers: &HeaderMap) -> Vec<Option<IpAddr>> {
        let name = match self.header {
            ForwardedHeader::XForwardedFor => "x-forwarded-for",
            ForwardedHeader::Forwarded => "forwarded",
        };
        let mut out = Vec::new();
        for value in headers.get_all(name) {
            let Ok(value) = value.to_str() else {
                out.push(None);
                continue;
            };
            for element in value.split(',') {
                let entry = match self.header {
                    ForwardedHeader::XForwardedFor => parse_node(element),
                    ForwardedHeader::Forwarded => forwarded_for(element).and_then(parse_node),
                };
                out.push(entry);
            }
        }
        out
    }
}

/// The `for=` value of one `Forwarded` element (`for=1.2.3.4;proto=https`).
fn forwarded_for(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.trim().eq_ignore_ascii_case("for").then(|| value.trim().trim_matches('"'))
    })
}

/// An address with an optional port: `1.2.3.4`, `1.2.3.4:80`, `::1`, `[::1]`, `[::1]:80`.
fn parse_node(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Some(addr.ip().to_canonical());
    }
    s.strip_prefix('[').and_then(|r| r.strip_suffix(']')).and_then(|r| r.parse::<IpAddr>().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolver(yaml: serde_json::Value) -> ClientIpResolver {
        ClientIpResolver::new(&serde_json::from_value::<ClientIpConfig>(yaml).unwrap())
    }

    fn headers(name: &str, values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(http::HeaderName::from_bytes(name.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        let r = ClientIpResolver::default();
        let h = headers("x-forwarded-for", &["6.6.6.6"]);
        assert_eq!(r.resolve_from(ip("10.0.0.5"), &h), ip("10.0.0.5"));
        assert_eq!(r.resolve_from(None, &h), None);
    }

    #[test]
    fn the_walk_starts_from_the_right_and_skips_trusted_proxies() {
        let r = resolver(serde_json::json!({"trusted_proxies": ["10.0.0.0/8", "192.168.1.1"]}));
        // The client wrote 6.6.6.6; the ingress appended what it saw (203.0.113.7).
        let h = headers("x-forwarded-for", &["6.6.6.6, 203.0.113.7"]);
        assert_eq!(r.resolve_from(ip("10.1.2.3"), &h), ip("203.0.113.7"));
        // Two trusted hops: 192.168.1.1 (an edge proxy) then the ingress (the peer).
        let h = headers("x-forwarded-for", &["6.6.6.6", "203.0.113.7, 192.168.1.1"]);
        assert_eq!(r.resolve_from(ip("10.1.2.3"), &h), ip("203.0.113.7"));
        // A peer that is not a trusted proxy: its header is the client's own words.
        assert_eq!(r.resolve_from(ip("203.0.113.9"), &h), ip("203.0.113.9"));
        // Only trusted addresses: the leftmost.
        let h = headers("x-forwarded-for", &["10.9.9.9, 10.8.8.8"]);
        assert_eq!(r.resolve_from(ip("10.1.2.3"), &h), ip("10.9.9.9"));
        // No header: the peer.
        assert_eq!(r.resolve_from(ip("10.1.2.3"), &HeaderMap::new()), ip("10.1.2.3"));
        // Garbage where the client should be: the nearest proxy.
        let h = headers("x-forwarded-for", &["203.0.113.7, not-an-ip, 10.8.8.8"]);
        assert_eq!(r.resolve_from(ip("10.1.2.3"), &h), ip("10.8.8.8"));
        // IPv4-mapped peers match IPv4 ranges; ports are dropped.
        assert_eq!(
            r.resolve_from(ip("::ffff:10.1.2.3"), &headers("x-forwarded-for", &["1.2.3.4:5678"])),
            ip("1.2.3.4")
        );
    }

    #[test]
    fn trusted_hops_count_from_the_right() {
        let r = resolver(serde_json::json!({"trusted_hops": 2}));
        let h = headers("x-forwarded-for", &["6.6.6.6, 203.0.113.7, 198.51.100.2"]);
        assert_eq!(r.resolve_from(ip("10.0.0.1"), &h), ip("203.0.113.7"));
        let h = headers("x-forwarded-for", &["203.0.113.7"]);
        assert_eq!(r.resolve_from(ip("10.0.0.1"), &h), ip("203.0.113.7"), "fewer entries: the leftmost");
        let h = headers("x-forwarded-for", &["unknown, 198.51.100.2"]);
        assert_eq!(r.resolve_from(ip("10.0.0.1"), &h), ip("198.51.100.2"));
    }

    #[test]
    fn the_forwarded_header() {
        let r = resolver(serde_json::json!({"header": "forwarded", "trusted_proxies": ["10.0.0.0/8"]}));
        let h = headers(
            "forwarded",
            &[r#"for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https, For=10.2.2.2;by=10.0.0.1"#],
        );
        assert_eq!(r.resolve_from(ip("10.1.2.3"), &h), ip("2001:db8:cafe::17"));
        // X-Forwarded-For is not read when the proxies write Forwarded.
        let h = headers("x-forwarded-for", &["6.6.6.6"]);
        assert_eq!(r.resolve_from(ip("10.1.2.3"), &h), ip("10.1.2.3"));
        let h = headers("forwarded", &["for=_hidden, for=10.2.2.2"]);
        assert_eq!(r.resolve_from(ip("10.1.2.3"), &h), ip("10.2.2.2"));
    }

    #[test]
    fn validation() {
        let problems = |cfg: serde_json::Value| {
            let mut v = Validation::new("http.client_ip");
            serde_json::from_value::<ClientIpConfig>(cfg).unwrap().validate(&mut v);
            v.into_problems().into_iter().map(|(k, _)| k).collect::<Vec<_>>()
        };
        assert!(problems(serde_json::json!({"trusted_proxies": ["10.0.0.0/8", "fd00::/8", "127.0.0.1"]})).is_empty());
        assert_eq!(
            problems(
                serde_json::json!({"trusted_proxies": ["0.0.0.0/0", "::/0", "10.0.0.0/33", "nope"], "trusted_hops": 1})
            ),
            [
                "http.client_ip.trusted_proxies.0",
                "http.client_ip.trusted_proxies.1",
                "http.client_ip.trusted_proxies.2",
                "http.client_ip.trusted_proxies.3",
                "http.client_ip.trusted_hops"
            ]
        );
        assert!(serde_json::from_value::<ClientIpConfig>(serde_json::json!({"header": "x-real-ip"})).is_err());
    }
}
