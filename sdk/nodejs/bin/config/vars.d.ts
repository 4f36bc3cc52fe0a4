/**
 * The Docker daemon to build with: `unix:///path/to/docker.sock` or `tcp://host:port`.
 * Defaults to `$DOCKER_HOST`, then the local socket `unix:///var/run/docker.sock`.
 */
export declare const host: string | undefined;
/**
 * A directory holding `ca.pem`, `cert.pem` and `key.pem` for a `tcp://` daemon with TLS.
 * Defaults to `$DOCKER_CERT_PATH` when `$DOCKER_TLS_VERIFY` is set.
 */
export declare const certPath: string | undefined;
