//! The handlebars registry: every template under `codegen/templates/` (embedded at compile
//! time, so rendering does not depend on the working directory) and the few helpers that
//! format doc comments for each language.
//!
//! Templates own the layout; the helpers only escape and indent text.

use handlebars::{Handlebars, handlebars_helper};

use super::SdkError;

macro_rules! templates {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../templates/", $name, ".hbs")))),*]
    };
}

/// (name, text) of every template; a name is its path under `templates/` without `.hbs`.
const TEMPLATES: &[(&str, &str)] = templates![
    "python/pyproject.toml",
    "python/README.md",
    "python/gitignore",
    "python/__init__.py",
    "python/_utilities.py",
    "python/_inputs.py",
    "python/outputs.py",
    "python/_enums.py",
    "python/resource.py",
    "python/config/__init__.py",
    "python/config/vars.py",
    "python/pulumi-plugin.json",
    "nodejs/package.json",
    "nodejs/tsconfig.json",
    "nodejs/README.md",
    "nodejs/gitignore",
    "nodejs/index.ts",
    "nodejs/utilities.ts",
    "nodejs/resource.ts",
    "nodejs/types/index.ts",
    "nodejs/types/input.ts",
    "nodejs/types/output.ts",
    "nodejs/types/enums/index.ts",
    "nodejs/config/index.ts",
    "nodejs/config/vars.ts",
];

/// Python docstring text: `\` and `"""` escaped, every line indented by `indent` spaces.
fn py_doc_text(text: &str, indent: usize) -> String {
    let escaped = text.replace('\\', "\\\\").replace("\"\"\"", "\\\"\\\"\\\"");
    indent_lines(escaped.trim_end(), indent, true)
}

/// A `:param` description: a space, the first line, then the others hanging at `indent`.
fn py_param_text(text: &str, indent: usize) -> String {
    let text = text.trim_end();
    if text.is_empty() {
        return String::new();
    }
    let escaped = text.replace('\\', "\\\\").replace("\"\"\"", "\\\"\\\"\\\"");
    format!(" {}", indent_lines(&escaped, indent, false))
}

/// A TSDoc block indented by `indent` spaces and ending in a newline; empty for no text.
fn ts_doc_text(text: &str, indent: usize) -> String {
    let text = text.trim_end();
    if text.is_empty() {
        return String::new();
    }
    let pad = " ".repeat(indent);
    let mut out = format!("{pad}/**\n");
    for line in text.replace("*/", "*\\/").lines() {
        if line.is_empty() {
            out.push_str(&format!("{pad} *\n"));
        } else {
            out.push_str(&format!("{pad} * {line}\n"));
        }
    }
    out.push_str(&format!("{pad} */\n"));
    out
}

/// Indents lines (the first too when `first`); blank lines stay empty.
fn indent_lines(text: &str, indent: usize, first: bool) -> String {
    let pad = " ".repeat(indent);
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            if line.is_empty() || (i == 0 && !first) {
                line.to_string()
            } else {
                format!("{pad}{line}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

handlebars_helper!(py_doc: |text: str, indent: u64| py_doc_text(text, indent as usize));
handlebars_helper!(py_param: |text: str, indent: u64| py_param_text(text, indent as usize));
handlebars_helper!(ts_doc: |text: str, indent: u64| ts_doc_text(text, indent as usize));
handlebars_helper!(json: |value: Json| value.to_string());

/// A registry with every template and helper; strict, without HTML escaping.
pub fn registry() -> Result<Handlebars<'static>, SdkError> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(handlebars::no_escape);
    hb.register_helper("py_doc", Box::new(py_doc));
    hb.register_helper("py_param", Box::new(py_param));
    hb.register_helper("ts_doc", Box::new(ts_doc));
    hb.register_helper("json", Box::new(json));
    for (name, text) in TEMPLATES {
        hb.register_template_string(name, *text)
            .map_err(|e| SdkError::Template(format!("{name}: {e}")))?;
    }
    Ok(hb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_docstrings_are_escaped_and_indented() {
        assert_eq!(
            py_doc_text("a \"\"\" b\n\nc\\d", 4),
            "    a \\\"\\\"\\\" b\n\n    c\\\\d"
        );
        assert_eq!(py_param_text("one\ntwo", 8), " one\n        two");
        assert_eq!(py_param_text("", 8), "");
    }

    #[test]
    fn tsdoc_blocks() {
        assert_eq!(
            ts_doc_text("a */\n\nb", 2),
            "  /**\n   * a *\\/\n   *\n   * b\n   */\n"
        );
        assert_eq!(ts_doc_text("", 2), "");
    }

    #[test]
    fn every_template_parses() {
        registry().unwrap();
    }
}
