//! What a user writes and what the provider keeps: the `Image`'s inputs ([`ImageArgs`]) and
//! its state ([`ImageState`]). The schema, the SDKs and the docs are derived from these
//! structs (`cargo run -p codegen -- all`); adding an input starts here.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Credentials for the registry the image is pushed to (and its inline cache pulled from).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Registry {
    /// The registry host, e.g. `ghcr.io` or `127.0.0.1:5000` (a URL such as
    /// `https://123.dkr.ecr.us-east-1.amazonaws.com` is accepted too).
    pub server: String,
    /// The user name.
    pub username: Option<String>,
    /// The password or token. Always stored as a secret; changing it never rebuilds.
    #[schemars(extend("secret" = true))]
    pub password: Option<String>,
}

/// An ssh agent forwarded to the build, for `RUN --mount=type=ssh` steps (as
/// `docker build --ssh`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SshInput {
    /// The id `RUN --mount=type=ssh,id=<id>` names. Defaults to `default`, the id of a bare
    /// `RUN --mount=type=ssh`.
    pub id: Option<String>,
    /// The agent's socket, or private key files (without a passphrase) that are loaded into
    /// an ssh-agent of their own for the build; relative paths are resolved against the Pulumi
    /// program's directory (as `context`). Without paths, the agent of the provider's
    /// `SSH_AUTH_SOCK`.
    pub paths: Option<Vec<String>>,
}

/// One cache to export after the build (as `docker buildx build --cache-to`): set exactly
/// one of `registry`, `local`, `inline` or `disabled`. Only a BuildKit daemon (`driver:
/// buildkit`) exports caches other than `inline`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CacheTo {
    /// The build cache pushed to a registry as an image of its own.
    pub registry: Option<RegistryCacheTo>,
    /// The build cache written to a directory on the provider's machine, an OCI image layout
    /// (as `--cache-to type=local,dest=DIR`); the next build imports it too.
    pub local: Option<LocalCacheTo>,
    /// The cache embedded in the pushed image (BuildKit's inline cache, the default).
    pub inline: Option<InlineCacheTo>,
    /// No cache export at all, not even the default inline one.
    pub disabled: Option<bool>,
}

/// A build cache pushed to a registry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistryCacheTo {
    /// Where: an image reference, e.g. `ghcr.io/me/app:buildcache`.
    #[serde(rename = "ref")]
    pub reference: String,
    /// `min` (the default: the layers of the final image) or `max` (every stage's layers, so
    /// a fresh builder reuses every stage).
    pub mode: Option<String>,
    /// Push the cache as an OCI image manifest instead of a cache index (for registries that
    /// refuse indexes).
    pub image_manifest: Option<bool>,
    /// Use OCI media types (the default is BuildKit's).
    pub oci_media_types: Option<bool>,
    /// Layer compression: `gzip`, `estargz`, `zstd` or `uncompressed`.
    pub compression: Option<String>,
    /// A failed cache export is a warning, not a failed build.
    pub ignore_error: Option<bool>,
}

/// A build cache in a directory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalCacheTo {
    /// The directory, relative to the Pulumi program's directory; made when missing.
    pub dest: String,
    /// `min` (the default) or `max` (every stage's layers).
    pub mode: Option<String>,
    /// The cache's tag in the directory's `index.json` (`latest` by default).
    pub tag: Option<String>,
    /// Layer compression: `gzip`, `estargz`, `zstd` or `uncompressed`.
    pub compression: Option<String>,
    /// A failed cache export is a warning, not a failed build.
    pub ignore_error: Option<bool>,
}

/// The inline cache: no options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InlineCacheTo {}

/// One cache to import (as `docker buildx build --cache-from`): an image reference (a
/// registry cache, or an image pushed with the inline cache), or a typed entry.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum CacheFromEntry {
    /// An image reference, the same as `{registry: {ref: …}}`.
    Image(String),
    /// A typed entry (`registry`).
    Typed(CacheFrom),
}

impl<'de> Deserialize<'de> for CacheFromEntry {
    /// A string is an image reference; an object a typed entry, its own errors kept (an
    /// untagged derive would say only that nothing matched).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => Ok(CacheFromEntry::Image(s)),
            v @ serde_json::Value::Object(_) => serde_json::from_value(v)
                .map(CacheFromEntry::Typed)
                .map_err(D::Error::custom),
            other => Err(D::Error::custom(format!(
                "expected an image reference or an object with `registry` or `local`, got {other}"
            ))),
        }
    }
}

/// A typed cache import: set exactly one of `registry` or `local`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CacheFrom {
    /// A cache in a registry (a `cacheTo` registry export, or an image with an inline cache).
    pub registry: Option<RegistryCacheFrom>,
    /// A cache in a directory on the provider's machine (a `cacheTo` local export), as
    /// `--cache-from type=local,src=DIR`; a directory with no cache yet is skipped with a
    /// warning. Needs a BuildKit daemon (`driver: buildkit`).
    pub local: Option<LocalCacheFrom>,
}

/// A cache in a directory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalCacheFrom {
    /// The directory, relative to the Pulumi program's directory.
    pub src: String,
    /// The cache's tag in the directory's `index.json` (`latest` by default).
    pub tag: Option<String>,
}

/// A cache in a registry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistryCacheFrom {
    /// The image reference, e.g. `ghcr.io/me/app:buildcache`.
    #[serde(rename = "ref")]
    pub reference: String,
}

/// One export of the built image besides the push (as `docker buildx build --output`): set
/// exactly one of `tarball`, `local`, `load` or `cacheOnly`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExportInput {
    /// The image as a tarball file.
    pub tarball: Option<TarballExport>,
    /// The image's files into a directory (as `--output type=local,dest=DIR`). On a Docker
    /// host the Engine's own BuildKit writes it (through its `/grpc` endpoint) after the build.
    pub local: Option<LocalExport>,
    /// Nothing but the build cache (the builder's own, and `cacheTo`'s), as `--output
    /// type=cacheonly`: the only entry, with `push: false`; `digest` and `ref` stay empty.
    /// On a Docker host the build goes to the Engine's own BuildKit (through its `/grpc`
    /// endpoint), whose cache its `/build` reads: nothing is tagged in the daemon.
    pub cache_only: Option<bool>,
    /// Into the Docker daemon: on a Docker host the image is there already; a BuildKit daemon
    /// streams it into the Docker daemon of the provider's environment (`DOCKER_HOST`, else
    /// the default socket), as `docker load`, under the Image's tags.
    pub load: Option<bool>,
}

/// A tarball of the image.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TarballExport {
    /// Where: a file path, relative to the Pulumi program's directory. Written beside it and
    /// moved into place when complete (a failed export leaves the old file).
    pub path: String,
    /// `docker` (what `docker load` reads; the default) or `oci` (an OCI image layout; needs
    /// a BuildKit daemon).
    pub format: Option<TarballFormatInput>,
}

/// The image's files in a directory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalExport {
    /// The directory, relative to the Pulumi program's directory; made when missing. The
    /// exported tree is received beside it and merged in only when all of it arrived: a file
    /// of the image replaces the file of its path, other entries of the directory are kept,
    /// and a failed export leaves the directory as it was. With several platforms, one
    /// subdirectory per platform (`linux_amd64`, …), as BuildKit writes them.
    pub dest: String,
}

/// The format of a tarball export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TarballFormatInput {
    /// `docker save`'s format.
    Docker,
    /// An OCI image layout.
    Oci,
}

/// What one export wrote.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportedOutput {
    /// `tarball`, `local`, `load` or `cacheOnly`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The tarball's path or the directory (absolute), for `tarball` and `local`.
    pub path: Option<String>,
    /// The tarball's format, for a tarball.
    pub format: Option<String>,
    /// The bytes written (for `load` on a Docker host, where nothing moves, and for
    /// `cacheOnly`: 0).
    pub bytes: u64,
}

/// How much provenance BuildKit attests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provenance {
    /// No attestation (the default).
    Off,
    /// The build's materials and parameters.
    Min,
    /// `min` and the build's full definition and source.
    Max,
}

/// The id of an [`SshInput`] that names none.
pub const DEFAULT_SSH_ID: &str = "default";

/// BuildKit's own limit on the size of a build secret's value.
pub const MAX_SECRET_BYTES: usize = 500 * 1024;

/// The inputs of an `Image`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageArgs {
    /// The image repository to push to, e.g. `registry.example.com/team/app`, optionally
    /// with a tag (`:v1`; `latest` when none is given).
    pub name: String,
    /// More tags to push the same image under: a bare tag (`v1.2`) applies to `name`'s
    /// repository; a full reference (`registry/other:tag`) names another one.
    pub tags: Option<Vec<String>>,
    /// The build context directory, relative to the Pulumi program's directory. Defaults to
    /// the program's directory (`.`); with `dockerfileInline` and no `context`, the context is
    /// empty (as `docker build - < Dockerfile`), so edits to the program's directory never
    /// rebuild the image.
    pub context: Option<String>,
    /// The Dockerfile, relative to the context directory. Defaults to `Dockerfile`.
    pub dockerfile: Option<String>,
    /// The Dockerfile's text, instead of a file (not together with `dockerfile`).
    pub dockerfile_inline: Option<String>,
    /// Named build contexts, as `docker buildx build --build-context name=value`: what
    /// `FROM <name>` and `COPY --from=<name>` read instead of a stage or an image. A value
    /// is a directory (relative to the Pulumi program's directory, as `context`), hashed and
    /// sent with its own `.dockerignore` (not the main context's); `docker-image://<ref>`;
    /// `oci-layout://<dir>[:<tag>][@<digest>]`, an image in an OCI layout directory (the tag,
    /// `latest` by default, looked up in its `index.json`, else its only image), served over
    /// the session; or a Git URL (`https://host/repo.git#<ref>:<subdir>`, `git@host:repo`)
    /// or the HTTP(S) URL of a file, which BuildKit fetches itself. A change of a file in a
    /// named directory rebuilds and shows in the diff as `[context <name>] <path>`, and so
    /// does a new image in a layout; a URL is hashed as written (a branch that moves does not
    /// rebuild: pin a commit), without its credential, which is kept secret and masked.
    /// Needs a BuildKit daemon (`driver: buildkit`).
    pub build_contexts: Option<BTreeMap<String, String>>,
    /// The platforms to build for, as `os/arch[/variant]` (e.g. `linux/arm64`). Defaults to
    /// the Docker daemon's own platform. With several, each is built and pushed on its own
    /// (under the temporary tag `<tag>-<os>-<arch>[-<variant>]`, which stays in the registry)
    /// and one image index naming them all is pushed under `name` and `tags`; when every
    /// platform goes to the same BuildKit daemon (`driver: buildkit`), they are built in one
    /// solve and BuildKit pushes the index itself (no temporary tags).
    pub platforms: Option<Vec<String>>,
    /// Build arguments (`ARG` values).
    pub build_args: Option<BTreeMap<String, String>>,
    /// The stage of a multi-stage Dockerfile to build.
    pub target: Option<String>,
    /// Labels to set on the image.
    pub labels: Option<BTreeMap<String, String>>,
    /// More caches to import (as `docker buildx build --cache-from`), each an image
    /// reference or `registry {ref}` (the image's own `name` always is one when the inline
    /// cache is on, and so is every registry `cacheTo`).
    pub cache_from: Option<Vec<CacheFromEntry>>,
    /// Caches to export after the build (as `docker buildx build --cache-to`), each one of
    /// `registry {ref, mode, imageManifest, ociMediaTypes, compression, ignoreError}`,
    /// `inline {}` or `disabled: true`. Without it, the inline cache (see `inlineCache`).
    /// Exporting to a registry needs a BuildKit daemon (`driver: buildkit`): a Docker host's
    /// `/build` exports only inline. A registry cache is imported by the next build too.
    pub cache_to: Option<Vec<CacheTo>>,
    /// Embed BuildKit's inline cache in the pushed image, so the next build anywhere can
    /// reuse its layers.
    #[serde(default = "yes")]
    pub inline_cache: bool,
    /// Build without any cache.
    #[serde(default)]
    pub no_cache: bool,
    /// Always try to pull newer versions of the base images (`FROM`), as `docker build
    /// --pull`, instead of using those the daemon already has. Does not rebuild by itself.
    #[serde(default)]
    pub pull: bool,
    /// The network mode of `RUN` steps: `default`, `host` or `none`.
    pub network: Option<String>,
    /// Build secrets by id, each read by `RUN --mount=type=secret,id=<id>` from the file
    /// `/run/secrets/<id>`: ids of letters, digits, `.`, `_` and `-`, values of at most 500 KiB.
    /// Every value is a secret: stored and sent as one, masked in all output, and never in the
    /// image, its history or `contextHash`. The ids are part of the image (adding or removing
    /// one rebuilds); a changed value alone neither rebuilds nor shows in the diff (change
    /// `triggers` to rebuild with it).
    #[schemars(extend("secret" = true))]
    pub secrets: Option<BTreeMap<String, String>>,
    /// ssh agents (sockets or private key files) forwarded to `RUN --mount=type=ssh[,id=<id>]`
    /// steps, e.g. to clone private repositories, as `docker build --ssh`. Does not rebuild
    /// by itself.
    pub ssh: Option<Vec<SshInput>>,
    /// More `/etc/hosts` entries for `RUN` steps, each `host:ip` (as `docker build
    /// --add-host`), e.g. `db.internal:10.0.0.5` or `v6host:2001:db8::1`; the ip may be
    /// `host-gateway` (the daemon's gateway address).
    pub add_hosts: Option<Vec<String>>,
    /// Push the image to the registry. When false, the image stays in the Docker daemon.
    #[serde(default = "yes")]
    pub push: bool,
    /// Credentials for the registry. Without them, those of the Docker CLI's config
    /// (`$DOCKER_CONFIG/config.json`, credential helpers included) are used.
    pub registry: Option<Registry>,
    /// Any change to these values rebuilds the image, even with an unchanged context.
    pub triggers: Option<Vec<String>>,
    /// Push an image index even for a single platform (several platforms always get one).
    /// Needs `platforms` and `push`.
    #[serde(default)]
    pub index: bool,
    /// BuildKit's provenance attestation in the pushed index (as `docker buildx build
    /// --provenance`): `min`, `max` (with the build's full definition) or `off`, the default
    /// (some deploy targets refuse attestation manifests). Needs a BuildKit daemon (`driver:
    /// buildkit`). With it, even one platform is pushed as an index.
    pub provenance: Option<Provenance>,
    /// Where the image goes besides the registry (as `docker buildx build --output`): each
    /// entry `tarball {path, format: docker|oci}`, `local {dest}`, `load: true` or
    /// `cacheOnly: true`; several at once. On a BuildKit daemon, `push: false` with exports
    /// builds only them. With exports an image is always built (from cache when nothing
    /// changed), never reused by its `ctx-` tag, so that every export is written; a change of
    /// exports writes them again. Refresh drops the resource when a tarball or directory it
    /// wrote is gone, so the next `up` writes it again.
    pub exports: Option<Vec<ExportInput>>,
    /// Build once per context, across machines: every push also tags the image
    /// `ctx-<first 16 hex digits of contextHash>`, and before building the registry is asked
    /// for that tag. When it is there, nothing is built or pushed: the existing image is
    /// tagged as asked, registry-side, and its digest returned.
    #[serde(default = "yes")]
    pub skip_if_pushed: bool,
    /// A hash of everything that makes the image: the files of the context that
    /// `.dockerignore` lets in (path, exec bit and content), those of each named build
    /// context (through its own `.dockerignore`), the Dockerfile, build args,
    /// target, labels, platforms, network, index, triggers, `addHosts` and the ids (never the
    /// values) of `secrets`.
    #[schemars(extend("x-computed" = true))]
    pub context_hash: Option<String>,
}

pub(super) fn yes() -> bool {
    true
}

/// A Docker image built with BuildKit and pushed to a registry. Preview never builds;
/// nothing is built when nothing in the context changed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageState {
    #[serde(flatten)]
    pub args: ImageArgs,
    /// The digest of the pushed manifest (`sha256:…`); with `push: false`, the image id.
    #[schemars(required)]
    pub digest: Option<String>,
    /// The pushed image pinned by digest, `repository@sha256:…`: deploy this.
    #[serde(rename = "ref")]
    #[schemars(required)]
    pub reference: Option<String>,
    /// The same as `ref` (the name the original provider used).
    #[schemars(required)]
    pub repo_digest: Option<String>,
    /// For each platform built, the digest of its own manifest (the index's entries).
    pub platform_digests: Option<BTreeMap<String, String>>,
    /// What each of `exports` wrote, in order.
    pub exported: Option<Vec<ExportedOutput>>,
}
