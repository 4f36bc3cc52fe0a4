"""Issue 20 through the real engine: `pulumi preview` fails, without building, on what `up`
would fail on minutes later — a COPY source the .dockerignore excluded, a target that is not a
stage — and names the input, the Dockerfile line and the .dockerignore pattern."""

from __future__ import annotations

import time

from conftest import Workspace, python_program, unique

PROGRAM = """\
import pulumi
import pulumi_docker_buildkit as dbk

config = pulumi.Config()
image = dbk.Image(
    "app",
    name=f"{config.require('registry')}/{config.require('namespace')}/app",
    context="./app",
    push=False,
    target=config.get("target"),
)
"""

DOCKERFILE = """\
FROM scratch AS build
COPY app.py /app/
COPY config.yaml /app/

FROM scratch AS release
COPY --from=build /app /app
"""


def test_preview_catches_an_excluded_source_and_a_bad_target(workspace: Workspace, shared_venv):
    ws = workspace
    program = python_program(ws, shared_venv, "preview-dockerfile", PROGRAM, {
        "app/Dockerfile": DOCKERFILE,
        "app/.dockerignore": "# generated files\n*.yaml\n",
        "app/app.py": "print('hi')\n",
        "app/config.yaml": "a: 1\n",
    })
    ws.new_stack(program, unique("preview-df"))
    started = time.monotonic()
    preview = ws.pulumi(program, "preview", check=False, timeout=300)
    assert preview.rc != 0, preview.text
    text = preview.text
    assert "dockerfile" in text and "line 3" in text, text
    assert "`config.yaml` is not in the build context" in text, text
    assert "excluded by `*.yaml` on line 2 of .dockerignore" in text, text
    # The check never builds: nothing of BuildKit's output, and quick.
    assert "[internal] load" not in text and "#1 " not in text, text
    assert time.monotonic() - started < 120

    # Fixed .dockerignore, a typo in the target.
    (program / "app" / ".dockerignore").write_text("# generated files\n*.log\n")
    ws.pulumi(program, "config", "set", "target", "relase")
    preview = ws.pulumi(program, "preview", check=False, timeout=300)
    assert preview.rc != 0, preview.text
    assert 'target stage "relase" is not a stage' in preview.text, preview.text
    assert "build, release" in preview.text, preview.text

    ws.pulumi(program, "config", "set", "target", "release")
    ws.pulumi(program, "preview")
