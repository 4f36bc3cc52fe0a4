export {};
export declare const Driver: {
    /**
     * A Docker Engine.
     */
    readonly Docker: "docker";
    /**
     * A standalone BuildKit daemon (`buildkitd`).
     */
    readonly Buildkit: "buildkit";
};
/**
 * What a builder's address leads to.
 */
export type Driver = (typeof Driver)[keyof typeof Driver];
