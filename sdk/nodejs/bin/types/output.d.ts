import * as outputs from "../types/output";
import * as enums from "../types/enums";
/**
 * A typed cache import: set exactly one of `registry` or `local`.
 */
export interface CacheFrom {
    /**
     * A cache in a registry (a `cacheTo` registry export, or an image with an inline cache).
     */
    registry?: outputs.RegistryCacheFrom;
    /**
     * A cache in a directory on the provider's machine (a `cacheTo` local export), as
     * `--cache-from type=local,src=DIR`; a directory with no cache yet is skipped with a
     * warning. Needs a BuildKit daemon (`driver: buildkit`).
     */
    local?: outputs.LocalCacheFrom;
}
/**
 * A cache in a registry.
 */
export interface RegistryCacheFrom {
    /**
     * The image reference, e.g. `ghcr.io/me/app:buildcache`.
     */
    ref: string;
}
/**
 * A cache in a directory.
 */
export interface LocalCacheFrom {
    /**
     * The directory, relative to the Pulumi program's directory.
     */
    src: string;
    /**
     * The cache's tag in the directory's `index.json` (`latest` by default).
     */
    tag?: string;
}
/**
 * One cache to export after the build (as `docker buildx build --cache-to`): set exactly
 * one of `registry`, `local`, `inline` or `disabled`. Only a BuildKit daemon (`driver:
 * buildkit`) exports caches other than `inline`.
 */
export interface CacheTo {
    /**
     * The build cache pushed to a registry as an image of its own.
     */
    registry?: outputs.RegistryCacheTo;
    /**
     * The build cache written to a directory on the provider's machine, an OCI image layout
     * (as `--cache-to type=local,dest=DIR`); the next build imports it too.
     */
    local?: outputs.LocalCacheTo;
    /**
     * The cache embedded in the pushed image (BuildKit's inline cache, the default).
     */
    inline?: outputs.InlineCacheTo;
    /**
     * No cache export at all, not even the default inline one.
     */
    disabled?: boolean;
}
/**
 * A build cache pushed to a registry.
 */
export interface RegistryCacheTo {
    /**
     * Where: an image reference, e.g. `ghcr.io/me/app:buildcache`.
     */
    ref: string;
    /**
     * `min` (the default: the layers of the final image) or `max` (every stage's layers, so
     * a fresh builder reuses every stage).
     */
    mode?: string;
    /**
     * Push the cache as an OCI image manifest instead of a cache index (for registries that
     * refuse indexes).
     */
    imageManifest?: boolean;
    /**
     * Use OCI media types (the default is BuildKit's).
     */
    ociMediaTypes?: boolean;
    /**
     * Layer compression: `gzip`, `estargz`, `zstd` or `uncompressed`.
     */
    compression?: string;
    /**
     * A failed cache export is a warning, not a failed build.
     */
    ignoreError?: boolean;
}
/**
 * A build cache in a directory.
 */
export interface LocalCacheTo {
    /**
     * The directory, relative to the Pulumi program's directory; made when missing.
     */
    dest: string;
    /**
     * `min` (the default) or `max` (every stage's layers).
     */
    mode?: string;
    /**
     * The cache's tag in the directory's `index.json` (`latest` by default).
     */
    tag?: string;
    /**
     * Layer compression: `gzip`, `estargz`, `zstd` or `uncompressed`.
     */
    compression?: string;
    /**
     * A failed cache export is a warning, not a failed build.
     */
    ignoreError?: boolean;
}
/**
 * The inline cache: no options.
 */
export interface InlineCacheTo {
}
/**
 * An ssh agent forwarded to the build, for `RUN --mount=type=ssh` steps (as
 * `docker build --ssh`).
 */
export interface SshInput {
    /**
     * The id `RUN --mount=type=ssh,id=<id>` names. Defaults to `default`, the id of a bare
     * `RUN --mount=type=ssh`.
     */
    id?: string;
    /**
     * The agent's socket, or private key files (without a passphrase) that are loaded into
     * an ssh-agent of their own for the build; relative paths are resolved against the Pulumi
     * program's directory (as `context`). Without paths, the agent of the provider's
     * `SSH_AUTH_SOCK`.
     */
    paths?: string[];
}
/**
 * Credentials for the registry the image is pushed to (and its inline cache pulled from).
 */
export interface Registry {
    /**
     * The registry host, e.g. `ghcr.io` or `127.0.0.1:5000` (a URL such as
     * `https://123.dkr.ecr.us-east-1.amazonaws.com` is accepted too).
     */
    server: string;
    /**
     * The user name.
     */
    username?: string;
    /**
     * The password or token. Always stored as a secret; changing it never rebuilds.
     */
    password?: string;
}
/**
 * One export of the built image besides the push (as `docker buildx build --output`): set
 * exactly one of `tarball`, `local`, `load` or `cacheOnly`.
 */
export interface ExportInput {
    /**
     * The image as a tarball file.
     */
    tarball?: outputs.TarballExport;
    /**
     * The image's files into a directory (as `--output type=local,dest=DIR`). On a Docker
     * host the Engine's own BuildKit writes it (through its `/grpc` endpoint) after the build.
     */
    local?: outputs.LocalExport;
    /**
     * Nothing but the build cache (the builder's own, and `cacheTo`'s), as `--output
     * type=cacheonly`: the only entry, with `push: false`; `digest` and `ref` stay empty.
     * On a Docker host the build goes to the Engine's own BuildKit (through its `/grpc`
     * endpoint), whose cache its `/build` reads: nothing is tagged in the daemon.
     */
    cacheOnly?: boolean;
    /**
     * Into the Docker daemon: on a Docker host the image is there already; a BuildKit daemon
     * streams it into the Docker daemon of the provider's environment (`DOCKER_HOST`, else
     * the default socket), as `docker load`, under the Image's tags.
     */
    load?: boolean;
}
/**
 * A tarball of the image.
 */
export interface TarballExport {
    /**
     * Where: a file path, relative to the Pulumi program's directory. Written beside it and
     * moved into place when complete (a failed export leaves the old file).
     */
    path: string;
    /**
     * `docker` (what `docker load` reads; the default) or `oci` (an OCI image layout; needs
     * a BuildKit daemon).
     */
    format?: enums.TarballFormatInput;
}
/**
 * The image's files in a directory.
 */
export interface LocalExport {
    /**
     * The directory, relative to the Pulumi program's directory; made when missing. The
     * exported tree is received beside it and merged in only when all of it arrived: a file
     * of the image replaces the file of its path, other entries of the directory are kept,
     * and a failed export leaves the directory as it was. With several platforms, one
     * subdirectory per platform (`linux_amd64`, …), as BuildKit writes them.
     */
    dest: string;
}
/**
 * What one export wrote.
 */
export interface ExportedOutput {
    /**
     * `tarball`, `local`, `load` or `cacheOnly`.
     */
    type: string;
    /**
     * The tarball's path or the directory (absolute), for `tarball` and `local`.
     */
    path?: string;
    /**
     * The tarball's format, for a tarball.
     */
    format?: string;
    /**
     * The bytes written (for `load` on a Docker host, where nothing moves, and for
     * `cacheOnly`: 0).
     */
    bytes: number;
}
/**
 * A Docker daemon that builds some platforms.
 */
export interface BuilderConfig {
    /**
     * The daemon: `unix:///path/to/docker.sock`, `tcp://host:port` or
     * `ssh://[user@]host[:port]` (through your ssh configuration and agent; the remote runs
     * `docker system dial-stdio`).
     */
    host: string;
    /**
     * A directory holding `ca.pem`, `cert.pem` and `key.pem`, for a `tcp://` daemon with TLS.
     */
    certPath?: string;
    /**
     * The platforms it builds, as `os/arch[/variant]` (e.g. `linux/arm64`).
     */
    platforms: string[];
    /**
     * What answers at `host`: `docker` (the default) or `buildkit` (a standalone
     * buildkitd: `unix:///path`, or `tcp://host:port` with `certPath` for mutual TLS).
     */
    driver?: enums.Driver;
}
