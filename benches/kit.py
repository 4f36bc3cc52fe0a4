"""Builds on a standalone buildkitd: us against `docker buildx build --push` (issue 19).

Both build the same contexts on the same buildkitd (ours over its unix socket with our own
Control API client; buildx through its `remote` builder on the daemon's mTLS tcp endpoint)
and push to the same registry. Each round, each side gets its own copy of the context (its
own salt, so neither finds the other's layers or file cache) and is timed twice: cold (a
context the daemon never saw) and after a one-file edit. Ours is timed as `pulumi up` pays
for it: Check (the hash) plus Create or Update, from the client. buildx exports the inline
cache too (`--cache-to type=inline`), as ours does by default. Cases:

- files: 20,000 files of 4 KiB, `FROM scratch` + `COPY . /`;
- stages: a three-stage Dockerfile (a slow `RUN` in the middle stage, a small context).

Then a fleet: two platforms (`FROM scratch`, so no emulation) on one buildkitd in one solve
vs split over two buildkitds (the second one `DBK_BUILDKIT_HOST2`), cold, through us.

Prints medians and the ratio ours ÷ buildx (fleet: two ÷ one). A benchmark: compare the
ratios, do not clock them.

    python benches/kit.py --binary target/release/pulumi-resource-docker-buildkit \
        [--runs 3] [--files 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import grpc
from google.protobuf import struct_pb2
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

TOKEN = "docker-buildkit:index:Image"


def env(name: str) -> str:
    v = os.environ.get(name, "")
    if not v:
        sys.exit(f"{name} is not set: run scripts/services.sh up and source its env file")
    return v


def write(root: Path, rel: str, text: str | bytes) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        p.write_text(text)
    else:
        p.write_bytes(text)


def files_case(root: Path, files: int, salt: str) -> None:
    write(root, "Dockerfile", "FROM scratch\nCOPY . /\n")
    block = (salt.encode() * (4096 // len(salt) + 1))[:4096]
    for i in range(files):
        write(root, f"d{i // 1000:03d}/f{i:06d}", block[: 4096 - 8] + f"{i:08d}".encode())


def stages_case(root: Path, base: str, salt: str) -> None:
    write(
        root,
        "Dockerfile",
        f"FROM {base} AS deps\nRUN echo deps-{salt} > /deps\n"
        f"FROM deps AS slow\nRUN sleep 3 && echo slow-{salt} > /slow\n"
        f"FROM deps AS out\nCOPY --from=slow /slow /slow\nCOPY src/ /src/\n",
    )
    for i in range(20):
        write(root, f"src/f{i}.txt", f"{salt} {i}\n")


def edit_one(root: Path) -> None:
    target = next(p for p in sorted(root.rglob("*")) if p.is_file() and p.name != "Dockerfile")
    target.write_bytes(target.read_bytes() + b"edited\n")


class Provider:
    def __init__(self, binary: Path, home: Path, program: Path, config: dict):
        e = dict(os.environ, HOME=str(home), XDG_CACHE_HOME=str(home / "cache"))
        self.proc = subprocess.Popen(
            [str(binary)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=e
        )
        port = self.proc.stdout.readline().decode().strip()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = provider_pb2_grpc.ResourceProviderStub(self.channel)
        self.stub.Handshake(
            provider_pb2.ProviderHandshakeRequest(
                program_directory=str(program), root_directory=str(program)
            )
        )
        args = struct_pb2.Struct()
        args.update(config)
        self.stub.Configure(
            provider_pb2.ConfigureRequest(args=args, acceptSecrets=True, acceptResources=True)
        )
        self.state: dict[str, struct_pb2.Struct] = {}

    def up(self, name: str, inputs: dict) -> float:
        """Check, then Create (first time) or Update: one `pulumi up` of one Image."""
        urn = f"urn:pulumi:bench::bench::{TOKEN}::{name}"
        news = struct_pb2.Struct()
        news.update(inputs)
        start = time.perf_counter()
        checked = self.stub.Check(provider_pb2.CheckRequest(urn=urn, news=news))
        if checked.failures:
            sys.exit(f"Check failed: {[(f.property, f.reason) for f in checked.failures]}")
        old = self.state.get(name)
        if old is None:
            r = self.stub.Create(
                provider_pb2.CreateRequest(urn=urn, name=name, properties=checked.inputs),
                timeout=600,
            )
        else:
            r = self.stub.Update(
                provider_pb2.UpdateRequest(
                    urn=urn, name=name, id=name, olds=old, news=checked.inputs
                ),
                timeout=600,
            )
        elapsed = time.perf_counter() - start
        self.state[name] = r.properties
        return elapsed

    def close(self) -> None:
        self.channel.close()
        self.proc.terminate()
        self.proc.wait(timeout=10)


def buildx(docker_config: Path, builder: str, ctx: Path, tag: str) -> float:
    e = dict(os.environ, DOCKER_CONFIG=str(docker_config))
    start = time.perf_counter()
    r = subprocess.run(
        ["docker", "buildx", "build", "--builder", builder, "--progress", "plain",
         "--push", "--cache-to", "type=inline", "-t", tag, str(ctx)],
        env=e, capture_output=True, text=True,
    )
    elapsed = time.perf_counter() - start
    if r.returncode != 0:
        sys.exit(f"buildx failed:\n{r.stderr[-3000:]}")
    return elapsed


def login_config(tmp: Path, registry: str, user: str, password: str) -> Path:
    """A DOCKER_CONFIG for buildx: the services' (its cli-plugins and builder) plus a login."""
    src = Path(env("DBK_DOCKER_CONFIG"))
    dst = tmp / "docker-config"
    shutil.copytree(src, dst, symlinks=True)
    cfg = json.loads((dst / "config.json").read_text() or "{}")
    import base64

    cfg.setdefault("auths", {})[registry] = {
        "auth": base64.b64encode(f"{user}:{password}".encode()).decode()
    }
    (dst / "config.json").write_text(json.dumps(cfg))
    return dst


def base_image(tmp: Path, docker_config: Path, registry: str) -> str:
    """The services' busybox base, pushed to the registry (a buildkitd pulls from there)."""
    local = env("DBK_BASE_IMAGE")
    ref = f"{registry}/bench/base:1"
    e = dict(os.environ, DOCKER_CONFIG=str(docker_config))
    for cmd in (["docker", "tag", local, ref], ["docker", "push", ref]):
        r = subprocess.run(cmd, env=e, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed: {r.stderr}")
    return ref


def median_ms(xs: list[float]) -> str:
    return f"{statistics.median(xs) * 1000:.0f} ms {[round(x * 1000) for x in xs]}"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--binary", type=Path, required=True)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--files", type=int, default=20_000)
    a = p.parse_args()
    unix = env("DBK_BUILDKIT_HOST")
    second = env("DBK_BUILDKIT_HOST2")
    registry = env("DBK_REGISTRY")
    user, password = env("DBK_REGISTRY_USER"), env("DBK_REGISTRY_PASSWORD")
    builder = env("DBK_BUILDX_BUILDER")
    tmp = Path(tempfile.mkdtemp(prefix="dbk-kit-bench-"))
    try:
        docker_config = login_config(tmp, registry, user, password)
        base = base_image(tmp, docker_config, registry)
        creds = {"server": registry, "username": user, "password": password}
        ours = Provider(a.binary, tmp / "home", tmp, {"host": unix, "driver": "buildkit"})
        results: dict[tuple[str, str, str], list[float]] = {}
        try:
            for rnd in range(a.runs):
                for case in ("files", "stages"):
                    for who in (("ours", "buildx") if rnd % 2 == 0 else ("buildx", "ours")):
                        salt = uuid.uuid4().hex
                        ctx = tmp / f"{case}-{who}-{rnd}"
                        if case == "files":
                            files_case(ctx, a.files, salt)
                        else:
                            stages_case(ctx, base, salt)
                        repo = f"{registry}/bench/{case}-{who}"
                        for phase in ("cold", "edit"):
                            if phase == "edit":
                                edit_one(ctx)
                            if who == "ours":
                                name = f"{case}-{rnd}"
                                t = ours.up(name, {"name": repo, "context": str(ctx),
                                                   "registry": creds})
                            else:
                                t = buildx(docker_config, builder, ctx, f"{repo}:latest")
                            results.setdefault((case, phase, who), []).append(t)
                        shutil.rmtree(ctx, ignore_errors=True)
                print(f"round {rnd + 1} of {a.runs} done", file=sys.stderr)
        finally:
            ours.close()
        print(f"runs: {a.runs}, files: {a.files} x 4 KiB, load: {os.getloadavg()[0]:.2f}")
        for case in ("files", "stages"):
            for phase in ("cold", "edit"):
                o, b = results[(case, phase, "ours")], results[(case, phase, "buildx")]
                print(f"{case:6} {phase:4}  ours {median_ms(o)}  buildx {median_ms(b)}  "
                      f"ours / buildx: {statistics.median(o) / statistics.median(b):.2f}")

        # The fleet: two platforms on one buildkitd (one solve) vs over two.
        fleet: dict[str, list[float]] = {"one": [], "two": []}
        one_config = {"host": unix, "driver": "buildkit"}
        two_config = {"host": unix, "driver": "buildkit", "builders": [
            {"host": second, "driver": "buildkit", "platforms": ["linux/arm64"]}]}
        for rnd in range(a.runs):
            for which, config in (("one", one_config), ("two", two_config)):
                ctx = tmp / f"fleet-{which}-{rnd}"
                files_case(ctx, a.files // 4, uuid.uuid4().hex)
                write(ctx, "Dockerfile",
                      "FROM scratch\nARG TARGETPLATFORM\nLABEL p=$TARGETPLATFORM\nCOPY . /\n")
                prov = Provider(a.binary, tmp / f"home-{which}", tmp, config)
                try:
                    fleet[which].append(prov.up(f"fleet-{rnd}", {
                        "name": f"{registry}/bench/fleet-{which}", "context": str(ctx),
                        "platforms": ["linux/amd64", "linux/arm64"], "registry": creds}))
                finally:
                    prov.close()
                shutil.rmtree(ctx, ignore_errors=True)
        print(f"fleet (2 platforms, {a.files // 4} files, cold): one buildkitd "
              f"{median_ms(fleet['one'])}  two {median_ms(fleet['two'])}  "
              f"two / one: {statistics.median(fleet['two']) / statistics.median(fleet['one']):.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
