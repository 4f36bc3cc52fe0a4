"""Warm Check through the real RPC against a bare `find` stat walk (issue 18).

Starts the provider binary the way the engine does (it prints its port), configures it,
then, round-robin for N rounds on one unchanged context of F files: `find DIR -printf` (a
stat of every entry, the floor any hash of an unchanged tree pays) and one `Check` of an
`Image` on DIR, each timed from the client (request out, response in). Prints each
median and the ratio warm Check ÷ find; the first Check (cold: it fills the stat cache)
is reported apart and not in the median. A benchmark: compare the ratio, do not clock it.

    python benches/check_rpc.py --binary target/release/pulumi-resource-docker-buildkit \
        [--files 100000] [--rounds 7] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from google.protobuf import struct_pb2
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

TOKEN = "docker-buildkit:index:Image"
URN = f"urn:pulumi:bench::bench::{TOKEN}::app"


def make_tree(root: Path, files: int) -> None:
    """`files` small files, 100 to a directory, two levels deep, and a Dockerfile."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "Dockerfile").write_text("FROM scratch\nCOPY . /\n")
    for i in range(files):
        d = root / f"d{i // 10000:02d}" / f"s{(i // 100) % 100:02d}"
        if i % 100 == 0:
            d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:06d}.txt").write_bytes(b"x" * (64 + i % 64))
    # Old enough for the stat cache's racy-clean margin, as a context at rest is.
    past = time.time() - 60
    for path in [root, *root.rglob("*")]:
        os.utime(path, (past, past), follow_symlinks=False)


def find_walk(root: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        ["find", str(root), "-printf", "%p %s %T@ %m\n"],
        stdout=subprocess.DEVNULL,
        check=True,
    )
    return time.perf_counter() - start


class Provider:
    def __init__(self, binary: Path, home: Path):
        env = dict(os.environ, HOME=str(home), XDG_CACHE_HOME=str(home / "cache"))
        self.proc = subprocess.Popen(
            [str(binary)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
        )
        port = self.proc.stdout.readline().decode().strip()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = provider_pb2_grpc.ResourceProviderStub(self.channel)
        self.stub.Configure(
            provider_pb2.ConfigureRequest(acceptSecrets=True, acceptResources=True)
        )

    def check(self, context: Path) -> float:
        """One Check as the engine sends it in a preview: the program's inputs, and the
        inputs the last Check returned as `olds`."""
        news = struct_pb2.Struct()
        news.update(
            {
                "name": "127.0.0.1:5055/bench/app",
                "context": str(context),
                "tags": ["v1", "latest"],
                "buildArgs": {"A": "1", "B": "2"},
                "labels": {"org.opencontainers.image.source": "bench"},
                "platforms": ["linux/amd64"],
                "push": True,
                "registry": {
                    "server": "127.0.0.1:5055",
                    "username": "bench",
                    "password": "bench-password",
                },
            }
        )
        olds = getattr(self, "olds", struct_pb2.Struct())
        start = time.perf_counter()
        r = self.stub.Check(provider_pb2.CheckRequest(urn=URN, news=news, olds=olds))
        elapsed = time.perf_counter() - start
        if r.failures:
            sys.exit(f"Check failed: {[(f.property, f.reason) for f in r.failures]}")
        self.olds = r.inputs
        return elapsed

    def close(self) -> None:
        self.channel.close()
        self.proc.terminate()
        self.proc.wait(timeout=10)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--binary", type=Path, required=True)
    p.add_argument("--files", type=int, default=100_000)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--dir", type=Path, help="where to make the tree (kept if given)")
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dbk-check-rpc-"))
    root = a.dir or tmp / "ctx"
    try:
        if not (root / "Dockerfile").exists():
            make_tree(root, a.files)
        provider = Provider(a.binary, tmp / "home")
        try:
            cold = provider.check(root)
            find_walk(root)  # the page cache is warm for both from here on
            finds, checks, fresh = [], [], []
            for _ in range(a.rounds):
                finds.append(find_walk(root))
                checks.append(provider.check(root))
                # As in `pulumi preview`: a new provider process, whose first Check finds
                # the stat cache on disk (the olds are the last Check's inputs).
                other = Provider(a.binary, tmp / "home")
                try:
                    other.olds = provider.olds
                    fresh.append(other.check(root))
                finally:
                    other.close()
        finally:
            provider.close()
        f, c = statistics.median(finds), statistics.median(checks)
        print(f"files: {a.files}, rounds: {a.rounds}, load: {os.getloadavg()[0]:.2f}")
        print(f"cold Check (fills the stat cache): {cold * 1000:.0f} ms")
        print(f"find -printf: median {f * 1000:.0f} ms  {[round(x * 1000) for x in finds]}")
        print(f"warm Check:   median {c * 1000:.0f} ms  {[round(x * 1000) for x in checks]}")
        print(f"warm Check ÷ find: {c / f:.2f}")
        n = statistics.median(fresh)
        print(f"first Check of a new process: median {n * 1000:.0f} ms  {[round(x * 1000) for x in fresh]}")
        print(f"first Check of a new process ÷ find: {n / f:.2f}")
    finally:
        if a.dir is None:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            shutil.rmtree(tmp / "home", ignore_errors=True)


if __name__ == "__main__":
    main()
