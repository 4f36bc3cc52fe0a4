//! What the build engine is given: a [`BuildPlan`] (plain, fully resolved data: what to build,
//! from where, under which names, with which options) and an [`Env`] (where the daemon is,
//! where progress goes, when to stop). The `Image` resource makes both; the engine carries
//! them out and knows nothing of Pulumi inputs, the provider's configuration or the wire.
//!
//! Not for: deciding anything (the resource resolves every default before the plan is made).

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use tokio_util::sync::CancellationToken;

use crate::context::DockerfileSource;
use crate::credentials::Credentials;
use crate::platform::Platform;
use crate::reference::Reference;

/// One image to build and push, every input resolved.
#[derive(Debug, Clone)]
pub struct BuildPlan {
    /// The build context directory (absolute).
    pub context_dir: PathBuf,
    /// The Dockerfile: a path relative to the context, or its text.
    pub dockerfile: DockerfileSource,
    /// The image's name as given (repository, maybe a tag): the `ref` output is this
    /// repository pinned by digest.
    pub reference: Reference,
    /// Every `repository:tag` to push: the name (tag `latest` by default) first.
    pub push_tags: Vec<Reference>,
    /// The platforms to build; empty means the daemon's own.
    pub platforms: Vec<Platform>,
    /// Push an image index even for a single platform.
    pub index: bool,
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// More images to take build cache from.
    pub cache_from: Vec<String>,
    /// Embed the inline cache and use the pushed image as a cache source.
    pub inline_cache: bool,
    /// Caches to export besides the inline one (a registry, a directory): BuildKit's cache
    /// exporters, which only a buildkitd builder runs. A registry cache is also imported,
    /// and so is a `local` one (when its directory has one already).
    pub cache_to: Vec<CacheExport>,
    /// Caches to import besides `cache_from`'s images: BuildKit's cache importers (e.g.
    /// `local` with `src`, the directory of an OCI layout), which only a buildkitd builder
    /// runs.
    pub cache_imports: Vec<CacheImport>,
    /// Build without any cache.
    pub no_cache: bool,
    /// The network mode of `RUN` steps; `None` is the daemon's default.
    pub network: Option<String>,
    /// Build secrets by id (`RUN --mount=type=secret,id=…`).
    pub secrets: BuildSecrets,
    /// SSH agents forwarded to `RUN --mount=type=ssh` steps.
    pub ssh: Vec<SshForward>,
    /// `host:ip` lines added to `/etc/hosts` of `RUN` steps.
    pub add_hosts: Vec<String>,
    /// Always look for newer versions of the base images.
    pub pull: bool,
    /// Push (else the image stays in the daemon, tagged).
    pub push: bool,
    /// The `ctx-<hash>` tag that marks an image built from this context, when build-once
    /// applies: pushed after a build, and looked for before one when `skip_if_pushed`.
    pub context_tag: Option<String>,
    pub skip_if_pushed: bool,
    /// BuildKit's provenance attestation mode (`min`, `max`), or none: only a buildkitd
    /// attests.
    pub provenance: Option<String>,
    /// The credentials given with the image (used for their server; others come from the
    /// Docker CLI's configuration).
    pub login: Option<Credentials>,
    /// Named build contexts (`docker buildx build --build-context name=…`), by the name
    /// `FROM` and `COPY --from` use: only a buildkitd's Dockerfile frontend takes them.
    pub build_contexts: BTreeMap<String, NamedContext>,
    /// Where the image goes besides the registry (a tarball, a Docker daemon, a directory).
    pub exports: Vec<Export>,
}

/// One export of the built image besides the push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Export {
    /// A tarball at `path` (absolute): `docker save`'s format, or an OCI image layout.
    Tarball {
        path: PathBuf,
        format: TarballFormat,
    },
    /// Into the Docker daemon of the environment (`DOCKER_HOST`), under the plan's tags.
    Load,
    /// Nothing but the build cache (BuildKit's `cacheonly` output): the only export, with no
    /// push; only a buildkitd builds without an image to show for it.
    CacheOnly,
    /// The image's files into the directory `dir` (absolute): BuildKit's `local` exporter
    /// (`--output type=local,dest=DIR`). What the export sends replaces the entries of the
    /// same paths; other entries of `dir` are kept.
    Local { dir: PathBuf },
}

/// The format of a tarball export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TarballFormat {
    /// What `docker save` writes and `docker load` reads.
    Docker,
    /// An OCI image layout.
    Oci,
}

impl TarballFormat {
    /// BuildKit's exporter of this format.
    pub fn exporter(self) -> &'static str {
        match self {
            TarballFormat::Docker => "docker",
            TarballFormat::Oci => "oci",
        }
    }
}

/// What one export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    pub export: Export,
    /// The bytes written (the tarball's size, what was loaded, or the file data written to a
    /// directory).
    pub bytes: u64,
}

/// Where a named build context comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamedContext {
    /// A directory (absolute), sent through FileSync with its own `.dockerignore` applied.
    Local(PathBuf),
    /// An image reference (`docker-image://…`), read by BuildKit itself.
    Image(String),
    /// A Git repository (`https://…/repo.git#ref:subdir`, `git://…`, `git@host:…`) or a
    /// file at an HTTP(S) URL, fetched by BuildKit itself: the value as given.
    Remote(String),
    /// An image in an OCI layout directory on this machine (`oci-layout://DIR[:TAG][@DIGEST]`),
    /// served to BuildKit over the session as a content store.
    OciLayout(OciLayoutRef),
}

/// An `oci-layout://` named context: the layout's directory (absolute), the tag to look up
/// in its `index.json` (`latest` by default) and, when given, the image's digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciLayoutRef {
    pub dir: PathBuf,
    pub tag: String,
    pub digest: Option<String>,
}

impl NamedContext {
    /// A named context's value as `docker buildx build --build-context` reads it:
    /// `docker-image://REF`, `oci-layout://DIR[:TAG][@DIGEST]`, a Git or HTTP(S) URL, else a
    /// directory; paths are resolved against `base` when relative. Nothing is checked here
    /// (a scheme of another kind is left as a directory name: Check refuses it).
    pub fn parse(value: &str, base: &std::path::Path) -> NamedContext {
        if let Some(r) = value.strip_prefix(NAMED_IMAGE_SCHEME) {
            return NamedContext::Image(r.to_string());
        }
        if let Some(rest) = value.strip_prefix(NAMED_OCI_LAYOUT_SCHEME) {
            return NamedContext::OciLayout(OciLayoutRef::parse(rest, base));
        }
        if is_remote(value) {
            return NamedContext::Remote(value.to_string());
        }
        NamedContext::Local(base.join(value))
    }
}

impl OciLayoutRef {
    /// `DIR[:TAG][@DIGEST]` (after `oci-layout://`): the digest is what follows the last `@`
    /// when it is one (`sha256:` and 64 hex digits), the tag what follows the last `:` when
    /// no `/` or `\` follows it (so `C:\dir` stays a path), as buildx splits it.
    pub fn parse(rest: &str, base: &std::path::Path) -> OciLayoutRef {
        let mut rest = rest;
        let mut digest = None;
        if let Some((p, d)) = rest.rsplit_once('@')
            && is_sha256_digest(d)
        {
            digest = Some(d.to_string());
            rest = p;
        }
        let mut tag = None;
        if let Some((p, t)) = rest.rsplit_once(':')
            && !t.is_empty()
            && !t.contains(['/', '\\'])
        {
            tag = Some(t.to_string());
            rest = p;
        }
        OciLayoutRef {
            dir: base.join(rest),
            tag: tag.unwrap_or_else(|| "latest".to_string()),
            digest,
        }
    }
}

/// `sha256:` and 64 lowercase hex digits.
pub fn is_sha256_digest(d: &str) -> bool {
    d.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// Whether a named context's value is a source BuildKit fetches itself: an HTTP(S) URL (a
/// Git repository when its path ends in `.git`, else a file), `git://…` or `git@host:…`.
pub fn is_remote(value: &str) -> bool {
    let lower = value.get(..8).unwrap_or(value).to_ascii_lowercase();
    lower.starts_with("http://")
        || lower.starts_with("https://")
        || lower.starts_with("git://")
        || value.starts_with("git@")
}

/// The scheme of a named context that is an image, as buildx spells it.
pub const NAMED_IMAGE_SCHEME: &str = "docker-image://";

/// The scheme of a named context that is an image in an OCI layout, as buildx spells it.
pub const NAMED_OCI_LAYOUT_SCHEME: &str = "oci-layout://";

/// One cache export: BuildKit's exporter type (`registry`, `local`) and its attributes
/// (`ref`, `dest`, `mode`, `image-manifest`, `oci-mediatypes`, `compression`,
/// `ignore-error`), as `--cache-to type=…,key=value` spells them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheExport {
    pub kind: String,
    pub attrs: BTreeMap<String, String>,
}

impl CacheExport {
    /// The registry reference of a `registry` export.
    pub fn registry_ref(&self) -> Option<&str> {
        (self.kind == "registry")
            .then(|| self.attrs.get("ref").map(String::as_str))
            .flatten()
    }
}

/// One cache import: BuildKit's importer type (`local`, `registry`, …) and its attributes,
/// as `--cache-from type=…,key=value` spells them: for `local`, `src` (the directory, absolute)
/// and, optionally, `digest` (the cache manifest's) or `tag` (its tag in the directory's
/// `index.json`, `latest` by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheImport {
    pub kind: String,
    pub attrs: BTreeMap<String, String>,
}

/// Build secrets by id; their values never show in `Debug`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct BuildSecrets(pub BTreeMap<String, String>);

impl std::fmt::Debug for BuildSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// One ssh agent to forward: `id` as `RUN --mount=type=ssh,id=…` names it, and agent sockets
/// or key files (none: the provider's `SSH_AUTH_SOCK`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshForward {
    pub id: String,
    pub paths: Vec<PathBuf>,
}

/// Where the Docker daemon is: a host (`unix://…`, `tcp://…`) and, for TLS, a directory with
/// `ca.pem`, `cert.pem` and `key.pem`. Unset fields fall back to the environment as the docker
/// CLI does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DaemonAddress {
    pub host: Option<String>,
    pub cert_path: Option<String>,
    /// What answers there: a Docker Engine, or a standalone buildkitd.
    pub driver: Driver,
}

/// What a builder's address leads to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Driver {
    /// A Docker Engine: its `/build` with our session, then its push.
    #[default]
    Docker,
    /// A standalone buildkitd: BuildKit's Control API ([`crate::buildkit`]); its image
    /// exporter pushes.
    Buildkit,
}

/// A daemon that builds the platforms it lists (the provider's `builders`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuilderSpec {
    pub address: DaemonAddress,
    pub platforms: Vec<Platform>,
}

/// How much a message matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warning,
    Error,
}

/// A boxed future, for the object-safe [`Events`].
pub type Pending<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Where the engine's messages go. The caller masks secrets on the way out; the engine
/// declares the secrets it learns (e.g. a password from the Docker CLI's configuration).
pub trait Events: Send + Sync {
    /// A message kept in the output.
    fn log<'a>(&'a self, level: Level, message: &'a str) -> Pending<'a>;
    /// A progress line shown while the work runs.
    fn progress<'a>(&'a self, line: &'a str) -> Pending<'a>;
    /// A secret to mask from now on.
    fn secret(&self, value: &str);
}

/// What one run of the engine needs from its caller.
pub struct Env<'a> {
    /// The default daemon: it builds whatever no builder lists, and keeps unpushed images.
    pub daemon: DaemonAddress,
    /// More daemons, each for the platforms it lists.
    pub builders: Vec<BuilderSpec>,
    pub events: &'a dyn Events,
    /// Fires when the work must stop (the engine's Cancel).
    pub cancel: CancellationToken,
}

impl Env<'_> {
    /// The same environment, telling `events` instead and building on `daemon`.
    pub fn with<'b>(&self, daemon: DaemonAddress, events: &'b dyn Events) -> Env<'b> {
        Env {
            daemon,
            builders: self.builders.clone(),
            events,
            cancel: self.cancel.clone(),
        }
    }

    pub async fn log(&self, level: Level, message: &str) {
        self.events.log(level, message).await;
    }

    pub async fn progress(&self, line: &str) {
        self.events.progress(line).await;
    }

    pub fn add_secret(&self, value: &str) {
        self.events.secret(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn named_context_values_read_as_buildx_reads_them() {
        let base = Path::new("/prog");
        let d = format!("sha256:{}", "a".repeat(64));
        let oci = |dir: &str, tag: &str, digest: Option<&str>| {
            NamedContext::OciLayout(OciLayoutRef {
                dir: PathBuf::from(dir),
                tag: tag.to_string(),
                digest: digest.map(str::to_string),
            })
        };
        for (value, want) in [
            ("oci-layout://l", oci("/prog/l", "latest", None)),
            ("oci-layout:///abs/l:1.3", oci("/abs/l", "1.3", None)),
            (
                &format!("oci-layout://l@{d}"),
                oci("/prog/l", "latest", Some(&d)),
            ),
            (
                &format!("oci-layout://l:v2@{d}"),
                oci("/prog/l", "v2", Some(&d)),
            ),
            ("oci-layout://a/@/l", oci("/prog/a/@/l", "latest", None)),
            (
                "docker-image://alpine:3",
                NamedContext::Image("alpine:3".into()),
            ),
            (
                "https://h/r.git#main",
                NamedContext::Remote("https://h/r.git#main".into()),
            ),
            ("HTTP://h/f", NamedContext::Remote("HTTP://h/f".into())),
            ("git@h:r.git", NamedContext::Remote("git@h:r.git".into())),
            ("git://h/r", NamedContext::Remote("git://h/r".into())),
            ("assets", NamedContext::Local("/prog/assets".into())),
        ] {
            assert_eq!(NamedContext::parse(value, base), want, "{value}");
        }
    }
}
