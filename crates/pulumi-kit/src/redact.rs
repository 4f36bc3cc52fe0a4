//! The one mechanism that keeps secret values out of everything that leaves the provider:
//! engine log lines (and their copy on stderr), error messages and check failures.
//!
//! The dispatcher builds a [`Redactor`] per call from the values found at secret paths (the
//! paths the codec saw arrive as secrets, plus those the schema marks `secret`), hands it to
//! the resource inside its `Ctx`, and passes every error and failure text through
//! [`Redactor::mask`] on the way out. Code deeper down may add secrets it learns itself (e.g.
//! a password read from the Docker CLI's config) with [`Redactor::add`]. Nothing else masks:
//! call sites never scrub their own messages.
//!
//! Not for: deciding what is secret (the codec and the schema do that).

use std::sync::{Arc, RwLock};

use serde_json::Value;

/// What a secret value is replaced with.
pub const MASK: &str = "[secret]";

/// A set of secret strings, shared by clones, and the masking of text against them.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Arc<RwLock<Vec<String>>>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.secrets.read().map(|s| s.len()).unwrap_or(0);
        write!(f, "Redactor({n} secrets)")
    }
}

impl Redactor {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a secret string, and the forms it takes when quoted by Rust's `{:?}` or as a JSON
    /// string (escaped quotes, backslashes, newlines), so that a quoted secret is masked too.
    pub fn add(&self, secret: &str) {
        if secret.is_empty() {
            return;
        }
        let mut forms = vec![secret.to_string()];
        let debug = format!("{secret:?}");
        forms.push(debug[1..debug.len() - 1].to_string());
        if let Ok(json) = serde_json::to_string(secret) {
            forms.push(json[1..json.len() - 1].to_string());
        }
        let Ok(mut list) = self.secrets.write() else {
            return;
        };
        for f in forms {
            if !f.is_empty() && !list.contains(&f) {
                list.push(f);
            }
        }
        // Longest first: a secret that contains another is masked whole.
        list.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    /// Adds every string and number inside `value` (a secret may be any JSON value).
    pub fn add_value(&self, value: &Value) {
        match value {
            Value::String(s) => self.add(s),
            Value::Number(n) => self.add(&n.to_string()),
            Value::Array(items) => items.iter().for_each(|v| self.add_value(v)),
            Value::Object(m) => m.values().for_each(|v| self.add_value(v)),
            Value::Bool(_) | Value::Null => {}
        }
    }

    /// Adds the secrets of `other` to this one.
    pub fn extend(&self, other: &Redactor) {
        if Arc::ptr_eq(&self.secrets, &other.secrets) {
            return;
        }
        let theirs = other.secrets.read().map(|s| s.clone()).unwrap_or_default();
        for s in theirs {
            self.add(&s);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.read().map(|s| s.is_empty()).unwrap_or(true)
    }

    /// `text` with every secret replaced by [`MASK`].
    pub fn mask(&self, text: &str) -> String {
        let Ok(list) = self.secrets.read() else {
            // A poisoned lock must not let a secret through: say nothing at all.
            return MASK.to_string();
        };
        let mut out = text.to_string();
        for s in list.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), MASK);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_every_occurrence_and_quoted_forms() {
        let r = Redactor::new();
        r.add("s3cr\"et\nx");
        r.add_value(&serde_json::json!(918273645));
        let text = "a s3cr\"et\nx b \"s3cr\\\"et\\nx\" c 918273645";
        let masked = r.mask(text);
        assert_eq!(masked, "a [secret] b \"[secret]\" c [secret]");
    }

    #[test]
    fn longest_secret_wins_and_empty_is_ignored() {
        let r = Redactor::new();
        r.add("");
        r.add("abc");
        r.add("abcdef");
        assert_eq!(r.mask("xabcdefx abc"), "x[secret]x [secret]");
        assert!(!Redactor::new().mask("nothing").contains(MASK));
    }

    #[test]
    fn clones_share_and_extend_merges() {
        let a = Redactor::new();
        let b = a.clone();
        b.add("tok");
        assert_eq!(a.mask("tok"), MASK);
        let c = Redactor::new();
        c.extend(&a);
        assert_eq!(c.mask("a tok"), "a [secret]");
    }
}
