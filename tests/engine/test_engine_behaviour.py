"""What only the real engine shows: Ctrl-C during a build, customTimeouts from the program,
and many Images at once (two sharing a tag) — each through `pulumi up` of a Python program
that uses our SDK."""

from __future__ import annotations

import os
import signal
import time
import uuid

from conftest import (Workspace, processes_matching, python_program, unique, wait_for)

HEADER = """\
import pulumi
import pulumi_docker_buildkit as dbk

config = pulumi.Config()
registry = config.require("registry")
namespace = config.require("namespace")
credentials = dbk.RegistryArgs(server=registry, username=config.get("username"),
                               password=config.get_secret("password"))
"""

SLOW_DOCKERFILE = """\
FROM {base}
RUN sleep {seconds}
COPY marker /marker
"""


def slow_program(ws: Workspace, venv, name: str, base: str, seconds: str, options: str = ""):
    code = HEADER + f"""
image = dbk.Image(
    "slow",
    name=f"{{registry}}/{{namespace}}/slow",
    context="./ctx",
    network="none",
    registry=credentials,{options}
)
pulumi.export("ref", image.ref)
"""
    return python_program(ws, venv, name, code, {
        "ctx/Dockerfile": SLOW_DOCKERFILE.format(base=base, seconds=seconds),
        "ctx/marker": uuid.uuid4().hex,
    })


def test_ctrl_c_stops_the_build_and_the_next_up_succeeds(workspace: Workspace, shared_venv):
    ws = workspace
    seconds = "986"  # a sleep no other test runs: its process is the build's RUN step
    program = slow_program(ws, shared_venv, "ctrl-c", os.environ["DBK_BASE_IMAGE"], seconds)
    ws.new_stack(program, unique("engine-ctrlc"))
    needle = f"sleep {seconds}"
    assert not processes_matching(needle)

    cli = ws.popen(program, "up", "--yes")
    try:
        assert wait_for(lambda: processes_matching(needle), 300), "the build's RUN never started"
        cli.send_signal(signal.SIGINT)
        sent = time.monotonic()
        out, _ = cli.communicate(timeout=120)
        cli_seconds = time.monotonic() - sent
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.communicate()
    ws.transcript.append(f"$ pulumi up --yes (SIGINT)\n{out}")
    assert cli.returncode != 0, out
    assert cli_seconds < 60, f"the CLI took {cli_seconds:.1f}s to end after SIGINT:\n{out}"
    assert wait_for(lambda: not processes_matching(needle), 20), \
        f"the build's RUN step still runs after the CLI ended:\n{out}"

    export = ws.export(program)
    assert not export["deployment"].get("pending_operations"), \
        f"pending operations left behind: {export['deployment'].get('pending_operations')}"

    # The next up builds and succeeds, with no manual repair.
    (program / "ctx" / "Dockerfile").write_text(
        SLOW_DOCKERFILE.format(base=os.environ["DBK_BASE_IMAGE"], seconds="0"))
    ws.pulumi(program, "up", "--yes")
    assert ws.registry.read_file(ws.outputs(program)["ref"], "marker") is not None
    ws.pulumi(program, "destroy", "--yes")


def test_custom_timeouts_reach_the_provider(workspace: Workspace, shared_venv):
    ws = workspace
    seconds = "985"
    program = slow_program(
        ws, shared_venv, "timeouts", os.environ["DBK_BASE_IMAGE"], seconds,
        options="\n    opts=pulumi.ResourceOptions(custom_timeouts=pulumi.CustomTimeouts(create=\"6s\")),")
    ws.new_stack(program, unique("engine-timeout"))
    needle = f"sleep {seconds}"
    started = time.monotonic()
    up = ws.pulumi(program, "up", "--yes", check=False, timeout=300)
    elapsed = time.monotonic() - started
    assert up.rc != 0, up.text
    assert "timed out after 6 s" in up.text, up.text
    assert wait_for(lambda: not processes_matching(needle), 20), "the build outlived its timeout"
    # The whole up (plugin start, Check, the timed-out Create) ends long before the sleep.
    assert elapsed < 120, f"{elapsed:.0f}s"
    export = ws.export(program)
    assert not export["deployment"].get("pending_operations"), export["deployment"]
    ws.pulumi(program, "destroy", "--yes")


def test_ten_images_two_sharing_a_tag_each_ref_is_its_own(workspace: Workspace, shared_venv):
    ws = workspace
    marks = [uuid.uuid4().hex for _ in range(10)]
    files = {}
    for i, mark in enumerate(marks):
        files[f"c{i}/Dockerfile"] = "FROM scratch\nCOPY id /id\n"
        files[f"c{i}/id"] = mark
    code = HEADER + """
refs = {}
for i in range(10):
    # Images 8 and 9 push the same name:tag.
    repo = "shared" if i >= 8 else f"img{i}"
    image = dbk.Image(f"img{i}", name=f"{registry}/{namespace}/{repo}:latest",
                      context=f"./c{i}", registry=credentials)
    refs[f"img{i}"] = image.ref
pulumi.export("refs", refs)
"""
    program = python_program(ws, shared_venv, "ten", code, files)
    ws.new_stack(program, unique("engine-ten"))
    ws.pulumi(program, "up", "--yes", "--parallel", "10")
    refs = ws.outputs(program)["refs"]
    assert len(set(refs.values())) == 10, refs
    for i, mark in enumerate(marks):
        got = ws.registry.read_file(refs[f"img{i}"], "id")
        assert got == mark.encode(), f"img{i}'s ref {refs[f'img{i}']} holds {got!r}, not {mark}"
    ws.pulumi(program, "up", "--yes", "--expect-no-changes")
    ws.pulumi(program, "destroy", "--yes")
