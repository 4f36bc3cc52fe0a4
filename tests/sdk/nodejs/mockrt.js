// Pulumi's Node.js mock runtime, with a record of what reached the engine.
//
// `useMocks` installs `pulumi.runtime.setMocks` and wraps the mock monitor so every
// RegisterResource request is kept as sent: its inputs Struct (where a secret is the
// `{[SIG]: SECRET_SIG, value}` envelope the real engine receives) and its
// additionalSecretOutputs. The mocks echo the inputs back as outputs, plus what a test adds.
"use strict";

const pulumi = require("@pulumi/pulumi");

const SIG = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";

async function useMocks(preview, outputs = () => ({})) {
    const registered = [];
    const reads = [];
    await pulumi.runtime.setMocks(
        {
            newResource(args) {
                (args.id ? reads : registered).push(args);
                return {
                    id: `${args.name}-id`,
                    state: { ...args.inputs, ...outputs(args.type, args.name, args.inputs) },
                };
            },
            call() {
                return {};
            },
        },
        "sdk-test",
        "test",
        preview,
    );
    const monitor = pulumi.runtime.getMonitor();
    const requests = [];
    const register = monitor.registerResource.bind(monitor);
    monitor.registerResource = (req, callback) => {
        requests.push(req);
        return register(req, callback);
    };
    return {
        registered,
        reads,
        /** The inputs (plain JSON, secrets in their envelopes) and the request of one registration. */
        sent(type, name) {
            const req = requests.find((r) => r.getType() === type && r.getName() === name);
            if (!req) {
                throw new Error(`no registration of ${type} ${name}`);
            }
            return { inputs: req.getObject().toJavaScript(), request: req };
        },
    };
}

function isSecret(value) {
    return typeof value === "object" && value !== null && value[SIG] === SECRET_SIG;
}

/** The value inside a secret envelope. */
function reveal(value) {
    if (!isSecret(value)) {
        throw new Error(`expected a secret, got ${JSON.stringify(value)}`);
    }
    return value.value;
}

/** [value, known, secret] of an output. */
async function resolved(output) {
    return [await output.promise(), await output.isKnown, await output.isSecret];
}

module.exports = { useMocks, isSecret, reveal, resolved };
