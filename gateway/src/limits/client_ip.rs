//! The client's address, which per-address limits and logs use. Behind a
//! load balancer the TCP peer is the balancer: every client would share one
//! budget, and one abuser would lock everyone out. From a peer listed in
//! `server.trusted_proxies`, the client is the right-most address of
//! `X-Forwarded-For` that is not itself a trusted proxy (each proxy appends
//! the address it received from; addresses further left are the client's
//! own claims and can be forged). From any other peer the header is ignored.

use crate::config::parse_cidr;
use actix_http::header::HeaderMap;
use ipnet::IpNet;
use std::net::IpAddr;

#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    /// From `server.trusted_proxies` (validated at load: unparsable entries
    /// never get here).
    pub fn new(list: &[String]) -> Self {
        TrustedProxies {
            nets: list.iter().filter_map(|s| parse_cidr(s)).collect(),
        }
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The client's address for a request from `peer` with these headers.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let hops = headers
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else {
                // Unreadable: the chain cannot be followed further.
                break;
            };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client.to_canonical()
    }
}

/// An `X-Forwarded-For` entry: an address, possibly with a port
/// (`1.2.3.4:5678`, `[::1]:5678`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    hop.parse::<std::net::SocketAddr>().ok().map(|s| s.ip())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_http::header::{HeaderName, HeaderValue};

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append(
                HeaderName::from_static("x-forwarded-for"),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let t = TrustedProxies::new(&["10.0.0.0/8".into(), "127.0.0.1".into()]);
        let lb = ip("10.1.2.3");
        assert_eq!(t.client(lb, &headers(&["203.0.113.7"])), ip("203.0.113.7"));
        // A forged left part is ignored: the balancer appended the real peer.
        assert_eq!(
            t.client(lb, &headers(&["6.6.6.6, 203.0.113.7"])),
            ip("203.0.113.7")
        );
        // Two proxies (both trusted): past them to the client.
        assert_eq!(
            t.client(lb, &headers(&["198.51.100.1", "203.0.113.7, 10.9.9.9"])),
            ip("203.0.113.7")
        );
        assert_eq!(
            t.client(lb, &headers(&["[2001:db8::1]:443"])),
            ip("2001:db8::1")
        );
        // No header from a proxy: the proxy itself.
        assert_eq!(t.client(lb, &headers(&[])), lb);
        // Not from a trusted peer: the header is the client's own claim.
        let direct = ip("198.51.100.9");
        assert_eq!(t.client(direct, &headers(&["1.1.1.1"])), direct);
        // Garbage stops the walk at the last address read.
        assert_eq!(
            t.client(lb, &headers(&["nonsense, 10.9.9.9"])),
            ip("10.9.9.9")
        );
        assert_eq!(
            t.client(ip("::ffff:10.0.0.1"), &headers(&["203.0.113.7"])),
            ip("203.0.113.7"),
            "an IPv4-mapped peer is the IPv4 address"
        );
    }

    #[test]
    fn cidrs_and_addresses_parse() {
        assert!(parse_cidr("10.0.0.0/8").is_some());
        assert!(parse_cidr(" 127.0.0.1 ").is_some());
        assert!(parse_cidr("fd00::/8").is_some());
        assert!(parse_cidr("10.0.0.0/33").is_none());
        assert!(parse_cidr("haproxy").is_none());
    }
}
