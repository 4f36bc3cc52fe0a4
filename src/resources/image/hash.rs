//! What makes the image, hashed, and what changed, said: the context hash Check computes
//! (the context's files after `.dockerignore`, in the builders' dialects, plus every input that
//! changes the image, see `inputs.rs`), and the diff's notes (which files changed; tags only).

use std::collections::BTreeMap;
use std::path::Path;

use crate::context::{self, BuildContext, DockerfileSource};
use crate::docker::{self, NamedContext};
use crate::path::PropertyPath;
use crate::resource::{CheckFailure, Ctx, Inputs};

use super::super::ProviderConfig;
use super::super::inputs::{hashed_json, without_credentials};
use super::args::{ImageArgs, ImageState};
use super::dockerfile::DockerfileReport;
use super::plan::{context_path, dockerfile_source, named_contexts};

/// Opens the build context of `args`, rooted at `dir`.
pub fn open_context(
    dir: &Path,
    args: &ImageArgs,
) -> std::result::Result<BuildContext, CheckFailure> {
    BuildContext::open(dir, dockerfile_source(args)).map_err(|e| context_failure(dir, args, e))
}

/// A context error as a failure on the input to fix: `dockerfile` for an error about the
/// Dockerfile or a directory on the way to it (e.g. a path the OS refuses), else `context`.
pub(super) fn context_failure(
    dir: &Path,
    args: &ImageArgs,
    e: context::ContextError,
) -> CheckFailure {
    use context::ContextError as E;
    let on_the_way_to_dockerfile = |path: &Path| match dockerfile_source(args) {
        DockerfileSource::Path(rel) => path != dir && dir.join(rel).starts_with(path),
        DockerfileSource::Inline(_) => false,
    };
    let property = match &e {
        E::DockerfileInvalidPath { .. }
        | E::DockerfileNotFound { .. }
        | E::DockerfileNotRegular { .. } => "dockerfile",
        E::Stat { path, .. } | E::ReadFile { path, .. } if on_the_way_to_dockerfile(path) => {
            "dockerfile"
        }
        _ => "context",
    };
    CheckFailure::new(property, e.to_string())
}

/// The context hash: the context's own digest combined with every other input that
/// changes the image.
///
/// `dialects` are the `.dockerignore` dialects of the daemons that may build it, the
/// default daemon's first (an empty list: Classic). The dialect itself is not hashed, only
/// the context it selects: when every dialect selects the same files (always, with one
/// dialect), the hash is the one this context always had; otherwise the other dialects'
/// digests are hashed too, so that a change any builder would see changes the hash.
///
/// `named`: the named build contexts, each a directory hashed with its own `.dockerignore`
/// (in today's BuildKit's dialect: only a buildkitd takes them) or an image reference hashed
/// as its text. They count only when there are any, so an image without them keeps its hash.
/// Their files join the file list as `[context <name>] <path>`, for the diff.
pub fn compute_hash(
    dir: &Path,
    args: &ImageArgs,
    dialects: &[context::IgnoreDialect],
    named: &BTreeMap<String, NamedContext>,
) -> std::result::Result<context::ContextDigest, CheckFailure> {
    hash_and_check(dir, args, dialects, named, None).map(|(digest, _)| digest)
}

/// [`compute_hash`], and with `check` the Dockerfile check over the same walk (the
/// listings of every dialect) and the Dockerfile text the hash read.
pub(super) fn hash_and_check(
    dir: &Path,
    args: &ImageArgs,
    dialects: &[context::IgnoreDialect],
    named: &BTreeMap<String, NamedContext>,
    check: Option<&crate::dockerfile::CheckOptions>,
) -> std::result::Result<(context::ContextDigest, Option<DockerfileReport>), CheckFailure> {
    let ctx = open_context(dir, args)?;
    let (first, others) = dialects
        .split_first()
        .unwrap_or((&context::IgnoreDialect::Classic20_10, &[]));
    let hash_in = |dialect: context::IgnoreDialect| {
        ctx.clone()
            .with_dialect(dialect)
            .hash()
            .map_err(|e| context_failure(dir, args, e))
    };
    let digest = hash_in(*first)?;
    let mut also = Vec::new();
    let mut other_files = Vec::new();
    for dialect in others.iter().filter(|d| *d != first) {
        let other = hash_in(*dialect)?;
        if other.hash != digest.hash && !also.contains(&other.hash) {
            also.push(other.hash);
            other_files.push(other.files);
        }
    }
    let report = check.map(|opts| {
        let others: Vec<&[(String, String)]> = other_files.iter().map(Vec::as_slice).collect();
        super::dockerfile::run(&ctx, args, &digest, &others, opts)
    });
    let extra = hashed_json(args);
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(b"docker-buildkit context v1\0");
    h.update(digest.hash.as_bytes());
    for other in &also {
        h.update(b"\0+");
        h.update(other.as_bytes());
    }
    h.update(b"\0");
    h.update(extra.as_bytes());
    let mut files = digest.files;
    for (name, source) in named {
        h.update(b"\0named\0");
        h.update(name.as_bytes());
        h.update(b"\0");
        match source {
            NamedContext::Local(root) => {
                let failure = |e: context::ContextError| {
                    CheckFailure::new(
                        PropertyPath::key("buildContexts").field(name),
                        e.to_string(),
                    )
                };
                let d = BuildContext::open_named(root)
                    .map_err(failure)?
                    .with_dialect(context::IgnoreDialect::Modern)
                    .hash()
                    .map_err(failure)?;
                h.update(b"dir\0");
                h.update(d.hash.as_bytes());
                files.extend(
                    d.files
                        .into_iter()
                        .map(|(p, digest)| (format!("[context {name}] {p}"), digest)),
                );
            }
            NamedContext::Image(r) => {
                h.update(b"image\0");
                h.update(r.as_bytes());
            }
            NamedContext::Remote(url) => {
                // BuildKit fetches it: what is hashed is the address (without its
                // credential, so that a new token does not rebuild), so a moving branch
                // rebuilds only when the URL pins a commit.
                let url = match pulumi_kit::rpc::codec::url_credential(url) {
                    Some(c) => url.replace(c, ""),
                    None => url.clone(),
                };
                h.update(b"remote\0");
                h.update(url.as_bytes());
            }
            NamedContext::OciLayout(r) => {
                let digest = crate::docker::session::content::OciLayout::new(&r.dir)
                    .resolve_image(&r.tag, r.digest.as_deref())
                    .map_err(|e| {
                        CheckFailure::new(
                            PropertyPath::key("buildContexts").field(name),
                            e.to_string(),
                        )
                    })?;
                h.update(b"oci-layout\0");
                h.update(digest.as_bytes());
                files.push((
                    format!("[context {name}] {}:{}", r.dir.display(), r.tag),
                    digest,
                ));
            }
        }
    }
    Ok((
        context::ContextDigest {
            hash: format!("{:032x}", h.digest128()),
            files,
            build_files: digest.build_files,
            symlinks: digest.symlinks,
            dockerfile: digest.dockerfile,
        },
        report,
    ))
}

/// The check outside Check (tests, tools): opens and lists the context itself.
pub fn check_dockerfile(program_dir: &Path, args: &ImageArgs) -> DockerfileReport {
    let news = Inputs {
        args: args.clone(),
        unknowns: Default::default(),
        secrets: Default::default(),
    };
    let failed = |f: CheckFailure| DockerfileReport {
        failures: vec![f],
        ..Default::default()
    };
    let dir = match context_path(program_dir, args) {
        Ok(d) => d,
        Err(e) => return failed(CheckFailure::new("context", e.to_string())),
    };
    let ctx = match open_context(&dir, args) {
        Ok(c) => c,
        Err(f) => return failed(f),
    };
    match super::dockerfile::listing(&ctx) {
        Ok(digest) => {
            super::dockerfile::run(&ctx, args, &digest, &[], &super::dockerfile::options(&news))
        }
        Err(e) => failed(CheckFailure::new("context", e.to_string())),
    }
}

/// Hashes the context on a blocking thread (it reads files and the stat cache), so that the
/// provider keeps answering other calls meanwhile.
pub(super) async fn hash_off_runtime(
    ctx: &Ctx<ProviderConfig>,
    args: &ImageArgs,
    check: Option<crate::dockerfile::CheckOptions>,
) -> std::result::Result<(String, Option<DockerfileReport>), CheckFailure> {
    let dir = context_path(&ctx.program_dir, args)
        .map_err(|e| CheckFailure::new("context", e.to_string()))?;
    let named = named_contexts(&ctx.program_dir, args.build_contexts.as_ref());
    let args = args.clone();
    let dialects = ignore_dialects(ctx).await;
    tokio::task::spawn_blocking(move || {
        let (h, report) = hash_and_check(&dir, &args, &dialects, &named, check.as_ref())?;
        crate::cache::store_manifest(&h.hash, &h.files);
        Ok((h.hash, report))
    })
    .await
    .map_err(|e| CheckFailure::new("context", format!("hashing the context failed: {e}")))?
}

/// The Dockerfile check when the hash cannot be computed yet (preview with unknown inputs
/// of the hash): a walk of the context, no file read but the Dockerfile.
pub(super) async fn check_off_runtime(
    ctx: &Ctx<ProviderConfig>,
    args: &ImageArgs,
    check: crate::dockerfile::CheckOptions,
) -> Option<DockerfileReport> {
    let dir = context_path(&ctx.program_dir, args).ok()?;
    let args = args.clone();
    tokio::task::spawn_blocking(move || {
        let bc = open_context(&dir, &args).ok()?;
        let digest = super::dockerfile::listing(&bc).ok()?;
        Some(super::dockerfile::run(&bc, &args, &digest, &[], &check))
    })
    .await
    .ok()
    .flatten()
}

/// The `.dockerignore` dialects of the daemons that may build: the default daemon's first,
/// then the configured builders' (each asked once per process, never for longer than
/// [`docker::dialect::PROBE_TIMEOUT`]; one that does not answer counts as Classic).
async fn ignore_dialects(ctx: &Ctx<ProviderConfig>) -> Vec<context::IgnoreDialect> {
    let addresses = ctx.config.daemon_addresses();
    let found = futures_util::future::join_all(addresses.iter().map(docker::dialect::probe)).await;
    let mut dialects = Vec::new();
    for d in found {
        if !dialects.contains(&d) {
            dialects.push(d);
        }
    }
    dialects
}

/// True when the new inputs differ from the old ones in `tags` alone (credentials never
/// count, as in the diff).
pub(super) fn only_tags_changed(olds: &ImageArgs, news: &ImageArgs) -> bool {
    let rest = |a: &ImageArgs| ImageArgs {
        tags: None,
        ..without_credentials(a)
    };
    olds.tags != news.tags && rest(olds) == rest(news)
}

/// The diff's note when `contextHash` changed: the files that did (from the file lists
/// Check stored for both hashes), or a general word when either list is gone.
pub(super) fn describe_context_change(olds: &ImageState, news: &Inputs<ImageArgs>) -> String {
    let manifest = |h: &Option<String>| h.as_deref().and_then(crate::cache::load_manifest);
    let changed = match (
        manifest(&olds.args.context_hash),
        manifest(&news.args.context_hash),
    ) {
        (Some(old), Some(new)) => context::changed_paths(&old, &new),
        _ => Vec::new(),
    };
    if changed.is_empty() {
        return "the build context or build settings changed: the image will be rebuilt"
            .to_string();
    }
    let shown: Vec<&str> = changed.iter().take(5).map(String::as_str).collect();
    let more = changed.len().saturating_sub(shown.len());
    format!(
        "{} file{} changed in the build context: {}{}",
        changed.len(),
        if changed.len() == 1 { "" } else { "s" },
        shown.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    )
}
