//! CIDR prefixes as the lists store them: IPv4 mapped into `::ffff:0:0/96`.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    str::FromStr,
};

use icmp_guard_common::{bucket::V4_MAPPED_PREFIX, config::prefix_mask};

/// A network prefix with no host bits set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    /// The network, IPv4 mapped.
    pub addr: [u8; 16],
    /// Prefix length over the 128-bit (mapped) address.
    pub len: u32,
}

impl Cidr {
    /// A prefix from its stored form.
    #[must_use]
    pub const fn from_stored(addr: [u8; 16], len: u32) -> Self {
        Self { addr, len }
    }

    fn is_v4(&self) -> bool {
        self.len >= 96 && self.addr[..12] == V4_MAPPED_PREFIX
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_v4() {
            let v4 = Ipv4Addr::new(self.addr[12], self.addr[13], self.addr[14], self.addr[15]);
            write!(f, "{v4}/{}", self.len - 96)
        } else {
            write!(f, "{}/{}", Ipv6Addr::from(self.addr), self.len)
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    /// `ADDR/LEN` or a bare address (a /32 or /128). Host bits must be clear.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let ip: IpAddr = addr.parse().map_err(|_| {
            let what = if len.is_some() {
                format!("{s:?}: {addr:?}")
            } else {
                format!("{s:?}")
            };
            format!(
                "{what} is not an IPv4 or IPv6 address; write an address or ADDR/LEN, e.g. \
                 198.51.100.0/24 or 2001:db8::/32"
            )
        })?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let len: u32 = match len {
            Some(l) => l
                .parse()
                .ok()
                .filter(|&l| l <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to {max}"))?,
            None => max,
        };
        let (addr, len) = match ip {
            IpAddr::V4(v4) => (v4.to_ipv6_mapped().octets(), len + 96),
            IpAddr::V6(v6) => (v6.octets(), len),
        };
        let mask = prefix_mask(len);
        let network: [u8; 16] = std::array::from_fn(|i| addr[i] & mask[i]);
        let cidr = Self { addr: network, len };
        if network != addr {
            return Err(format!("{s:?} has host bits set; did you mean {cidr}?"));
        }
        // Lists hold IPv4 as `::ffff:0:0/96`: a shorter IPv6 prefix around it would also
        // match every IPv4 source (`::/8` would deny all of IPv4).
        let mapped: [u8; 16] =
            std::array::from_fn(|i| V4_MAPPED_PREFIX.get(i).copied().unwrap_or(0) & mask[i]);
        if ip.is_ipv6() && len < 96 && mapped == network {
            return Err(format!(
                "{s:?} contains ::ffff:0:0/96, where IPv4 sources are kept, so it would also \
                 match every IPv4 source; list IPv6 prefixes that leave it out, and IPv4 as \
                 IPv4 (0.0.0.0/0 for all of it)"
            ));
        }
        Ok(cidr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for (text, shown) in [
            ("198.51.100.0/24", "198.51.100.0/24"),
            ("203.0.113.9", "203.0.113.9/32"),
            ("2001:db8::/32", "2001:db8::/32"),
            ("2001:db8::1", "2001:db8::1/128"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            // IPv6 prefixes beside the IPv4-mapped range, and the range itself.
            ("::/96", "::/96"),
            ("::/81", "::/81"),
            ("::1/128", "::1/128"),
            ("2000::/3", "2000::/3"),
            ("::ffff:0:0/96", "0.0.0.0/0"),
        ] {
            let cidr: Cidr = text.parse().unwrap();
            assert_eq!(cidr.to_string(), shown);
        }
        let v4: Cidr = "198.51.100.0/24".parse().unwrap();
        assert_eq!(v4.len, 120);
    }

    #[test]
    fn rejects_bad_prefixes() {
        for (text, why) in [
            ("198.51.100.0/33", "0 to 32"),
            ("2001:db8::/129", "0 to 128"),
            ("198.51.100.7/24", "did you mean 198.51.100.0/24"),
            ("banana", "\"banana\" is not an IPv4 or IPv6 address; write"),
            (
                "300.1.2.3/8",
                "\"300.1.2.3/8\": \"300.1.2.3\" is not an IPv4 or IPv6 address; write an address \
                 or ADDR/LEN, e.g. 198.51.100.0/24",
            ),
            ("198.51.100.0/x", "0 to 32"),
            // Around the IPv4-mapped range, where IPv4 sources are kept.
            ("::/0", "would also match every IPv4 source"),
            ("::/8", "would also match every IPv4 source"),
            ("::/80", "would also match every IPv4 source"),
            ("::fffe:0:0/95", "would also match every IPv4 source"),
        ] {
            let err = text.parse::<Cidr>().unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
    }
}
