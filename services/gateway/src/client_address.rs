//! The client's address, for rate limits, login throttling and logs.
//!
//! `X-Forwarded-For` is believed only as far as `TRUSTED_PROXIES` (CIDR blocks, from
//! the `SalesSystem` resource or the chart) vouch for it: if the connection comes
//! from a trusted proxy, its entries are read from the right, skipping trusted
//! proxies, and the first address that is not one is the client. A client cannot
//! pick its own address by sending the header: an untrusted peer is the client.

use std::net::IpAddr;

use axum::http::{HeaderMap, HeaderName};
use ipnet::IpNet;

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The proxies in front of the gateway.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    /// `10.0.0.0/8, 192.168.0.1` (an address alone is a /32 or /128); empty: none.
    pub fn parse(list: &str) -> anyhow::Result<TrustedProxies> {
        let mut nets = Vec::new();
        for item in list
            .split([',', ' '])
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let net = item
                .parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    anyhow::anyhow!("TRUSTED_PROXIES: {item:?} is not an address or a CIDR block")
                })?;
            nets.push(net);
        }
        Ok(TrustedProxies { nets })
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The client of a request that came from `peer`.
    pub fn client(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = canonical(peer?);
        if !self.trusts(peer) {
            return Some(peer);
        }
        let mut client = peer;
        for entry in forwarded_for(headers).iter().rev() {
            match entry.parse::<IpAddr>() {
                Ok(ip) => {
                    client = canonical(ip);
                    if !self.trusts(client) {
                        return Some(client);
                    }
                }
                // Garbage from beyond the trusted proxies: stop at the last good hop.
                Err(_) => return Some(client),
            }
        }
        Some(client)
    }
}

/// Every entry of every `X-Forwarded-For` header, in order.
pub fn forwarded_for(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty())
        .collect()
}

/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) as the IPv4 address they are.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(values: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(X_FORWARDED_FOR, HeaderValue::from_static(v));
        }
        h
    }

    fn ip(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_sends() {
        let proxies = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let h = headers(&["1.2.3.4"]);
        assert_eq!(proxies.client(ip("203.0.113.9"), &h), ip("203.0.113.9"));
        let none = TrustedProxies::default();
        assert_eq!(none.client(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn trusted_proxies_are_skipped_from_the_right() {
        let proxies = TrustedProxies::parse("10.0.0.0/8, 192.168.1.1").unwrap();
        let h = headers(&["198.51.100.7, 203.0.113.9", "192.168.1.1"]);
        // The client forged 198.51.100.7; the first untrusted from the right is real.
        assert_eq!(proxies.client(ip("10.1.2.3"), &h), ip("203.0.113.9"));
        let only_proxies = headers(&["10.0.0.5"]);
        assert_eq!(
            proxies.client(ip("10.1.2.3"), &only_proxies),
            ip("10.0.0.5")
        );
        let garbage = headers(&["junk, 10.0.0.5"]);
        assert_eq!(proxies.client(ip("10.1.2.3"), &garbage), ip("10.0.0.5"));
        assert_eq!(
            proxies.client(ip("::ffff:10.1.2.3"), &headers(&["203.0.113.1"])),
            ip("203.0.113.1")
        );
        assert_eq!(proxies.client(None, &h), None);
    }

    #[test]
    fn bad_lists_are_refused() {
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("proxy.local").is_err());
        assert!(TrustedProxies::parse("").unwrap().is_empty());
    }
}
