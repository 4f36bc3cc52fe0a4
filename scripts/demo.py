"""The main job, end to end: build and push examples/app through the provider, driven the
way the Pulumi engine drives it, with Pulumi's own gRPC stubs as the client.

Plays `pulumi preview`, `pulumi up`, `pulumi up` again (nothing to do), an edit to an
ignored file (still nothing), an edit to an included file (preview names it), and `pulumi up`
(rebuild). Build progress streams here live through a real `Engine.Log` service, as it does
in a terminal under the Pulumi CLI. Finally the pushed manifest is fetched from the registry
and its digest compared with the `ref` output.

Usage (scripts/demo.sh sets all of this up):
    PROVIDER_BIN=... DOCKER_HOST=... DBK_REGISTRY=... DBK_REGISTRY_USER=... \
    DBK_REGISTRY_PASSWORD=... python scripts/demo.py
"""

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent import futures

import grpc
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import engine_pb2_grpc, provider_pb2, provider_pb2_grpc

TOKEN = "docker-buildkit:index:Image"
URN = f"urn:pulumi:demo::demo::{TOKEN}::app"
SIG = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
HERE = os.path.dirname(os.path.abspath(__file__))


class Engine(engine_pb2_grpc.EngineServicer):
    """Prints the provider's log lines as the Pulumi CLI would."""

    def Log(self, request, context):
        prefix = {0: "debug", 1: "", 2: "warning: ", 3: "error: "}.get(request.severity, "")
        for line in request.message.splitlines() or [""]:
            print(f"    {prefix}{line}", flush=True)
        return empty_pb2.Empty()


def struct(d):
    s = struct_pb2.Struct()
    s.update(d)
    return s


def step(title):
    print(f"\n=== {title}", flush=True)


def main():
    registry = os.environ["DBK_REGISTRY"]
    user = os.environ["DBK_REGISTRY_USER"]
    password = os.environ["DBK_REGISTRY_PASSWORD"]

    engine = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    engine_pb2_grpc.add_EngineServicer_to_server(Engine(), engine)
    engine_port = engine.add_insecure_port("127.0.0.1:0")
    engine.start()

    program = tempfile.mkdtemp(prefix="docker-buildkit-demo-")
    shutil.copytree(os.path.join(HERE, "..", "examples", "app"), os.path.join(program, "app"))

    proc = subprocess.Popen(
        [os.environ["PROVIDER_BIN"], f"127.0.0.1:{engine_port}"], stdout=subprocess.PIPE
    )
    port = int(proc.stdout.readline().decode().strip())
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    grpc.channel_ready_future(channel).result(timeout=10)
    p = provider_pb2_grpc.ResourceProviderStub(channel)

    p.Handshake(provider_pb2.ProviderHandshakeRequest(
        engine_address=f"127.0.0.1:{engine_port}", program_directory=program, root_directory=program))
    print(f"provider {p.GetPluginInfo(empty_pb2.Empty()).version} on port {port}")
    p.Configure(provider_pb2.ConfigureRequest(args=struct({"host": os.environ["DOCKER_HOST"]}), acceptSecrets=True))

    name = f"{registry}/demo-app"
    inputs = {
        "name": name,
        "context": "app",
        "registry": {"server": registry, "username": user, "password": {SIG: SECRET_SIG, "value": password}},
    }

    def check():
        resp = p.Check(provider_pb2.CheckRequest(urn=URN, olds=struct({}), news=struct(inputs)))
        if resp.failures:
            sys.exit(f"check failed: {resp.failures}")
        return resp.inputs

    def diff(state, news):
        d = p.Diff(provider_pb2.DiffRequest(id="app", urn=URN, olds=state, news=news))
        return d.changes == provider_pb2.DiffResponse.DIFF_SOME, list(d.diffs)

    step("pulumi preview (no state yet): check, then create with preview=true — nothing is built")
    checked = check()
    preview = p.Create(provider_pb2.CreateRequest(urn=URN, properties=checked, preview=True))
    print(f"  + Image app  contextHash={checked['contextHash']}  ref={'<computed>' if preview.properties['ref'] == UNKNOWN else preview.properties['ref']}")

    step("pulumi up: build with BuildKit and push, log streamed (or, if this same context was\n    pushed before, by any machine, reuse it: the ctx-<hash> tag in the registry)")
    created = p.Create(provider_pb2.CreateRequest(urn=URN, properties=checked, preview=False))
    state = created.properties
    print(f"  ref = {state['ref']}")

    step("pulumi up again, nothing changed: diff says so, nothing is built")
    changed, props = diff(state, check())
    print(f"  changes: {props if changed else 'none'}")
    assert not changed

    step("edit NOTES.md (listed in .dockerignore): still nothing to do")
    with open(os.path.join(program, "app", "NOTES.md"), "a") as f:
        f.write("more notes\n")
    changed, props = diff(state, check())
    print(f"  changes: {props if changed else 'none'}")
    assert not changed

    step("edit index.html: preview shows the change and names the file")
    with open(os.path.join(program, "app", "index.html"), "a") as f:
        # New content on every run, so this up really builds (a content built before would
        # be found in the registry under its ctx- tag and reused instead).
        f.write(f"<p>edited at {time.time_ns()}</p>\n")
    news = check()
    changed, props = diff(state, news)
    print(f"  changes: {props}")
    assert changed and "contextHash" in props

    step("pulumi up: rebuild and push")
    updated = p.Update(provider_pb2.UpdateRequest(id=created.id, urn=URN, olds=state, news=news, preview=False))
    state = updated.properties
    ref = state["ref"]
    print(f"  ref = {ref}")

    step("verify: the registry serves the manifest whose digest is in ref")
    repo_path = name.split("/", 1)[1]
    req = urllib.request.Request(
        f"http://{registry}/v2/{repo_path}/manifests/latest",
        headers={
            "Accept": "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json",
            "Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode(),
        },
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    body = opener.open(req, timeout=30).read()
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    print(f"  registry: {name}:latest -> {digest}")
    assert ref == f"{name}@{digest}", (ref, digest)
    print(f"\nOK: {ref}")

    channel.close()
    proc.terminate()
    proc.wait(timeout=10)
    engine.stop(None)
    shutil.rmtree(program, ignore_errors=True)


if __name__ == "__main__":
    main()
