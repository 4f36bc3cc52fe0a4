"""Stand-in Pulumi language host for Python and Node.js programs (NOT the real one).

Why this exists
---------------
The real language hosts, ``pulumi-language-python`` and ``pulumi-language-nodejs``, are Go
programs.  They cannot be built on this machine: the Go module proxy answers
``403 This module version is not available`` for
``github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3`` and
``github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3`` at every version.
The Pulumi CLI itself (``pulumi``) builds fine, but it needs a language plugin to run a
Python or TypeScript program.  This file is a small replacement written from the protocol
(``proto/pulumi/language.proto``) and from reading what the Go hosts do; it is only meant to
be used when the real hosts are not on ``PATH``.

It is deliberately thin: the programs are executed by Pulumi's REAL language SDKs --
the ``pulumi-language-python-exec`` executor shipped with the Pulumi Go SDK module (it drives
the ``pulumi`` wheel installed in the program's virtualenv), and ``@pulumi/pulumi/cmd/run``
from the program's ``node_modules``.  This host only does what the Go hosts do around them:
speak the ``pulumirpc.LanguageRuntime`` gRPC service to the engine, build the executor's
command line and environment, forward its output, and translate its exit status.

How the engine uses it
----------------------
The CLI starts ``pulumi-language-<lang> [--logtostderr] [-v=N] [--tracing URL] <engine-addr>``
(the wrappers next to this file add ``--language <lang>``), reads the first stdout line as
the gRPC port, and then shows every further stdout/stderr line as an info / info-err
diagnostic.  That is how a program's ``print`` output reaches the user: the program simply
writes to the stdout/stderr it shares with this process.

What it implements (see README.md next to this file for the full list)
------------------------------------------------------------------------
Handshake, GetPluginInfo, GetRequiredPackages / GetRequiredPlugins (always empty: plugins
are installed by hand or found on PATH), InstallDependencies, About, GetProgramDependencies,
RuntimeOptionsPrompts (no prompts), Run, Cancel.  Code generation, packing, linking,
templates and RunPlugin answer UNIMPLEMENTED.

Set ``DBK_LANGHOST_LOG=/some/file`` to get a line per RPC (and per spawned command) appended
to that file; nothing is ever logged to stdout/stderr, which belong to the engine.
"""

from __future__ import annotations

import concurrent.futures
import glob
import json
import os
import queue
import random
import re
import selectors
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

import grpc
from google.protobuf import empty_pb2, json_format

from pulumi.runtime.proto import (
    engine_pb2,
    engine_pb2_grpc,
    language_pb2,
    language_pb2_grpc,
    plugin_pb2,
)

# Reported by GetPluginInfo.  The CLI this stands in for is 3.274.0; the build metadata makes
# it obvious in `pulumi about` / plugin listings that this is not the real Go host, while still
# comparing equal to 3.274.0 in semver terms.
VERSION = "3.274.0+dbk.standin"

# The Pulumi Go SDK version whose `pulumi-language-python-exec` we use by default.
DEFAULT_GO_SDK_VERSION = "v3.274.0"

# Exit code both SDK executors use to say "the user has already been shown an actionable
# error message"; the host then answers Run with bail=true so the CLI adds nothing more.
EXIT_AFTER_USER_ACTIONABLE_MESSAGE = 32

# Same limit as the Go side's rpcutil.GrpcChannelOptions (400 MiB).
MAX_MESSAGE_BYTES = 400 * 1024 * 1024

# The Go hosts ping the engine's health endpoint this often and exit once it is gone.
HEALTHCHECK_INTERVAL_SECONDS = 5 * 60

# After an interrupt, how long a child may take to exit before it is killed (the Go hosts use
# exec.Cmd.WaitDelay = 5s).
INTERRUPT_GRACE_SECONDS = 5.0

GRPC_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
]


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def debug_log(message: str) -> None:
    """Append a line to $DBK_LANGHOST_LOG if set.  Never writes to stdout/stderr."""
    path = os.environ.get("DBK_LANGHOST_LOG")
    if not path:
        return
    stamp = time.strftime("%H:%M:%S")
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{stamp} [{os.getpid()}] {message}\n")
    except OSError:
        pass


class HostError(Exception):
    """An error to report to the engine as a failed RPC (like a Go host's `return nil, err`)."""


def options_dict(info: language_pb2.ProgramInfo) -> dict:
    """The `runtime.options` of Pulumi.yaml, as a plain dict."""
    if not info.HasField("options"):
        return {}
    return json_format.MessageToDict(info.options)


def interrupt_then_kill(proc: subprocess.Popen) -> None:
    """Ask a child to stop with SIGINT (what the Go hosts send), kill it if it lingers."""
    if proc.poll() is not None:
        return
    try:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=INTERRUPT_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
    except ProcessLookupError:
        pass


def stream_command(
    argv: list[str], cwd: Optional[str] = None, env: Optional[dict] = None
) -> Iterator[tuple[str, bytes]]:
    """Run a command, yielding ("stdout"|"stderr", chunk) as output arrives.

    Finishes with ("exit", b"<returncode>").  Used where the protocol wants output streamed
    back over gRPC rather than written to our own stdout.
    """
    debug_log(f"exec (streamed): {argv} cwd={cwd}")
    try:
        proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
    except OSError as e:
        raise HostError(f"could not run {argv[0]}: {e}") from e
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, "stdout")
    sel.register(proc.stderr, selectors.EVENT_READ, "stderr")
    open_streams = 2
    while open_streams:
        for key, _ in sel.select():
            chunk = os.read(key.fileobj.fileno(), 65536)
            if not chunk:
                sel.unregister(key.fileobj)
                open_streams -= 1
                continue
            yield key.data, chunk
    sel.close()
    yield "exit", str(proc.wait()).encode()


def run_streamed(argv: list[str], emit: Callable[[str, bytes], None], what: str,
                 cwd: Optional[str] = None, env: Optional[dict] = None) -> None:
    """Run a command, passing its output to `emit`; raise HostError if it fails."""
    for stream, data in stream_command(argv, cwd=cwd, env=env):
        if stream == "exit":
            code = int(data)
            if code != 0:
                raise HostError(f"{what} via '{' '.join(argv)}' failed: exit status {code}")
        else:
            emit(stream, data)


def pump(src, dst, watch: Optional[Callable[[bytes], None]] = None) -> threading.Thread:
    """Copy a child's pipe to one of our own streams in a background thread, showing each
    chunk to `watch` first if given."""

    def run() -> None:
        while True:
            chunk = os.read(src.fileno(), 65536)
            if not chunk:
                break
            if watch:
                watch(chunk)
            try:
                dst.write(chunk)
                dst.flush()
            except (BrokenPipeError, OSError):
                pass
        src.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


# --------------------------------------------------------------------------------------------
# The shared part of both hosts
# --------------------------------------------------------------------------------------------


class BaseHost(language_pb2_grpc.LanguageRuntimeServicer):
    """Language-independent RPCs; subclasses supply the language-specific ones."""

    language = "?"

    def __init__(self, engine_address: str, tracing: str):
        self.engine_address = engine_address
        self.tracing = tracing
        self._lock = threading.Lock()
        self._children: set[subprocess.Popen] = set()
        # Mirrors the Go hosts' cancelCtx: once Cancel has been called it stays cancelled
        # (until a new Handshake starts a new session, see Handshake).
        self._cancelled = threading.Event()
        self._healthchecked: set[str] = set()  # engine addresses already being watched
        self.on_engine_gone: Callable[[], None] = lambda: None

    # --- lifetime / bookkeeping -------------------------------------------------------------

    def start_healthcheck(self) -> None:
        """Exit when the engine goes away, like rpcutil.Healthcheck in the Go hosts."""
        address = self.engine_address
        with self._lock:
            if not address or address in self._healthchecked:
                return
            self._healthchecked.add(address)

        def loop() -> None:
            channel = grpc.insecure_channel(address)
            # grpc.health.v1.Health/Check with an empty HealthCheckRequest; we only care
            # whether the call succeeds, so no generated stubs are needed.
            check = channel.unary_unary(
                "/grpc.health.v1.Health/Check",
                request_serializer=lambda _: b"",
                response_deserializer=lambda b: b,
            )
            while True:
                time.sleep(HEALTHCHECK_INTERVAL_SECONDS)
                try:
                    check(None, timeout=30)
                except grpc.RpcError as e:
                    if e.code() != grpc.StatusCode.UNIMPLEMENTED:
                        if address != self.engine_address:
                            # An earlier attach session's engine (see Handshake): just stop
                            # watching it; the current session is unaffected.
                            return
                        debug_log(f"engine health check failed ({e.code()}); shutting down")
                        self.interrupt_children()
                        self.on_engine_gone()
                        return

        threading.Thread(target=loop, daemon=True, name="healthcheck").start()

    def track(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._children.add(proc)

    def untrack(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._children.discard(proc)

    def interrupt_children(self) -> None:
        with self._lock:
            children = list(self._children)
        for proc in children:
            interrupt_then_kill(proc)

    def run_child(
        self, argv: list[str], env: dict, context: grpc.ServicerContext,
        pipe_output: bool = False, watch_stderr: Optional[Callable[[bytes], None]] = None,
    ) -> int:
        """Run the program executor; return its exit code (negative = killed by signal).

        With pipe_output=False the child shares our stdout/stderr (what the Python host does);
        with True its output is copied through pipes (what the Node.js host does, because node
        may switch its stdio file descriptions to non-blocking mode).
        watch_stderr sees the piped stderr as it passes.  Raises OSError if it cannot start.
        """
        debug_log(f"exec: {argv}")
        kwargs = {}
        if pipe_output:
            kwargs = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, **kwargs)
        self.track(proc)
        pumps = []
        if pipe_output:
            pumps = [pump(proc.stdout, sys.stdout.buffer),
                     pump(proc.stderr, sys.stderr.buffer, watch_stderr)]
        # Interrupt the program if the engine abandons the Run call or has already cancelled.
        context.add_callback(lambda: proc.poll() is None and interrupt_then_kill(proc))
        if self._cancelled.is_set():
            interrupt_then_kill(proc)
        try:
            code = proc.wait()
        finally:
            self.untrack(proc)
        for t in pumps:
            t.join(timeout=INTERRUPT_GRACE_SECONDS)
        sys.stdout.flush()
        sys.stderr.flush()
        debug_log(f"exit {code}: {argv[:2]}")
        return code

    def engine_logger(self) -> Callable[[str, bytes], None]:
        """Writers that show output as ephemeral engine messages (the Go hosts'
        createEngineWriters), for work done outside InstallDependencies' own stream."""
        if not self.engine_address:
            return lambda stream, data: None
        stub = engine_pb2_grpc.EngineStub(grpc.insecure_channel(self.engine_address))
        stream_id = random.randint(1, 2**31 - 1)

        def emit(stream: str, data: bytes) -> None:
            severity = engine_pb2.ERROR if stream == "stderr" else engine_pb2.INFO
            try:
                stub.Log(engine_pb2.LogRequest(
                    severity=severity, message=data.decode("utf-8", "replace"),
                    ephemeral=True, streamId=stream_id,
                ))
            except grpc.RpcError as e:
                debug_log(f"engine Log failed: {e.code()}")

        return emit

    @staticmethod
    def unimplemented(context: grpc.ServicerContext, name: str):
        context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            f"{name} is not implemented by the stand-in language host (scripts/langhost)",
        )

    def guarded_stream(self, context: grpc.ServicerContext, responses: Iterator):
        """Like guarded(), for a server-streaming RPC's response iterator."""
        try:
            yield from responses
        except HostError as e:
            debug_log(f"error: {e}")
            context.abort(grpc.StatusCode.UNKNOWN, str(e))

    def guarded(self, context: grpc.ServicerContext, fn: Callable):
        """Run fn(); turn HostError into a failed RPC carrying its message."""
        try:
            return fn()
        except HostError as e:
            debug_log(f"error: {e}")
            context.abort(grpc.StatusCode.UNKNOWN, str(e))

    # --- RPCs common to both languages ------------------------------------------------------

    def Handshake(self, request, context):
        # Sent when the engine attaches to an already-running host (PULUMI_DEBUG_LANGUAGES);
        # a normally launched host got the address on its command line instead.
        # With PULUMI_DEBUG_LANGUAGES one attached host serves several engine sessions (the CLI
        # makes one just to call About, then Cancels it); a new handshake starts a new session,
        # so an earlier session's Cancel must not kill this one's program.
        self.engine_address = request.engine_address
        self._cancelled.clear()
        self.start_healthcheck()
        return language_pb2.LanguageHandshakeResponse()

    def GetPluginInfo(self, request, context):
        return plugin_pb2.PluginInfo(version=VERSION)

    def GetRequiredPlugins(self, request, context):
        # Deprecated RPC; the engine only falls back to it when GetRequiredPackages is missing.
        return language_pb2.GetRequiredPluginsResponse()

    def GetRequiredPackages(self, request, context):
        # No package discovery: resource plugins are installed by hand or found on PATH.
        return language_pb2.GetRequiredPackagesResponse()

    def RuntimeOptionsPrompts(self, request, context):
        # Only used by `pulumi new`; offering no prompts is always valid.
        return language_pb2.RuntimeOptionsResponse()

    def Cancel(self, request, context):
        self._cancelled.set()
        self.interrupt_children()
        return empty_pb2.Empty()

    def Template(self, request, context):
        self.unimplemented(context, "Template")

    def RunPlugin(self, request, context):
        self.unimplemented(context, "RunPlugin (plugins written in Python/Node.js)")

    def GenerateProject(self, request, context):
        self.unimplemented(context, "GenerateProject")

    def GenerateProgram(self, request, context):
        self.unimplemented(context, "GenerateProgram")

    def GeneratePackage(self, request, context):
        self.unimplemented(context, "GeneratePackage")

    def Pack(self, request, context):
        self.unimplemented(context, "Pack")

    def Link(self, request, context):
        self.unimplemented(context, "Link")


# --------------------------------------------------------------------------------------------
# Python
# --------------------------------------------------------------------------------------------


@dataclass
class PythonOptions:
    virtualenv: str  # absolute path, or "" to use the ambient python


def venv_python(venv: str) -> str:
    return os.path.join(venv, "bin", "python")


def is_virtualenv(venv: str) -> bool:
    return os.path.isfile(venv_python(venv))


def activate_virtualenv(env: dict, venv: str) -> dict:
    """PATH gets the venv's bin first, VIRTUAL_ENV is set and PYTHONHOME dropped -- the
    same as the Go toolchain's ActivateVirtualEnv."""
    env = {k: v for k, v in env.items() if k.upper() not in ("PYTHONHOME", "VIRTUAL_ENV")}
    bin_dir = os.path.join(venv, "bin")
    env["PATH"] = bin_dir + (os.pathsep + env["PATH"] if env.get("PATH") else "")
    env["VIRTUAL_ENV"] = venv
    return env


def ambient_python() -> str:
    """PULUMI_PYTHON_CMD, else python3, else python -- as the Go toolchain looks them up."""
    names = [os.environ["PULUMI_PYTHON_CMD"]] if os.environ.get("PULUMI_PYTHON_CMD") else ["python3", "python"]
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise HostError(f"failed to locate any of {names} on your PATH. Have you installed Python?")


def go_mod_cache() -> Optional[str]:
    """Where `go env GOMODCACHE` would point, without needing go itself if it can be helped."""
    if os.environ.get("GOMODCACHE"):
        return os.environ["GOMODCACHE"]
    if shutil.which("go"):
        try:
            out = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True, timeout=30)
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            pass
    gopath = os.environ.get("GOPATH") or os.path.join(os.path.expanduser("~"), "go")
    return os.path.join(gopath.split(os.pathsep)[0], "pkg", "mod")


def find_python_executor() -> str:
    """Locate `pulumi-language-python-exec`, the Python program executor.

    The `pulumi` wheel does not ship it (its only runnable modules are `pulumi.policy` for
    policy packs and `pulumi.run.plugin` for component plugins); Pulumi distributes it next to
    the Go language host.  In order: $DBK_PULUMI_PYTHON_EXEC; next to a `pulumi` CLI on PATH
    (where a regular Pulumi install keeps it); the Pulumi Go SDK module in the Go module cache
    (v3.274.0 preferred, else the newest present).
    """
    explicit = os.environ.get("DBK_PULUMI_PYTHON_EXEC")
    if explicit:
        if not os.path.isfile(explicit):
            raise HostError(f"DBK_PULUMI_PYTHON_EXEC={explicit} does not exist")
        return explicit
    candidates = []
    cli = shutil.which("pulumi")
    if cli:
        candidates.append(os.path.join(os.path.dirname(os.path.realpath(cli)), "pulumi-language-python-exec"))
    cache = go_mod_cache()
    if cache:
        sdk = os.path.join(cache, "github.com", "pulumi", "pulumi", "sdk")
        rel = os.path.join("python", "cmd", "pulumi-language-python-exec")
        candidates.append(os.path.join(sdk, f"v3@{DEFAULT_GO_SDK_VERSION}", rel))

        def version_key(path: str):
            m = re.search(r"v3@v(\d+)\.(\d+)\.(\d+)", path)
            return tuple(int(x) for x in m.groups()) if m else (0, 0, 0)

        candidates += sorted(glob.glob(os.path.join(sdk, "v3@v*", rel)), key=version_key, reverse=True)
    for c in candidates:
        if os.path.isfile(c):
            return c
    raise HostError(
        "could not find pulumi-language-python-exec; set DBK_PULUMI_PYTHON_EXEC, or run "
        f"`go mod download github.com/pulumi/pulumi/sdk/v3@{DEFAULT_GO_SDK_VERSION}`"
    )


class PythonHost(BaseHost):
    language = "python"

    @staticmethod
    def parse_options(info: language_pb2.ProgramInfo) -> PythonOptions:
        opts = options_dict(info)
        virtualenv = opts.get("virtualenv", "")
        if not isinstance(virtualenv, str):
            raise HostError("virtualenv option must be a string")
        toolchain = opts.get("toolchain", "pip")
        if toolchain != "pip":
            raise HostError(f"the stand-in language host only supports toolchain: pip (got {toolchain!r})")
        if opts.get("typechecker"):
            raise HostError("the stand-in language host does not support the typechecker option")
        if virtualenv and not os.path.isabs(virtualenv):
            # Relative to the project root (where Pulumi.yaml is), as in the Go toolchain.
            virtualenv = os.path.join(info.root_directory, virtualenv)
        return PythonOptions(virtualenv=virtualenv)

    def python_command(self, opts: PythonOptions) -> tuple[str, dict]:
        """The interpreter that runs the program, and the environment to run it with."""
        if not opts.virtualenv:
            return ambient_python(), dict(os.environ)
        if not is_virtualenv(opts.virtualenv):
            state = "doesn't exist" if not os.path.exists(opts.virtualenv) else "doesn't appear to be a virtual environment"
            raise HostError(
                f"The 'virtualenv' option in Pulumi.yaml is set to {opts.virtualenv!r}, but it {state}; "
                "run `pulumi install` (or create it and `pip install -r requirements.txt`)"
            )
        return venv_python(opts.virtualenv), activate_virtualenv(dict(os.environ), opts.virtualenv)

    def install(self, info: language_pb2.ProgramInfo, emit: Callable[[str, bytes], None],
                only_if_missing: bool) -> None:
        """Create the program's virtualenv if missing and pip install requirements.txt into it."""
        opts = self.parse_options(info)
        if not opts.virtualenv:
            emit("stdout", b"No 'virtualenv' option set; not installing into the ambient Python.\n")
            return
        if only_if_missing and is_virtualenv(opts.virtualenv):
            return
        if not is_virtualenv(opts.virtualenv):
            emit("stdout", b"Creating virtual environment...\n")
            run_streamed([ambient_python(), "-m", "venv", opts.virtualenv], emit, "creating virtual environment")
            emit("stdout", b"Finished creating virtual environment\n")
        requirements = os.path.join(info.program_directory, "requirements.txt")
        if os.path.isfile(requirements):
            emit("stdout", b"Installing dependencies in virtual environment...\n")
            env = activate_virtualenv(dict(os.environ), opts.virtualenv)
            run_streamed([venv_python(opts.virtualenv), "-m", "pip", "install", "-r", "requirements.txt"],
                         emit, "installing dependencies", cwd=info.program_directory, env=env)
            emit("stdout", b"Finished installing dependencies\n")

    def GetRequiredPackages(self, request, context):
        # Like the Go host, make sure the virtualenv exists first (so a fresh checkout works
        # with plain `pulumi preview`), showing pip's output as ephemeral engine messages.
        self.guarded(context, lambda: self.install(request.info, self.engine_logger(), only_if_missing=True))
        return language_pb2.GetRequiredPackagesResponse()

    def InstallDependencies(self, request, context):
        return self.guarded_stream(context, install_responses(
            lambda emit: self.install(request.info, emit, only_if_missing=False)))

    def About(self, request, context):
        def about():
            opts = self.parse_options(request.info) if request.HasField("info") else PythonOptions("")
            python, env = self.python_command(opts)
            out = subprocess.run([python, "--version"], capture_output=True, text=True, env=env)
            version = out.stdout.strip().removeprefix("Python ")
            return language_pb2.AboutResponse(
                executable=python, version=version,
                metadata={"toolchain": "pip", "typechecker": "none", "langhost": "dbk stand-in"},
            )

        return self.guarded(context, about)

    def GetProgramDependencies(self, request, context):
        def deps():
            python, env = self.python_command(self.parse_options(request.info))
            argv = [python, "-m", "pip", "list", "--format", "json"]
            if not request.transitiveDependencies:
                argv.append("--not-required")
            out = subprocess.run(argv, capture_output=True, text=True, env=env)
            if out.returncode != 0:
                raise HostError(f"failed to get python dependencies: {out.stderr.strip()}")
            return language_pb2.GetProgramDependenciesResponse(dependencies=[
                language_pb2.DependencyInfo(name=d["name"].lower().replace("_", "-"), version=d["version"])
                for d in json.loads(out.stdout)
            ])

        return self.guarded(context, deps)

    def Run(self, request, context):
        def run():
            opts = self.parse_options(request.info)
            python, env = self.python_command(opts)
            executor = find_python_executor()
            # -u: unbuffered, so the program's prints reach the CLI as they happen.
            argv = [python, "-u", executor] + self.executor_arguments(request)
            if request.config:
                env["PULUMI_CONFIG"] = json.dumps(dict(request.config))
            env["PULUMI_CONFIG_SECRET_KEYS"] = json.dumps(list(request.configSecretKeys))
            if request.attach_debugger:
                return language_pb2.RunResponse(error="the stand-in language host cannot attach a debugger")
            try:
                code = self.run_child(argv, env, context)
            except OSError as e:
                return language_pb2.RunResponse(
                    error=f"problem executing program (could not run language executor): {e}")
            return exit_code_response(code, capitalized=False)

        return self.guarded(context, run)

    def executor_arguments(self, req: language_pb2.RunRequest) -> list[str]:
        """pulumi-language-python-exec's command line, as the Go host builds it."""
        args: list[str] = []

        def maybe(flag: str, value: str) -> None:
            if value:
                args.extend([f"--{flag}", value])

        maybe("monitor", req.monitor_address)
        maybe("engine", self.engine_address)
        maybe("project", req.project)
        maybe("root_directory", req.info.root_directory)
        maybe("stack", req.stack)
        maybe("pwd", req.pwd)
        maybe("dry_run", "true" if req.dryRun else "false")
        maybe("parallel", str(req.parallel))
        maybe("tracing", self.tracing)
        maybe("organization", req.organization)
        args.append(req.info.entry_point or ".")
        args.extend(req.args)
        return args


def install_responses(work: Callable[[Callable[[str, bytes], None]], None]
                      ) -> Iterator[language_pb2.InstallDependenciesResponse]:
    """Run work(emit) in a thread, yielding each emitted chunk as an InstallDependenciesResponse
    (so output streams while pip/npm run), framed by the Go hosts' start/finish lines.
    Re-raises work's exception (e.g. HostError) at the end."""
    yield language_pb2.InstallDependenciesResponse(stdout=b"Installing dependencies...\n\n")
    q: "queue.Queue[object]" = queue.Queue()
    done = object()
    failure: list[BaseException] = []

    def emit(stream: str, data: bytes) -> None:
        q.put(language_pb2.InstallDependenciesResponse(**{stream: data}))

    def target() -> None:
        try:
            work(emit)
        except BaseException as e:  # noqa: BLE001 -- handed back to the RPC thread
            failure.append(e)
        finally:
            q.put(done)

    threading.Thread(target=target, daemon=True).start()
    while (item := q.get()) is not done:
        yield item
    if failure:
        raise failure[0]
    yield language_pb2.InstallDependenciesResponse(stdout=b"Finished installing dependencies\n\n")


def exit_code_response(code: int, capitalized: bool) -> language_pb2.RunResponse:
    """Translate the executor's exit status the way the Go hosts do."""
    if code == 0:
        return language_pb2.RunResponse()
    if code == EXIT_AFTER_USER_ACTIONABLE_MESSAGE:
        # The SDK already logged the error through the engine: bail without adding anything.
        return language_pb2.RunResponse(bail=True)
    if code < 0:
        msg = f"program exited unexpectedly: signal: {signal.Signals(-code).name}"
    else:
        msg = f"program exited with non-zero exit code: {code}"
    return language_pb2.RunResponse(error=msg[0].upper() + msg[1:] if capitalized else msg)


# --------------------------------------------------------------------------------------------
# Node.js
# --------------------------------------------------------------------------------------------


@dataclass
class NodeOptions:
    typescript: bool = True
    tsconfig: str = ""
    nodeargs: str = ""


# Lines in node's stderr that mean it ran out of memory (as the Go host's oomSniffer looks for).
OOM_MARKERS = (b"<--- Last few GCs --->", b"Check failed: needs_context && current_scope_ == closure_scope_")
OOM_HINT = (
    "Detected a possible out of memory error. Consider increasing the memory available to the "
    "nodejs process by setting the `nodeargs` runtime option in Pulumi.yaml to "
    "`nodeargs: --max-old-space-size=<size>` where `<size>` is the maximum memory in megabytes "
    "that can be allocated to nodejs."
)


class NodejsHost(BaseHost):
    language = "nodejs"

    @staticmethod
    def parse_options(info: language_pb2.ProgramInfo) -> NodeOptions:
        raw = options_dict(info)
        opts = NodeOptions()
        if "typescript" in raw:
            if not isinstance(raw["typescript"], bool):
                raise HostError("typescript option must be a boolean")
            opts.typescript = raw["typescript"]
        if "tsconfig" in raw:
            if not isinstance(raw["tsconfig"], str):
                raise HostError("tsconfigpath option must be a string")
            opts.tsconfig = raw["tsconfig"]
        if "nodeargs" in raw:
            if not isinstance(raw["nodeargs"], str):
                raise HostError("nodeargs option must be a string")
            opts.nodeargs = raw["nodeargs"]
        pm = raw.get("packagemanager", "npm")
        if pm != "npm":
            raise HostError(f"the stand-in language host only supports packagemanager: npm (got {pm!r})")
        return opts

    @staticmethod
    def node() -> str:
        found = shutil.which("node")
        if not found:
            raise HostError("could not find node on the $PATH")
        return found

    def install(self, info, emit: Callable[[str, bytes], None]) -> None:
        self.parse_options(info)  # reject unsupported package managers early
        if os.path.isdir(os.path.join(info.program_directory, "node_modules")):
            emit("stdout", b"node_modules already present; skipping npm install\n")
            return
        npm = shutil.which("npm")
        if not npm:
            raise HostError("could not find npm on the $PATH")
        emit("stdout", b"Installing dependencies with npm...\n")
        run_streamed([npm, "install", "--no-audit", "--no-fund"], emit, "installing dependencies",
                     cwd=info.program_directory)

    def InstallDependencies(self, request, context):
        return self.guarded_stream(context, install_responses(lambda emit: self.install(request.info, emit)))

    def About(self, request, context):
        def about():
            node = self.node()
            version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
            metadata = {"packagemanager": "npm", "langhost": "dbk stand-in"}
            if request.HasField("info"):
                ts = subprocess.run([node, "-e", "console.log(require('typescript/package.json').version)"],
                                    capture_output=True, text=True, cwd=request.info.program_directory)
                if ts.returncode == 0:
                    metadata["typescriptVersion"] = ts.stdout.strip()
            return language_pb2.AboutResponse(executable=node, version=version, metadata=metadata)

        return self.guarded(context, about)

    def GetProgramDependencies(self, request, context):
        # Direct dependencies from package.json with the versions found in node_modules
        # (the Go host asks the package manager; transitive listing is not supported here).
        def deps():
            pdir = request.info.program_directory
            try:
                with open(os.path.join(pdir, "package.json"), encoding="utf-8") as f:
                    pkg = json.load(f)
            except (OSError, ValueError) as e:
                raise HostError(f"failed to get node dependencies: {e}") from e
            result = []
            for section in ("dependencies", "devDependencies"):
                for name, wanted in sorted((pkg.get(section) or {}).items()):
                    version = wanted
                    try:
                        with open(os.path.join(pdir, "node_modules", name, "package.json"), encoding="utf-8") as f:
                            version = json.load(f).get("version", wanted)
                    except (OSError, ValueError):
                        pass
                    result.append(language_pb2.DependencyInfo(name=name, version=version))
            return language_pb2.GetProgramDependenciesResponse(dependencies=result)

        return self.guarded(context, deps)

    def locate_module(self, node: str, module: str, program_dir: str) -> str:
        """require.resolve() the SDK entry point from the program directory, like the Go host."""
        script = (
            f"try {{ console.log(require.resolve({json.dumps(module)})); }} catch (error) {{"
            " if (error.code === 'MODULE_NOT_FOUND') {"
            " console.error('It looks like the Pulumi SDK has not been installed. Have you run pulumi install?');"
            " } else { console.error(error.message); } process.exit(1); }"
        )
        out = subprocess.run([node, "-e", script], capture_output=True, text=True, cwd=program_dir)
        if out.returncode != 0:
            raise HostError(out.stderr.strip())
        return out.stdout.strip()

    def Run(self, request, context):
        def run():
            try:
                node = self.node()
                run_path = self.locate_module(
                    node, os.environ.get("PULUMI_LANGUAGE_NODEJS_RUN_PATH") or "@pulumi/pulumi/cmd/run",
                    request.info.program_directory)
                opts = self.parse_options(request.info)
                config = self.legacy_config(request)
            except HostError as e:
                # The Go host reports these as program errors (RunResponse.error).
                return language_pb2.RunResponse(error=str(e))
            if request.attach_debugger:
                return language_pb2.RunResponse(error="the stand-in language host cannot attach a debugger")

            env = dict(os.environ)
            env["PULUMI_CONFIG"] = json.dumps(config)
            env["PULUMI_CONFIG_SECRET_KEYS"] = json.dumps(list(request.configSecretKeys))
            if opts.typescript:
                env["PULUMI_NODEJS_TYPESCRIPT"] = "true"
            if opts.tsconfig:
                env["PULUMI_NODEJS_TSCONFIG_PATH"] = opts.tsconfig
            argv = [node] + shlex.split(opts.nodeargs) + self.run_arguments(request, run_path)

            oom = threading.Event()
            tail = [b""]  # end of the previous chunk, so a marker split across chunks is seen

            def watch(chunk: bytes) -> None:
                text = tail[0] + chunk
                if any(marker in text for marker in OOM_MARKERS):
                    oom.set()
                tail[0] = text[-100:]

            try:
                code = self.run_child(argv, env, context, pipe_output=True, watch_stderr=watch)
            except OSError as e:
                return language_pb2.RunResponse(
                    error=f"Problem executing program (could not run language executor): {e}")
            response = exit_code_response(code, capitalized=True)
            if response.error and oom.is_set():
                response.error += ". " + OOM_HINT
            return response

        return self.guarded(context, run)

    @staticmethod
    def legacy_config(req: language_pb2.RunRequest) -> dict:
        """`ns:name` keys become `ns:config:name`, the form every @pulumi/pulumi understands
        (the Go host does the same for compatibility with old SDKs)."""
        out = {}
        for key, value in req.config.items():
            ns, sep, name = key.partition(":")
            if not sep or not ns or not name:
                raise HostError(f"could not parse {key!r} as a configuration key (expected namespace:name)")
            if name.startswith("config:"):
                name = name[len("config:"):]
            out[f"{ns}:config:{name}"] = value
        return out

    def run_arguments(self, req: language_pb2.RunRequest, run_path: str) -> list[str]:
        """@pulumi/pulumi/cmd/run's command line, as the Go host builds it -- except that the
        monitor address is the engine's own (the Go host puts a forwarding proxy in between)
        and no --sync pipe directory is passed (synchronous invokes are not supported)."""
        args = [run_path]

        def maybe(flag: str, value: str) -> None:
            if value:
                args.extend([f"--{flag}", value])

        maybe("monitor", req.monitor_address)
        maybe("engine", self.engine_address)
        maybe("organization", req.organization)
        maybe("project", req.project)
        maybe("root-directory", req.info.root_directory)
        maybe("stack", req.stack)
        maybe("pwd", req.info.program_directory)
        if req.dryRun:
            args.append("--dry-run")
        maybe("parallel", str(req.parallel))
        maybe("tracing", self.tracing)
        args.append(req.info.entry_point or ".")
        args.extend(req.args)
        return args


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


class CallLogger(grpc.ServerInterceptor):
    """Records every RPC the engine makes (to $DBK_LANGHOST_LOG), including unimplemented ones."""

    def __init__(self, language: str):
        self.language = language

    def intercept_service(self, continuation, handler_call_details):
        debug_log(f"{self.language} rpc {handler_call_details.method}")
        return continuation(handler_call_details)


def parse_args(argv: list[str]) -> dict:
    """Parse the command line the engine uses (Go `flag` style: -x, --x, -x=v, -x v), plus our
    own --language.  Unknown flags are ignored; the last positional is the engine address."""
    with_value = {"language", "tracing", "v", "use-executor", "runtime", "root"}
    booleans = {"logtostderr", "version", "help"}
    out: dict = {"language": "", "tracing": "", "engine": "", "version": False}
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg.startswith("-") and arg not in ("-", "--"):
            name, eq, value = arg.lstrip("-").partition("=")
            if name in with_value and not eq and i < len(argv):
                value = argv[i]
                i += 1
            if name in with_value or name in booleans:
                out[name] = value if name in with_value else (value.lower() != "false" if eq else True)
            continue
        out["engine"] = arg
    return out


def main() -> None:
    args = parse_args(sys.argv[1:])
    if args["version"]:
        print(VERSION)
        return
    hosts = {"python": PythonHost, "nodejs": NodejsHost}
    if args["language"] not in hosts:
        sys.exit(f"langhost.py: --language must be one of {sorted(hosts)}")
    host = hosts[args["language"]](args["engine"], args["tracing"])

    server = grpc.server(
        concurrent.futures.ThreadPoolExecutor(max_workers=16),
        interceptors=[CallLogger(host.language)],
        options=GRPC_OPTIONS,
    )
    language_pb2_grpc.add_LanguageRuntimeServicer_to_server(host, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()

    stopped = threading.Event()

    def stop(*_):
        host.interrupt_children()
        server.stop(grace=INTERRUPT_GRACE_SECONDS)
        stopped.set()

    host.on_engine_gone = stop
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    host.start_healthcheck()

    debug_log(f"{host.language} stand-in listening on 127.0.0.1:{port}, engine {args['engine']!r}, argv {sys.argv[1:]}")
    # The engine reads the port from our first line of stdout.
    sys.stdout.write(f"{port}\n")
    sys.stdout.flush()
    stopped.wait()
    server.wait_for_termination(timeout=INTERRUPT_GRACE_SECONDS + 1)


if __name__ == "__main__":
    main()
