import * as pulumi from "@pulumi/pulumi";
import * as inputs from "./types/input";
import * as enums from "./types/enums";
/**
 * The provider type for the docker-buildkit package.
 */
export declare class Provider extends pulumi.ProviderResource {
    /**
     * Returns true if the given object is an instance of Provider. This is designed to work even
     * when multiple copies of the Pulumi SDK have been loaded into the same process.
     */
    static isInstance(obj: any): obj is Provider;
    /**
     * Creates a Provider resource with the given unique name, arguments, and options.
     *
     * @param name The _unique_ name of the resource.
     * @param args The arguments to use to populate this resource's properties.
     * @param opts A bag of options that control this resource's behavior.
     */
    constructor(name: string, args?: ProviderArgs, opts?: pulumi.ResourceOptions);
}
/**
 * The set of arguments for constructing a Provider resource.
 */
export interface ProviderArgs {
    /**
     * The Docker daemon to build with: `unix:///path/to/docker.sock`, `tcp://host:port` or
     * `ssh://[user@]host[:port]` (through your ssh configuration and agent, never prompting;
     * the remote runs `docker system dial-stdio`, as with the docker CLI). Defaults to
     * `$DOCKER_HOST`, then the local socket `unix:///var/run/docker.sock`.
     */
    host?: pulumi.Input<string>;
    /**
     * A directory holding `ca.pem`, `cert.pem` and `key.pem` for a `tcp://` daemon with TLS.
     * Defaults to `$DOCKER_CERT_PATH` when `$DOCKER_TLS_VERIFY` is set.
     */
    certPath?: pulumi.Input<string>;
    /**
     * More Docker daemons, each building the platforms it lists (natively, e.g. an arm64
     * host for `linux/arm64`), as `docker buildx create --append --platform` sets up. The
     * platforms of an image build in parallel, each on a builder that lists it, else on
     * `host` (emulated, for a foreign platform). When several list a platform, an image always
     * goes to the same one (rendezvous hashing on its name, so its cache stays warm there);
     * one that cannot be reached is skipped, with a warning, for the next.
     */
    builders?: pulumi.Input<pulumi.Input<inputs.BuilderConfigArgs>[]>;
    /**
     * What answers at `host`: `docker` (a Docker Engine, the default) or `buildkit` (a
     * standalone buildkitd, as buildx's `remote` driver reaches it: `unix:///path` or
     * `tcp://host:port` with `certPath` for mutual TLS; its image exporter pushes, so
     * images must be pushed).
     */
    driver?: pulumi.Input<enums.Driver>;
}
