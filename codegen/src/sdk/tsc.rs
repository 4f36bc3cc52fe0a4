//! Compiling `sdk/nodejs/` into `bin/` (JavaScript and `.d.ts`) with the TypeScript compiler
//! pinned in `codegen/package-lock.json`, installed with `npm ci` into the git-ignored
//! `codegen/node_modules` when it is missing or differs from the lock file.
//!
//! The SDK's own `tsconfig.json` is what a user would compile with; here a throwaway config
//! extends it and points module resolution at `codegen/node_modules`, so nothing is installed
//! into `sdk/`. Same compiler, same sources: same bytes.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use super::SdkError;

/// The packages whose installed versions must match the lock file.
const PINNED: &[&str] = &["typescript", "@pulumi/pulumi", "@types/node"];

fn compile_err(msg: impl Into<String>) -> SdkError {
    SdkError::Compile(msg.into())
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// Whether `codegen/node_modules` holds exactly the locked versions.
fn tools_current(codegen_dir: &Path) -> bool {
    let Some(lock) = read_json(&codegen_dir.join("package-lock.json")) else {
        return false;
    };
    PINNED.iter().all(|name| {
        let key = format!("node_modules/{name}");
        let locked = lock["packages"][&key]["version"].as_str();
        let installed = read_json(&codegen_dir.join(&key).join("package.json"));
        locked.is_some() && installed.is_some_and(|p| p["version"].as_str() == locked)
    })
}

/// Installs the pinned compiler and types into `codegen/node_modules` unless already there.
pub fn ensure_tools(codegen_dir: &Path) -> Result<(), SdkError> {
    if tools_current(codegen_dir) {
        return Ok(());
    }
    eprintln!(
        "codegen: npm ci in {} (TypeScript for sdk/nodejs)",
        codegen_dir.display()
    );
    let status = Command::new("npm")
        .args([
            "ci",
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
            "--loglevel=error",
        ])
        .current_dir(codegen_dir)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| compile_err(format!("running npm (is Node.js installed?): {e}")))?;
    if !status.success() || !tools_current(codegen_dir) {
        return Err(compile_err(format!(
            "`npm ci` in {} failed ({status})",
            codegen_dir.display()
        )));
    }
    Ok(())
}

fn absolute(path: &Path) -> Result<PathBuf, SdkError> {
    std::path::absolute(path).map_err(|source| SdkError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Compiles the TypeScript in `src_dir` (its `tsconfig.json`) into `out_dir`, which is
/// emptied first.
pub fn compile(codegen_dir: &Path, src_dir: &Path, out_dir: &Path) -> Result<(), SdkError> {
    ensure_tools(codegen_dir)?;
    let codegen_dir = absolute(codegen_dir)?;
    let src_dir = absolute(src_dir)?;
    let out_dir = absolute(out_dir)?;
    let modules = codegen_dir.join("node_modules");
    let scratch = std::env::temp_dir().join(format!("dbk-codegen-tsc-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|source| SdkError::Io {
        path: scratch.display().to_string(),
        source,
    })?;
    let pulumi = modules.join("@pulumi/pulumi");
    let config = json!({
        "extends": src_dir.join("tsconfig.json"),
        "compilerOptions": {
            "rootDir": src_dir,
            "outDir": out_dir,
            "typeRoots": [modules.join("@types")],
            "paths": {
                "@pulumi/pulumi": [pulumi],
                "@pulumi/pulumi/*": [pulumi.join("*")],
            },
        },
        "include": [src_dir.join("**/*.ts")],
        "exclude": [src_dir.join("bin"), src_dir.join("node_modules")],
    });
    let config_path = scratch.join("tsconfig.json");
    let written = std::fs::write(&config_path, config.to_string());
    let result = written
        .map_err(|source| SdkError::Io {
            path: config_path.display().to_string(),
            source,
        })
        .and_then(|()| {
            if out_dir.exists() {
                std::fs::remove_dir_all(&out_dir).map_err(|source| SdkError::Io {
                    path: out_dir.display().to_string(),
                    source,
                })?;
            }
            let output = Command::new("node")
                .arg(modules.join("typescript/bin/tsc"))
                .arg("-p")
                .arg(&config_path)
                .output()
                .map_err(|e| compile_err(format!("running node: {e}")))?;
            if output.status.success() {
                Ok(())
            } else {
                Err(compile_err(format!(
                    "tsc failed:\n{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                )))
            }
        });
    let _ = std::fs::remove_dir_all(&scratch);
    result
}
