// The SDK generator is generic over the schema: the made-up package of
// tests/sdk/fixture/schema.json, rendered and compiled by `codegen sdk --schema … --out …`,
// against Pulumi's mock runtime (the Node.js twin of tests/sdk/python/test_kitchen.py).
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const mockrt = require("./mockrt");

const WIDGET = "kitchen:index:Widget";

let kitchen;
test.before(async () => {
    await mockrt.useMocks(false);
    kitchen = require("@kitchen/pulumi");
});

test("every type kind on the wire", async () => {
    const mocks = await mockrt.useMocks(false, (type) =>
        type === WIDGET ? { createdAt: "today", secretOut: "s3cr3t" } : {},
    );
    const widget = new kitchen.Widget("w", {
        size: 3,
        anything: { free: ["form", 1] },
        endpoints: [
            {
                url: "https://a",
                authToken: "token-a",
                weight: 0.25,
                tags: { k: "v" },
                headers: [{ name: "X-Key", value: "header-secret" }],
                mode: kitchen.Mode.Careful,
            },
        ],
        endpointsByName: { b: { url: "https://b", authToken: "token-b" } },
        password: "pw",
        levels: [kitchen.Level.High, kitchen.Level.Low],
        matrix: [[1.5, 2], []],
    });
    await widget.urn.promise();
    const { inputs: sent, request } = mocks.sent(WIDGET, "w");
    assert.equal(sent.size, 3);
    assert.equal(sent.ratio, 0.5);
    assert.equal(sent.enabled, true);
    assert.equal(sent.mode, "fast");
    assert.deepEqual(sent.anything, { free: ["form", 1] });
    assert.deepEqual(sent.levels, [10, 1]);
    assert.deepEqual(sent.matrix, [[1.5, 2], []]);
    const endpoint = sent.endpoints[0];
    assert.equal(endpoint.url, "https://a");
    assert.equal(endpoint.mode, "safe");
    assert.equal(mockrt.reveal(endpoint.authToken), "token-a");
    assert.equal(endpoint.headers[0].name, "X-Key");
    assert.equal(mockrt.reveal(endpoint.headers[0].value), "header-secret");
    assert.equal(mockrt.reveal(sent.endpointsByName.b.authToken), "token-b");
    assert.equal(mockrt.reveal(sent.password), "pw");
    assert.deepEqual(request.getAdditionalsecretoutputsList().sort(), ["password", "secretOut"]);
    assert.equal(await widget.createdAt.promise(), "today");
});

test("a resource of another module, with no required input", async () => {
    const mocks = await mockrt.useMocks(false);
    const bucket = new kitchen.Bucket("b", { from: "elsewhere" });
    const empty = new kitchen.Bucket("empty");
    await bucket.urn.promise();
    await empty.urn.promise();
    assert.deepEqual(mocks.sent("kitchen:storage:Bucket", "b").inputs, { from: "elsewhere" });
});

test("provider config inputs go as JSON, secrets as secrets", async () => {
    const mocks = await mockrt.useMocks(false);
    const provider = new kitchen.Provider("p", { region: "eu", retries: 5, apiKey: "key" });
    await provider.urn.promise();
    const { inputs } = mocks.sent("pulumi:providers:kitchen", "p");
    assert.equal(inputs.region, "eu");
    assert.equal(inputs.retries, "5");
    assert.equal(mockrt.reveal(inputs.apiKey), "key");
});

test("config getters and defaults", () => {
    assert.equal(kitchen.config.retries, 3);
    const pulumi = require("@pulumi/pulumi");
    pulumi.runtime.setConfig("kitchen:retries", "7");
    assert.equal(kitchen.config.retries, 7);
});
