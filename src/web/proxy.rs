//! The client's address behind a reverse proxy (`AU_RELAY_TRUSTED_PROXIES`).
//!
//! Behind nginx (`deploy/nginx.conf`) every connection comes from the proxy, so a throttle keyed
//! on the peer address would count every practice's failed logins as one client's. The proxy
//! appends the address it saw to `X-Forwarded-For`; the client is the right-most entry that is
//! not itself a trusted proxy. Entries left of it were written by the client and are never
//! believed. Without trusted proxies (the default) the header is ignored.

use std::net::IpAddr;

use actix_web::HttpRequest;

/// One trusted network: an address and its prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    fn parse(s: &str) -> Option<Self> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (s.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Self { addr, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        // Both as 128 bits, IPv4 in the top 32, so that a prefix counts from the top.
        let bits = |a: IpAddr| match a {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)) << 96, true),
            IpAddr::V6(v6) => (u128::from(v6), false),
        };
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let ((net, net_v4), (candidate, candidate_v4)) = (bits(self.addr), bits(ip));
        let mask = match self.prefix {
            0 => 0,
            p => u128::MAX << (128 - u32::from(p)),
        };
        net_v4 == candidate_v4 && net & mask == candidate & mask
    }
}

/// The reverse proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Net>);

impl TrustedProxies {
    /// From addresses or CIDR networks (`127.0.0.1`, `172.16.0.0/12`, `::1`); the entry
    /// that is neither is named in the error.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        entries
            .iter()
            .map(|e| e.as_ref().trim())
            .filter(|e| !e.is_empty())
            .map(|e| Net::parse(e).ok_or_else(|| e.to_owned()))
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(ip))
    }

    /// The client address of `peer`, given the `X-Forwarded-For` values of the request.
    pub fn client<'a>(&self, peer: IpAddr, forwarded: impl Iterator<Item = &'a str>) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = forwarded.flat_map(|v| v.split(',')).collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            // A hop that is not an address: stop at the last one known (never believe more).
            let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                break;
            };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }

    /// The client address of a request (empty when the peer is unknown).
    pub fn client_of(&self, req: &HttpRequest) -> String {
        let Some(peer) = req.peer_addr().map(|a| a.ip()) else {
            return String::new();
        };
        let forwarded = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok());
        self.client(peer, forwarded).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_match_by_prefix() {
        let t = TrustedProxies::parse(&["127.0.0.1", "172.16.0.0/12", "fd00::/8"]).unwrap();
        assert!(t.trusts(ip("127.0.0.1")));
        assert!(!t.trusts(ip("127.0.0.2")));
        assert!(t.trusts(ip("172.31.255.1")));
        assert!(!t.trusts(ip("172.32.0.1")));
        assert!(t.trusts(ip("fd12::1")));
        assert!(!t.trusts(ip("fe80::1")));
        assert!(t.trusts(ip("::ffff:127.0.0.1")), "IPv4-mapped");
        assert!(TrustedProxies::parse(&["0.0.0.0/0"])
            .unwrap()
            .trusts(ip("8.8.8.8")));
        assert_eq!(
            TrustedProxies::parse(&["10.0.0.0/33"]),
            Err("10.0.0.0/33".into())
        );
        assert_eq!(TrustedProxies::parse(&["nginx"]), Err("nginx".into()));
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_hop() {
        let t = TrustedProxies::parse(&["10.0.0.1", "10.0.0.2"]).unwrap();
        let client = |peer: &str, xff: &[&str]| t.client(ip(peer), xff.iter().copied());
        assert_eq!(client("10.0.0.1", &["203.0.113.7"]), ip("203.0.113.7"));
        // What the client itself wrote left of the proxy's entry is not believed.
        assert_eq!(
            client("10.0.0.1", &["1.1.1.1, 203.0.113.7"]),
            ip("203.0.113.7")
        );
        assert_eq!(
            client("10.0.0.1", &["203.0.113.7, 10.0.0.2"]),
            ip("203.0.113.7")
        );
        assert_eq!(
            client("10.0.0.1", &["1.1.1.1", "203.0.113.7"]),
            ip("203.0.113.7")
        );
        // Not from a trusted proxy: the header is the client's own and ignored.
        assert_eq!(client("198.51.100.1", &["1.1.1.1"]), ip("198.51.100.1"));
        assert_eq!(client("10.0.0.1", &[]), ip("10.0.0.1"));
        assert_eq!(client("10.0.0.1", &["unknown"]), ip("10.0.0.1"));
        assert_eq!(
            TrustedProxies::default().client(ip("10.0.0.1"), ["1.1.1.1"].into_iter()),
            ip("10.0.0.1")
        );
    }
}
