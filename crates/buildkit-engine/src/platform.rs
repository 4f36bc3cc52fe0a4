//! A platform, `os/arch[/variant]` (`linux/amd64`, `linux/arm/v7`): one grammar, parsed once
//! ([`str::parse`]), for every place that names one — what an image is built for, and what a
//! builder builds — so that a platform a builder lists can always be matched against the
//! platforms an image asks for.
//!
//! The grammar is BuildKit's normalized form: two or three parts, each of lowercase ASCII
//! letters, digits and `_`. BuildKit itself lowercases the OS (`Linux/arm64` builds), so a
//! lenient parse would accept a spelling no builder entry ever matches; refusing it with a
//! clear error is kinder.

use std::fmt;
use std::str::FromStr;

/// A platform as `os/arch[/variant]`, split.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

/// Why a string is not a [`Platform`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a platform: use os/arch[/variant], e.g. linux/amd64 or linux/arm/v7")]
pub struct PlatformError(pub String);

impl FromStr for Platform {
    type Err = PlatformError;

    fn from_str(p: &str) -> Result<Platform, PlatformError> {
        let parts: Vec<&str> = p.split('/').collect();
        let well_formed = (2..=3).contains(&parts.len())
            && parts.iter().all(|s| {
                !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            });
        if !well_formed {
            return Err(PlatformError(p.to_string()));
        }
        Ok(Platform {
            os: parts[0].to_string(),
            architecture: parts[1].to_string(),
            variant: parts.get(2).map(|v| v.to_string()),
        })
    }
}

impl Platform {
    /// `p` parsed, or `None` (see [`FromStr`]).
    pub fn parse(p: &str) -> Option<Platform> {
        p.parse().ok()
    }

    /// `os-arch[-variant]`, for tags.
    pub fn tag_suffix(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}-{}-{v}", self.os, self.architecture),
            None => format!("{}-{}", self.os, self.architecture),
        }
    }

    /// `os/arch[/variant]`.
    pub fn name(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.variant {
            Some(v) => write!(f, "{}/{}/{v}", self.os, self.architecture),
            None => write!(f, "{}/{}", self.os, self.architecture),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_grammar_os_arch_variant() {
        for good in [
            "linux/amd64",
            "linux/arm64",
            "linux/arm/v7",
            "windows/amd64",
        ] {
            let p: Platform = good.parse().unwrap();
            assert_eq!(p.to_string(), good);
        }
        let p: Platform = "linux/arm/v7".parse().unwrap();
        assert_eq!(p.variant.as_deref(), Some("v7"));
        assert_eq!(p.tag_suffix(), "linux-arm-v7");
        for bad in [
            "linux",
            "linux/",
            "/amd64",
            "Linux/amd64",
            "linux/ARM64",
            "linux/arm/v7/x",
            "linux//v7",
            "linux/amd64 ",
            "",
        ] {
            let e = bad.parse::<Platform>().unwrap_err();
            assert!(e.to_string().contains("is not a platform"), "{bad}: {e}");
            assert_eq!(Platform::parse(bad), None, "{bad}");
        }
    }
}
