//! Checked inputs → the engine's [`BuildPlan`]: every default resolved, every name parsed,
//! every path made absolute, nothing left for the engine to decide. [`build_plan`] takes
//! [`ImageArgs`] apart field by field, so an input added to the struct does not compile until
//! it is mapped here (or said to be the resource's own business).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::context::DockerfileSource;
use crate::credentials::Credentials;
use crate::docker::{self, BuildPlan, BuildSecrets, CacheExport, NamedContext, SshForward};
use crate::path::PropertyPath;
use crate::platform::Platform;
use crate::reference::Reference;
use crate::resource::{Ctx, ResourceError, Result};

use super::super::ProviderConfig;
use super::args::{
    CacheFromEntry, CacheTo, DEFAULT_SSH_ID, ExportInput, ExportedOutput, ImageArgs, Provenance,
    Registry, SshInput, TarballFormatInput,
};

/// The build plan of checked inputs. `secret_hash`: the context hash covers a secret, so
/// build-once (a public `ctx-<hash>` tag) is off.
pub(super) fn build_plan(
    ctx: &Ctx<ProviderConfig>,
    a: &ImageArgs,
    secret_hash: bool,
) -> Result<BuildPlan> {
    // Every field, by name: a new input is a compile error here until it is mapped.
    let ImageArgs {
        name,
        tags,
        context: _,
        dockerfile: _,
        dockerfile_inline: _,
        build_contexts,
        platforms,
        build_args,
        target,
        labels,
        cache_from,
        cache_to,
        inline_cache,
        no_cache,
        pull,
        network,
        secrets,
        ssh,
        add_hosts,
        push,
        registry,
        // Only rebuild: they are in the context hash, which decides whether to build.
        triggers: _,
        index,
        skip_if_pushed,
        provenance,
        exports,
        context_hash,
    } = a;
    // `context`, `dockerfile` and `dockerfileInline` become the context directory and the
    // Dockerfile's source together:
    let context_dir = context_path(&ctx.program_dir, a)
        .map_err(|e| ResourceError::invalid_input(e.to_string()))?;
    let dockerfile = dockerfile_source(a);
    let invalid = |property: PropertyPath, e: &dyn std::fmt::Display| {
        ResourceError::invalid_input(format!("{property}: {e}"))
    };
    let reference = Reference::parse(name).map_err(|e| invalid("name".into(), &e))?;
    let mut push_tags = vec![reference.tagged()];
    for (i, t) in tags.iter().flatten().enumerate() {
        let r = reference
            .resolve_tag(t)
            .map_err(|e| invalid(PropertyPath::key("tags").at(i), &e))?;
        if !push_tags.contains(&r) {
            push_tags.push(r);
        }
    }
    let platforms = platforms
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, p)| {
            p.parse::<Platform>()
                .map_err(|e| invalid(PropertyPath::key("platforms").at(i), &e))
        })
        .collect::<Result<Vec<_>>>()?;
    let build_once = !no_cache && !secret_hash;
    Ok(BuildPlan {
        context_dir,
        dockerfile,
        reference,
        push_tags,
        platforms,
        index: *index,
        build_args: build_args.clone().unwrap_or_default(),
        target: target.clone(),
        labels: labels.clone().unwrap_or_default(),
        cache_from: cache_from
            .iter()
            .flatten()
            .filter_map(image_cache_from)
            .collect(),
        // With `cacheTo`, the inline cache is one of its entries; without, `inlineCache`.
        inline_cache: match cache_to {
            Some(list) => list.iter().any(|c| c.inline.is_some()),
            None => *inline_cache,
        },
        cache_to: cache_to
            .iter()
            .flatten()
            .filter_map(|c| cache_export(&ctx.program_dir, c))
            .collect(),
        // The cache imports that are not images: `local` directories.
        cache_imports: cache_from
            .iter()
            .flatten()
            .filter_map(|c| local_cache_from(&ctx.program_dir, c))
            .collect(),
        no_cache: *no_cache,
        network: network.clone().filter(|n| n != "default"),
        secrets: BuildSecrets(secrets.clone().unwrap_or_default()),
        ssh: ssh
            .iter()
            .flatten()
            .map(|s| ssh_forward(&ctx.program_dir, s))
            .collect(),
        add_hosts: add_hosts.clone().unwrap_or_default(),
        pull: *pull,
        push: *push,
        context_tag: context_hash
            .as_deref()
            .filter(|_| build_once)
            .map(docker::index::context_tag),
        skip_if_pushed: *skip_if_pushed,
        provenance: match provenance {
            Some(Provenance::Min) => Some("min".to_string()),
            Some(Provenance::Max) => Some("max".to_string()),
            Some(Provenance::Off) | None => None,
        },
        login: login(registry.as_ref()),
        build_contexts: named_contexts(&ctx.program_dir, build_contexts.as_ref()),
        exports: exports
            .iter()
            .flatten()
            .filter_map(|e| export(&ctx.program_dir, e))
            .collect(),
    })
}

/// The named build contexts (`buildContexts`), directories resolved against the program directory.
pub(super) fn named_contexts(
    program_dir: &Path,
    build_contexts: Option<&BTreeMap<String, String>>,
) -> BTreeMap<String, NamedContext> {
    build_contexts
        .into_iter()
        .flatten()
        .map(|(name, v)| (name.clone(), NamedContext::parse(v, program_dir)))
        .collect()
}

/// The engine's export of one `exports` entry (`None` for `load: false`).
fn export(program_dir: &Path, e: &ExportInput) -> Option<docker::Export> {
    if let Some(t) = &e.tarball {
        return Some(docker::Export::Tarball {
            path: program_path(program_dir, &t.path),
            format: match t.format {
                Some(TarballFormatInput::Oci) => docker::TarballFormat::Oci,
                Some(TarballFormatInput::Docker) | None => docker::TarballFormat::Docker,
            },
        });
    }
    if let Some(l) = &e.local {
        return Some(docker::Export::Local {
            dir: program_path(program_dir, &l.dest),
        });
    }
    if e.cache_only == Some(true) {
        return Some(docker::Export::CacheOnly);
    }
    (e.load == Some(true)).then_some(docker::Export::Load)
}

/// What the engine's exports wrote, as the state records them.
pub(super) fn exported_outputs(exported: &[docker::Exported]) -> Vec<ExportedOutput> {
    exported
        .iter()
        .map(|x| match &x.export {
            docker::Export::Tarball { path, format } => ExportedOutput {
                kind: "tarball".to_string(),
                path: Some(path.display().to_string()),
                format: Some(format.exporter().to_string()),
                bytes: x.bytes,
            },
            docker::Export::Local { dir } => ExportedOutput {
                kind: "local".to_string(),
                path: Some(dir.display().to_string()),
                format: None,
                bytes: x.bytes,
            },
            docker::Export::Load => ExportedOutput {
                kind: "load".to_string(),
                path: None,
                format: None,
                bytes: x.bytes,
            },
            docker::Export::CacheOnly => ExportedOutput {
                kind: "cacheOnly".to_string(),
                path: None,
                format: None,
                bytes: 0,
            },
        })
        .collect()
}

/// The credentials of `registry`, when it has a username and a password.
pub(super) fn login(registry: Option<&Registry>) -> Option<Credentials> {
    let r = registry?;
    Some(Credentials {
        server: r.server.clone(),
        username: r.username.clone()?,
        password: r.password.clone()?,
        identity_token: None,
    })
}

/// The image reference of a `cacheFrom` entry that names one.
fn image_cache_from(c: &CacheFromEntry) -> Option<String> {
    match c {
        CacheFromEntry::Image(r) => Some(r.clone()),
        CacheFromEntry::Typed(t) => t.registry.as_ref().map(|r| r.reference.clone()),
    }
}

/// The `local` cache import of one `cacheFrom` entry (`None` for images).
fn local_cache_from(program_dir: &Path, c: &CacheFromEntry) -> Option<docker::CacheImport> {
    let CacheFromEntry::Typed(t) = c else {
        return None;
    };
    let l = t.local.as_ref()?;
    let mut attrs = BTreeMap::from([(
        "src".to_string(),
        program_path(program_dir, &l.src).display().to_string(),
    )]);
    if let Some(tag) = &l.tag {
        attrs.insert("tag".to_string(), tag.clone());
    }
    Some(docker::CacheImport {
        kind: "local".to_string(),
        attrs,
    })
}

/// The BuildKit cache export of one `cacheTo` entry (`None` for `inline` and `disabled`,
/// which are not exporters of their own here).
fn cache_export(program_dir: &Path, c: &CacheTo) -> Option<CacheExport> {
    let flag = |b: Option<bool>| b.map(|b| b.to_string());
    let (kind, attrs) = if let Some(l) = &c.local {
        (
            "local",
            vec![
                (
                    "dest",
                    Some(program_path(program_dir, &l.dest).display().to_string()),
                ),
                ("mode", l.mode.clone()),
                ("tag", l.tag.clone()),
                ("compression", l.compression.clone()),
                ("ignore-error", flag(l.ignore_error)),
            ],
        )
    } else if let Some(r) = &c.registry {
        (
            "registry",
            vec![
                ("ref", Some(r.reference.clone())),
                ("mode", r.mode.clone()),
                ("image-manifest", flag(r.image_manifest)),
                ("oci-mediatypes", flag(r.oci_media_types)),
                ("compression", r.compression.clone()),
                ("ignore-error", flag(r.ignore_error)),
            ],
        )
    } else {
        return None;
    };
    Some(CacheExport {
        kind: kind.to_string(),
        attrs: attrs
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_string(), v?)))
            .collect(),
    })
}

/// The build context of `args`: `context` resolved against the program directory; without
/// one, the program directory, or an empty directory for an inline Dockerfile.
pub(super) fn context_path(
    program_dir: &Path,
    args: &ImageArgs,
) -> std::result::Result<PathBuf, EmptyContextError> {
    match (&args.context, &args.dockerfile_inline) {
        (Some(c), _) => Ok(context_dir(program_dir, c)),
        (None, Some(_)) => empty_context(),
        (None, None) => Ok(program_dir.to_path_buf()),
    }
}

/// Why the empty context of an inline Dockerfile cannot be made.
#[derive(Debug, thiserror::Error)]
#[error("cannot make an empty build context at {}: {source}", dir.display())]
pub(super) struct EmptyContextError {
    dir: PathBuf,
    source: std::io::Error,
}

/// An empty directory of the provider's own (under its cache directory, else the temporary
/// one), for builds with no context: made again if anything was put into it.
fn empty_context() -> std::result::Result<PathBuf, EmptyContextError> {
    let base = crate::cache::cache_dir().unwrap_or_else(std::env::temp_dir);
    let dir = base.join("empty-context");
    let fail = |source| EmptyContextError {
        dir: dir.clone(),
        source,
    };
    match std::fs::symlink_metadata(&dir) {
        Ok(md) if md.is_dir() => {
            if std::fs::read_dir(&dir).map_err(fail)?.next().is_none() {
                return Ok(dir);
            }
            std::fs::remove_dir_all(&dir).map_err(fail)?;
        }
        // A file or a link where the directory should be: not ours to follow.
        Ok(_) => std::fs::remove_file(&dir).map_err(fail)?,
        Err(_) => {}
    }
    std::fs::create_dir_all(&dir).map_err(fail)?;
    Ok(dir)
}

/// The context directory: relative paths resolve against the program directory.
pub fn context_dir(program_dir: &Path, context: &str) -> PathBuf {
    program_path(program_dir, context)
}

/// A path of the inputs: relative paths resolve against the program directory.
fn program_path(program_dir: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        program_dir.join(p)
    }
}

/// The agent to forward for one entry of `ssh`: its id (`default` when it names none) and its
/// paths resolved against the program directory.
pub(super) fn ssh_forward(program_dir: &Path, s: &SshInput) -> SshForward {
    SshForward {
        id: s.id.clone().unwrap_or_else(|| DEFAULT_SSH_ID.to_string()),
        paths: s
            .paths
            .iter()
            .flatten()
            .map(|p| program_path(program_dir, p))
            .collect(),
    }
}

/// Where the Dockerfile comes from: `dockerfileInline`, else `dockerfile`, else `Dockerfile`.
pub(super) fn dockerfile_source(args: &ImageArgs) -> DockerfileSource {
    match (&args.dockerfile_inline, &args.dockerfile) {
        (Some(text), _) => DockerfileSource::Inline(text.clone()),
        (None, Some(path)) => DockerfileSource::Path(path.clone()),
        (None, None) => DockerfileSource::Path("Dockerfile".to_string()),
    }
}
