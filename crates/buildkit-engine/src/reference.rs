//! Docker image references (`[registry[:port]/]path[:tag][@digest]`): parsing, validation
//! and the pieces the build, push and registry client need (registry host, repository, tag).
//!
//! Follows the grammar of the distribution reference package: lowercase path components
//! separated by `.`, `_`, `__` or dashes; a registry is the first component when it has a `.`
//! or a `:` or is `localhost`; tags are `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`. Names without a
//! registry live on Docker Hub (`docker.io`, `library/` for single components).
//!
//! Not for: talking to registries (see the registry client).

use std::fmt;

/// The registry implied by a name without one.
pub const DOCKER_HUB: &str = "docker.io";

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The registry host (and port) as written, or `None` for Docker Hub.
    pub registry: Option<String>,
    /// The repository path, e.g. `team/app`.
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a valid image reference: {1}")]
pub struct ReferenceError(pub String, pub String);

/// What is wrong with one part of a reference (a tag, a digest, the registry, a path
/// component), in words that say what the part must be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartError {
    #[error(
        "the tag {0:?} must be 1 to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'"
    )]
    Tag(String),
    #[error("the digest {0:?} must look like sha256:<64 hex digits>")]
    Digest(String),
    #[error(
        "the registry {0:?} opens an IPv6 address with '[' but never closes it: write e.g. [::1]:5000"
    )]
    UnclosedIpv6(String),
    #[error("the registry host [{0}] is not an IPv6 address: write e.g. [::1]:5000")]
    NotIpv6(String),
    #[error(
        "the registry {registry:?} has {after:?} after its IPv6 address: only `:port` may follow it"
    )]
    AfterIpv6 { registry: String, after: String },
    #[error("the registry port {0:?} must be a number from 1 to 65535")]
    Port(String),
    #[error("the registry host is empty: write e.g. registry.example.com:5000")]
    EmptyHost,
    #[error("the registry host {0:?} is not an IPv4 address (four numbers from 0 to 255)")]
    NotIpv4(String),
    #[error(
        "the registry host {0:?} is not a valid host name: use letters, digits and '-' in dot-separated labels, e.g. registry.example.com"
    )]
    HostName(String),
    #[error(
        "the path component {0:?} must be lowercase letters and digits, separated by '.', '_', '__' or '-'"
    )]
    Component(String),
}

/// Why another tag for an image is not one: a bare tag that is not a tag, or a full
/// reference that is not a reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    #[error(transparent)]
    Tag(#[from] PartError),
    #[error(transparent)]
    Reference(#[from] ReferenceError),
}

impl Reference {
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        let err = |why: &dyn fmt::Display| ReferenceError(s.to_string(), why.to_string());
        if s.is_empty() {
            return Err(err(&"it is empty"));
        }
        if s.len() > 255 + 128 + 80 {
            return Err(err(&"it is too long"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                validate_digest(d).map_err(|w| err(&w))?;
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        // A tag is after the last ':' that follows the last '/'.
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag {
            validate_tag(t).map_err(|w| err(&w))?;
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                validate_registry(first).map_err(|w| err(&w))?;
                (Some(first.to_string()), rest)
            }
            _ => (None, name),
        };
        if path.is_empty() {
            return Err(err(&"the repository path is empty"));
        }
        if path.len() > 255 {
            return Err(err(&"the repository path is longer than 255 characters"));
        }
        for component in path.split('/') {
            validate_component(component).map_err(|w| err(&w))?;
        }
        Ok(Reference {
            registry,
            path: path.to_string(),
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// The registry host to talk to (`docker.io` when none was written).
    pub fn registry_host(&self) -> &str {
        self.registry.as_deref().unwrap_or(DOCKER_HUB)
    }

    /// The repository as Docker names it: `registry/path` (or `path` on Docker Hub).
    pub fn repository(&self) -> String {
        match &self.registry {
            Some(r) => format!("{r}/{}", self.path),
            None => self.path.clone(),
        }
    }

    /// The repository path as the registry API names it (`library/x` for official images).
    pub fn api_path(&self) -> String {
        if self.registry.is_none() && !self.path.contains('/') {
            format!("library/{}", self.path)
        } else {
            self.path.clone()
        }
    }

    /// The tag, `latest` when none was written.
    pub fn tag_or_latest(&self) -> &str {
        self.tag.as_deref().unwrap_or("latest")
    }

    /// `repository@digest`.
    pub fn with_digest(&self, digest: &str) -> String {
        format!("{}@{digest}", self.repository())
    }

    /// `repository:tag`.
    pub fn with_tag(&self, tag: &str) -> String {
        format!("{}:{tag}", self.repository())
    }

    /// This reference with its tag made explicit (`latest` when none) and no digest: what a
    /// push names.
    pub fn tagged(&self) -> Reference {
        Reference {
            tag: Some(self.tag_or_latest().to_string()),
            digest: None,
            ..self.clone()
        }
    }

    /// Another tag for this image, as a user writes one: a bare tag (`v1.2`) is a tag of this
    /// repository; a full reference (`registry/other:tag`) names another repository (`latest`
    /// when it has no tag). The one rule for `tags`, used by validation and by the plan.
    pub fn resolve_tag(&self, tag: &str) -> Result<Reference, TagError> {
        if tag.contains('/') || tag.contains(':') {
            Ok(Reference::parse(tag)?.tagged())
        } else {
            validate_tag(tag)?;
            Ok(Reference {
                tag: Some(tag.to_string()),
                ..self.tagged()
            })
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.repository())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Checks a tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn validate_tag(t: &str) -> Result<(), PartError> {
    let ok_first = t
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let ok_rest = t
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if t.is_empty() || t.len() > 128 || !ok_first || !ok_rest {
        return Err(PartError::Tag(t.to_string()));
    }
    Ok(())
}

fn validate_digest(d: &str) -> Result<(), PartError> {
    let Some((algo, hex)) = d.split_once(':') else {
        return Err(PartError::Digest(d.to_string()));
    };
    let hex_ok = hex.len() >= 32
        && hex
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase());
    let algo_ok = !algo.is_empty()
        && algo
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !(hex_ok && algo_ok) || (algo == "sha256" && hex.len() != 64) {
        return Err(PartError::Digest(d.to_string()));
    }
    Ok(())
}

/// Checks a registry: a host name, an IPv4 address or an IPv6 address in brackets, with an
/// optional port (`ghcr.io`, `localhost:5000`, `10.0.0.1:5000`, `[::1]:5000`).
pub fn validate_registry(r: &str) -> Result<(), PartError> {
    let (host, port) = if let Some(bracketed) = r.strip_prefix('[') {
        let Some((inner, after)) = bracketed.split_once(']') else {
            return Err(PartError::UnclosedIpv6(r.to_string()));
        };
        if inner.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(PartError::NotIpv6(inner.to_string()));
        }
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(p) => Some(p),
                None => {
                    return Err(PartError::AfterIpv6 {
                        registry: r.to_string(),
                        after: after.to_string(),
                    });
                }
            },
        };
        (None, port)
    } else {
        match r.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(r), None),
        }
    };
    if let Some(p) = port
        && (p.is_empty()
            || !p.bytes().all(|b| b.is_ascii_digit())
            || !p.parse::<u16>().is_ok_and(|n| n > 0))
    {
        return Err(PartError::Port(p.to_string()));
    }
    if let Some(host) = host {
        validate_host(host)?;
    }
    Ok(())
}

/// Checks a host name or an IPv4 address (all-digit labels must make an IPv4 address).
fn validate_host(host: &str) -> Result<(), PartError> {
    if host.is_empty() {
        return Err(PartError::EmptyHost);
    }
    let labels: Vec<&str> = host.split('.').collect();
    if labels.len() > 1
        && labels
            .iter()
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()))
    {
        return match host.parse::<std::net::Ipv4Addr>() {
            Ok(_) => Ok(()),
            Err(_) => Err(PartError::NotIpv4(host.to_string())),
        };
    }
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if host.len() > 253 || !labels.iter().all(|l| label_ok(l)) {
        return Err(PartError::HostName(host.to_string()));
    }
    Ok(())
}

fn validate_component(c: &str) -> Result<(), PartError> {
    let bad = || Err(PartError::Component(c.to_string()));
    let bytes = c.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return bad();
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if alnum(b) {
            i += 1;
            continue;
        }
        // A separator: '.', '_', '__', or one or more '-'.
        let start = i;
        match b {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < bytes.len() && bytes[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < bytes.len() && bytes[i] == b'-' {
                    i += 1;
                }
            }
            _ => return bad(),
        }
        if i == start || i >= bytes.len() || !alnum(bytes[i]) {
            return bad();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        let r = Reference::parse("127.0.0.1:5000/app").unwrap();
        assert_eq!(r.registry.as_deref(), Some("127.0.0.1:5000"));
        assert_eq!(r.path, "app");
        assert_eq!(r.tag_or_latest(), "latest");
        assert_eq!(r.repository(), "127.0.0.1:5000/app");

        let r = Reference::parse("localhost:5000/team/app:v1.2").unwrap();
        assert_eq!(r.registry.as_deref(), Some("localhost:5000"));
        assert_eq!(r.path, "team/app");
        assert_eq!(r.tag.as_deref(), Some("v1.2"));

        let r = Reference::parse("nginx").unwrap();
        assert_eq!(r.registry_host(), "docker.io");
        assert_eq!(r.api_path(), "library/nginx");

        let r = Reference::parse("team/app:1").unwrap();
        assert_eq!(r.registry, None);
        assert_eq!(r.api_path(), "team/app");

        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("ghcr.io/o/app@{d}")).unwrap();
        assert_eq!(r.digest.as_deref(), Some(d.as_str()));
        assert_eq!(r.to_string(), format!("ghcr.io/o/app@{d}"));
        assert_eq!(
            Reference::parse("123.dkr.ecr.us-east-1.amazonaws.com/repo")
                .unwrap()
                .registry_host(),
            "123.dkr.ecr.us-east-1.amazonaws.com"
        );
    }

    #[test]
    fn rejects_bad_references_with_a_reason() {
        for bad in [
            "",
            "App",
            "app:",
            "app:-x",
            "reg.io/",
            "reg.io/a//b",
            "a..b",
            "a-",
            "reg.io:port/app",
            "app@sha256:xyz",
            "app@sha256:ABCDEF",
            "with space",
        ] {
            let e = Reference::parse(bad).expect_err(bad);
            assert!(e.to_string().contains("not a valid image reference"), "{e}");
        }
        for good in ["a__b", "a---b", "a.b_c-d", "x/y/z", "localhost/app"] {
            Reference::parse(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
    }

    #[test]
    fn registry_hosts_are_names_ipv4_or_bracketed_ipv6_with_optional_port() {
        let cases: &[(&str, Option<&str>)] = &[
            // (reference, Some(registry) when valid, None when it must be rejected)
            ("ghcr.io/app", Some("ghcr.io")),
            ("Registry.Example.com/app", Some("Registry.Example.com")),
            ("my-reg.example.com:443/app", Some("my-reg.example.com:443")),
            ("localhost/app", Some("localhost")),
            ("localhost:5000/app", Some("localhost:5000")),
            ("127.0.0.1:5000/app", Some("127.0.0.1:5000")),
            ("10.0.0.1/app", Some("10.0.0.1")),
            ("[::1]/app", Some("[::1]")),
            ("[::1]:5000/app", Some("[::1]:5000")),
            (
                "[2001:db8::1]:65535/team/app:v1",
                Some("[2001:db8::1]:65535"),
            ),
            ("[:5000/app", None),
            ("[::1:5000/app", None),
            ("[]:5000/app", None),
            ("[nothex]:5000/app", None),
            ("[::1]x/app", None),
            ("[::1]:/app", None),
            (":5000/app", None),
            ("reg.io:/app", None),
            ("reg.io:0/app", None),
            ("reg.io:65536/app", None),
            ("reg.io:+80/app", None),
            ("reg.io:80:81/app", None),
            ("reg.io:port/app", None),
            ("256.1.1.1/app", None),
            ("1.2.3/app", None),
            ("-reg.io/app", None),
            ("reg-.io/app", None),
            ("reg..io/app", None),
            ("reg.io./app", None),
            ("reg_x.io/app", None),
            ("r\u{e9}g.io/app", None),
        ];
        for (reference, want) in cases {
            match (Reference::parse(reference), want) {
                (Ok(r), Some(registry)) => {
                    assert_eq!(r.registry.as_deref(), Some(*registry), "{reference}")
                }
                (Err(e), None) => {
                    let e = e.to_string();
                    assert!(e.contains("registry"), "{reference}: {e}");
                }
                (got, _) => panic!("{reference}: unexpected {got:?}"),
            }
        }
    }
}
