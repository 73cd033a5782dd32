//! Listener addresses: one address or a list (`listen = "[::]:5222"` or
//! `listen = ["192.0.2.10:5222", "[2001:db8::10]:5222"]`).
//!
//! `[::]` means every address of both families: the listener binds it dual-stack
//! (`IPV6_V6ONLY` off), and on a host without IPv6 it falls back to `0.0.0.0` with a
//! warning. The public listeners default to `[::]`; the admin listener to `127.0.0.1`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::{Deserialize, Deserializer};

/// The addresses one listener binds; never empty once validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen(Vec<SocketAddr>);

impl Listen {
    /// Every address of both families on `port` (`[::]:port`, dual-stack).
    pub fn any(port: u16) -> Self {
        Listen(vec![SocketAddr::new(
            IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            port,
        )])
    }

    /// IPv4 loopback on `port`.
    pub fn loopback(port: u16) -> Self {
        Listen(vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)])
    }

    /// The addresses, in the configured order.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.0
    }

    /// Whether every address is a loopback address.
    pub fn is_loopback(&self) -> bool {
        self.0.iter().all(|a| a.ip().is_loopback())
    }
}

impl From<SocketAddr> for Listen {
    fn from(addr: SocketAddr) -> Self {
        Listen(vec![addr])
    }
}

impl From<Vec<SocketAddr>> for Listen {
    fn from(addrs: Vec<SocketAddr>) -> Self {
        Listen(addrs)
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, addr) in self.0.iter().enumerate() {
            if n > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{addr}")?;
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(
            untagged,
            expecting = "an address such as \"[::]:5222\" or a list of them"
        )]
        enum OneOrMany {
            One(SocketAddr),
            Many(Vec<SocketAddr>),
        }
        Ok(match OneOrMany::deserialize(deserializer)? {
            OneOrMany::One(addr) => Listen(vec![addr]),
            OneOrMany::Many(addrs) => Listen(addrs),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Section {
        listen: Listen,
    }

    #[test]
    fn one_address_or_a_list() {
        let one: Section = toml::from_str(r#"listen = "[::]:5222""#).unwrap();
        assert_eq!(one.listen, Listen::any(5222));
        let many: Section =
            toml::from_str(r#"listen = ["192.0.2.1:5222", "[2001:db8::1]:5222"]"#).unwrap();
        assert_eq!(many.listen.addrs().len(), 2);
        assert_eq!(
            many.listen.to_string(),
            "192.0.2.1:5222, [2001:db8::1]:5222"
        );
        let wrong = toml::from_str::<Section>(r#"listen = "localhost""#)
            .err()
            .unwrap()
            .to_string();
        assert!(wrong.contains("an address such as"), "{wrong}");
    }
}
