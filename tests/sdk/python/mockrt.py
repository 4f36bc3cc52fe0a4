"""Pulumi's Python mock runtime, with a record of what reached the engine.

`use_mocks` installs `pulumi.runtime.set_mocks` with a monitor that keeps every
`RegisterResource` request as sent: the protobuf `Struct` of inputs (where a secret is the
`{SIG: SECRET_SIG, value}` envelope the real engine receives) and the request's
`additionalSecretOutputs`. The mocks echo the inputs back as outputs, plus what a test adds.
"""

from google.protobuf import json_format
import pulumi
from pulumi.runtime.mocks import MockMonitor

SIG = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"


class Recorder(pulumi.runtime.Mocks):
    def __init__(self, outputs=None):
        self.registered = []
        self.reads = []
        self.outputs = outputs or (lambda typ, name, inputs: {})

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        if args.resource_id:
            self.reads.append(args)
        else:
            self.registered.append(args)
        state = dict(args.inputs)
        state.update(self.outputs(args.typ, args.name, args.inputs))
        return [f"{args.name}-id", state]

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


class RecordingMonitor(MockMonitor):
    def __init__(self, mocks):
        super().__init__(mocks)
        self.requests = []

    def RegisterResource(self, request):
        self.requests.append(request)
        return super().RegisterResource(request)

    def sent(self, typ: str, name: str):
        """The inputs of the registration of `name` (of type `typ`) as plain JSON, secrets
        still in their envelopes, and the request itself."""
        for request in self.requests:
            if request.type == typ and request.name == name:
                return json_format.MessageToDict(request.object), request
        raise AssertionError(f"no registration of {typ} {name!r}")


def use_mocks(preview: bool, outputs=None):
    mocks = Recorder(outputs)
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project="sdk-test", stack="test", preview=preview, monitor=monitor)
    return mocks, monitor


def is_secret(value) -> bool:
    return isinstance(value, dict) and value.get(SIG) == SECRET_SIG


def reveal(value):
    """The value inside a secret envelope."""
    assert is_secret(value), f"expected a secret, got {value!r}"
    return value["value"]


async def resolved(output: pulumi.Output):
    """(value, known, secret) of an output."""
    return await output.future(), await output.is_known(), await output.is_secret()

