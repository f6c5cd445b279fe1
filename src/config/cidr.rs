//! `Cidr`: an address block as written in configuration (`10.0.0.0/8`, `2001:db8::/32`,
//! or a bare address for a block of one), parsed once so nothing later sees a bad one.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The network address, host bits cleared.
    network: IpAddr,
    prefix_length: u8,
}

impl Cidr {
    /// Whether `address` lies in the block. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`,
    /// what a dual-stack listener reports for IPv4 peers) count as their IPv4 address.
    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.network, address.to_canonical()) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                let mask = mask_u32(self.prefix_length);
                u32::from(address) & mask == u32::from(network)
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                let mask = mask_u128(self.prefix_length);
                u128::from(address) & mask == u128::from(network)
            }
            _ => false,
        }
    }
}

fn mask_u32(prefix_length: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix_length))
        .unwrap_or(0)
}

fn mask_u128(prefix_length: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(prefix_length))
        .unwrap_or(0)
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Cidr, String> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address
            .parse()
            .map_err(|_| format!("'{text}' is not an address or address/prefix block"))?;
        let longest = if address.is_ipv4() { 32 } else { 128 };
        let prefix_length = match prefix {
            None => longest,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|length| *length <= longest)
                .ok_or_else(|| {
                    format!("'{text}' has a prefix length that is not 0 to {longest}")
                })?,
        };
        // `::ffff:a.b.c.d/n` is the IPv4 block `a.b.c.d/(n - 96)`, as addresses are compared.
        let (address, prefix_length) = match address.to_canonical() {
            IpAddr::V4(v4) if address.is_ipv6() && prefix_length >= 96 => {
                (IpAddr::V4(v4), prefix_length - 96)
            }
            _ => (address, prefix_length),
        };
        let network = match address {
            IpAddr::V4(v4) => IpAddr::V4((u32::from(v4) & mask_u32(prefix_length)).into()),
            IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & mask_u128(prefix_length)).into()),
        };
        Ok(Cidr {
            network,
            prefix_length,
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}/{}", self.network, self.prefix_length)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Cidr, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(text: &str) -> Cidr {
        text.parse().unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_ipv4_block_holds_exactly_its_addresses() {
        let block = cidr("10.1.0.0/16");
        assert!(block.contains(ip("10.1.0.1")));
        assert!(block.contains(ip("10.1.255.255")));
        assert!(!block.contains(ip("10.2.0.1")));
        assert!(!block.contains(ip("::1")));
    }

    #[test]
    fn an_ipv6_block_holds_exactly_its_addresses() {
        let block = cidr("2001:db8::/32");
        assert!(block.contains(ip("2001:db8:ffff::1")));
        assert!(!block.contains(ip("2001:db9::1")));
        assert!(!block.contains(ip("10.0.0.1")));
    }

    #[test]
    fn a_bare_address_is_a_block_of_one() {
        let block = cidr("192.0.2.7");
        assert_eq!(block.to_string(), "192.0.2.7/32");
        assert!(block.contains(ip("192.0.2.7")));
        assert!(!block.contains(ip("192.0.2.8")));
    }

    #[test]
    fn host_bits_are_cleared_and_zero_length_holds_everything_of_its_family() {
        assert_eq!(cidr("10.1.2.3/8").to_string(), "10.0.0.0/8");
        assert!(cidr("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(cidr("::/0").contains(ip("2001:db8::1")));
    }

    #[test]
    fn ipv4_mapped_addresses_count_as_ipv4() {
        assert!(cidr("127.0.0.0/8").contains(ip("::ffff:127.0.0.1")));
        assert_eq!(cidr("::ffff:10.0.0.0/104").to_string(), "10.0.0.0/8");
        assert!(cidr("::ffff:10.0.0.0/104").contains(ip("10.9.9.9")));
    }

    #[test]
    fn malformed_blocks_are_refused_with_the_value() {
        for text in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "10.0.0.0/x",
            "proxy",
        ] {
            let error = text.parse::<Cidr>().unwrap_err();
            assert!(error.contains(&format!("'{text}'")), "{error}");
        }
    }
}
