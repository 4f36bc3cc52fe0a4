import * as pulumi from "@pulumi/pulumi";
import * as inputs from "./types/input";
import * as outputs from "./types/output";
import * as enums from "./types/enums";
/**
 * A Docker image built with BuildKit and pushed to a registry. Preview never builds;
 * nothing is built when nothing in the context changed.
 */
export declare class Image extends pulumi.CustomResource {
    /**
     * Gets an existing Image resource's state with the given name and ID.
     *
     * @param name The _unique_ name of the resulting resource.
     * @param id The _unique_ provider ID of the resource to look up.
     * @param opts Optional settings to control the behavior of the CustomResource.
     */
    static get(name: string, id: pulumi.Input<pulumi.ID>, opts?: pulumi.CustomResourceOptions): Image;
    /**
     * Returns true if the given object is an instance of Image. This is designed to work even
     * when multiple copies of the Pulumi SDK have been loaded into the same process.
     */
    static isInstance(obj: any): obj is Image;
    /**
     * The image repository to push to, e.g. `registry.example.com/team/app`, optionally
     * with a tag (`:v1`; `latest` when none is given).
     */
    readonly name: pulumi.Output<string>;
    /**
     * More tags to push the same image under: a bare tag (`v1.2`) applies to `name`'s
     * repository; a full reference (`registry/other:tag`) names another one.
     */
    readonly tags: pulumi.Output<string[] | undefined>;
    /**
     * The build context directory, relative to the Pulumi program's directory. Defaults to
     * the program's directory (`.`); with `dockerfileInline` and no `context`, the context is
     * empty (as `docker build - < Dockerfile`), so edits to the program's directory never
     * rebuild the image.
     */
    readonly context: pulumi.Output<string | undefined>;
    /**
     * The Dockerfile, relative to the context directory. Defaults to `Dockerfile`.
     */
    readonly dockerfile: pulumi.Output<string | undefined>;
    /**
     * The Dockerfile's text, instead of a file (not together with `dockerfile`).
     */
    readonly dockerfileInline: pulumi.Output<string | undefined>;
    /**
     * Named build contexts, as `docker buildx build --build-context name=value`: what
     * `FROM <name>` and `COPY --from=<name>` read instead of a stage or an image. A value
     * is a directory (relative to the Pulumi program's directory, as `context`), hashed and
     * sent with its own `.dockerignore` (not the main context's); `docker-image://<ref>`;
     * `oci-layout://<dir>[:<tag>][@<digest>]`, an image in an OCI layout directory (the tag,
     * `latest` by default, looked up in its `index.json`, else its only image), served over
     * the session; or a Git URL (`https://host/repo.git#<ref>:<subdir>`, `git@host:repo`)
     * or the HTTP(S) URL of a file, which BuildKit fetches itself. A change of a file in a
     * named directory rebuilds and shows in the diff as `[context <name>] <path>`, and so
     * does a new image in a layout; a URL is hashed as written (a branch that moves does not
     * rebuild: pin a commit), without its credential, which is kept secret and masked.
     * Needs a BuildKit daemon (`driver: buildkit`).
     */
    readonly buildContexts: pulumi.Output<{
        [key: string]: string;
    } | undefined>;
    /**
     * The platforms to build for, as `os/arch[/variant]` (e.g. `linux/arm64`). Defaults to
     * the Docker daemon's own platform. With several, each is built and pushed on its own
     * (under the temporary tag `<tag>-<os>-<arch>[-<variant>]`, which stays in the registry)
     * and one image index naming them all is pushed under `name` and `tags`; when every
     * platform goes to the same BuildKit daemon (`driver: buildkit`), they are built in one
     * solve and BuildKit pushes the index itself (no temporary tags).
     */
    readonly platforms: pulumi.Output<string[] | undefined>;
    /**
     * Build arguments (`ARG` values).
     */
    readonly buildArgs: pulumi.Output<{
        [key: string]: string;
    } | undefined>;
    /**
     * The stage of a multi-stage Dockerfile to build.
     */
    readonly target: pulumi.Output<string | undefined>;
    /**
     * Labels to set on the image.
     */
    readonly labels: pulumi.Output<{
        [key: string]: string;
    } | undefined>;
    /**
     * More caches to import (as `docker buildx build --cache-from`), each an image
     * reference or `registry {ref}` (the image's own `name` always is one when the inline
     * cache is on, and so is every registry `cacheTo`).
     */
    readonly cacheFrom: pulumi.Output<(string | outputs.CacheFrom)[] | undefined>;
    /**
     * Caches to export after the build (as `docker buildx build --cache-to`), each one of
     * `registry {ref, mode, imageManifest, ociMediaTypes, compression, ignoreError}`,
     * `inline {}` or `disabled: true`. Without it, the inline cache (see `inlineCache`).
     * Exporting to a registry needs a BuildKit daemon (`driver: buildkit`): a Docker host's
     * `/build` exports only inline. A registry cache is imported by the next build too.
     */
    readonly cacheTo: pulumi.Output<outputs.CacheTo[] | undefined>;
    /**
     * Embed BuildKit's inline cache in the pushed image, so the next build anywhere can
     * reuse its layers.
     */
    readonly inlineCache: pulumi.Output<boolean | undefined>;
    /**
     * Build without any cache.
     */
    readonly noCache: pulumi.Output<boolean | undefined>;
    /**
     * Always try to pull newer versions of the base images (`FROM`), as `docker build
     * --pull`, instead of using those the daemon already has. Does not rebuild by itself.
     */
    readonly pull: pulumi.Output<boolean | undefined>;
    /**
     * The network mode of `RUN` steps: `default`, `host` or `none`.
     */
    readonly network: pulumi.Output<string | undefined>;
    /**
     * Build secrets by id, each read by `RUN --mount=type=secret,id=<id>` from the file
     * `/run/secrets/<id>`: ids of letters, digits, `.`, `_` and `-`, values of at most 500 KiB.
     * Every value is a secret: stored and sent as one, masked in all output, and never in the
     * image, its history or `contextHash`. The ids are part of the image (adding or removing
     * one rebuilds); a changed value alone neither rebuilds nor shows in the diff (change
     * `triggers` to rebuild with it).
     */
    readonly secrets: pulumi.Output<{
        [key: string]: string;
    } | undefined>;
    /**
     * ssh agents (sockets or private key files) forwarded to `RUN --mount=type=ssh[,id=<id>]`
     * steps, e.g. to clone private repositories, as `docker build --ssh`. Does not rebuild
     * by itself.
     */
    readonly ssh: pulumi.Output<outputs.SshInput[] | undefined>;
    /**
     * More `/etc/hosts` entries for `RUN` steps, each `host:ip` (as `docker build
     * --add-host`), e.g. `db.internal:10.0.0.5` or `v6host:2001:db8::1`; the ip may be
     * `host-gateway` (the daemon's gateway address).
     */
    readonly addHosts: pulumi.Output<string[] | undefined>;
    /**
     * Push the image to the registry. When false, the image stays in the Docker daemon.
     */
    readonly push: pulumi.Output<boolean | undefined>;
    /**
     * Credentials for the registry. Without them, those of the Docker CLI's config
     * (`$DOCKER_CONFIG/config.json`, credential helpers included) are used.
     */
    readonly registry: pulumi.Output<outputs.Registry | undefined>;
    /**
     * Any change to these values rebuilds the image, even with an unchanged context.
     */
    readonly triggers: pulumi.Output<string[] | undefined>;
    /**
     * Push an image index even for a single platform (several platforms always get one).
     * Needs `platforms` and `push`.
     */
    readonly index: pulumi.Output<boolean | undefined>;
    /**
     * BuildKit's provenance attestation in the pushed index (as `docker buildx build
     * --provenance`): `min`, `max` (with the build's full definition) or `off`, the default
     * (some deploy targets refuse attestation manifests). Needs a BuildKit daemon (`driver:
     * buildkit`). With it, even one platform is pushed as an index.
     */
    readonly provenance: pulumi.Output<enums.Provenance | undefined>;
    /**
     * Where the image goes besides the registry (as `docker buildx build --output`): each
     * entry `tarball {path, format: docker|oci}`, `local {dest}`, `load: true` or
     * `cacheOnly: true`; several at once. On a BuildKit daemon, `push: false` with exports
     * builds only them. With exports an image is always built (from cache when nothing
     * changed), never reused by its `ctx-` tag, so that every export is written; a change of
     * exports writes them again. Refresh drops the resource when a tarball or directory it
     * wrote is gone, so the next `up` writes it again.
     */
    readonly exports: pulumi.Output<outputs.ExportInput[] | undefined>;
    /**
     * Build once per context, across machines: every push also tags the image
     * `ctx-<first 16 hex digits of contextHash>`, and before building the registry is asked
     * for that tag. When it is there, nothing is built or pushed: the existing image is
     * tagged as asked, registry-side, and its digest returned.
     */
    readonly skipIfPushed: pulumi.Output<boolean | undefined>;
    /**
     * A hash of everything that makes the image: the files of the context that
     * `.dockerignore` lets in (path, exec bit and content), those of each named build
     * context (through its own `.dockerignore`), the Dockerfile, build args,
     * target, labels, platforms, network, index, triggers, `addHosts` and the ids (never the
     * values) of `secrets`.
     */
    readonly contextHash: pulumi.Output<string | undefined>;
    /**
     * The digest of the pushed manifest (`sha256:…`); with `push: false`, the image id.
     */
    readonly digest: pulumi.Output<string>;
    /**
     * The pushed image pinned by digest, `repository@sha256:…`: deploy this.
     */
    readonly ref: pulumi.Output<string>;
    /**
     * The same as `ref` (the name the original provider used).
     */
    readonly repoDigest: pulumi.Output<string>;
    /**
     * For each platform built, the digest of its own manifest (the index's entries).
     */
    readonly platformDigests: pulumi.Output<{
        [key: string]: string;
    } | undefined>;
    /**
     * What each of `exports` wrote, in order.
     */
    readonly exported: pulumi.Output<outputs.ExportedOutput[] | undefined>;
    /**
     * Creates an Image resource with the given unique name, arguments, and options.
     *
     * @param name The _unique_ name of the resource.
     * @param args The arguments to use to populate this resource's properties.
     * @param opts A bag of options that control this resource's behavior.
     */
    constructor(name: string, args: ImageArgs, opts?: pulumi.CustomResourceOptions);
}
/**
 * The set of arguments for constructing an Image resource.
 */
export interface ImageArgs {
    /**
     * The image repository to push to, e.g. `registry.example.com/team/app`, optionally
     * with a tag (`:v1`; `latest` when none is given).
     */
    name: pulumi.Input<string>;
    /**
     * More tags to push the same image under: a bare tag (`v1.2`) applies to `name`'s
     * repository; a full reference (`registry/other:tag`) names another one.
     */
    tags?: pulumi.Input<pulumi.Input<string>[]>;
    /**
     * The build context directory, relative to the Pulumi program's directory. Defaults to
     * the program's directory (`.`); with `dockerfileInline` and no `context`, the context is
     * empty (as `docker build - < Dockerfile`), so edits to the program's directory never
     * rebuild the image.
     */
    context?: pulumi.Input<string>;
    /**
     * The Dockerfile, relative to the context directory. Defaults to `Dockerfile`.
     */
    dockerfile?: pulumi.Input<string>;
    /**
     * The Dockerfile's text, instead of a file (not together with `dockerfile`).
     */
    dockerfileInline?: pulumi.Input<string>;
    /**
     * Named build contexts, as `docker buildx build --build-context name=value`: what
     * `FROM <name>` and `COPY --from=<name>` read instead of a stage or an image. A value
     * is a directory (relative to the Pulumi program's directory, as `context`), hashed and
     * sent with its own `.dockerignore` (not the main context's); `docker-image://<ref>`;
     * `oci-layout://<dir>[:<tag>][@<digest>]`, an image in an OCI layout directory (the tag,
     * `latest` by default, looked up in its `index.json`, else its only image), served over
     * the session; or a Git URL (`https://host/repo.git#<ref>:<subdir>`, `git@host:repo`)
     * or the HTTP(S) URL of a file, which BuildKit fetches itself. A change of a file in a
     * named directory rebuilds and shows in the diff as `[context <name>] <path>`, and so
     * does a new image in a layout; a URL is hashed as written (a branch that moves does not
     * rebuild: pin a commit), without its credential, which is kept secret and masked.
     * Needs a BuildKit daemon (`driver: buildkit`).
     */
    buildContexts?: pulumi.Input<{
        [key: string]: pulumi.Input<string>;
    }>;
    /**
     * The platforms to build for, as `os/arch[/variant]` (e.g. `linux/arm64`). Defaults to
     * the Docker daemon's own platform. With several, each is built and pushed on its own
     * (under the temporary tag `<tag>-<os>-<arch>[-<variant>]`, which stays in the registry)
     * and one image index naming them all is pushed under `name` and `tags`; when every
     * platform goes to the same BuildKit daemon (`driver: buildkit`), they are built in one
     * solve and BuildKit pushes the index itself (no temporary tags).
     */
    platforms?: pulumi.Input<pulumi.Input<string>[]>;
    /**
     * Build arguments (`ARG` values).
     */
    buildArgs?: pulumi.Input<{
        [key: string]: pulumi.Input<string>;
    }>;
    /**
     * The stage of a multi-stage Dockerfile to build.
     */
    target?: pulumi.Input<string>;
    /**
     * Labels to set on the image.
     */
    labels?: pulumi.Input<{
        [key: string]: pulumi.Input<string>;
    }>;
    /**
     * More caches to import (as `docker buildx build --cache-from`), each an image
     * reference or `registry {ref}` (the image's own `name` always is one when the inline
     * cache is on, and so is every registry `cacheTo`).
     */
    cacheFrom?: pulumi.Input<pulumi.Input<string | inputs.CacheFromArgs>[]>;
    /**
     * Caches to export after the build (as `docker buildx build --cache-to`), each one of
     * `registry {ref, mode, imageManifest, ociMediaTypes, compression, ignoreError}`,
     * `inline {}` or `disabled: true`. Without it, the inline cache (see `inlineCache`).
     * Exporting to a registry needs a BuildKit daemon (`driver: buildkit`): a Docker host's
     * `/build` exports only inline. A registry cache is imported by the next build too.
     */
    cacheTo?: pulumi.Input<pulumi.Input<inputs.CacheToArgs>[]>;
    /**
     * Embed BuildKit's inline cache in the pushed image, so the next build anywhere can
     * reuse its layers.
     */
    inlineCache?: pulumi.Input<boolean>;
    /**
     * Build without any cache.
     */
    noCache?: pulumi.Input<boolean>;
    /**
     * Always try to pull newer versions of the base images (`FROM`), as `docker build
     * --pull`, instead of using those the daemon already has. Does not rebuild by itself.
     */
    pull?: pulumi.Input<boolean>;
    /**
     * The network mode of `RUN` steps: `default`, `host` or `none`.
     */
    network?: pulumi.Input<string>;
    /**
     * Build secrets by id, each read by `RUN --mount=type=secret,id=<id>` from the file
     * `/run/secrets/<id>`: ids of letters, digits, `.`, `_` and `-`, values of at most 500 KiB.
     * Every value is a secret: stored and sent as one, masked in all output, and never in the
     * image, its history or `contextHash`. The ids are part of the image (adding or removing
     * one rebuilds); a changed value alone neither rebuilds nor shows in the diff (change
     * `triggers` to rebuild with it).
     */
    secrets?: pulumi.Input<{
        [key: string]: pulumi.Input<string>;
    }>;
    /**
     * ssh agents (sockets or private key files) forwarded to `RUN --mount=type=ssh[,id=<id>]`
     * steps, e.g. to clone private repositories, as `docker build --ssh`. Does not rebuild
     * by itself.
     */
    ssh?: pulumi.Input<pulumi.Input<inputs.SshInputArgs>[]>;
    /**
     * More `/etc/hosts` entries for `RUN` steps, each `host:ip` (as `docker build
     * --add-host`), e.g. `db.internal:10.0.0.5` or `v6host:2001:db8::1`; the ip may be
     * `host-gateway` (the daemon's gateway address).
     */
    addHosts?: pulumi.Input<pulumi.Input<string>[]>;
    /**
     * Push the image to the registry. When false, the image stays in the Docker daemon.
     */
    push?: pulumi.Input<boolean>;
    /**
     * Credentials for the registry. Without them, those of the Docker CLI's config
     * (`$DOCKER_CONFIG/config.json`, credential helpers included) are used.
     */
    registry?: pulumi.Input<inputs.RegistryArgs>;
    /**
     * Any change to these values rebuilds the image, even with an unchanged context.
     */
    triggers?: pulumi.Input<pulumi.Input<string>[]>;
    /**
     * Push an image index even for a single platform (several platforms always get one).
     * Needs `platforms` and `push`.
     */
    index?: pulumi.Input<boolean>;
    /**
     * BuildKit's provenance attestation in the pushed index (as `docker buildx build
     * --provenance`): `min`, `max` (with the build's full definition) or `off`, the default
     * (some deploy targets refuse attestation manifests). Needs a BuildKit daemon (`driver:
     * buildkit`). With it, even one platform is pushed as an index.
     */
    provenance?: pulumi.Input<enums.Provenance>;
    /**
     * Where the image goes besides the registry (as `docker buildx build --output`): each
     * entry `tarball {path, format: docker|oci}`, `local {dest}`, `load: true` or
     * `cacheOnly: true`; several at once. On a BuildKit daemon, `push: false` with exports
     * builds only them. With exports an image is always built (from cache when nothing
     * changed), never reused by its `ctx-` tag, so that every export is written; a change of
     * exports writes them again. Refresh drops the resource when a tarball or directory it
     * wrote is gone, so the next `up` writes it again.
     */
    exports?: pulumi.Input<pulumi.Input<inputs.ExportInputArgs>[]>;
    /**
     * Build once per context, across machines: every push also tags the image
     * `ctx-<first 16 hex digits of contextHash>`, and before building the registry is asked
     * for that tag. When it is there, nothing is built or pushed: the existing image is
     * tagged as asked, registry-side, and its digest returned.
     */
    skipIfPushed?: pulumi.Input<boolean>;
}
