export {};
export declare const Provenance: {
    /**
     * No attestation (the default).
     */
    readonly Off: "off";
    /**
     * The build's materials and parameters.
     */
    readonly Min: "min";
    /**
     * `min` and the build's full definition and source.
     */
    readonly Max: "max";
};
/**
 * How much provenance BuildKit attests.
 */
export type Provenance = (typeof Provenance)[keyof typeof Provenance];
export declare const TarballFormatInput: {
    /**
     * `docker save`'s format.
     */
    readonly Docker: "docker";
    /**
     * An OCI image layout.
     */
    readonly Oci: "oci";
};
/**
 * The format of a tarball export.
 */
export type TarballFormatInput = (typeof TarballFormatInput)[keyof typeof TarballFormatInput];
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
