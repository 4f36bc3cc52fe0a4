//! Paths to values inside property maps (`registry.password`, `tags[1]`,
//! `buildArgs["A-B"]`): how check failures name a property, and how the codec records where
//! secrets and unknowns were. A leaf: it knows neither the wire nor any resource.

use std::fmt;

/// One step in a property path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A path to a value inside a property map, e.g. `registry.password` or `tags[1]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PropertyPath(pub Vec<Seg>);

impl PropertyPath {
    pub fn root() -> Self {
        Self::default()
    }

    /// A path from dotted keys, e.g. `PropertyPath::keys(&["registry", "password"])`.
    pub fn keys(keys: &[&str]) -> Self {
        Self(keys.iter().map(|k| Seg::Key((*k).to_string())).collect())
    }

    /// The top-level property `name` (one key, taken as it is: dots are part of it).
    pub fn key(name: &str) -> Self {
        Self(vec![Seg::Key(name.to_string())])
    }

    /// This path followed by the member `name` (`registry` → `registry.server`).
    pub fn field(mut self, name: &str) -> Self {
        self.0.push(Seg::Key(name.to_string()));
        self
    }

    /// This path followed by the list index `i` (`tags` → `tags[1]`).
    pub fn at(mut self, i: usize) -> Self {
        self.0.push(Seg::Index(i));
        self
    }

    /// The path of the top-level property this one starts with (itself at the root).
    pub fn top_level(&self) -> Self {
        Self(self.0.iter().take(1).cloned().collect())
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// True when one of the two paths is the other or lies beneath it.
    pub fn overlaps(&self, other: &PropertyPath) -> bool {
        self.starts_with(other) || other.starts_with(self)
    }

    pub fn child(&self, seg: Seg) -> Self {
        let mut v = self.0.clone();
        v.push(seg);
        Self(v)
    }

    /// The top-level property this path starts with, if any.
    pub fn top(&self) -> Option<&str> {
        match self.0.first() {
            Some(Seg::Key(k)) => Some(k),
            _ => None,
        }
    }

    /// True when `self` is `other` or lies beneath it.
    pub fn starts_with(&self, other: &PropertyPath) -> bool {
        self.0.starts_with(&other.0)
    }

    /// Parses a path as [`fmt::Display`] writes it (`registry.password`, `tags[0]`,
    /// `buildArgs["A-B"]`); `None` when `s` is not one. The empty string is the root.
    pub fn parse(s: &str) -> Option<Self> {
        let mut segs = Vec::new();
        let mut chars = s.chars().peekable();
        let key = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
            let mut k = String::new();
            while let Some(&c) = chars.peek() {
                if c == '.' || c == '[' {
                    break;
                }
                k.push(c);
                chars.next();
            }
            k
        };
        if !s.is_empty() && !s.starts_with('[') {
            segs.push(Seg::Key(key(&mut chars)));
        }
        while let Some(c) = chars.next() {
            match c {
                '.' => match key(&mut chars) {
                    k if k.is_empty() => return None,
                    k => segs.push(Seg::Key(k)),
                },
                '[' if chars.peek() == Some(&'"') => {
                    chars.next();
                    segs.push(Seg::Key(unquote(&mut chars)?));
                    if chars.next() != Some(']') {
                        return None;
                    }
                }
                '[' => {
                    let mut n = String::new();
                    loop {
                        match chars.next()? {
                            ']' => break,
                            d => n.push(d),
                        }
                    }
                    segs.push(Seg::Index(n.parse().ok()?));
                }
                _ => return None,
            }
        }
        Some(Self(segs))
    }
}

/// Reads the rest of a string quoted by Rust's `{:?}`, up to and including its closing `"`.
fn unquote(chars: &mut impl Iterator<Item = char>) -> Option<String> {
    let mut out = String::new();
    loop {
        match chars.next()? {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                '0' => out.push('\0'),
                'u' => {
                    if chars.next()? != '{' {
                        return None;
                    }
                    let hex: String = chars.by_ref().take_while(|c| *c != '}').collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                c => out.push(c),
            },
            c => out.push(c),
        }
    }
}

impl fmt::Display for PropertyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) if k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
                    write!(f, ".{k}")?
                }
                Seg::Key(k) => write!(f, "[{k:?}]")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A top-level property name: `"registry".into()` is [`PropertyPath::key`]. Nested paths are
/// built with [`PropertyPath::field`] and [`PropertyPath::at`], never parsed from text.
impl From<&str> for PropertyPath {
    fn from(name: &str) -> Self {
        debug_assert!(
            !name.contains(['.', '[']),
            "{name:?} is not a top-level property name: build the path with `field` and `at`"
        );
        Self::key(name)
    }
}

impl From<&PropertyPath> for PropertyPath {
    fn from(path: &PropertyPath) -> Self {
        path.clone()
    }
}

/// Compares with the path as [`fmt::Display`] writes it (`"registry.password"`), which is
/// what Pulumi shows and what tests name.
impl PartialEq<str> for PropertyPath {
    fn eq(&self, other: &str) -> bool {
        // Written into a sink that consumes `other` as it matches, so nothing is allocated.
        struct Rest<'a>(&'a str);
        impl fmt::Write for Rest<'_> {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                self.0 = self.0.strip_prefix(s).ok_or(fmt::Error)?;
                Ok(())
            }
        }
        let mut rest = Rest(other);
        fmt::write(&mut rest, format_args!("{self}")).is_ok() && rest.0.is_empty()
    }
}

impl PartialEq<&str> for PropertyPath {
    fn eq(&self, other: &&str) -> bool {
        *self == **other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_paths_are_written_as_pulumi_shows_them() {
        let p = PropertyPath::key("builders").at(1).field("platforms").at(0);
        assert_eq!(p.to_string(), "builders[1].platforms[0]");
        assert_eq!(p, "builders[1].platforms[0]");
        assert_ne!(p, "builders[1].platforms");
        assert_ne!(p, "builders[1].platforms[0]x");
        let label = PropertyPath::key("labels").field("org.opencontainers.image.source");
        assert_eq!(label, "labels[\"org.opencontainers.image.source\"]");
        assert_eq!(PropertyPath::parse(&label.to_string()), Some(label.clone()));
        assert_eq!(
            PropertyPath::from("context"),
            PropertyPath::keys(&["context"])
        );
    }

    #[test]
    fn paths_overlap_when_one_holds_the_other() {
        let registry = PropertyPath::key("registry");
        let password = registry.clone().field("password");
        assert!(password.overlaps(&registry) && registry.overlaps(&password));
        assert!(!password.overlaps(&PropertyPath::key("registry").field("username")));
        assert_eq!(password.top_level(), registry);
        assert!(PropertyPath::root().is_root() && !registry.is_root());
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "is not a top-level property name")]
    fn a_dotted_name_is_not_taken_for_a_top_level_property() {
        let _ = PropertyPath::from("registry.password");
    }
}
