// Builds ../app (FROM scratch) and ../app-busybox (a RUN step) with docker-buildkit and pushes
// both to the registry named in config:
//
//     pulumi config set registry 127.0.0.1:5055
//     pulumi config set username dbk
//     pulumi config set --secret password <password>
//
// Optional: `namespace` (the repository path under the registry, default "examples") and a
// secret `buildToken`, handed to the busybox build as the build secret `token` (read by
// `RUN --mount=type=secret,id=token`; it never reaches the image, the state or the logs).

import * as pulumi from "@pulumi/pulumi";
import * as dockerBuildkit from "@docker-buildkit/pulumi";

const config = new pulumi.Config();
const registryHost = config.require("registry");
const namespace = config.get("namespace") ?? "examples";
const buildToken = config.getSecret("buildToken");
const credentials: dockerBuildkit.types.input.RegistryArgs = {
    server: registryHost,
    username: config.get("username"),
    password: config.getSecret("password"),
};

const app = new dockerBuildkit.Image("app", {
    name: `${registryHost}/${namespace}/app`,
    context: "../app",
    buildArgs: { VERSION: "1" },
    registry: credentials,
});

const busybox = new dockerBuildkit.Image("app-busybox", {
    name: `${registryHost}/${namespace}/app-busybox`,
    context: "../app-busybox",
    secrets: buildToken === undefined ? undefined : { token: buildToken },
    // RUN steps get no network: the test daemon has no bridge.
    network: "none",
    registry: credentials,
});

export const ref: pulumi.Output<string> = app.ref;
export const busyboxRef: pulumi.Output<string> = busybox.ref;
