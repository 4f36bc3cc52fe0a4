// examples/nodejs/index.ts, compiled by scripts/test-sdk.sh into ./example/bin, run against
// Pulumi's mock runtime: both images register with their contexts and the secret password.
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");
const pulumi = require("@pulumi/pulumi");
const mockrt = require("./mockrt");

const IMAGE = "docker-buildkit:index:Image";

test("the TypeScript example program", async () => {
    const mocks = await mockrt.useMocks(false, (type, name, inputs) =>
        type === IMAGE ? { ref: `${inputs.name}@sha256:${"cd".repeat(32)}` } : {},
    );
    pulumi.runtime.setAllConfig(
        { "sdk-test:registry": "127.0.0.1:5055", "sdk-test:username": "dbk", "sdk-test:password": "pw" },
        ["sdk-test:password"],
    );
    const program = require(path.join(__dirname, "example", "bin", "index.js"));
    assert.match(await program.ref.promise(), /^127\.0\.0\.1:5055\/examples\/app@sha256:/);
    await program.busyboxRef.promise();
    const app = mocks.sent(IMAGE, "app").inputs;
    const busybox = mocks.sent(IMAGE, "app-busybox").inputs;
    assert.equal(app.context, "../app");
    assert.deepEqual(app.buildArgs, { VERSION: "1" });
    assert.equal(busybox.context, "../app-busybox");
    assert.equal(busybox.network, "none");
    for (const sent of [app, busybox]) {
        assert.equal(sent.registry.username, "dbk");
        assert.equal(mockrt.reveal(sent.registry.password), "pw");
    }
});
