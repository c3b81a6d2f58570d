//! IPv4 address management: subnets, pools for new networks, and the lowest free address.
//! Pure functions over what the store records; the store transaction makes them exclusive.

use crate::errors::{Error, Result};
use std::net::Ipv4Addr;

/// Kept in the store as its text, `a.b.c.d/n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr> {
        let bad = || Error::invalid(format!("invalid CIDR address: {s}"));
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = a.parse().map_err(|_| bad())?;
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        if prefix > 32 {
            return Err(bad());
        }
        Ok(Cidr { addr, prefix })
    }
    fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        }
    }
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network())
    }
    pub fn overlaps(&self, o: &Cidr) -> bool {
        self.contains(o.network()) || o.contains(self.network())
    }
    /// The canonical form: network address and prefix.
    pub fn canonical(&self) -> Cidr {
        Cidr { addr: self.network(), prefix: self.prefix }
    }
    /// The first usable host: Docker's default gateway.
    pub fn first_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network()) + 1)
    }
}

impl TryFrom<String> for Cidr {
    type Error = Error;
    fn try_from(s: String) -> Result<Cidr> {
        Cidr::parse(&s)
    }
}

impl From<Cidr> for String {
    fn from(c: Cidr) -> String {
        c.to_string()
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Docker's default local pools: 172.17-31.0.0/16, then 192.168.0-240.0/20.
fn default_pools() -> impl Iterator<Item = Cidr> {
    (17..=31u8).map(|b| Cidr { addr: Ipv4Addr::new(172, b, 0, 0), prefix: 16 }).chain((0..16u8).map(|i| Cidr { addr: Ipv4Addr::new(192, 168, i * 16, 0), prefix: 20 }))
}

/// The first default pool that overlaps neither `taken` (other networks) nor the host's routes.
pub fn pick_subnet(taken: &[Cidr], host_routes: &[Cidr]) -> Result<Cidr> {
    default_pools()
        .find(|p| !taken.iter().chain(host_routes).any(|t| t.overlaps(p)))
        .ok_or_else(|| Error::invalid("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network"))
}

/// IPv4 routes of the host's main table (from /proc/net/route), default route excluded.
pub fn host_routes() -> Vec<Cidr> {
    let text = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dst = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            // The kernel prints the network-order words as native integers.
            (mask != 0).then(|| Cidr { addr: Ipv4Addr::from(dst.to_ne_bytes()), prefix: mask.count_ones() as u8 })
        })
        .collect()
}

/// The lowest address of `range` (within `subnet`) that is not the network, broadcast,
/// gateway or already in `used`.
pub fn allocate(subnet: &Cidr, range: Option<&Cidr>, gateway: Ipv4Addr, used: &[Ipv4Addr]) -> Result<Ipv4Addr> {
    let r = range.unwrap_or(subnet);
    let (lo, hi) = (u32::from(r.network()), u32::from(r.broadcast()));
    let (net, bcast) = (u32::from(subnet.network()), u32::from(subnet.broadcast()));
    (lo..=hi)
        .map(Ipv4Addr::from)
        .find(|ip| {
            let n = u32::from(*ip);
            n != net && n != bcast && *ip != gateway && !used.contains(ip)
        })
        .ok_or_else(|| Error::conflict(format!("no available IPv4 addresses on this network's address pools: {subnet}")))
}

/// Docker's MAC for an address: 02:42 and the four address bytes.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

pub fn mac_string(m: &[u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Cidr {
        Cidr::parse(s).unwrap()
    }

    #[test]
    fn parse_and_contain() {
        let n = c("172.18.5.9/16");
        assert_eq!(n.network(), Ipv4Addr::new(172, 18, 0, 0));
        assert_eq!(n.broadcast(), Ipv4Addr::new(172, 18, 255, 255));
        assert!(n.contains(Ipv4Addr::new(172, 18, 200, 1)));
        assert!(!n.contains(Ipv4Addr::new(172, 19, 0, 1)));
        assert!(c("10.0.0.0/8").overlaps(&c("10.1.0.0/16")));
        assert!(!c("10.0.0.0/16").overlaps(&c("10.1.0.0/16")));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("10.0.0/8").is_err());
        assert!(Cidr::parse("nonsense").is_err());
    }

    #[test]
    fn picks_the_first_free_pool() {
        assert_eq!(pick_subnet(&[], &[]).unwrap(), c("172.17.0.0/16"));
        assert_eq!(pick_subnet(&[c("172.17.0.0/16")], &[c("172.18.3.0/24")]).unwrap(), c("172.19.0.0/16"));
    }

    #[test]
    fn allocates_lowest_free_skipping_reserved() {
        let s = c("10.5.0.0/29");
        let gw = Ipv4Addr::new(10, 5, 0, 1);
        assert_eq!(allocate(&s, None, gw, &[]).unwrap(), Ipv4Addr::new(10, 5, 0, 2));
        let used: Vec<Ipv4Addr> = (2..=5).map(|i| Ipv4Addr::new(10, 5, 0, i)).collect();
        assert_eq!(allocate(&s, None, gw, &used).unwrap(), Ipv4Addr::new(10, 5, 0, 6));
        let used: Vec<Ipv4Addr> = (2..=6).map(|i| Ipv4Addr::new(10, 5, 0, i)).collect();
        assert!(allocate(&s, None, gw, &used).is_err(), ".7 is the broadcast address");
        let range = c("10.5.0.4/30");
        assert_eq!(allocate(&s, Some(&range), gw, &[]).unwrap(), Ipv4Addr::new(10, 5, 0, 4));
    }

    #[test]
    fn mac_from_ip() {
        assert_eq!(mac_string(&mac_for(Ipv4Addr::new(172, 17, 0, 2))), "02:42:ac:11:00:02");
    }
}
