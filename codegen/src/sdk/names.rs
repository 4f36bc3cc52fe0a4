//! Name conversions between the schema's wire names (camelCase) and each language's names:
//! Python's snake_case (with keywords escaped) and TypeScript's file and member names.
//!
//! Pure string functions; which name goes where is decided by the language modules.

/// Python keywords (and soft keywords that would read badly as parameters).
const PYTHON_KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield",
];

/// `repoDigest` → `repo_digest`, `certPath` → `cert_path`, `HTTPServer` → `http_server`,
/// `dockerfileInline` → `dockerfile_inline`.
pub fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c == '-' || c == '.' || c == ' ' {
            out.push('_');
            continue;
        }
        if c.is_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_is_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if prev.is_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_uppercase() && next_is_lower)
            {
                out.push('_');
            }
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// A wire name as a Python identifier: snake_case, with a trailing `_` for keywords.
pub fn python_name(wire: &str) -> String {
    let name = snake_case(wire);
    if PYTHON_KEYWORDS.contains(&name.as_str()) {
        format!("{name}_")
    } else {
        name
    }
}

/// `Image` → `image`, `RegistryMirror` → `registryMirror` (a TypeScript module's file name);
/// `index` would shadow the package's own `index.ts`, so it becomes `index_`.
pub fn ts_module_name(class: &str) -> String {
    let mut chars = class.chars();
    let name = match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    };
    if name == "index" || name == "utilities" || name == "provider" {
        format!("{name}_")
    } else {
        name
    }
}

/// A Python module's file name for a class: `Image` → `image`; names the package uses for
/// itself get a trailing `_`.
pub fn py_module_name(class: &str) -> String {
    let name = snake_case(class);
    match name.as_str() {
        "outputs" | "config" | "provider" | "_inputs" | "_utilities" | "_enums" => {
            format!("{name}_")
        }
        _ => name,
    }
}

/// An enum value's member name: the schema's `name`, else one derived from the value
/// (`linux/arm64` → `LinuxArm64`, `none` → `None_`... in Python it is escaped later).
pub fn enum_member_name(name: Option<&str>, value: &serde_json::Value) -> String {
    if let Some(name) = name {
        return name.to_string();
    }
    let raw = match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut out = String::new();
    let mut upper = true;
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() {
            if upper {
                out.extend(c.to_uppercase());
            } else {
                out.push(c);
            }
            upper = false;
        } else {
            upper = true;
        }
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// `Image` → `an Image`, `Provider` → `a Provider`.
pub fn with_article(class: &str) -> String {
    let vowel = class
        .chars()
        .next()
        .is_some_and(|c| "AEIOUaeiou".contains(c));
    format!("{} {class}", if vowel { "an" } else { "a" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_cases_wire_names() {
        assert_eq!(snake_case("repoDigest"), "repo_digest");
        assert_eq!(snake_case("dockerfileInline"), "dockerfile_inline");
        assert_eq!(snake_case("name"), "name");
        assert_eq!(snake_case("HTTPServer"), "http_server");
        assert_eq!(snake_case("sha256Sum"), "sha256_sum");
        assert_eq!(snake_case("Image"), "image");
    }

    #[test]
    fn escapes_python_keywords() {
        assert_eq!(python_name("from"), "from_");
        assert_eq!(python_name("cacheFrom"), "cache_from");
    }

    #[test]
    fn module_names() {
        assert_eq!(ts_module_name("Image"), "image");
        assert_eq!(ts_module_name("Index"), "index_");
        assert_eq!(py_module_name("Config"), "config_");
    }

    #[test]
    fn enum_members() {
        assert_eq!(enum_member_name(None, &"linux/arm64".into()), "LinuxArm64");
        assert_eq!(enum_member_name(Some("Host"), &"host".into()), "Host");
        assert_eq!(enum_member_name(None, &1.into()), "_1");
    }
}
