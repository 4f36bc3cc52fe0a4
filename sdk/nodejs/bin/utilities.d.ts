import * as pulumi from "@pulumi/pulumi";
/** The SDK's version, which is the provider plugin's. */
export declare function getVersion(): string;
/**
 * Where the engine downloads the provider plugin from when it is not installed (the schema's
 * `pluginDownloadURL`), or undefined for Pulumi's default sources.
 */
export declare function getPluginDownloadURL(): string | undefined;
/**
 * Options every resource of this package starts from: the plugin version to use, and where to
 * download it from.
 */
export declare function resourceOptsDefaults(): pulumi.CustomResourceOptions;
/**
 * Where the secrets are in an input value: `true` (the whole value), `{ items }` (each element
 * of an array), `{ values }` (each value of a map) or `{ props }` (some properties of an object).
 */
export type SecretSpec = true | {
    items: SecretSpec;
} | {
    values: SecretSpec;
} | {
    props: {
        [name: string]: SecretSpec;
    };
};
/**
 * Wraps the parts of an input value that the schema marks secret in `pulumi.secret`, so that
 * they reach the engine (and the state) as secrets. Values are copied, never changed in place.
 */
export declare function markSecrets(value: any, spec: SecretSpec): any;
