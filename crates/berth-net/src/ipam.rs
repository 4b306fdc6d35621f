//! Address management inside IPv4 subnets, as Docker's default IPAM does it:
//! CIDR parsing (with Docker's wording), the gateway a network gets when
//! none is given (its first host), the lowest free address of a pool or
//! `--ip-range`, the MAC an address implies (02:42 + the four bytes, as
//! Docker 20.10), the choice of a free subnet from the default address
//! pools (or `default-address-pools`), and the host's routes.
//!
//! Pure except [`host_routes_v4`], which only reads `/proc/net/route`.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    /// Go's `net.ParseCIDR` error, as Docker prints it.
    #[error("invalid CIDR address: {0}")]
    InvalidCidr(String),
}

/// An IPv4 subnet. The address is kept as given (`10.1.2.3/16`: Docker
/// shows it so in `network inspect`); everything else works on the network
/// address (`10.1.0.0/16`), which is what it displays as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subnet {
    addr: Ipv4Addr,
    prefix: u8,
}

impl Subnet {
    /// `a.b.c.d/n`, `n` ≤ 32 (Go's `net.ParseCIDR` for IPv4: four decimal
    /// bytes, no leading `+`, a prefix of at most two digits).
    pub fn parse(s: &str) -> Result<Subnet, IpamError> {
        let bad = || IpamError::InvalidCidr(s.to_string());
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        if p.is_empty() || p.len() > 2 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        if prefix > 32 {
            return Err(bad());
        }
        let addr: Ipv4Addr = a.parse().map_err(|_| bad())?;
        Ok(Subnet { addr, prefix })
    }

    /// The subnet of `addr` with `prefix` bits (`prefix` > 32 is taken as 32).
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Subnet {
        Subnet {
            addr,
            prefix: prefix.min(32),
        }
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The address as given (`10.1.2.3` of `10.1.2.3/16`).
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// `10.1.2.3/16` as given.
    pub fn as_given(&self) -> String {
        format!("{}/{}", self.addr, self.prefix)
    }

    fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }

    /// The network address (`10.1.0.0` of `10.1.2.3/16`).
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }

    /// The same subnet with its network address.
    pub fn normalized(&self) -> Subnet {
        Subnet {
            addr: self.network(),
            prefix: self.prefix,
        }
    }

    /// The last address (`10.1.255.255` of `10.1.0.0/16`).
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network()) | !self.mask())
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network())
    }

    /// Whether the two share an address (one contains the other).
    pub fn overlaps(&self, other: &Subnet) -> bool {
        self.contains(other.network()) || other.contains(self.network())
    }

    /// Docker's default gateway: the first host address (`172.17.0.1`).
    pub fn default_gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network()).wrapping_add(1))
    }

    /// How many addresses it spans.
    fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.prefix)
    }
}

/// The lowest free address of `pool` (of `range` within it, when given)
/// that is not in `taken`, never the pool's network or broadcast address.
/// As libnetwork's allocator, a range's own first address may be given out
/// (`10.30.1.0` of `10.30.1.0/24` in `10.30.0.0/16`), its last may not.
/// The caller puts the gateway in `taken`.
pub fn allocate(
    pool: &Subnet,
    range: Option<&Subnet>,
    taken: &BTreeSet<Ipv4Addr>,
) -> Option<Ipv4Addr> {
    let from = range.unwrap_or(pool);
    let first = u32::from(from.network());
    let last = u32::from(from.broadcast());
    (first..=last)
        .map(Ipv4Addr::from)
        .filter(|ip| pool.contains(*ip))
        .filter(|ip| range.is_none_or(|r| *ip != r.broadcast()))
        .find(|ip| *ip != pool.network() && *ip != pool.broadcast() && !taken.contains(ip))
}

/// The MAC address Docker 20.10 gives an endpoint: `02:42:` and the four
/// bytes of its IPv4 address.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

/// `02:42:ac:11:00:02`
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// One `default-address-pools` entry: `base` cut into subnets of `size` bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressPool {
    pub base: Subnet,
    pub size: u8,
}

/// Docker's default local address pools: 172.17.0.0/16 … 172.31.0.0/16,
/// then 192.168.0.0/16 in /20s (moby's `ipamutils`).
pub fn default_pools() -> Vec<AddressPool> {
    let mut v: Vec<AddressPool> = (17..=31)
        .map(|b| AddressPool {
            base: Subnet::new(Ipv4Addr::new(172, b, 0, 0), 16),
            size: 16,
        })
        .collect();
    v.push(AddressPool {
        base: Subnet::new(Ipv4Addr::new(192, 168, 0, 0), 16),
        size: 20,
    });
    v
}

/// The first subnet of `pools` (in order, each cut into its size) that
/// overlaps none of `taken` (other networks, host routes).
pub fn choose_subnet(taken: &[Subnet], pools: &[AddressPool]) -> Option<Subnet> {
    for p in pools {
        if p.size < p.base.prefix || p.size > 32 {
            continue;
        }
        let step = 1u64 << (32 - u32::from(p.size));
        let start = u64::from(u32::from(p.base.network()));
        let count = p.base.size() / step;
        for i in 0..count {
            let Ok(a) = u32::try_from(start + i * step) else {
                break;
            };
            let s = Subnet::new(Ipv4Addr::from(a), p.size);
            if !taken.iter().any(|t| t.overlaps(&s)) {
                return Some(s);
            }
        }
    }
    None
}

/// The destinations of the host's IPv4 routes (`/proc/net/route`), the
/// default route left out (as Docker's overlap check skips it).
pub fn host_routes_v4() -> Vec<Subnet> {
    std::fs::read_to_string("/proc/net/route")
        .map(|t| parse_routes(&t))
        .unwrap_or_default()
}

/// `/proc/net/route`: a header, then `Iface Destination Gateway Flags
/// RefCnt Use Metric Mask …` with addresses as little-endian hex.
fn parse_routes(text: &str) -> Vec<Subnet> {
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            continue;
        }
        let (Ok(dst), Ok(mask)) = (u32::from_str_radix(f[1], 16), u32::from_str_radix(f[7], 16))
        else {
            continue;
        };
        if mask == 0 {
            continue;
        }
        // The kernel prints the address's network-order bytes as a native
        // u32: its native bytes are the address.
        out.push(Subnet::new(
            Ipv4Addr::from(dst.to_ne_bytes()),
            mask.count_ones() as u8,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Subnet {
        Subnet::parse(x).unwrap()
    }

    #[test]
    fn parses_as_go_does() {
        assert_eq!(s("10.1.2.3/16").to_string(), "10.1.0.0/16");
        assert_eq!(s("10.1.2.3/16").as_given(), "10.1.2.3/16");
        assert_eq!(s("0.0.0.0/0").to_string(), "0.0.0.0/0");
        for bad in [
            "foo",
            "10.0.0.0/33",
            "10.0.0.1",
            "10.0.0.0/",
            "10.0.0/8",
            "10.0.0.0/+8",
        ] {
            assert_eq!(
                Subnet::parse(bad).unwrap_err().to_string(),
                format!("invalid CIDR address: {bad}")
            );
        }
    }

    #[test]
    fn contains_overlaps_gateway() {
        let a = s("172.17.0.0/16");
        assert!(a.contains("172.17.255.255".parse().unwrap()));
        assert!(!a.contains("172.18.0.0".parse().unwrap()));
        assert!(a.overlaps(&s("172.17.3.0/24")));
        assert!(s("172.0.0.0/8").overlaps(&a));
        assert!(!a.overlaps(&s("172.18.0.0/16")));
        assert_eq!(a.default_gateway(), Ipv4Addr::new(172, 17, 0, 1));
        assert_eq!(a.broadcast(), Ipv4Addr::new(172, 17, 255, 255));
    }

    #[test]
    fn allocates_the_lowest_free_host() {
        let pool = s("10.0.0.0/29");
        let mut taken = BTreeSet::from([Ipv4Addr::new(10, 0, 0, 1)]);
        assert_eq!(
            allocate(&pool, None, &taken),
            Some(Ipv4Addr::new(10, 0, 0, 2))
        );
        taken.extend((2..=6).map(|i| Ipv4Addr::new(10, 0, 0, i)));
        // .7 is the broadcast address, .0 the network's.
        assert_eq!(allocate(&pool, None, &taken), None);
        let range = s("10.0.0.4/30");
        taken.remove(&Ipv4Addr::new(10, 0, 0, 3));
        assert_eq!(allocate(&pool, Some(&range), &taken), None);
        taken.remove(&Ipv4Addr::new(10, 0, 0, 5));
        assert_eq!(
            allocate(&pool, Some(&range), &taken),
            Some(Ipv4Addr::new(10, 0, 0, 5))
        );
        // A range's first address is given out, its last is not (dockerd
        // 20.10 gave a container 10.30.1.0 on --subnet 10.30.0.0/16
        // --ip-range 10.30.1.0/24).
        let mid = s("10.1.1.0/24");
        assert_eq!(
            allocate(&s("10.1.0.0/16"), Some(&mid), &BTreeSet::new()),
            Some(Ipv4Addr::new(10, 1, 1, 0))
        );
        let full: BTreeSet<Ipv4Addr> = (0..=254).map(|i| Ipv4Addr::new(10, 1, 1, i)).collect();
        assert_eq!(allocate(&s("10.1.0.0/16"), Some(&mid), &full), None);
        // A range at the pool's start never yields its network address.
        let big = s("10.1.0.0/16");
        let first = s("10.1.0.0/24");
        assert_eq!(
            allocate(&big, Some(&first), &BTreeSet::new()),
            Some(Ipv4Addr::new(10, 1, 0, 1))
        );
    }

    #[test]
    fn mac_is_02_42_and_the_address() {
        let m = mac_for(Ipv4Addr::new(172, 23, 0, 2));
        assert_eq!(format_mac(&m), "02:42:ac:17:00:02");
    }

    #[test]
    fn chooses_from_the_default_pools() {
        let pools = default_pools();
        assert_eq!(choose_subnet(&[], &pools), Some(s("172.17.0.0/16")));
        let taken = [s("172.17.0.0/16"), s("172.18.5.0/24")];
        assert_eq!(choose_subnet(&taken, &pools), Some(s("172.19.0.0/16")));
        let all172: Vec<Subnet> = (17..=31)
            .map(|b| Subnet::new(Ipv4Addr::new(172, b, 0, 0), 16))
            .collect();
        assert_eq!(choose_subnet(&all172, &pools), Some(s("192.168.0.0/20")));
        let mut more = all172.clone();
        more.push(s("192.168.0.0/20"));
        assert_eq!(choose_subnet(&more, &pools), Some(s("192.168.16.0/20")));
        more.push(s("192.168.0.0/16"));
        assert_eq!(choose_subnet(&more, &pools), None);
        let custom = [AddressPool {
            base: s("10.10.0.0/16"),
            size: 24,
        }];
        assert_eq!(
            choose_subnet(&[s("10.10.0.0/24")], &custom),
            Some(s("10.10.1.0/24"))
        );
    }

    #[test]
    fn reads_proc_net_route() {
        let t =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                 eth0\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                 eth0\t0002A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                 docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
        assert_eq!(
            parse_routes(t),
            vec![s("192.168.2.0/24"), s("172.17.0.0/16")]
        );
    }
}
