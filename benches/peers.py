#!/usr/bin/env python3
"""The peers side by side in the same real Pulumi engine (`scripts/bench.sh peers`).

A benchmark, not a test: it asserts nothing and prints a table of ratios to ours (ours =
1.00), medians of `--runs N` rounds (3 by default) measured in the same run, the order of
the participants rotating per round. `--quick`: 1 round, 2,000 files, a 10,000-file preview
context. `--files N`: the build context's size (20,000 files of 4 KiB by default).

Every option has an environment variable, so that `scripts/bench.sh peers` needs no
arguments for a small run (a flag wins over its variable):
  DBK_PEERS_RUNS=3             rounds (medians of these)
  DBK_PEERS_RUNS_FOR=seed=1    fewer rounds for some participants (comma-separated key=N)
  DBK_PEERS_FILES=20000        files in the build context
  DBK_PEERS_FILE_SIZE=4096     bytes per file
  DBK_PEERS_PREVIEW_FILES=100000  files (64 bytes each) in the preview context
  DBK_PEERS_ONLY=ours,docker-build,ours-py,seed,docker-cli,buildx   participants
  DBK_PEERS_SEED_PROBES=1      0 skips the two seed set-ups known to fail
  DBK_PEERS_PRUNE=1, DBK_PEERS_KEEP=1, DBK_PEERS_DIR=/some/dir   as --prune, --keep, --dir

Participants (see BENCHMARKS.md, "the peers in the same Pulumi engine"):
- ours: `docker-buildkit` 0.1.0 from `scripts/dist.sh`'s tarball (`--tarball`), building on
  the Docker host (DOCKER_HOST: the private dockerd 20.10);
- docker-build: Pulumi's `docker-build` 0.0.22 ($DBK_TOOLS_BIN/pulumi-resource-docker-build,
  or $DBK_PEER_DOCKER_BUILD), on the standalone buildkitd through the buildx `remote` builder
  ($DBK_BUILDX_BUILDER), credentials through its `registries` input;
- seed: Materialize's `docker-buildkit` 0.1.27 ($DBK_TOOLS_BIN/pulumi-resource-docker-buildkit-seed),
  which runs `docker login`, `docker buildx build --push` and `docker inspect`. Its GetSchema
  answers nothing, so Pulumi's YAML host cannot type a resource of it (the bench tries, and
  prints the host's error): the seed runs from a Python program (the repo's stand-in Python
  host, scripts/langhost, and a raw `pulumi.CustomResource`), side by side with ours from the
  same Python program ("ours-py"). Tried on the services' buildx `remote` builder
  (BUILDX_BUILDER=dbk-remote) and on the dockerd's own builder, then with a port-less
  registry name (see `Forwarder`); benchmarked in the set-up that completes an update.
- outside Pulumi: `DOCKER_BUILDKIT=1 docker build` + `docker push` against the dockerd, and
  `docker buildx build --builder dbk-remote --push` (buildkitd pushes itself).

Cases: cold (a fresh stack, repository and context directory, with a salt file of its own,
so no layer and no earlier transfer of it exists in any builder), no-op (`pulumi up` again),
after a one-file edit, each the wall-clock time of the whole `pulumi up --yes
--skip-preview`; `pulumi preview` of an unchanged `--preview-files`-file context (100,000
files of 64 bytes; after an up of it); and, beyond the issue's list, `pulumi preview` after
one more file of the build context changed, which shows who builds during a preview
(docker-build's `buildOnPreview` defaults to true). A preview whose output shows BuildKit
progress is marked "builds during preview".

Ours cannot build on a standalone buildkitd yet (it builds through a Docker Engine API
only): the table says so in a column of its own, so that the buildkitd columns
(docker-build, buildx) are not read as ours on the same engine; a second table puts each
provider against the bare CLI on its own engine.

`--prune` also empties the buildkitd cache
(`buildctl prune --all`) and the dockerd's builder cache (`docker builder prune -af`) before
every cold case: off by default, since both daemons are shared with whatever else runs on the
machine and the salt already makes every cold build cold.

Needs the services' env (`source "$(scripts/services.sh env)"`). Everything talks to
127.0.0.1 and the private sockets only; no image is pulled.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKER = "/usr/bin/docker"
OURS_VERSION = next(
    line.split('"')[1] for line in (ROOT / "Cargo.toml").read_text().splitlines()
    if line.startswith("version")
)
DOCKER_BUILD_VERSION = "0.0.22"
SEED_VERSION = "0.1.27"
DOCKERFILE = "FROM scratch\nCOPY . /app/\n"
PER_DIR = 200


def log(msg: str) -> None:
    print(f"peers: {msg}", file=sys.stderr, flush=True)


def env_or_die(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        sys.exit(f'peers: {name} is not set (run: source "$(bash scripts/services.sh env)")')
    return value


def tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


# ------------------------------------------------------------------------------ contexts

def make_master(dir: Path, files: int, size: int) -> None:
    """The context every copy starts from: `files` random files of `size` bytes, 200 per
    directory, and the Dockerfile."""
    dir.mkdir(parents=True)
    (dir / "Dockerfile").write_text(DOCKERFILE)
    for i in range(files):
        sub = dir / f"d{i // PER_DIR:04d}"
        if i % PER_DIR == 0:
            sub.mkdir()
        (sub / f"f{i:06d}").write_bytes(os.urandom(size))
    # Old enough for every stat cache's racy-clean margin before the first build.
    past = time.time() - 60
    for path in [dir, *dir.rglob("*")]:
        os.utime(path, (past, past), follow_symlinks=False)


def copy_context(master: Path, dest: Path, salt: str) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", str(master), str(dest)], check=True)
    (dest / "salt").write_text(salt)
    past = time.time() - 60
    os.utime(dest / "salt", (past, past))


def edit_one_file(ctx: Path, index: int = 0) -> None:
    """One file (the `index`-th of the first directory) rewritten: same size, new content
    and mtime."""
    path = ctx / "d0000" / f"f{index:06d}"
    path.write_bytes(os.urandom(path.stat().st_size))


# ------------------------------------------------------------------------------ registry

class Registry:
    def __init__(self, host: str, user: str, password: str):
        self.host, self.user, self.password = host, user, password

    def has_tag(self, repo: str, tag: str = "latest") -> bool:
        req = urllib.request.Request(f"http://{self.host}/v2/{repo}/manifests/{tag}", method="HEAD")
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
        req.add_header("Accept", ", ".join([
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.index.v1+json",
        ]))
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(req, timeout=30) as resp:
                return resp.status == 200
        except urllib.error.HTTPError:
            return False


def services_up(b: "Bench") -> str | None:
    """None when the registry, the dockerd and buildkitd answer, else what is missing: the
    services are shared (another checkout's `scripts/services.sh down` stops them)."""
    try:
        urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
            f"http://{b.registry.host}/v2/", timeout=10)
    except urllib.error.HTTPError:
        pass
    except OSError as e:
        return f"the registry {b.registry.host} does not answer ({e})"
    if not run([DOCKER, "version"], b.base_env, timeout=30).ok:
        return f"the dockerd {b.docker_host} does not answer"
    c = b.bk_certs
    if not run([str(b.tools / "buildctl"), "--addr", b.bk_host, "--tlscacert", str(c / "ca.pem"),
                "--tlscert", str(c / "cert.pem"), "--tlskey", str(c / "key.pem"),
                "--tlsservername", "127.0.0.1", "debug", "workers"], b.base_env, timeout=30).ok:
        return f"buildkitd {b.bk_host} does not answer"
    return None


class Forwarder:
    """127.0.0.1:80 -> the registry, so that an image name can carry no port: the seed takes
    the registry host of a name as everything before its first `:` (`strings.Split(name,
    ":")[0]`), so with `127.0.0.1:5055/...` it never finds the repo digest it just pushed."""

    def __init__(self, listen: int, target: tuple[str, int]):
        self.target = target
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", listen))
        self.sock.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        buf = bytearray(256 * 1024)
        view = memoryview(buf)
        try:
            while True:
                n = src.recv_into(buf)
                if not n:
                    break
                dst.sendall(view[:n])
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def close(self) -> None:
        self.sock.close()


# ------------------------------------------------------------------------------ runs

@dataclass
class Run:
    seconds: float
    rc: int
    out: str

    @property
    def ok(self) -> bool:
        return self.rc == 0


# ANSI colours, taken out of every transcript (the YAML host colours its errors even with
# --color=never), so that the patterns below see plain text.
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run(cmd: list[str], env: dict[str, str], cwd: Path | None = None,
        stdin: str | None = None, timeout: float = 1800) -> Run:
    """Runs `cmd` to the end, stdout and stderr together; the wall-clock time is the figure."""
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, env=env, cwd=cwd, input=stdin, text=True, timeout=timeout,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=None if stdin is not None else subprocess.DEVNULL)
        rc, out = proc.returncode, proc.stdout
    except subprocess.TimeoutExpired as e:
        partial = e.stdout or b""  # bytes, whatever text=True says
        if isinstance(partial, bytes):
            partial = partial.decode(errors="replace")
        rc, out = -1, f"timed out after {timeout}s\n{partial}"
    return Run(time.monotonic() - start, rc, ANSI.sub("", out))


def save(tmp: Path, name: str, r: Run) -> None:
    """Every run's output, kept in the temp dir (with --keep) for a look afterwards."""
    logs = tmp / "logs"
    logs.mkdir(exist_ok=True)
    (logs / f"{name}.txt").write_text(f"rc={r.rc} seconds={r.seconds:.3f}\n{r.out}")


def diagnostics(out: str) -> str:
    """The image's own errors in a failed update (its block of the engine's `Diagnostics:`
    section): each `error:` line, with the line after it when the error goes on there
    (`docker inspect failed: exit status 1:` + `Error: No such object: ...`), but not a
    build log (lines of BuildKit progress, `#N ...`)."""
    m = re.search(r"^Diagnostics:\n(.*?)(?:^\S|\Z)", out, re.M | re.S)
    lines = (m.group(1) if m else "").splitlines()
    keep, on = [], False
    for i, line in enumerate(lines):
        if re.match(r"^  \S", line):  # the header of a resource's block
            on = "Image" in line
            continue
        text = line.strip()
        if not (on and text.startswith("error:")):
            continue
        follow = lines[i + 1].strip() if i + 1 < len(lines) else ""
        if text.endswith(":") and follow and not follow.startswith(("#", "error:")):
            text = f"{text} {follow}"
        keep.append("    " + text)
    return "\n".join(keep[-4:]) or tail(out, 8)


def changes(out: str) -> str:
    """The engine's summary line(s) of an update, e.g. `1 updated, 1 unchanged`."""
    found = re.findall(r"^\s*([+~\-]?\s*\d+ (?:to )?(?:created?|updated?|unchanged|replaced?|"
                       r"deleted?|create|update|replace))", out, re.M)
    return ", ".join(" ".join(f.split()) for f in found) or "?"


@dataclass
class Peer:
    key: str
    title: str
    runtime: str                   # yaml | python
    plugin: str
    version: str
    file: Path | None
    env: dict[str, str] = field(default_factory=dict)
    registry_host: str = ""        # the registry as image names spell it
    unavailable: str | None = None  # why this peer cannot run at all
    note: str = ""
    # set up by Bench.install
    home: Path | None = None
    backend: Path | None = None


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.registry = Registry(env_or_die("DBK_REGISTRY"), env_or_die("DBK_REGISTRY_USER"),
                                 env_or_die("DBK_REGISTRY_PASSWORD"))
        self.tools = Path(env_or_die("DBK_TOOLS_BIN"))
        self.docker_host = env_or_die("DOCKER_HOST")
        self.docker_config = Path(env_or_die("DBK_DOCKER_CONFIG"))
        self.builder = env_or_die("DBK_BUILDX_BUILDER")
        self.bk_host = env_or_die("DBK_BUILDKIT_TCP_HOST")
        self.bk_certs = Path(env_or_die("DBK_BUILDKIT_CERT_PATH"))
        self.run_id = uuid.uuid4().hex[:8]
        self.tmp = Path(tempfile.mkdtemp(prefix="dbk-peers-", dir=args.dir))
        self.forwarder: Forwarder | None = None
        self.notes: list[str] = []
        self.base_env = {
            k: v for k, v in os.environ.items()
            if not k.startswith(("PULUMI_", "BUILDX_")) and k not in ("DOCKER_CONFIG", "VIRTUAL_ENV")
        }
        # The CLI, the YAML host and the Python executor only: with $DBK_TOOLS_BIN itself on
        # PATH the engine would run pulumi-resource-docker-build from there ("using ... from
        # $PATH") instead of the plugin installed for the run.
        bin = self.tmp / "bin"
        bin.mkdir()
        for name in ("pulumi", "pulumi-language-yaml", "pulumi-language-python-exec"):
            (bin / name).symlink_to(os.path.realpath(self.tools / name))
        path = [str(bin), *self.base_env.get("PATH", "/usr/bin:/bin").split(":"),
                str(ROOT / "scripts" / "langhost")]
        self.base_env.update({
            "PATH": ":".join(path),
            "PULUMI_CONFIG_PASSPHRASE": "peers-bench",
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PULUMI_SKIP_CONFIRMATIONS": "true",
            "DBK_LANGHOST_PYTHON": sys.executable,
            "XDG_CACHE_HOME": str(self.tmp / "xdg-cache"),
            # Nothing of the user's own home (docker, buildx, pulumi state) is read or written.
            "HOME": str(self.tmp / "home"),
            "PYTHONDONTWRITEBYTECODE": "1",
            "NO_COLOR": "1",
        })
        (self.tmp / "home").mkdir()

    # -------------------------------------------------------------- set-up

    def private_docker_config(self, name: str, login: str | None) -> Path:
        """A copy of the services' DOCKER_CONFIG (the buildx plugin and the dbk-remote builder),
        so that logins land in a config of this run, not the shared one."""
        dest = self.tmp / "docker-config" / name
        shutil.copytree(self.docker_config, dest, symlinks=True)
        (dest / "config.json").write_text("{}")
        if login:
            r = run([DOCKER, "login", "-u", self.registry.user, "--password-stdin", login],
                    {**self.base_env, "DOCKER_CONFIG": str(dest)}, stdin=self.registry.password)
            if not r.ok:
                raise RuntimeError(f"docker login {login} failed:\n{tail(r.out)}")
        return dest

    def peers(self, tarball: Path) -> list[Peer]:
        reg = self.registry.host
        docker_build_bin = Path(os.environ.get("DBK_PEER_DOCKER_BUILD")
                                or self.tools / "pulumi-resource-docker-build")
        seed_bin = self.tools / "pulumi-resource-docker-buildkit-seed"
        peers = [
            Peer("ours", "ours", "yaml", "docker-buildkit", OURS_VERSION, tarball,
                 registry_host=reg),
            Peer("docker-build", "docker-build", "yaml", "docker-build", DOCKER_BUILD_VERSION,
                 docker_build_bin, registry_host=reg,
                 env={"DOCKER_CONFIG": str(self.private_docker_config("docker-build", None))}),
            Peer("ours-py", "ours (Python host)", "python", "docker-buildkit", OURS_VERSION,
                 tarball, registry_host=reg),
            Peer("seed", "seed (Python host)", "python", "docker-buildkit", SEED_VERSION,
                 seed_bin, registry_host=reg),
        ]
        for p in peers:
            if p.file is None or not p.file.exists():
                p.unavailable = ("could not be built (see `bash scripts/services.sh tools peers`)"
                                 if p.key != "ours" else f"no tarball {p.file}")
        self.all_peers = [p for p in peers if p.key in self.args.peers]
        return self.all_peers

    def pulumi(self, peer: Peer, cwd: Path, *args: str, timeout: float = 1800) -> Run:
        env = {**self.base_env, **peer.env, "PULUMI_HOME": str(peer.home),
               "PULUMI_BACKEND_URL": f"file://{peer.backend}"}
        return run(["pulumi", *args, "--color=never"], env, cwd=cwd, timeout=timeout)

    def install(self, peer: Peer) -> None:
        peer.home = self.tmp / "homes" / peer.key
        peer.backend = self.tmp / "backends" / peer.key
        peer.home.mkdir(parents=True)
        peer.backend.mkdir(parents=True)
        r = self.pulumi(peer, self.tmp, "plugin", "install", "resource", peer.plugin,
                        peer.version, "--file", str(peer.file))
        if not r.ok:
            peer.unavailable = f"`pulumi plugin install` failed: {tail(r.out, 3)}"
            return
        listing = self.pulumi(peer, self.tmp, "plugin", "ls").out
        log(f"{peer.key}: installed {peer.plugin} {peer.version}\n{listing.strip()}")

    def program(self, peer: Peer, dir: Path, repo: str, ctx: str = "./ctx") -> None:
        """The same program for every peer: one image, `FROM scratch` + `COPY . /app/` over
        ./ctx, pushed to `repo` (under the peer's registry host) as `latest`."""
        dir.mkdir(parents=True, exist_ok=True)
        name = f"{peer.registry_host}/{repo}"
        project = f"peers-{peer.key}"
        if peer.runtime == "yaml":
            if peer.key == "docker-build":
                props = f"""\
      tags: ["{name}:latest"]
      context: {{location: {ctx}}}
      push: true
      builder: {{name: {self.builder}}}
      registries:
        - address: {peer.registry_host}
          username: {self.registry.user}
          password: ${{password}}"""
                rtype = "docker-build:Image"
            else:
                props = f"""\
      name: {name}
      context: {ctx}
      registry:
        server: {peer.registry_host}
        username: {self.registry.user}
        password: ${{password}}"""
                rtype = "docker-buildkit:Image"
            (dir / "Pulumi.yaml").write_text(f"""\
name: {project}
runtime: yaml
config:
  password: {{type: string, secret: true}}
resources:
  image:
    type: {rtype}
    properties:
{props}
    options:
      version: {peer.version}
""")
        else:
            # Python: a raw CustomResource (the seed has no SDK here, and ours goes the same way,
            # so the two Python columns differ only in the provider), in the repo's .venv.
            (dir / "Pulumi.yaml").write_text(
                f"name: {project}\nruntime:\n  name: python\n  options:\n"
                f"    virtualenv: {Path(sys.executable).parent.parent}\n")
            props = {"name": name, "context": ctx,
                     "registry": {"server": peer.registry_host, "username": self.registry.user}}
            if peer.key == "seed":
                # The seed has no defaults for these (`-f <context>/<dockerfile>`), and its Diff
                # compares the inputs with its stored outputs, which always hold dockerfile,
                # target, cacheTo and platforms: without them here no `up` would be a no-op.
                props.update({"dockerfile": "Dockerfile", "target": "", "cacheTo": "type=inline",
                              "platforms": ["linux/amd64"]})
            (dir / "__main__.py").write_text(f"""\
import json
import pulumi

props = json.loads({json.dumps(json.dumps(props))})
props["registry"]["password"] = pulumi.Config().require_secret("password")
pulumi.CustomResource("docker-buildkit:index:Image", "image", props,
                      opts=pulumi.ResourceOptions(version="{peer.version}"))
""")

    def new_stack(self, peer: Peer, dir: Path) -> Run:
        stack = f"s{uuid.uuid4().hex[:6]}"
        r = self.pulumi(peer, dir, "stack", "init", stack)
        if r.ok:
            r = self.pulumi(peer, dir, "config", "set", "--secret", "password",
                            self.registry.password)
        return r

    def prune(self) -> None:
        if not self.args.prune:
            return
        c = self.bk_certs
        run([str(self.tools / "buildctl"), "--addr", self.bk_host, "--tlscacert", str(c / "ca.pem"),
             "--tlscert", str(c / "cert.pem"), "--tlskey", str(c / "key.pem"),
             "--tlsservername", "127.0.0.1", "prune", "--all"], self.base_env)
        run([DOCKER, "builder", "prune", "-af"], self.base_env)

    # -------------------------------------------------------------- the seed's set-up

    def probe_seed_yaml(self, seed: Peer) -> str:
        """Why the seed cannot run from the YAML program the others run: a `pulumi preview` of
        that program with the seed's plugin; returns the YAML host's error (or "" if it ran)."""
        yaml_seed = Peer("seed-yaml", "seed", "yaml", seed.plugin, seed.version, seed.file,
                         registry_host=self.registry.host, home=seed.home, backend=seed.backend)
        dir = self.tmp / "probe" / "yaml"
        self.program(yaml_seed, dir, f"peers-{self.run_id}/seed-probe-yaml")
        (dir / "ctx").mkdir()
        (dir / "ctx" / "Dockerfile").write_text(DOCKERFILE)
        r = self.new_stack(yaml_seed, dir)
        if r.ok:
            r = self.pulumi(yaml_seed, dir, "preview")
        save(self.tmp, "probe-seed-yaml", r)
        if r.ok:
            return ""
        m = re.search(r"Error\W*: (.*)", r.out)
        why = m.group(1).strip() if m else tail(r.out, 1)
        log(f"seed from the YAML program: {why}")
        return why

    def probe_seed(self, seed: Peer) -> None:
        """Two set-ups that fail, with their errors, then the one benchmarked (if any).
        DBK_PEERS_SEED_PROBES=0 skips the two that fail."""
        probe_ctx = self.tmp / "probe-master"
        make_master(probe_ctx, 3, 64)

        def attempt(label: str, env: dict[str, str], host: str) -> Run:
            seed.env, seed.registry_host = env, host
            dir = self.tmp / "probe" / label
            self.program(seed, dir, f"peers-{self.run_id}/seed-probe-{label}")
            copy_context(probe_ctx, dir / "ctx", f"probe {label}")
            r = self.new_stack(seed, dir)
            if r.ok:
                r = self.pulumi(seed, dir, "up", "--yes", "--skip-preview")
            save(self.tmp, f"probe-{label}", r)
            log(f"seed probe {label}: rc={r.rc}\n{tail(r.out, 25)}")
            if not r.ok:
                self.notes.append(f"seed, {label}: `pulumi up` exited {r.rc}:\n"
                                  + diagnostics(r.out))
            return r

        local = {"DOCKER_CONFIG": str(self.private_docker_config("seed-dockerd", None)),
                 "BUILDX_BUILDER": "default"}
        if not self.args.seed_probes:
            self.notes.append("seed: the set-ups known to fail were not tried "
                              "(DBK_PEERS_SEED_PROBES=0)")
        else:
            remote = {"DOCKER_CONFIG": str(self.private_docker_config("seed-remote", None)),
                      "BUILDX_BUILDER": self.builder}
            attempt("buildx-remote", remote, self.registry.host)
            attempt("dockerd-builder-port-5055", local, self.registry.host)
        if self.forwarder is None:
            try:
                port = int(self.registry.host.rsplit(":", 1)[1])
                self.forwarder = Forwarder(80, ("127.0.0.1", port))
            except OSError as e:
                seed.unavailable = (f"fails in every set-up tried (see the notes); "
                                    f"127.0.0.1:80 for a port-less registry name: {e}")
                return
        # The remote builder cannot get past `docker inspect` whatever the name, so only the
        # dockerd's own builder is tried with a port-less name.
        r = attempt("dockerd-builder-port-80", local, "127.0.0.1")
        if r.ok:
            seed.note = ("benchmarked with BUILDX_BUILDER=default (buildx's `docker` driver: "
                         "builds in the dockerd, which pushes) and the registry named `127.0.0.1` "
                         f"(a forwarder in this script on 127.0.0.1:80 to {self.registry.host}); "
                         "ours (Python host) uses the same registry name")
            for p in self.all_peers:
                if p.key == "ours-py":
                    p.registry_host = "127.0.0.1"
            return
        seed.unavailable = "fails in every set-up tried (see the notes)"


# ------------------------------------------------------------------------------ the run

CASES = ["cold", "no-op", "edit", "preview", "preview-edit"]
CASE_TITLES = {
    "cold": "cold `pulumi up`",
    "no-op": "no-op `pulumi up`",
    "edit": "`pulumi up` after a one-file edit",
    "preview": "`pulumi preview`, unchanged {pf}-file context",
    "preview-edit": "(extra) `pulumi preview` after a one-file edit",
    "big-up": "(once) `pulumi up` of the {pf}-file context",
}

# BuildKit's plain progress in an engine transcript: the provider ran a build.
BUILD_PROGRESS = re.compile(r"#\d+ (?:\[internal\] load build definition|transferring context)")


class Results:
    def __init__(self, tmp: Path | None = None):
        self.tmp = tmp
        self.times: dict[tuple[str, str], list[float]] = {}
        self.failures: dict[tuple[str, str], str] = {}
        self.attempts: dict[tuple[str, str], int] = {}
        self.summaries: dict[tuple[str, str], list[str]] = {}
        # (who, case) of the previews whose output showed BuildKit progress: they built.
        self.built_in_preview: set[tuple[str, str]] = set()

    def add(self, who: str, case: str, r: Run, summary: str = "") -> bool:
        if self.tmp:
            # One log per attempt (a failed round and the next one's retry are both kept).
            n = self.attempts[(who, case)] = self.attempts.get((who, case), 0) + 1
            save(self.tmp, f"{who}-{case}-{n}", r)
        if r.ok:
            self.times.setdefault((who, case), []).append(r.seconds)
            if summary:
                self.summaries.setdefault((who, case), []).append(summary)
            return True
        # The first failure of a case is kept (a later round may still succeed), with the
        # image's own error lines when the engine printed them.
        self.failures.setdefault((who, case), f"exit {r.rc}: {diagnostics(r.out).strip()}")
        return False

    def median(self, who: str, case: str) -> float | None:
        t = self.times.get((who, case))
        return statistics.median(t) if t else None


def pulumi_round(b: Bench, peer: Peer, rnd: int, master: Path, res: Results) -> None:
    b.prune()
    dir = b.tmp / "programs" / f"{peer.key}-r{rnd}"
    repo = f"peers-{b.run_id}/{peer.key}-r{rnd}"
    b.program(peer, dir, repo)
    copy_context(master, dir / "ctx", f"{peer.key} {rnd} {uuid.uuid4()}")
    r = b.new_stack(peer, dir)
    if not r.ok:
        res.add(peer.key, "cold", r)
        return
    r = b.pulumi(peer, dir, "up", "--yes", "--skip-preview")
    pushed = r.ok and b.registry.has_tag(repo)
    log(f"{peer.key} r{rnd} cold: {r.seconds:.2f}s rc={r.rc} pushed={pushed} [{changes(r.out)}]")
    if r.ok and not pushed:
        r = Run(r.seconds, 99, r.out + "\n(the registry has no such tag afterwards)")
    if not res.add(peer.key, "cold", r, changes(r.out)):
        log(tail(r.out, 30))
        return
    r = b.pulumi(peer, dir, "up", "--yes", "--skip-preview")
    log(f"{peer.key} r{rnd} no-op: {r.seconds:.2f}s rc={r.rc} [{changes(r.out)}]")
    res.add(peer.key, "no-op", r, changes(r.out))
    edit_one_file(dir / "ctx")
    r = b.pulumi(peer, dir, "up", "--yes", "--skip-preview")
    log(f"{peer.key} r{rnd} edit: {r.seconds:.2f}s rc={r.rc} [{changes(r.out)}]")
    res.add(peer.key, "edit", r, changes(r.out))
    # Beyond the cases: a preview with one more file changed. Nothing is updated,
    # but a provider that builds on preview builds here (docker-build's buildOnPreview).
    edit_one_file(dir / "ctx", index=1)
    r = b.pulumi(peer, dir, "preview")
    built = r.ok and bool(BUILD_PROGRESS.search(r.out))
    if built:
        res.built_in_preview.add((peer.key, "preview-edit"))
    log(f"{peer.key} r{rnd} preview after an edit: {r.seconds:.2f}s rc={r.rc} built={built} "
        f"[{changes(r.out)}]")
    res.add(peer.key, "preview-edit", r, changes(r.out) + (" (built)" if built else ""))
    skipped = re.search(r"warning: (Skipping preview build[^\n]*)", r.out)
    if skipped:
        note = (f"{peer.key}: the preview after an edit did not build; it warned "
                f'"{skipped.group(1).strip()}"')
        if note not in b.notes:
            b.notes.append(note)
    shutil.rmtree(dir / "ctx", ignore_errors=True)


def preview_round(b: Bench, peer: Peer, rnd: int, big_master: Path, res: Results) -> None:
    dir = b.tmp / "programs" / f"{peer.key}-big"
    if rnd == 0 or not (dir / "ctx").exists():
        b.program(peer, dir, f"peers-{b.run_id}/{peer.key}-big")
        copy_context(big_master, dir / "ctx", f"{peer.key} big {uuid.uuid4()}")
        r = b.new_stack(peer, dir)
        if r.ok:
            r = b.pulumi(peer, dir, "up", "--yes", "--skip-preview")
        log(f"{peer.key} big up: {r.seconds:.2f}s rc={r.rc} [{changes(r.out)}]")
        if not res.add(peer.key, "big-up", r, changes(r.out)):
            res.add(peer.key, "preview", Run(0, r.rc, "the up of the preview context failed:\n"
                                             + r.out))
            shutil.rmtree(dir / "ctx", ignore_errors=True)
            return
    if not (dir / "ctx").exists():
        return
    r = b.pulumi(peer, dir, "preview")
    built = r.ok and bool(BUILD_PROGRESS.search(r.out))
    if built:
        res.built_in_preview.add((peer.key, "preview"))
    log(f"{peer.key} r{rnd} preview: {r.seconds:.2f}s rc={r.rc} built={built} "
        f"[{changes(r.out)}]")
    res.add(peer.key, "preview", r, changes(r.out) + (" (built)" if built else ""))


def cli_round(b: Bench, who: str, rnd: int, master: Path, res: Results,
              config: Path) -> None:
    b.prune()
    ctx = b.tmp / "cli" / f"{who}-r{rnd}"
    ref = f"{b.registry.host}/peers-{b.run_id}/{who}-r{rnd}:latest"
    copy_context(master, ctx, f"{who} {rnd} {uuid.uuid4()}")
    env = {**b.base_env, "DOCKER_CONFIG": str(config)}
    if who == "docker-cli":
        env["DOCKER_BUILDKIT"] = "1"

        def build() -> Run:
            r = run([DOCKER, "build", "-t", ref, str(ctx)], env)
            if not r.ok:
                return r
            p = run([DOCKER, "push", ref], env)
            return Run(r.seconds + p.seconds, p.rc, r.out + p.out)
    else:
        def build() -> Run:
            return run([DOCKER, "buildx", "build", "--builder", b.builder, "--push", "-t", ref,
                        str(ctx)], env)
    for case in ("cold", "no-op", "edit"):
        if case == "edit":
            edit_one_file(ctx)
        r = build()
        log(f"{who} r{rnd} {case}: {r.seconds:.2f}s rc={r.rc}")
        if not res.add(who, case, r):
            log(tail(r.out, 30))
            break
    shutil.rmtree(ctx, ignore_errors=True)


def machine(label: str) -> str:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{label}: nproc {os.cpu_count()}, load average {load}"


def go_modules(binary: Path, wanted: tuple[str, ...]) -> str:
    """The versions of some Go modules a binary was built with (`go version -m`): what a
    peer embeds (docker-build links buildx and BuildKit's client in)."""
    r = run(["go", "version", "-m", str(binary)], {**os.environ, "GOTOOLCHAIN": "local"},
            timeout=60)
    if not r.ok:
        return "?"
    found = {}
    for line in r.out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] in ("mod", "dep") and parts[1] in wanted:
            found[parts[1]] = parts[2]
    go = r.out.split(":", 1)[1].split()[0] if ":" in r.out else "?"
    return ", ".join([f"{m} {v}" for m, v in found.items()] + [f"built with {go}"])


def versions(b: Bench) -> list[str]:
    env = {**b.base_env, "DOCKER_CONFIG": str(b.docker_config)}
    out = []
    for cmd in (["pulumi", "version"],
                [str(b.tools / "buildkitd"), "--version"],
                [DOCKER, "version", "--format",
                 "docker CLI (/usr/bin/docker) {{.Client.Version}}, dockerd {{.Server.Version}} "
                 "(API {{.Server.APIVersion}})"],
                ["docker", "--version"],
                [DOCKER, "buildx", "version"]):
        r = run(cmd, env, timeout=60)
        first = r.out.strip().splitlines()[0] if r.out.strip() else "?"
        out.append(f"{Path(cmd[0]).name}: {first}" if r.ok else f"{' '.join(cmd)}: exit {r.rc}")
    out[3] = (f"docker on PATH (the seed runs it): {shutil.which('docker', path=env['PATH'])}, "
              + out[3].split(": ", 1)[1])
    for name, binary, wanted in (
            ("pulumi-language-yaml", b.tools / "pulumi-language-yaml",
             ("github.com/pulumi/pulumi-yaml",)),
            ("docker-build", b.tools / "pulumi-resource-docker-build",
             ("github.com/pulumi/pulumi-docker-build", "github.com/docker/buildx",
              "github.com/moby/buildkit", "github.com/pulumi/pulumi/sdk/v3")),
            ("seed", b.tools / "pulumi-resource-docker-buildkit-seed",
             ("github.com/MaterializeInc/pulumi-docker-buildkit",
              "github.com/pulumi/pulumi/sdk/v3", "github.com/moby/buildkit"))):
        if binary.exists():
            out.append(f"{name}: {go_modules(binary, wanted)}")
    return out


def fmt_seconds(s: float) -> str:
    return f"{s:.2f} s"


def table(res: Results, cols: list[tuple[str, str]], base: str, cases: list[str],
          unavailable: dict[str, str], pf: int) -> str:
    head = "| case | " + " | ".join(title for _, title in cols) + " |"
    lines = [head, "|---|" + "---:|" * len(cols)]
    for i, case in enumerate(cases):
        row = [CASE_TITLES[case].format(pf=f"{pf:,}")]
        ref = res.median(base, case)
        for who, _ in cols:
            if who in unavailable:
                # Why, once, in the first row; the column's other cells stay empty.
                row.append(unavailable[who] if i == 0 else "—")
                continue
            m = res.median(who, case)
            if m is None:
                why = res.failures.get((who, case))
                row.append(f"failed ({why.splitlines()[0]})" if why and not why.startswith("n/a")
                           else (why or "—"))
                continue
            cell = f"**{m / ref:.2f}** ({fmt_seconds(m)})" if ref else fmt_seconds(m)
            n = len(res.times[(who, case)])
            if n != len(res.times.get((base, case), [])):
                cell += f", {n} sample{'s' if n > 1 else ''}"
            if (who, case) in res.built_in_preview:
                cell += ", builds during preview"
            row.append(cell)
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def env_default(name: str, fallback, kind=int):
    """An option's default from its environment variable (DBK_PEERS_*), else `fallback`."""
    value = os.environ.get(name, "").strip()
    if not value:
        return fallback
    if kind is bool:
        return value not in ("0", "false", "no")
    try:
        return kind(value)
    except ValueError:
        sys.exit(f"peers: {name}={value!r} is not a valid {kind.__name__}")


def parse_runs_for(text: str) -> dict[str, int]:
    """`seed=1,ours-py=2` -> {"seed": 1, "ours-py": 2}."""
    out = {}
    for item in filter(None, (x.strip() for x in text.split(","))):
        key, _, n = item.partition("=")
        if not n.isdigit() or int(n) < 1:
            sys.exit(f"peers: --runs-for {item!r}: expected key=N with N >= 1")
        out[key] = int(n)
    return out


ALL_PARTICIPANTS = "ours,docker-build,ours-py,seed,docker-cli,buildx"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tarball", type=Path, required=True, help="scripts/dist.sh's tarball of ours")
    ap.add_argument("--quick", action="store_true",
                    help="1 round, 2,000 files, a 10,000-file preview context")
    ap.add_argument("--runs", type=int, default=env_default("DBK_PEERS_RUNS", None))
    ap.add_argument("--runs-for", default=env_default("DBK_PEERS_RUNS_FOR", "", str),
                    help="fewer rounds for some participants, e.g. seed=1")
    ap.add_argument("--files", type=int, default=env_default("DBK_PEERS_FILES", None))
    ap.add_argument("--file-size", type=int, default=env_default("DBK_PEERS_FILE_SIZE", 4096))
    ap.add_argument("--preview-files", type=int,
                    default=env_default("DBK_PEERS_PREVIEW_FILES", None))
    ap.add_argument("--prune", action="store_true",
                    default=env_default("DBK_PEERS_PRUNE", False, bool),
                    help="empty the buildkitd and dockerd builder caches before every cold case")
    ap.add_argument("--peers", default=env_default("DBK_PEERS_ONLY", ALL_PARTICIPANTS, str),
                    help=f"comma-separated subset of {ALL_PARTICIPANTS}")
    ap.add_argument("--no-seed-probes", dest="seed_probes", action="store_false",
                    default=env_default("DBK_PEERS_SEED_PROBES", True, bool),
                    help="skip the two seed set-ups known to fail")
    ap.add_argument("--dir", default=env_default("DBK_PEERS_DIR", None, str),
                    help="where the temp dir goes")
    ap.add_argument("--keep", action="store_true", default=env_default("DBK_PEERS_KEEP", False, bool),
                    help="keep the temp dir (every run's output is in its logs/)")
    args = ap.parse_args()
    quick = args.quick
    args.runs = args.runs or (1 if quick else 3)
    args.files = args.files or (2_000 if quick else 20_000)
    args.preview_files = args.preview_files or (10_000 if quick else 100_000)
    args.peers = [p for p in args.peers.split(",") if p]
    unknown = set(args.peers) - set(ALL_PARTICIPANTS.split(","))
    if unknown:
        sys.exit(f"peers: unknown participants {sorted(unknown)} (known: {ALL_PARTICIPANTS})")
    runs_for = parse_runs_for(args.runs_for)

    started = time.monotonic()
    b = Bench(args)
    print("== machine")
    print(machine("start"))
    print(f"ours: docker-buildkit {OURS_VERSION} ({args.tarball.name})")
    for v in versions(b):
        print(v)
    print(f"temp dir: {b.tmp}; runs {args.runs}"
          + "".join(f", {k} {n}" for k, n in runs_for.items())
          + f"; context {args.files} x {args.file_size} B; "
          f"preview context {args.preview_files} x 64 B; prune {'on' if args.prune else 'off'}",
          flush=True)
    res = Results(b.tmp)
    seed_yaml_error = ""
    try:
        peers = b.peers(args.tarball.resolve())
        for p in peers:
            if p.unavailable is None:
                b.install(p)
        seed = next((p for p in peers if p.key == "seed"), None)
        if seed and seed.unavailable is None:
            seed_yaml_error = b.probe_seed_yaml(seed)
            b.probe_seed(seed)
        runnable = [p for p in peers if p.unavailable is None]
        log("making the contexts")
        master = b.tmp / "master"
        make_master(master, args.files, args.file_size)
        big_master = b.tmp / "big-master"
        make_master(big_master, args.preview_files, 64)
        time.sleep(2.5)
        clis = [c for c in ("docker-cli", "buildx") if c in args.peers]
        cli_configs = {c: b.private_docker_config(c, b.registry.host) for c in clis}
        order = [*[p.key for p in runnable], *clis]
        by_key = {p.key: p for p in runnable}
        for rnd in range(args.runs):
            # Rotated so that no participant always runs first (or right after another).
            rotated = order[rnd % len(order):] + order[:rnd % len(order)]
            rotated = [w for w in rotated if rnd < runs_for.get(w, args.runs)]
            print(f"== round {rnd + 1}/{args.runs}: {' '.join(rotated)}; {machine('load')}",
                  flush=True)
            down = services_up(b)
            if down:
                print(f"peers: stopping before round {rnd + 1}: {down} (the services are shared; "
                      "was `scripts/services.sh down` run elsewhere?)", flush=True)
                b.notes.append(f"stopped before round {rnd + 1}: {down}")
                break
            for who in rotated:
                if who in by_key:
                    pulumi_round(b, by_key[who], rnd, master, res)
                else:
                    cli_round(b, who, rnd, master, res, cli_configs[who])
            for who in rotated:
                if who in by_key:
                    preview_round(b, by_key[who], rnd, big_master, res)
    finally:
        if b.forwarder:
            b.forwarder.close()
        # Our images in the dockerd (the registry keeps its copies), by id: an image that a
        # later build of the same tag replaced is left as `<none>` and has no name to remove.
        rows = run([DOCKER, "images", "--format", "{{.ID}} {{.Repository}}"], b.base_env).out
        mine = sorted({row.split()[0] for row in rows.splitlines()
                       if len(row.split()) == 2 and f"peers-{b.run_id}/" in row.split()[1]})
        if mine:
            run([DOCKER, "rmi", "-f", *mine], b.base_env)
        if not args.keep:
            shutil.rmtree(b.tmp, ignore_errors=True)

    unavailable = {p.key: p.unavailable for p in peers if p.unavailable}
    cases = [*CASES, "big-up"]
    pf = args.preview_files
    # What the CLI columns have no counterpart of.
    for c in ("docker-cli", "buildx"):
        for case in ("preview", "preview-edit", "big-up"):
            res.failures.setdefault((c, case), "n/a (no preview)" if "preview" in case else "n/a")

    print("\n== Pulumi YAML host (ours = 1.00; ratio, then the median's seconds)")
    yaml_cols = [("ours", "ours (Docker host: dockerd 20.10)")]
    yu = dict(unavailable)
    # Ours has no way to build on a standalone buildkitd yet: a column that says so, beside
    # the two that build there.
    yaml_cols.append(("ours-bk", "ours on the buildkitd"))
    yu["ours-bk"] = "cannot yet (builds through a Docker Engine API only)"
    if "docker-build" in args.peers:
        yaml_cols.append(("docker-build", "docker-build (buildkitd, buildx `remote`)"))
    if "seed" in args.peers:
        yaml_cols.append(("seed-yaml", "seed"))
        if "seed" in unavailable:
            yu["seed-yaml"] = unavailable["seed"]
        elif seed_yaml_error:
            yu["seed-yaml"] = f"cannot run from YAML: {seed_yaml_error}"
    yaml_cols += [(k, t) for k, t in (("docker-cli", "`docker build` + `docker push` (dockerd)"),
                                      ("buildx", "`docker buildx build --push` (buildkitd)"))
                  if k in args.peers]
    print(table(res, yaml_cols, "ours", cases, yu, pf))
    # Like with like: each provider against the bare CLI on its own engine (the provider's
    # cost over the build itself), since ours and docker-build build on different engines.
    pairs = [(w, cli, title) for w, cli, title in (
        ("ours", "docker-cli", "ours ÷ `docker build` + `docker push` (both dockerd 20.10)"),
        ("docker-build", "buildx", "docker-build ÷ `docker buildx build --push` (both buildkitd)"))
        if w in args.peers and cli in args.peers and w not in unavailable]
    if pairs:
        print("\n== each provider against the bare CLI on the same engine (ratio of medians)")
        print("| case | " + " | ".join(t for _, _, t in pairs) + " |")
        print("|---|" + "---:|" * len(pairs))
        for case in ("cold", "no-op", "edit"):
            cells = []
            for w, cli, _ in pairs:
                a, c = res.median(w, case), res.median(cli, case)
                cells.append(f"**{a / c:.2f}**" if a and c else "—")
            print(f"| {CASE_TITLES[case]} | " + " | ".join(cells) + " |")
    py_cols = [(k, t) for k, t in (("ours-py", "ours (Python host)"),
                                   ("seed", "seed (Python host)")) if k in args.peers]
    if py_cols:
        print("\n== Pulumi Python host, raw CustomResource (ours (Python host) = 1.00)")
        print(table(res, py_cols, "ours-py", cases, unavailable, pf))
    print("\n== what each update changed (engine summaries, per round)")
    for (who, case), s in sorted(res.summaries.items()):
        print(f"{who} {case}: {' / '.join(s)}")
    print("\n== all samples (seconds)")
    for (who, case), t in sorted(res.times.items()):
        print(f"{who} {case}: {' '.join(f'{x:.2f}' for x in t)}")
    failures = {k: v for k, v in res.failures.items() if not v.startswith("n/a")}
    if failures:
        print("\n== failures")
        for (who, case), why in sorted(failures.items()):
            print(f"-- {who} {case}: {why}")
    print("\n== notes")
    for p in peers:
        if p.note:
            print(f"{p.key}: {p.note}")
    for n in b.notes:
        print(n)
    print("\n== machine")
    print(machine("end"))
    print(f"wall time of the whole run: {(time.monotonic() - started) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
