// The generated Node.js SDK (`npm install ./sdk/nodejs`) against Pulumi's mock runtime: the
// program of the product brief registers `docker-buildkit:index:Image` with its inputs,
// schema defaults applied, the registry password as a secret, typed outputs, and in preview
// an unknown digest. Run by scripts/test-sdk.sh from a directory where both are installed.
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const pulumi = require("@pulumi/pulumi");
const mockrt = require("./mockrt");

const IMAGE = "docker-buildkit:index:Image";
const DIGEST = "sha256:" + "ab".repeat(32);
const PACKAGE = process.env.SDK_PACKAGE || "@docker-buildkit/pulumi";

function imageOutputs(type, name, inputs) {
    if (type !== IMAGE) {
        return {};
    }
    return {
        digest: DIGEST,
        ref: `${inputs.name}@${DIGEST}`,
        repoDigest: `${inputs.name}@${DIGEST}`,
        contextHash: "0".repeat(32),
    };
}

function everyInput(overrides = {}) {
    return {
        name: "127.0.0.1:5000/app",
        tags: ["v1", "127.0.0.1:5000/other:v1"],
        dockerfileInline: "FROM scratch\nCOPY index.html /srv/\n",
        platforms: ["linux/amd64"],
        buildArgs: { VERSION: "1.2" },
        target: "release",
        labels: { team: "web" },
        cacheFrom: ["127.0.0.1:5000/cache"],
        noCache: true,
        network: "none",
        registry: { server: "127.0.0.1:5000", username: "u", password: "hunter2" },
        triggers: ["1"],
        ...overrides,
    };
}

let sdk;
test.before(async () => {
    // The mocks must be in place before the SDK is loaded.
    await mockrt.useMocks(false);
    sdk = require(PACKAGE);
});

test("every input reaches the engine by its wire name", async () => {
    const mocks = await mockrt.useMocks(false, imageOutputs);
    const image = new sdk.Image("image", everyInput());
    await image.urn.promise();
    const { inputs: sent, request } = mocks.sent(IMAGE, "image");
    assert.equal(request.getCustom(), true);
    assert.deepEqual(mocks.registered.map((r) => r.type), [IMAGE]);
    assert.equal(sent.name, "127.0.0.1:5000/app");
    assert.deepEqual(sent.tags, ["v1", "127.0.0.1:5000/other:v1"]);
    assert.match(sent.dockerfileInline, /^FROM scratch/);
    assert.deepEqual(sent.platforms, ["linux/amd64"]);
    assert.deepEqual(sent.buildArgs, { VERSION: "1.2" });
    assert.equal(sent.target, "release");
    assert.deepEqual(sent.labels, { team: "web" });
    assert.deepEqual(sent.cacheFrom, ["127.0.0.1:5000/cache"]);
    assert.equal(sent.noCache, true);
    assert.equal(sent.network, "none");
    assert.deepEqual(sent.triggers, ["1"]);
    // Schema defaults are applied when not given, as Pulumi's codegen does. `context` has
    // none: the provider decides ("." or, with an inline Dockerfile, an empty context).
    assert.equal(sent.context, undefined);
    assert.equal(sent.inlineCache, true);
    assert.equal(sent.push, true);
    for (const out of ["digest", "ref", "repoDigest", "contextHash"]) {
        assert.ok(!(out in sent), `${out} is not an input`);
    }
    // The password, and only it, travels as a secret.
    assert.equal(sent.registry.server, "127.0.0.1:5000");
    assert.equal(sent.registry.username, "u");
    assert.equal(mockrt.reveal(sent.registry.password), "hunter2");
    assert.equal(request.getVersion(), require(`${PACKAGE}/package.json`).version);

    assert.deepEqual(await mockrt.resolved(image.ref), [`127.0.0.1:5000/app@${DIGEST}`, true, false]);
    assert.equal(await image.digest.promise(), DIGEST);
    assert.equal(await image.name.promise(), "127.0.0.1:5000/app");
    assert.deepEqual(await image.buildArgs.promise(), { VERSION: "1.2" });
    const [registry, , registrySecret] = await mockrt.resolved(image.registry);
    assert.equal(registry.server, "127.0.0.1:5000");
    assert.equal(registrySecret, true, "the registry output holds the password");
});

test("a password given as an Output or a Promise stays secret", async () => {
    const mocks = await mockrt.useMocks(false, imageOutputs);
    const asOutput = new sdk.Image("as-output", {
        name: "r/app",
        registry: { server: "r", password: pulumi.output("from-output") },
    });
    const asPromise = new sdk.Image("as-promise", {
        name: "r/app",
        registry: Promise.resolve({ server: "r", password: "from-promise" }),
    });
    await asOutput.urn.promise();
    await asPromise.urn.promise();
    assert.equal(mockrt.reveal(mocks.sent(IMAGE, "as-output").inputs.registry.password), "from-output");
    const promised = mocks.sent(IMAGE, "as-promise").inputs.registry;
    assert.equal(promised.server, "r");
    assert.equal(mockrt.reveal(promised.password), "from-promise");
});

test("the caller's args are not changed in place", async () => {
    await mockrt.useMocks(false, imageOutputs);
    const args = everyInput();
    const image = new sdk.Image("untouched", args);
    await image.urn.promise();
    assert.equal(args.registry.password, "hunter2");
    assert.equal(args.context, undefined);
});

test("name is required", async () => {
    await mockrt.useMocks(false);
    assert.throws(() => new sdk.Image("nameless", { context: "." }), /Missing required property 'name'/);
});

test("preview leaves the digest unknown", async () => {
    const mocks = await mockrt.useMocks(true);
    const image = new sdk.Image("image", { name: "127.0.0.1:5000/app", context: "./app" });
    await image.urn.promise();
    assert.equal(await image.digest.isKnown, false);
    assert.equal(await image.ref.isKnown, false);
    assert.deepEqual(await mockrt.resolved(image.context), ["./app", true, false]);
    assert.equal(mocks.registered.length, 1);
});

test("get reads by id", async () => {
    const mocks = await mockrt.useMocks(false);
    const image = sdk.Image.get("existing", "existing-id");
    await image.urn.promise();
    assert.deepEqual(mocks.reads.map((r) => [r.type, r.id]), [[IMAGE, "existing-id"]]);
    assert.ok(sdk.Image.isInstance(image));
    assert.ok(!sdk.Image.isInstance({}));
});

test("the provider takes the config inputs", async () => {
    const mocks = await mockrt.useMocks(false);
    const provider = new sdk.Provider("local", { host: "unix:///run/docker.sock", certPath: "/certs" });
    const image = new sdk.Image("with-provider", { name: "r/app" }, { provider });
    await image.urn.promise();
    assert.deepEqual(mocks.sent("pulumi:providers:docker-buildkit", "local").inputs, {
        host: "unix:///run/docker.sock",
        certPath: "/certs",
    });
    assert.match(mocks.sent(IMAGE, "with-provider").request.getProvider(), /pulumi:providers:docker-buildkit::local::local-id$/);
    assert.ok(sdk.Provider.isInstance(provider));
});

test("config reads the provider's namespace", () => {
    pulumi.runtime.setConfig("docker-buildkit:host", "tcp://10.0.0.1:2376");
    assert.equal(sdk.config.host, "tcp://10.0.0.1:2376");
    assert.equal(sdk.config.certPath, undefined);
});

test("package.json carries the plugin block", () => {
    const pkg = JSON.parse(fs.readFileSync(require.resolve(`${PACKAGE}/package.json`), "utf8"));
    assert.deepEqual(pkg.pulumi, {
        resource: true,
        name: "docker-buildkit",
        version: pkg.version,
        server: "github://api.github.com/docker-buildkit/pulumi-docker-buildkit",
    });
});
