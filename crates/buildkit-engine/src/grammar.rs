//! The small grammars of a build, each parsed once ([`str::parse`]) wherever it is named: an
//! extra `/etc/hosts` entry ([`AddHost`], as `docker build --add-host`) and a build secret's id
//! ([`SecretId`], as `RUN --mount=type=secret,id=<id>`). Platforms have a module of their own
//! ([`crate::platform`]).

use std::borrow::Borrow;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// `host:ip`, split at the first colon (IPv6 addresses have more); the ip may be
/// `host-gateway`, which the daemon resolves to its gateway address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AddHost {
    pub host: String,
    pub ip: HostIp,
}

/// The address of an [`AddHost`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HostIp {
    Ip(IpAddr),
    /// `host-gateway`.
    Gateway,
}

/// Why a string is not an [`AddHost`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not an extra host: use host:ip, e.g. db.internal:10.0.0.5 or v6host:2001:db8::1 (or host:host-gateway)"
)]
pub struct AddHostError(pub String);

impl FromStr for AddHost {
    type Err = AddHostError;

    fn from_str(entry: &str) -> Result<AddHost, AddHostError> {
        let bad = || AddHostError(entry.to_string());
        let (host, ip) = entry.split_once(':').ok_or_else(bad)?;
        if host.is_empty() || host.chars().any(char::is_whitespace) {
            return Err(bad());
        }
        let ip = if ip == "host-gateway" {
            HostIp::Gateway
        } else {
            HostIp::Ip(ip.parse().map_err(|_| bad())?)
        };
        Ok(AddHost {
            host: host.to_string(),
            ip,
        })
    }
}

impl fmt::Display for AddHost {
    /// `host:ip`, as the daemon's `extrahosts` takes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.ip {
            HostIp::Ip(ip) => write!(f, "{}:{ip}", self.host),
            HostIp::Gateway => write!(f, "{}:host-gateway", self.host),
        }
    }
}

/// A build secret's id: letters, digits, `.`, `_` and `-`, not empty.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretId(String);

/// Why a string is not a [`SecretId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretIdError {
    #[error(
        "a secret has an empty id: give each one the id its `RUN --mount=type=secret,id=<id>` names"
    )]
    Empty,
    #[error("{0:?} is not a secret id: use letters, digits, `.`, `_` and `-`")]
    Invalid(String),
}

impl FromStr for SecretId {
    type Err = SecretIdError;

    fn from_str(id: &str) -> Result<SecretId, SecretIdError> {
        if id.is_empty() {
            return Err(SecretIdError::Empty);
        }
        if !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(SecretIdError::Invalid(id.to_string()));
        }
        Ok(SecretId(id.to_string()))
    }
}

impl SecretId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for SecretId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SecretId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_hosts_are_host_colon_ip() {
        for good in [
            "db.internal:10.0.0.5",
            "v6host:2001:db8::1",
            "gw:host-gateway",
            "x:::1",
        ] {
            let h: AddHost = good.parse().unwrap();
            assert_eq!(h.to_string(), good);
        }
        let h: AddHost = "v6host:2001:db8::1".parse().unwrap();
        assert_eq!(h.host, "v6host");
        assert_eq!(h.ip, HostIp::Ip("2001:db8::1".parse().unwrap()));
        for bad in [
            "",
            "host",
            ":10.0.0.1",
            "h:",
            "h:nope",
            "a b:1.2.3.4",
            "h:1.2.3",
        ] {
            let e = bad.parse::<AddHost>().unwrap_err();
            assert!(e.to_string().contains("is not an extra host"), "{bad}");
        }
    }

    #[test]
    fn secret_ids_are_letters_digits_dot_underscore_dash() {
        for good in ["token", "npm.rc", "a_b-c", "X9"] {
            assert_eq!(good.parse::<SecretId>().unwrap().as_str(), good);
        }
        assert_eq!("".parse::<SecretId>(), Err(SecretIdError::Empty));
        for bad in ["a b", "a/b", "ä", "a=b"] {
            assert!(
                matches!(bad.parse::<SecretId>(), Err(SecretIdError::Invalid(_))),
                "{bad}"
            );
        }
    }
}
