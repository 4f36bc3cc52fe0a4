//! The SDK generator: from the package schema (`schema/schema.json`, parsed as JSON) to the
//! Python package in `sdk/python/` and the npm package in `sdk/nodejs/`, rendered with the
//! handlebars templates in `codegen/templates/`.
//!
//! [`render`] is pure (schema text in, files out) so tests can compare it with what is on
//! disk; [`write`] puts the files in place and removes generated files the schema no longer
//! produces; [`tsc::compile`] builds `sdk/nodejs/bin/` from the rendered TypeScript. Nothing
//! here knows about the provider's Rust types: a field added there reaches the SDKs through
//! the schema alone.

mod names;
mod nodejs;
mod python;
mod schema;
mod secrets;
mod templates;
pub mod tsc;

use std::path::Path;

use serde_json::json;

pub use schema::Package;

/// Why the SDKs could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    #[error("schema: {0}")]
    Schema(String),
    #[error("template {0}")]
    Template(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("compiling sdk/nodejs: {0}")]
    Compile(String),
}

/// One generated file, its path relative to the SDK root (`python/…` or `nodejs/…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdkFile {
    pub path: String,
    pub text: String,
}

/// Renders both SDKs from the text of a package schema. The output is a pure function of
/// the schema: same schema, same bytes.
pub fn render(schema_text: &str) -> Result<Vec<SdkFile>, SdkError> {
    let pkg = Package::parse(schema_text)?;
    let hb = templates::registry()?;
    let mut files = Vec::new();
    let mut emit = |path: String, template: &str, data: &serde_json::Value| {
        let text = hb
            .render(template, data)
            .map_err(|e| SdkError::Template(format!("{template}: {e}")))?;
        files.push(SdkFile { path, text });
        Ok::<(), SdkError>(())
    };

    let py = python::view(&pkg)?;
    let root = format!("python/{}", py.package_name);
    let ctx = json!({ "pkg": &py });
    for (path, template) in [
        ("python/pyproject.toml".to_string(), "python/pyproject.toml"),
        ("python/README.md".to_string(), "python/README.md"),
        ("python/.gitignore".to_string(), "python/gitignore"),
        (format!("{root}/__init__.py"), "python/__init__.py"),
        (format!("{root}/_utilities.py"), "python/_utilities.py"),
        (format!("{root}/_inputs.py"), "python/_inputs.py"),
        (format!("{root}/outputs.py"), "python/outputs.py"),
        (format!("{root}/_enums.py"), "python/_enums.py"),
        (
            format!("{root}/config/__init__.py"),
            "python/config/__init__.py",
        ),
        (format!("{root}/config/vars.py"), "python/config/vars.py"),
        (
            format!("{root}/pulumi-plugin.json"),
            "python/pulumi-plugin.json",
        ),
    ] {
        emit(path, template, &ctx)?;
    }
    for res in py.resources.iter().chain(std::iter::once(&py.provider)) {
        let ctx = json!({ "pkg": &py, "res": res });
        emit(
            format!("{root}/{}.py", res.module),
            "python/resource.py",
            &ctx,
        )?;
    }

    let ts = nodejs::view(&pkg)?;
    let ctx = json!({ "pkg": &ts });
    for (path, template) in [
        ("nodejs/package.json", "nodejs/package.json"),
        ("nodejs/tsconfig.json", "nodejs/tsconfig.json"),
        ("nodejs/README.md", "nodejs/README.md"),
        ("nodejs/.gitignore", "nodejs/gitignore"),
        ("nodejs/index.ts", "nodejs/index.ts"),
        ("nodejs/utilities.ts", "nodejs/utilities.ts"),
        ("nodejs/types/index.ts", "nodejs/types/index.ts"),
        ("nodejs/types/input.ts", "nodejs/types/input.ts"),
        ("nodejs/types/output.ts", "nodejs/types/output.ts"),
        ("nodejs/types/enums/index.ts", "nodejs/types/enums/index.ts"),
        ("nodejs/config/index.ts", "nodejs/config/index.ts"),
        ("nodejs/config/vars.ts", "nodejs/config/vars.ts"),
    ] {
        emit(path.to_string(), template, &ctx)?;
    }
    for res in ts.resources.iter().chain(std::iter::once(&ts.provider)) {
        let ctx = json!({ "pkg": &ts, "res": res, "is_provider": res.module == "provider" });
        emit(
            format!("nodejs/{}.ts", res.module),
            "nodejs/resource.ts",
            &ctx,
        )?;
    }

    files.push(SdkFile {
        path: format!("{root}/py.typed"),
        text: String::new(),
    });
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// Directories under `sdk/<lang>/` that are never generated text: the compiled output (which
/// [`tsc::compile`] rewrites whole) and what installs and builds leave behind.
const NOT_RENDERED: &[&str] = &["bin", "node_modules", "build", "dist", "__pycache__"];

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SdkError + '_ {
    move |source| SdkError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes the rendered files under `sdk_dir` and removes the files there that a previous
/// schema produced and this one does not.
pub fn write(files: &[SdkFile], sdk_dir: &Path) -> Result<(), SdkError> {
    for file in files {
        let path = sdk_dir.join(&file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let same = std::fs::read(&path).is_ok_and(|old| old == file.text.as_bytes());
        if !same {
            std::fs::write(&path, &file.text).map_err(io(&path))?;
        }
    }
    for extra in extra_files(files, sdk_dir)? {
        let path = sdk_dir.join(&extra);
        std::fs::remove_file(&path).map_err(io(&path))?;
        // Then the directories this leaves empty.
        let mut dir = path.parent();
        while let Some(d) = dir.filter(|d| *d != sdk_dir) {
            if std::fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
    }
    Ok(())
}

/// Files under `sdk_dir/python` and `sdk_dir/nodejs` that `files` does not contain, outside
/// the directories that are never rendered ([`NOT_RENDERED`], `*.egg-info`): what a schema
/// change left behind.
pub fn extra_files(files: &[SdkFile], sdk_dir: &Path) -> Result<Vec<String>, SdkError> {
    fn walk(dir: &Path, rel: &str, out: &mut Vec<String>) -> Result<(), SdkError> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Ok(());
        };
        for entry in entries {
            let entry = entry.map_err(io(dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let rel_path = format!("{rel}/{name}");
            if entry.file_type().map_err(io(&path))?.is_dir() {
                if !NOT_RENDERED.contains(&name.as_str()) && !name.ends_with(".egg-info") {
                    walk(&path, &rel_path, out)?;
                }
            } else {
                out.push(rel_path);
            }
        }
        Ok(())
    }
    let mut present = Vec::new();
    for lang in ["python", "nodejs"] {
        walk(&sdk_dir.join(lang), lang, &mut present)?;
    }
    present.retain(|p| !files.iter().any(|f| &f.path == p));
    present.sort();
    Ok(present)
}

/// `cargo run -p codegen -- sdk`: renders from `schema_path`, writes under `sdk_dir`, then
/// compiles the Node.js package with the pinned TypeScript from `codegen/package-lock.json`.
pub fn generate(schema_path: &Path, sdk_dir: &Path, codegen_dir: &Path) -> Result<(), SdkError> {
    let text = std::fs::read_to_string(schema_path).map_err(io(schema_path))?;
    let files = render(&text)?;
    write(&files, sdk_dir)?;
    tsc::compile(
        codegen_dir,
        &sdk_dir.join("nodejs"),
        &sdk_dir.join("nodejs/bin"),
    )
}
