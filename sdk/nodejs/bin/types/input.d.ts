import * as pulumi from "@pulumi/pulumi";
import * as inputs from "../types/input";
import * as enums from "../types/enums";
/**
 * A typed cache import: set exactly one of `registry` or `local`.
 */
export interface CacheFromArgs {
    /**
     * A cache in a registry (a `cacheTo` registry export, or an image with an inline cache).
     */
    registry?: pulumi.Input<inputs.RegistryCacheFromArgs>;
    /**
     * A cache in a directory on the provider's machine (a `cacheTo` local export), as
     * `--cache-from type=local,src=DIR`; a directory with no cache yet is skipped with a
     * warning. Needs a BuildKit daemon (`driver: buildkit`).
     */
    local?: pulumi.Input<inputs.LocalCacheFromArgs>;
}
/**
 * A cache in a registry.
 */
export interface RegistryCacheFromArgs {
    /**
     * The image reference, e.g. `ghcr.io/me/app:buildcache`.
     */
    ref: pulumi.Input<string>;
}
/**
 * A cache in a directory.
 */
export interface LocalCacheFromArgs {
    /**
     * The directory, relative to the Pulumi program's directory.
     */
    src: pulumi.Input<string>;
    /**
     * The cache's tag in the directory's `index.json` (`latest` by default).
     */
    tag?: pulumi.Input<string>;
}
/**
 * One cache to export after the build (as `docker buildx build --cache-to`): set exactly
 * one of `registry`, `local`, `inline` or `disabled`. Only a BuildKit daemon (`driver:
 * buildkit`) exports caches other than `inline`.
 */
export interface CacheToArgs {
    /**
     * The build cache pushed to a registry as an image of its own.
     */
    registry?: pulumi.Input<inputs.RegistryCacheToArgs>;
    /**
     * The build cache written to a directory on the provider's machine, an OCI image layout
     * (as `--cache-to type=local,dest=DIR`); the next build imports it too.
     */
    local?: pulumi.Input<inputs.LocalCacheToArgs>;
    /**
     * The cache embedded in the pushed image (BuildKit's inline cache, the default).
     */
    inline?: pulumi.Input<inputs.InlineCacheToArgs>;
    /**
     * No cache export at all, not even the default inline one.
     */
    disabled?: pulumi.Input<boolean>;
}
/**
 * A build cache pushed to a registry.
 */
export interface RegistryCacheToArgs {
    /**
     * Where: an image reference, e.g. `ghcr.io/me/app:buildcache`.
     */
    ref: pulumi.Input<string>;
    /**
     * `min` (the default: the layers of the final image) or `max` (every stage's layers, so
     * a fresh builder reuses every stage).
     */
    mode?: pulumi.Input<string>;
    /**
     * Push the cache as an OCI image manifest instead of a cache index (for registries that
     * refuse indexes).
     */
    imageManifest?: pulumi.Input<boolean>;
    /**
     * Use OCI media types (the default is BuildKit's).
     */
    ociMediaTypes?: pulumi.Input<boolean>;
    /**
     * Layer compression: `gzip`, `estargz`, `zstd` or `uncompressed`.
     */
    compression?: pulumi.Input<string>;
    /**
     * A failed cache export is a warning, not a failed build.
     */
    ignoreError?: pulumi.Input<boolean>;
}
/**
 * A build cache in a directory.
 */
export interface LocalCacheToArgs {
    /**
     * The directory, relative to the Pulumi program's directory; made when missing.
     */
    dest: pulumi.Input<string>;
    /**
     * `min` (the default) or `max` (every stage's layers).
     */
    mode?: pulumi.Input<string>;
    /**
     * The cache's tag in the directory's `index.json` (`latest` by default).
     */
    tag?: pulumi.Input<string>;
    /**
     * Layer compression: `gzip`, `estargz`, `zstd` or `uncompressed`.
     */
    compression?: pulumi.Input<string>;
    /**
     * A failed cache export is a warning, not a failed build.
     */
    ignoreError?: pulumi.Input<boolean>;
}
/**
 * The inline cache: no options.
 */
export interface InlineCacheToArgs {
}
/**
 * An ssh agent forwarded to the build, for `RUN --mount=type=ssh` steps (as
 * `docker build --ssh`).
 */
export interface SshInputArgs {
    /**
     * The id `RUN --mount=type=ssh,id=<id>` names. Defaults to `default`, the id of a bare
     * `RUN --mount=type=ssh`.
     */
    id?: pulumi.Input<string>;
    /**
     * The agent's socket, or private key files (without a passphrase) that are loaded into
     * an ssh-agent of their own for the build; relative paths are resolved against the Pulumi
     * program's directory (as `context`). Without paths, the agent of the provider's
     * `SSH_AUTH_SOCK`.
     */
    paths?: pulumi.Input<pulumi.Input<string>[]>;
}
/**
 * Credentials for the registry the image is pushed to (and its inline cache pulled from).
 */
export interface RegistryArgs {
    /**
     * The registry host, e.g. `ghcr.io` or `127.0.0.1:5000` (a URL such as
     * `https://123.dkr.ecr.us-east-1.amazonaws.com` is accepted too).
     */
    server: pulumi.Input<string>;
    /**
     * The user name.
     */
    username?: pulumi.Input<string>;
    /**
     * The password or token. Always stored as a secret; changing it never rebuilds.
     */
    password?: pulumi.Input<string>;
}
/**
 * One export of the built image besides the push (as `docker buildx build --output`): set
 * exactly one of `tarball`, `local`, `load` or `cacheOnly`.
 */
export interface ExportInputArgs {
    /**
     * The image as a tarball file.
     */
    tarball?: pulumi.Input<inputs.TarballExportArgs>;
    /**
     * The image's files into a directory (as `--output type=local,dest=DIR`). On a Docker
     * host the Engine's own BuildKit writes it (through its `/grpc` endpoint) after the build.
     */
    local?: pulumi.Input<inputs.LocalExportArgs>;
    /**
     * Nothing but the build cache (the builder's own, and `cacheTo`'s), as `--output
     * type=cacheonly`: the only entry, with `push: false`; `digest` and `ref` stay empty.
     * On a Docker host the build goes to the Engine's own BuildKit (through its `/grpc`
     * endpoint), whose cache its `/build` reads: nothing is tagged in the daemon.
     */
    cacheOnly?: pulumi.Input<boolean>;
    /**
     * Into the Docker daemon: on a Docker host the image is there already; a BuildKit daemon
     * streams it into the Docker daemon of the provider's environment (`DOCKER_HOST`, else
     * the default socket), as `docker load`, under the Image's tags.
     */
    load?: pulumi.Input<boolean>;
}
/**
 * A tarball of the image.
 */
export interface TarballExportArgs {
    /**
     * Where: a file path, relative to the Pulumi program's directory. Written beside it and
     * moved into place when complete (a failed export leaves the old file).
     */
    path: pulumi.Input<string>;
    /**
     * `docker` (what `docker load` reads; the default) or `oci` (an OCI image layout; needs
     * a BuildKit daemon).
     */
    format?: pulumi.Input<enums.TarballFormatInput>;
}
/**
 * The image's files in a directory.
 */
export interface LocalExportArgs {
    /**
     * The directory, relative to the Pulumi program's directory; made when missing. The
     * exported tree is received beside it and merged in only when all of it arrived: a file
     * of the image replaces the file of its path, other entries of the directory are kept,
     * and a failed export leaves the directory as it was. With several platforms, one
     * subdirectory per platform (`linux_amd64`, …), as BuildKit writes them.
     */
    dest: pulumi.Input<string>;
}
/**
 * What one export wrote.
 */
export interface ExportedOutputArgs {
    /**
     * `tarball`, `local`, `load` or `cacheOnly`.
     */
    type: pulumi.Input<string>;
    /**
     * The tarball's path or the directory (absolute), for `tarball` and `local`.
     */
    path?: pulumi.Input<string>;
    /**
     * The tarball's format, for a tarball.
     */
    format?: pulumi.Input<string>;
    /**
     * The bytes written (for `load` on a Docker host, where nothing moves, and for
     * `cacheOnly`: 0).
     */
    bytes: pulumi.Input<number>;
}
/**
 * A Docker daemon that builds some platforms.
 */
export interface BuilderConfigArgs {
    /**
     * The daemon: `unix:///path/to/docker.sock`, `tcp://host:port` or
     * `ssh://[user@]host[:port]` (through your ssh configuration and agent; the remote runs
     * `docker system dial-stdio`).
     */
    host: pulumi.Input<string>;
    /**
     * A directory holding `ca.pem`, `cert.pem` and `key.pem`, for a `tcp://` daemon with TLS.
     */
    certPath?: pulumi.Input<string>;
    /**
     * The platforms it builds, as `os/arch[/variant]` (e.g. `linux/arm64`).
     */
    platforms: pulumi.Input<pulumi.Input<string>[]>;
    /**
     * What answers at `host`: `docker` (the default) or `buildkit` (a standalone
     * buildkitd: `unix:///path`, or `tcp://host:port` with `certPath` for mutual TLS).
     */
    driver?: pulumi.Input<enums.Driver>;
}
