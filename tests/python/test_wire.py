"""Wire compatibility with Pulumi's own generated gRPC stubs (PyPI `pulumi`).

The provider binary is driven by `pulumi.runtime.proto.provider_pb2_grpc.ResourceProviderStub`,
an independent implementation of the protocol: if our generated bindings disagreed with
Pulumi's on any message or field number, these calls would fail or decode garbage.
Run by scripts/test.sh with PROVIDER_BIN pointing at the built binary.
"""

import os
import subprocess
import tempfile

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
SIG = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
TOKEN = "docker-buildkit:index:Image"
URN = f"urn:pulumi:test::proj::{TOKEN}::app"


@pytest.fixture(scope="module")
def stub():
    binary = os.environ["PROVIDER_BIN"]
    proc = subprocess.Popen([binary], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    port = int(proc.stdout.readline().decode().strip())
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    grpc.channel_ready_future(channel).result(timeout=10)
    yield provider_pb2_grpc.ResourceProviderStub(channel)
    channel.close()
    proc.terminate()
    assert proc.wait(timeout=10) == 0


@pytest.fixture(scope="module")
def program_dir():
    with tempfile.TemporaryDirectory() as d:
        os.makedirs(os.path.join(d, "app"))
        with open(os.path.join(d, "app", "Dockerfile"), "w") as f:
            f.write("FROM scratch\nCOPY . /\n")
        yield d


def struct(d):
    s = struct_pb2.Struct()
    s.update(d)
    return s


def secret(v):
    return {SIG: SECRET_SIG, "value": v}


def test_plugin_info(stub):
    info = stub.GetPluginInfo(empty_pb2.Empty())
    assert info.version.count(".") == 2


def test_schema(stub):
    import json

    schema = json.loads(stub.GetSchema(provider_pb2.GetSchemaRequest(version=0)).schema)
    assert TOKEN in schema["resources"]
    assert schema["types"]["docker-buildkit:index:Registry"]["properties"]["password"]["secret"] is True


def test_handshake_and_configure(stub, program_dir):
    hs = stub.Handshake(
        provider_pb2.ProviderHandshakeRequest(program_directory=program_dir, root_directory=program_dir)
    )
    assert hs.accept_secrets
    resp = stub.Configure(
        provider_pb2.ConfigureRequest(args=struct({"host": "unix:///nonexistent.sock"}), acceptSecrets=True)
    )
    assert resp.acceptSecrets and resp.supportsPreview and resp.acceptResources


def test_check_keeps_secrets_and_unknowns(stub, program_dir):
    news = struct(
        {
            "name": "127.0.0.1:5000/app",
            "context": "app",
            "tags": [UNKNOWN],
            "registry": {"server": "127.0.0.1:5000", "username": "u", "password": secret("hunter2")},
        }
    )
    resp = stub.Check(provider_pb2.CheckRequest(urn=URN, olds=struct({}), news=news))
    assert list(resp.failures) == []
    inputs = resp.inputs
    password = inputs["registry"]["password"]
    assert password[SIG] == SECRET_SIG and password["value"] == "hunter2"
    assert inputs["tags"][0] == UNKNOWN
    assert len(inputs["contextHash"]) == 32
    assert inputs["inlineCache"] is True

    # Preview create: outputs unknown, nothing built (the daemon does not exist).
    created = stub.Create(provider_pb2.CreateRequest(urn=URN, properties=inputs, preview=True))
    assert created.properties["digest"] == UNKNOWN
    assert created.properties["registry"]["password"][SIG] == SECRET_SIG

    # An unknown input is a change; identical known inputs are none.
    diff = stub.Diff(provider_pb2.DiffRequest(id="x", urn=URN, olds=inputs, news=inputs))
    assert diff.changes == provider_pb2.DiffResponse.DIFF_SOME
    assert list(diff.diffs) == ["tags"]
    known = stub.Check(provider_pb2.CheckRequest(urn=URN, olds=struct({}), news=struct({"name": "a/b", "context": "app"}))).inputs
    diff = stub.Diff(provider_pb2.DiffRequest(id="x", urn=URN, olds=known, news=known))
    assert diff.changes == provider_pb2.DiffResponse.DIFF_NONE


def test_check_failure_names_property(stub, program_dir):
    resp = stub.Check(provider_pb2.CheckRequest(urn=URN, olds=struct({}), news=struct({"name": 5, "context": "app"})))
    assert [f.property for f in resp.failures] == ["name"]


def test_unimplemented(stub):
    with pytest.raises(grpc.RpcError) as e:
        stub.Invoke(provider_pb2.InvokeRequest(tok="x"))
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
