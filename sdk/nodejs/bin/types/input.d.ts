import * as pulumi from "@pulumi/pulumi";
import * as enums from "../types/enums";
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
