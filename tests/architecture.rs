//! The shape ARCHITECTURE.md promises, checked on the source: the arrows go resource → plan →
//! engine, so the engine (`docker/`, `registry/`, `context/`) imports nothing of the resource
//! layer or the wire, and no module of `src/` imports, directly or through others, a module
//! that imports it (no cycles). Imports are read from `crate::…` and `super::…` paths outside
//! comments and test modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module path (`docker::build`) → the modules it imports.
fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut stack = vec![root.clone()];
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
    let module = |p: &Path| {
        let rel = p.strip_prefix(&root).unwrap().with_extension("");
        let mut parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if parts.last().is_some_and(|l| l == "mod") {
            parts.pop();
        }
        parts.join("::")
    };
    let modules: BTreeSet<String> = files.iter().map(|f| module(f)).collect();
    let mut graph = BTreeMap::new();
    for f in &files {
        let me = module(f);
        let text = std::fs::read_to_string(f).unwrap();
        let code: String = text
            .split("#[cfg(test)]")
            .next()
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let parent = me.rsplit_once("::").map(|(p, _)| p.to_string());
        let mut edges = BTreeSet::new();
        for (prefix, base) in [("crate::", None), ("super::", parent.as_deref())] {
            if prefix == "super::" && base.is_none() {
                continue;
            }
            for (i, _) in code.match_indices(prefix) {
                let path: String = code[i + prefix.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_' || *c == ':')
                    .collect();
                let parts: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
                for n in (1..=parts.len()).rev() {
                    let mut candidate = parts[..n].join("::");
                    if let Some(b) = base {
                        candidate = format!("{b}::{candidate}");
                    }
                    if modules.contains(&candidate) {
                        if candidate != me && !me.starts_with(&format!("{candidate}::")) {
                            edges.insert(candidate);
                        }
                        break;
                    }
                }
            }
        }
        graph.insert(me, edges);
    }
    graph
}

#[test]
fn the_engine_imports_nothing_of_the_resource_layer_or_the_wire() {
    let graph = import_graph();
    let engine = ["docker", "registry", "context", "reference", "cache"];
    let above = [
        "resources",
        "resource",
        "rpc",
        "provider",
        "validation",
        "schema",
    ];
    let mut bad = Vec::new();
    for (m, edges) in &graph {
        let top = m.split("::").next().unwrap_or_default();
        if !engine.contains(&top) {
            continue;
        }
        for e in edges {
            let target = e.split("::").next().unwrap_or_default();
            if above.contains(&target) {
                bad.push(format!("{m} -> {e}"));
            }
        }
    }
    assert!(graph.contains_key("docker::flow"), "the source was read");
    assert!(bad.is_empty(), "the engine reaches up: {bad:?}");
}

#[test]
fn no_module_imports_its_caller() {
    let graph = import_graph();
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
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}
