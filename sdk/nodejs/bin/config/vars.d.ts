import * as outputs from "../types/output";
import * as enums from "../types/enums";
/**
 * The Docker daemon to build with: `unix:///path/to/docker.sock`, `tcp://host:port` or
 * `ssh://[user@]host[:port]` (through your ssh configuration and agent, never prompting;
 * the remote runs `docker system dial-stdio`, as with the docker CLI). Defaults to
 * `$DOCKER_HOST`, then the local socket `unix:///var/run/docker.sock`.
 */
export declare const host: string | undefined;
/**
 * A directory holding `ca.pem`, `cert.pem` and `key.pem` for a `tcp://` daemon with TLS.
 * Defaults to `$DOCKER_CERT_PATH` when `$DOCKER_TLS_VERIFY` is set.
 */
export declare const certPath: string | undefined;
/**
 * More Docker daemons, each building the platforms it lists (natively, e.g. an arm64
 * host for `linux/arm64`), as `docker buildx create --append --platform` sets up. The
 * platforms of an image build in parallel, each on a builder that lists it, else on
 * `host` (emulated, for a foreign platform). When several list a platform, an image always
 * goes to the same one (rendezvous hashing on its name, so its cache stays warm there);
 * one that cannot be reached is skipped, with a warning, for the next.
 */
export declare const builders: outputs.BuilderConfig[] | undefined;
/**
 * What answers at `host`: `docker` (a Docker Engine, the default) or `buildkit` (a
 * standalone buildkitd, as buildx's `remote` driver reaches it: `unix:///path` or
 * `tcp://host:port` with `certPath` for mutual TLS; its image exporter pushes, so
 * images must be pushed).
 */
export declare const driver: enums.Driver | undefined;
