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


def assert_not_built(text: str) -> None:
    """No line of BuildKit's progress output: the preview checked and did not build."""
    assert "[internal] load" not in text and "#1 " not in text, text


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
    assert_not_built(text)
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


# One program, one Image per `case`: each Dockerfile fails (or warns) in preview the way the
# README shows it. The images use `FROM alpine:3.20`, which cannot be pulled here: a build would
# fail on the pull, so a preview that passed or that built would show.
CASES_PROGRAM = """\
import pulumi
import pulumi_docker_buildkit as dbk

config = pulumi.Config()
case = config.require("case")
name = f"{config.require('registry')}/{config.require('namespace')}/app"
if case == "parse":
    dbk.Image("app", name=name, context="./parse", push=False)
elif case == "inline":
    dbk.Image("app", name=name, context="./parse", push=False, dockerfile_inline=(
        "FROM scratch AS build\\n"
        "COPY app.py /app/\\n"
        "\\n"
        "FROM scratch\\n"
        "COPY --from=3 /app /app\\n"
    ))
elif case == "required":
    dbk.Image("app", name=name, context="./required", push=False)
elif case == "warnings":
    dbk.Image("app", name=name, context="./warnings", push=False, target="release",
              build_args={"VERSON": "1.2"},
              secrets={"unused": config.require_secret("token")})
"""

CASE_FILES = {
    "parse/Dockerfile": (
        "FROM alpine:3.20 AS build\n"
        "WORKDIR /src\n"
        "COPY app.py .\n"
        "COPPY config.yaml .\n"
    ),
    "parse/app.py": "print('hi')\n",
    "parse/config.yaml": "a: 1\n",
    "required/Dockerfile": (
        "FROM alpine:3.20\n"
        "WORKDIR /src\n"
        "COPY app.py .\n"
        "RUN --mount=type=ssh,required=true ssh-add -l\n"
        "RUN --mount=type=secret,id=npmrc,required=true cat /run/secrets/npmrc\n"
    ),
    "required/app.py": "print('hi')\n",
    "warnings/Dockerfile": (
        "FROM scratch AS test\n"
        "COPY app.py /test/\n"
        "\n"
        "FROM alpine:3.20 AS builder\n"
        "ARG VERSION\n"
        "COPY app.py /out/\n"
        "RUN echo $VERSION > /out/version\n"
        "\n"
        "FROM scratch AS release\n"
        "COPY --from=buidler /out /\n"
    ),
    "warnings/app.py": "print('hi')\n",
}

RESOURCE_HEADER = "docker-buildkit:index:Image (app):"


def diagnostics(text: str) -> list[str]:
    """The lines pulumi prints under the Image's heading in its Diagnostics section, joined where
    a multi-line value (an inline Dockerfile) continues a message."""
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == RESOURCE_HEADER)
    except StopIteration:
        return []
    found: list[str] = []
    for line in lines[start + 1:]:
        stripped = line.strip()
        if stripped.startswith(("error:", "warning:")):
            found.append(stripped)
        elif found and stripped and line.startswith("    "):
            found[-1] += "\n" + stripped
        elif stripped.endswith(":") and not line.startswith("    "):
            break  # the next resource's heading, or the next section
    return found


def test_preview_shows_each_failure_and_warning(workspace: Workspace, shared_venv):
    ws = workspace
    program = python_program(ws, shared_venv, "preview-cases", CASES_PROGRAM, CASE_FILES)
    ws.new_stack(program, unique("preview-cases"), secret_token="s3cret")
    prefix = "error: docker-buildkit:index:Image resource 'app': property "

    def preview(case: str, fails: bool) -> list[str]:
        ws.pulumi(program, "config", "set", "case", case)
        result = ws.pulumi(program, "preview", check=False, timeout=300)
        assert (result.rc != 0) == fails, result.text
        assert_not_built(result.text)
        assert "s3cret" not in result.text, result.text
        found = diagnostics(result.text)
        assert found, result.text
        return found

    found = preview("parse", fails=True)
    assert prefix + "dockerfile value {<nil>} has a problem: line 4: unknown instruction: COPPY" \
        in found, found

    found = preview("inline", fails=True)
    errors = [line for line in found if line.startswith("error:")]
    assert len(errors) == 1, found
    assert errors[0].startswith(prefix + "dockerfileInline value {FROM scratch AS build"), found
    assert errors[0].endswith("} has a problem: line 5: COPY --from=3: invalid stage index 3"), found

    found = preview("required", fails=True)
    assert prefix + "ssh value {<nil>} has a problem: dockerfile line 4: " \
        "RUN --mount=type=ssh,required=true: the SSH agent `default` is required, " \
        "and `ssh` has no entry with id `default`" in found, found
    assert prefix + "secrets value {<nil>} has a problem: dockerfile line 5: " \
        "RUN --mount=type=secret,id=npmrc,required=true: the secret `npmrc` is required, " \
        "and `secrets` does not give it" in found, found

    found = preview("warnings", fails=False)
    assert sorted(found) == sorted([
        "warning: dockerfile: line 10: COPY --from=buidler: `buidler` is not a stage of this "
        "Dockerfile (its stages: test, builder, release), so BuildKit pulls it as an image",
        "warning: dockerfile: line 1: stage `test` is never used by the target stage `release`: "
        "BuildKit skips it",
        # The typo leaves `builder` unused too.
        "warning: dockerfile: line 4: stage `builder` is never used by the target stage "
        "`release`: BuildKit skips it",
        "warning: buildArgs: build arg `VERSON` is never declared by an ARG in the Dockerfile: "
        "BuildKit ignores it",
        "warning: secrets: secret `unused` is never mounted by a `RUN --mount=type=secret` in "
        "the Dockerfile",
    ]), found
