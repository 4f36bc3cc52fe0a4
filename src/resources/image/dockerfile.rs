//! The Dockerfile check of Check (issue 20): the engine's `dockerfile::check` fed from the
//! Image's inputs (unknown ones in preview skip what depends on them) and the context
//! listing the hash made, its findings mapped onto the inputs they are about.

use std::collections::BTreeSet;

use crate::context::{self, BuildContext, DockerfileSource};
use crate::dockerfile::{self, CheckOptions, ContextView, Finding, Input, Report, Subject};
use crate::path::PropertyPath;
use crate::resource::{CheckFailure, Inputs, Unknown};

use super::args::ImageArgs;

/// What the check found, mapped onto the inputs.
#[derive(Debug, Clone, Default)]
pub struct DockerfileReport {
    pub failures: Vec<CheckFailure>,
    /// Warnings, each naming its input (`buildArgs: ...`).
    pub warnings: Vec<String>,
    /// Set when the Dockerfile was passed through unchecked, and why.
    pub unchecked: Option<String>,
}

/// The check's options from the inputs, unknowns as unknown.
pub(super) fn options(news: &Inputs<ImageArgs>) -> CheckOptions {
    let args = &news.args;
    let whole = |name: &str| news.unknown(&PropertyPath::keys(&[name])) == Unknown::Whole;
    let target = match &args.target {
        _ if news.is_unknown("target") => Input::Unknown,
        Some(t) => Input::Given(t.clone()),
        None => Input::Unset,
    };
    let build_args = if whole("buildArgs") {
        Input::Unknown
    } else {
        Input::Given(
            args.build_args
                .iter()
                .flatten()
                .map(|(k, v)| {
                    let unknown =
                        news.unknown(&PropertyPath::key("buildArgs").field(k)) != Unknown::No;
                    (k.clone(), (!unknown).then(|| v.clone()))
                })
                .collect(),
        )
    };
    // Ids are keys, known whenever the map is; unknown entries may add ids we cannot see.
    let secrets = if news.is_unknown("secrets") {
        Input::Unknown
    } else {
        Input::Given(
            args.secrets
                .iter()
                .flatten()
                .map(|(k, _)| k.clone())
                .collect(),
        )
    };
    let ssh = if news.is_unknown("ssh") {
        Input::Unknown
    } else {
        Input::Given(
            args.ssh
                .iter()
                .flatten()
                .map(|s| s.id.clone().unwrap_or_else(|| "default".to_owned()))
                .collect(),
        )
    };
    CheckOptions {
        target,
        build_args,
        secrets,
        ssh,
        named_contexts: args
            .build_contexts
            .iter()
            .flatten()
            .map(|(k, _)| k.clone())
            .collect(),
    }
}

/// Whether the check can run at all: the Dockerfile and the context are known.
pub(super) fn checkable(news: &Inputs<ImageArgs>) -> bool {
    !["context", "dockerfile", "dockerfileInline", "buildContexts"]
        .iter()
        .any(|p| news.is_unknown(p))
}

/// Runs the check on the context `ctx` opened for `args`, with the listings the hash made
/// (one per `.dockerignore` dialect) and the Dockerfile text it read.
pub(super) fn run(
    ctx: &BuildContext,
    args: &ImageArgs,
    digest: &context::ContextDigest,
    others: &[&[(String, String)]],
    opts: &CheckOptions,
) -> DockerfileReport {
    let text = match ctx.dockerfile() {
        DockerfileSource::Inline(t) => t.as_str(),
        DockerfileSource::Path(_) => match &digest.dockerfile {
            Some(t) => t.as_str(),
            None => {
                return DockerfileReport {
                    unchecked: Some(
                        "the Dockerfile is not UTF-8 text: it is not checked in preview".to_owned(),
                    ),
                    ..Default::default()
                };
            }
        },
    };
    let mut listings: Vec<&[(String, String)]> = vec![&digest.files];
    listings.extend_from_slice(others);
    let view = ContextView {
        root: ctx.root(),
        listings: &listings,
        symlinks: &digest.symlinks,
        ignore: ctx.dockerignore(),
        ignore_file: ctx.ignore_file(),
    };
    map(dockerfile::check(text, Some(&view), opts), args)
}

/// A listing of the context without hashing it (preview with unknown hash inputs): the
/// walk, and the Dockerfile read once.
pub(super) fn listing(ctx: &BuildContext) -> Result<context::ContextDigest, context::ContextError> {
    let entries = ctx.entries()?;
    let dockerfile = match ctx.dockerfile() {
        DockerfileSource::Path(rel) => std::fs::read(ctx.root().join(rel))
            .ok()
            .and_then(|b| String::from_utf8(b).ok()),
        DockerfileSource::Inline(_) => None,
    };
    Ok(context::ContextDigest {
        hash: String::new(),
        symlinks: entries
            .iter()
            .filter(|e| e.kind == context::EntryKind::Symlink)
            .map(|e| e.path.clone())
            .collect(),
        files: entries
            .into_iter()
            .map(|e| (e.path, String::new()))
            .collect(),
        build_files: Vec::new(),
        dockerfile,
    })
}

/// The findings as failures and warnings on the inputs they are about.
fn map(report: Report, args: &ImageArgs) -> DockerfileReport {
    let dockerfile_input = if args.dockerfile_inline.is_some() {
        "dockerfileInline"
    } else {
        "dockerfile"
    };
    let property = |f: &Finding| match f.subject {
        Subject::Dockerfile => dockerfile_input,
        Subject::Target => "target",
        Subject::Secrets => "secrets",
        Subject::Ssh => "ssh",
        Subject::BuildArgs => "buildArgs",
    };
    let text = |f: &Finding| match f.line {
        Some(n) if f.subject == Subject::Dockerfile => format!("line {n}: {}", f.message),
        Some(n) => format!("{} line {n}: {}", dockerfile_input, f.message),
        None => f.message.clone(),
    };
    let mut seen = BTreeSet::new();
    let mut out = DockerfileReport {
        unchecked: report.unchecked.clone(),
        ..Default::default()
    };
    for f in &report.findings {
        if !seen.insert((f.failure, property(f), text(f))) {
            continue;
        }
        if f.failure {
            out.failures.push(CheckFailure::new(property(f), text(f)));
        } else {
            out.warnings.push(format!("{}: {}", property(f), text(f)));
        }
    }
    out
}
