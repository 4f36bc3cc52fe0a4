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
