"""The real Pulumi CLI driving the provider, as a user runs it.

Everything here is what a user has: the `pulumi` CLI (built from its Go module by
scripts/services/tools.sh), a language host, our SDKs installed from `sdk/`, and our plugin
installed from `make dist`'s tarball with `pulumi plugin install --file`. The backend is a
`file://` directory in a temp dir, secrets use the passphrase provider, update checks and
plugin downloads are off, and nothing leaves the machine: the registry and dockerd are the
private ones of scripts/services.sh.

Needs the services' env (`source "$(scripts/services.sh env)"`) and the tools on PATH
(`$DBK_TOOLS_BIN`). Without them every test here skips with one line saying what is missing,
unless DBK_REQUIRE_ENGINE=1 (scripts/test.sh sets it), which turns the skip into a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from registry import Registry  # noqa: E402

VERSION_LINE = next(
    line for line in (ROOT / "Cargo.toml").read_text().splitlines() if line.startswith("version")
)
PLUGIN_VERSION = VERSION_LINE.split('"')[1]
BINARY = "pulumi-resource-docker-buildkit"


def _missing() -> str | None:
    for var in ("DBK_REGISTRY", "DBK_REGISTRY_USER", "DBK_REGISTRY_PASSWORD", "DOCKER_HOST"):
        if not os.environ.get(var):
            return f"{var} is not set (run: source \"$(scripts/services.sh env)\")"
    tools = os.environ.get("DBK_TOOLS_BIN", "")
    if not tools or not (Path(tools) / "pulumi").exists():
        return "the Pulumi CLI is not built (DBK_TOOLS_BIN; run: scripts/services.sh up)"
    if not (ROOT / "target" / "debug" / BINARY).exists():
        return f"target/debug/{BINARY} is not built (run: cargo build --bins)"
    return None


def pytest_collection_modifyitems(config, items):
    reason = _missing()
    if reason is None:
        return
    if os.environ.get("DBK_REQUIRE_ENGINE") == "1":
        raise pytest.UsageError(f"engine tests cannot run: {reason}")
    print(f"\nengine tests skipped: {reason}", file=sys.stderr)
    for item in items:
        item.add_marker(pytest.mark.skip(reason=reason))


@dataclass
class Result:
    args: list[str]
    rc: int
    out: str
    err: str
    seconds: float

    @property
    def text(self) -> str:
        return self.out + self.err

    def ok(self) -> "Result":
        assert self.rc == 0, f"pulumi {' '.join(self.args)} exited {self.rc}:\n{self.text}"
        return self


@dataclass
class Workspace:
    """One temp tree: a copy of examples/ and sdk/ (programs find the SDK at ../../sdk), the
    backend, PULUMI_HOME and the plugin installed into it."""

    root: Path
    env: dict[str, str]
    registry: Registry
    transcript: list[str] = field(default_factory=list)

    def pulumi(self, cwd: Path, *args: str, timeout: float = 900, check: bool = True,
               env: dict[str, str] | None = None) -> Result:
        full = [*args, "--color=never"]
        start = time.monotonic()
        proc = subprocess.run(
            ["pulumi", *full], cwd=cwd, env={**self.env, **(env or {})},
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )
        result = Result(full, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)
        self.transcript.append(f"$ pulumi {' '.join(full)}  (rc={proc.returncode}, "
                               f"{result.seconds:.1f}s)\n{result.text}")
        return result.ok() if check else result

    def popen(self, cwd: Path, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            ["pulumi", *args, "--color=never"], cwd=cwd, env=self.env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )

    def new_stack(self, program: Path, namespace: str, **config: str) -> None:
        stack = f"t{uuid.uuid4().hex[:8]}"
        self.pulumi(program, "stack", "init", stack)
        self.pulumi(program, "config", "set", "registry", self.registry.host)
        self.pulumi(program, "config", "set", "username", self.registry.user)
        self.pulumi(program, "config", "set", "--secret", "password", self.registry.password)
        self.pulumi(program, "config", "set", "namespace", namespace)
        for key, value in config.items():
            if key.startswith("secret_"):
                self.pulumi(program, "config", "set", "--secret", key[len("secret_"):], value)
            else:
                self.pulumi(program, "config", "set", key, value)

    def export(self, program: Path) -> dict:
        return json.loads(self.pulumi(program, "stack", "export").out)

    def outputs(self, program: Path) -> dict:
        return json.loads(self.pulumi(program, "stack", "output", "--json").out)


def docker(*args: str, check: bool = True) -> str:
    """The classic docker CLI against the private dockerd (DOCKER_HOST)."""
    proc = subprocess.run(["/usr/bin/docker", *args], capture_output=True, text=True, timeout=120)
    if check:
        assert proc.returncode == 0, f"docker {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def local_images(namespace: str) -> set[str]:
    """The daemon's images tagged under `namespace` (other tests and tools share the daemon)."""
    tags = docker("images", "--format", "{{.Repository}}:{{.Tag}}").split()
    return {t for t in tags if f"/{namespace}/" in t}


def processes_matching(needle: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in cmdline:
            found.append(int(entry.name))
    return found


def wait_for(pred, timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return bool(pred())


@pytest.fixture(scope="session")
def tarball(tmp_path_factory) -> Path:
    """`make dist`'s tarball, of the debug binary scripts/test.sh already built."""
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "dist.sh"), "--binary",
         str(ROOT / "target" / "debug" / BINARY), "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    return Path(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def workspace(tarball, tmp_path_factory) -> Workspace:
    root = tmp_path_factory.mktemp("engine")
    shutil.copytree(ROOT / "examples", root / "examples",
                    ignore=shutil.ignore_patterns("node_modules", "venv", "bin", "Pulumi.*.yaml"))
    shutil.copytree(ROOT / "sdk", root / "sdk",
                    ignore=shutil.ignore_patterns("node_modules", "build", "*.egg-info", "__pycache__"))
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("PULUMI_", "npm_")) and k not in ("VIRTUAL_ENV", "PYTHONPATH")
    }
    path = [os.environ["DBK_TOOLS_BIN"]]
    # The stand-in language hosts (scripts/langhost) come after anything real on PATH.
    path += env.get("PATH", "/usr/bin:/bin").split(":")
    path.append(str(ROOT / "scripts" / "langhost"))
    env.update({
        "PATH": ":".join(path),
        "PULUMI_HOME": str(root / "pulumi-home"),
        "PULUMI_BACKEND_URL": f"file://{root / 'backend'}",
        "PULUMI_CONFIG_PASSPHRASE": "engine-tests",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "PULUMI_SKIP_CONFIRMATIONS": "true",
        "PYTHONDONTWRITEBYTECODE": "1",
        "DBK_LANGHOST_PYTHON": str(Path(sys.executable)),
        "HOME": str(root / "home"),
        "NO_COLOR": "1",
    })
    (root / "backend").mkdir()
    (root / "home").mkdir()
    ws = Workspace(root, env, Registry.from_env())
    ws.pulumi(root, "plugin", "install", "resource", "docker-buildkit", PLUGIN_VERSION,
              "--file", str(tarball))
    listing = ws.pulumi(root, "plugin", "ls").out
    assert "docker-buildkit" in listing and PLUGIN_VERSION in listing, listing
    yield ws
    if os.environ.get("DBK_ENGINE_TRANSCRIPT"):
        Path(os.environ["DBK_ENGINE_TRANSCRIPT"]).write_text("\n".join(ws.transcript))


@pytest.fixture(scope="session")
def shared_venv(workspace) -> Path:
    """One venv with the pinned pulumi wheel and our SDK, for the tests' own programs
    (the examples make their own, as the language host does for a user)."""
    venv = workspace.root / "shared-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pin = (ROOT / "codegen" / "PULUMI_VERSION").read_text().strip()
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"pulumi=={pin}",
                    str(workspace.root / "sdk" / "python")], check=True)
    return venv


def python_program(workspace: Workspace, venv: Path, name: str, code: str,
                   files: dict[str, str]) -> Path:
    """A Python program of the test's own, with its build contexts beside it."""
    program = workspace.root / "programs" / name
    program.mkdir(parents=True)
    (program / "Pulumi.yaml").write_text(
        f"name: {name}\nruntime:\n  name: python\n  options:\n    virtualenv: {venv}\n"
    )
    (program / "__main__.py").write_text(code)
    for rel, content in files.items():
        path = program / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return program


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
