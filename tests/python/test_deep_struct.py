"""Deeply nested property values through the real binary, sent by Pulumi's own stubs (issue
18, item 4): a `labels` map nested 200 deep (and 10,000 deep, as raw bytes) is a Check
failure naming `labels`, not an undecodable request; under a property the schema does not
know, it is ignored like any unknown property (the warning naming it goes to the engine's
log, which is not here). Run by scripts/test.sh with PROVIDER_BIN pointing at the binary.
"""

import os
import subprocess
import tempfile

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

TOKEN = "docker-buildkit:index:Image"
URN = f"urn:pulumi:test::proj::{TOKEN}::app"


@pytest.fixture(scope="module")
def channel():
    binary = os.environ["PROVIDER_BIN"]
    with tempfile.TemporaryDirectory() as program_dir:
        os.makedirs(os.path.join(program_dir, "app"))
        with open(os.path.join(program_dir, "app", "Dockerfile"), "w") as f:
            f.write("FROM scratch\nCOPY . /\n")
        proc = subprocess.Popen([binary], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        port = int(proc.stdout.readline().decode().strip())
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(channel).result(timeout=10)
        stub = provider_pb2_grpc.ResourceProviderStub(channel)
        stub.Handshake(
            provider_pb2.ProviderHandshakeRequest(program_directory=program_dir, root_directory=program_dir)
        )
        stub.Configure(provider_pb2.ConfigureRequest(args=struct({"host": "unix:///nonexistent.sock"})))
        yield channel
        channel.close()
        proc.terminate()
        assert proc.wait(timeout=10) == 0


@pytest.fixture(scope="module")
def stub(channel):
    return provider_pb2_grpc.ResourceProviderStub(channel)


def struct(d):
    s = struct_pb2.Struct()
    s.update(d)
    return s


def nested(levels):
    v = "leaf"
    for _ in range(levels):
        v = {"a": v}
    return v


def check(stub, news):
    return stub.Check(provider_pb2.CheckRequest(urn=URN, olds=struct({}), news=struct(news)))


def test_labels_nested_200_deep_is_a_check_failure_naming_labels(stub):
    resp = check(stub, {"name": "a/b", "context": "app", "labels": nested(200)})
    props = [f.property for f in resp.failures]
    assert props, "a failure"
    assert all(p == "labels" or p.startswith("labels.") for p in props), props
    assert any("expected a string" in f.reason for f in resp.failures), list(resp.failures)


def test_a_value_200_deep_under_an_unknown_property_is_ignored(stub):
    resp = check(stub, {"name": "a/b", "context": "app", "labelz": nested(200)})
    assert list(resp.failures) == []
    assert "labelz" not in resp.inputs.fields
    assert len(resp.inputs["contextHash"]) == 32


def varint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def field(number, payload):
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def entry(key, value):
    return field(1, field(1, key.encode()) + field(2, value))


def nested_bytes(levels):
    """A Value of `levels` objects {"a": …} around "leaf", built from the inside out with
    lengths computed ahead (no library recursion, no quadratic copying)."""
    leaf = field(3, b"leaf")
    prefixes = []
    size = len(leaf)
    for _ in range(levels):
        e = len(b"\x0a\x01a\x12") + len(varint(size)) + size
        s = 1 + len(varint(e)) + e
        prefixes.append(b"\x2a" + varint(s) + b"\x0a" + varint(e) + b"\x0a\x01a\x12" + varint(size))
        size = 1 + len(varint(s)) + s
    return b"".join(reversed(prefixes)) + leaf


def test_the_raw_builder_writes_what_protobuf_would():
    v = struct_pb2.Value()
    v.struct_value.update(nested(40))
    assert nested_bytes(40) == v.SerializeToString()


def test_labels_nested_10000_deep_is_a_check_failure_naming_labels(channel, stub):
    news = entry("name", field(3, b"a/b")) + entry("context", field(3, b"app"))
    news += entry("labels", nested_bytes(10_000))
    request = field(1, URN.encode()) + field(3, news)
    call = channel.unary_unary(
        "/pulumirpc.ResourceProvider/Check",
        request_serializer=None,
        response_deserializer=provider_pb2.CheckResponse.FromString,
    )
    resp = call(request)
    props = [f.property for f in resp.failures]
    assert props and all(p == "labels" or p.startswith("labels.") for p in props), props
    # And the provider still serves.
    assert stub.GetPluginInfo(empty_pb2.Empty()).version
