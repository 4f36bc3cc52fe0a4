//! The shape ARCHITECTURE.md promises. The three layers are crates, so the compiler keeps
//! them apart: `pulumi-kit` (the generic provider kit) and `buildkit-engine` (the image
//! engine) cannot name each other or this crate without a dependency in their manifests, and
//! the first test below says those manifests have none. Inside each crate the order of the
//! modules is read from the source: every `crate::…`, `super::…` and `self::…` path, grouped
//! `use a::{b, c::{d}}` trees included, in test code too; comments and string literals are
//! not code.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `[dependencies]`-like tables' package names of a manifest (every table whose name
/// ends in `dependencies`).
fn manifest_dependencies(manifest: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(manifest).unwrap();
    let mut deps = BTreeSet::new();
    let mut in_deps = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line.trim_end_matches(']').ends_with("dependencies");
            continue;
        }
        if in_deps && let Some((name, _)) = line.split_once('=') {
            let name = name.trim().split('.').next().unwrap_or_default();
            if !name.is_empty() && !name.starts_with('#') {
                deps.insert(name.to_string());
            }
        }
    }
    deps
}

#[test]
fn the_kit_and_the_engine_depend_on_neither_each_other_nor_the_resource() {
    let ours = [
        "docker-buildkit",
        "pulumi-kit",
        "buildkit-engine",
        "codegen",
    ];
    for (krate, may) in [
        ("crates/pulumi-kit", &[][..]),
        ("crates/buildkit-engine", &[][..]),
        (".", &["pulumi-kit", "buildkit-engine"][..]),
    ] {
        let deps = manifest_dependencies(&workspace().join(krate).join("Cargo.toml"));
        assert!(
            deps.contains("tokio"),
            "{krate}'s manifest was read: {deps:?}"
        );
        let wrong: Vec<_> = deps
            .iter()
            .filter(|d| ours.contains(&d.as_str()) && !may.contains(&d.as_str()))
            .collect();
        assert!(wrong.is_empty(), "{krate} depends on {wrong:?}");
    }
    // Nor do they name Pulumi's or Docker's libraries the other side owns.
    let kit = manifest_dependencies(&workspace().join("crates/pulumi-kit/Cargo.toml"));
    for docker_side in ["bollard", "bollard-buildkit-proto", "reqwest", "tar"] {
        assert!(
            !kit.contains(docker_side),
            "the kit depends on {docker_side}"
        );
    }
}

/// `text` with comments, string and char literals blanked out (so that a path in a doc
/// comment or a message is not an import).
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let end = text[i + 2..].find("*/").map_or(b.len(), |e| i + 2 + e + 2);
            i = end;
            out.push(' ');
        } else if b[i] == b'r' && (b[i..].starts_with(b"r\"") || b[i..].starts_with(b"r#")) {
            // A raw string: r"…", r#"…"#.
            let hashes = b[i + 1..].iter().take_while(|c| **c == b'#').count();
            if b.get(i + 1 + hashes) != Some(&b'"') {
                out.push('r');
                i += 1;
                continue;
            }
            let close = format!("\"{}", "#".repeat(hashes));
            let start = i + 2 + hashes;
            i = text[start..]
                .find(&close)
                .map_or(b.len(), |e| start + e + close.len());
            out.push_str("\"\"");
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && b.get(i + 2) == Some(&b'\'') {
            i += 3;
        } else if b[i] == b'\'' && b.get(i + 1) == Some(&b'\\') {
            let end = text[i + 2..].find('\'').map_or(b.len(), |e| i + 2 + e + 1);
            i = end;
        } else {
            let ch = text[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// Every path a `use` tree names: `a::{b, c::{d, e}}` → `a::b`, `a::c::d`, `a::c::e`.
fn expand_use(tree: &str) -> Vec<String> {
    // Drop renames (`d as e`), then whitespace.
    let words: Vec<&str> = tree.split_whitespace().collect();
    let mut kept = String::new();
    let mut i = 0;
    while i < words.len() {
        if words[i] == "as" && i + 1 < words.len() {
            // `e,` or `e}`: keep what follows the new name.
            let rest = words[i + 1].trim_start_matches(|c: char| c.is_alphanumeric() || c == '_');
            kept.push_str(rest);
            i += 2;
        } else {
            kept.push_str(words[i]);
            i += 1;
        }
    }
    let tree = kept;
    fn go(prefix: &str, t: &str, out: &mut Vec<String>) {
        if let Some(open) = t.find('{') {
            let head = &t[..open];
            let inner = &t[open + 1..t.rfind('}').unwrap_or(t.len())];
            // Split `inner` at top-level commas.
            let (mut depth, mut start) = (0, 0);
            let mut parts = Vec::new();
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        parts.push(&inner[start..i]);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            parts.push(&inner[start..]);
            for p in parts.into_iter().filter(|p| !p.is_empty()) {
                go(&format!("{prefix}{head}"), p, out);
            }
        } else {
            out.push(format!("{prefix}{t}"));
        }
    }
    let mut out = Vec::new();
    go("", &tree, &mut out);
    out
}

/// Module path (`docker::build`) → the modules of the same crate it imports.
fn import_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let files = rust_files(src);
    let module = |p: &Path| {
        let rel = p.strip_prefix(src).unwrap().with_extension("");
        let mut parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if parts.last().is_some_and(|l| l == "mod" || l == "lib") {
            parts.pop();
        }
        parts.join("::")
    };
    let modules: BTreeSet<String> = files.iter().map(|f| module(f)).collect();
    let mut graph = BTreeMap::new();
    for f in &files {
        let me = module(f);
        let code = code_only(&std::fs::read_to_string(f).unwrap());
        // Paths: those of `use` trees, and inline `crate::x::y` / `super::x` anywhere.
        let mut paths = Vec::new();
        for (i, _) in code.match_indices("use ") {
            let before = code[..i].chars().last();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            if let Some(end) = code[i..].find(';') {
                paths.extend(expand_use(&code[i + 4..i + end]));
            }
        }
        for prefix in ["crate::", "super::"] {
            for (i, _) in code.match_indices(prefix) {
                let path: String = code[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                paths.push(path);
            }
        }
        let me_parts: Vec<&str> = if me.is_empty() {
            vec![]
        } else {
            me.split("::").collect()
        };
        // A file's own `mod` is its module; `super` is its parent's.
        let is_mod_file = f
            .file_name()
            .is_some_and(|n| n == "mod.rs" || n == "lib.rs");
        let mut edges = BTreeSet::new();
        for path in paths {
            let mut parts: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
            let mut base: Vec<&str> = match parts.first() {
                Some(&"crate") => {
                    parts.remove(0);
                    vec![]
                }
                Some(&"super") => {
                    let mut b = me_parts.clone();
                    while parts.first() == Some(&"super") {
                        parts.remove(0);
                        b.pop();
                    }
                    b
                }
                Some(&"self") => {
                    parts.remove(0);
                    let _ = is_mod_file;
                    me_parts.clone()
                }
                _ => continue,
            };
            let mut found = None;
            for n in (1..=parts.len()).rev() {
                let mut candidate = base.clone();
                candidate.extend_from_slice(&parts[..n]);
                let candidate = candidate.join("::");
                if modules.contains(&candidate) {
                    found = Some(candidate);
                    break;
                }
            }
            if found.is_none() && !base.is_empty() {
                found = Some(std::mem::take(&mut base).join("::"));
            }
            if let Some(c) = found
                && !c.is_empty()
                && c != me
                && !me.starts_with(&format!("{c}::"))
                && !c.starts_with(&format!("{me}::"))
            {
                edges.insert(c);
            }
        }
        graph.insert(me, edges);
    }
    graph
}

fn engine_graph() -> BTreeMap<String, BTreeSet<String>> {
    import_graph(&workspace().join("crates/buildkit-engine/src"))
}

#[test]
fn the_reader_sees_grouped_imports_and_test_code() {
    let tree = expand_use("super::{a, b::{c, d as e}, f}");
    assert_eq!(tree, ["super::a", "super::b::c", "super::b::d", "super::f"]);
    let code = code_only("let s = \"crate::docker\"; // crate::registry\nuse crate::x;");
    assert!(!code.contains("docker") && !code.contains("registry") && code.contains("crate::x"));
    let graph = engine_graph();
    // docker/daemon.rs imports `super::{DaemonAddress, Result, tunnel}`, and only the tests
    // of registry/client.rs import `crate::registry::testing`, below their `#[cfg(test)]`.
    let daemon = &graph["docker::daemon"];
    assert!(daemon.contains("docker::tunnel"), "{daemon:?}");
    let client = &graph["registry::client"];
    assert!(client.contains("registry::testing"), "{client:?}");
}

#[test]
fn credentials_sit_below_docker_and_registry_and_registry_below_docker() {
    let graph = engine_graph();
    let reaches = |from: &str, to: &str| -> Vec<String> {
        graph
            .iter()
            .filter(|(m, _)| *m == from || m.starts_with(&format!("{from}::")))
            .flat_map(|(m, edges)| {
                edges
                    .iter()
                    .filter(|e| *e == to || e.starts_with(&format!("{to}::")))
                    .map(move |e| format!("{m} -> {e}"))
            })
            .collect()
    };
    let mut bad = Vec::new();
    for (from, to) in [
        ("credentials", "docker"),
        ("credentials", "registry"),
        ("registry", "docker"),
        ("context", "docker"),
        ("context", "registry"),
        ("reference", "docker"),
        ("platform", "docker"),
    ] {
        bad.extend(reaches(from, to));
    }
    assert!(
        graph.contains_key("credentials"),
        "the engine's source was read"
    );
    assert!(bad.is_empty(), "the engine's layers are crossed: {bad:?}");
}

#[test]
fn docker_mod_is_a_facade() {
    let text =
        std::fs::read_to_string(workspace().join("crates/buildkit-engine/src/docker/mod.rs"))
            .unwrap();
    let code = code_only(&text);
    // Items, not lines: a re-export may span lines. Attributes (`#[…]`) go with their item.
    let mut items = Vec::new();
    let mut depth = 0usize;
    let mut item = String::new();
    for c in code.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        item.push(c);
        if depth == 0 && (c == ';' || c == '}') {
            let words = item.split_whitespace().collect::<Vec<_>>().join(" ");
            let mut rest = words.as_str();
            while let Some(after) = rest.strip_prefix("#[") {
                rest = after.split_once(']').map_or("", |(_, r)| r).trim_start();
            }
            let ok = [
                "pub mod ",
                "mod ",
                "pub use ",
                "pub(crate) use ",
                "use ",
                "pub type ",
            ]
            .iter()
            .any(|p| rest.starts_with(p));
            // (The `;` after a `use …{…}` ends an empty item.)
            if !ok && !rest.is_empty() && rest != ";" {
                items.push(rest.to_string());
            }
            item.clear();
        }
    }
    assert!(code.contains("pub mod flow;"), "the facade was read");
    assert!(
        items.is_empty(),
        "docker/mod.rs holds more than modules and re-exports: {items:?}"
    );
}

#[test]
fn no_module_imports_its_caller() {
    for src in [
        workspace().join("src"),
        workspace().join("crates/pulumi-kit/src"),
        workspace().join("crates/buildkit-engine/src"),
    ] {
        let graph = import_graph(&src);
        // Depth-first search for a path back to the start.
        let mut cycles = Vec::new();
        for start in graph.keys() {
            let mut seen = BTreeSet::new();
            let mut stack: Vec<(String, Vec<String>)> = vec![(start.clone(), vec![start.clone()])];
            while let Some((m, path)) = stack.pop() {
                for next in graph.get(&m).into_iter().flatten() {
                    if next == start {
                        cycles.push(path.join(" -> ") + " -> " + start);
                    } else if seen.insert(next.clone()) {
                        let mut p = path.clone();
                        p.push(next.clone());
                        stack.push((next.clone(), p));
                    }
                }
            }
        }
        cycles.sort();
        cycles.dedup();
        assert!(
            cycles.is_empty(),
            "import cycles in {}:\n{}",
            src.display(),
            cycles.join("\n")
        );
    }
}

/// Every `.rs` file under `dir`, `generated/` aside.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if !p.ends_with("generated") {
                    stack.push(p);
                }
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    files
}

/// Errors are types: a `Result` whose error is a bare `String` (a sentence nobody can
/// match on, and that says nothing of its kind) appears nowhere in the three crates.
#[test]
fn no_result_has_a_string_for_its_error() {
    let mut found = Vec::new();
    for src in ["src", "crates/pulumi-kit/src", "crates/buildkit-engine/src"] {
        for f in rust_files(&workspace().join(src)) {
            let code = code_only(&std::fs::read_to_string(&f).unwrap());
            let flat: String = code.split_whitespace().collect::<Vec<_>>().join(" ");
            let mut rest = flat.as_str();
            while let Some(i) = rest.find("Result<") {
                // The generic arguments, to the matching `>`.
                let args = &rest[i + "Result<".len()..];
                let mut depth = 1;
                let end = args
                    .char_indices()
                    .find_map(|(j, c)| {
                        match c {
                            '<' => depth += 1,
                            '>' => depth -= 1,
                            _ => {}
                        }
                        (depth == 0).then_some(j)
                    })
                    .unwrap_or(args.len());
                let inner = &args[..end];
                // The last top-level argument is the error.
                let mut depth = 0;
                let mut last = 0;
                for (j, c) in inner.char_indices() {
                    match c {
                        '<' | '(' => depth += 1,
                        '>' | ')' => depth -= 1,
                        ',' if depth == 0 => last = j + 1,
                        _ => {}
                    }
                }
                if last > 0 && inner[last..].trim() == "String" {
                    found.push(format!("{}: Result<{inner}>", f.display()));
                }
                rest = &args[end.min(args.len())..];
            }
        }
    }
    assert!(
        found.is_empty(),
        "errors that are strings:\n{}",
        found.join("\n")
    );
}
