"""examples/python and examples/nodejs under the real Pulumi CLI, the whole life of a stack:
preview (nothing built, nothing pushed), up (pushed; `ref` pins an image the registry
serves), up again and an ignored edit (no changes, no build), an included edit (`preview
--diff` names the file), refresh (no change), destroy; and the registry password and a
build secret in no line the CLI printed and nowhere in `stack export` outside Pulumi's
secret envelope. Plus a YAML program (Pulumi's own YAML language host, which reads our
schema from the provider) through up and destroy."""

from __future__ import annotations

import json
import re
import secrets as pysecrets

import pytest
from conftest import Workspace, local_images, unique

SIG = "4dabf18193072939515e22adb298388d"


def without_secret_envelopes(value):
    """The value with every Pulumi secret envelope replaced by a marker."""
    if isinstance(value, dict):
        if SIG in value:
            return "<secret envelope>"
        return {k: without_secret_envelopes(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_secret_envelopes(v) for v in value]
    return value


def secret_envelopes(value, found=None):
    found = [] if found is None else found
    if isinstance(value, dict):
        if SIG in value:
            found.append(value)
        else:
            for v in value.values():
                secret_envelopes(v, found)
    elif isinstance(value, list):
        for v in value:
            secret_envelopes(v, found)
    return found


def image_resources(export: dict) -> dict[str, dict]:
    resources = export["deployment"].get("resources") or []
    return {r["urn"].rsplit("::", 1)[-1]: r for r in resources
            if r["type"] == "docker-buildkit:index:Image"}


def assert_no_build_lines(text: str) -> None:
    # What a build prints: BuildKit's plain progress and our transfer line.
    assert not re.search(r"^.*#\d+ \[", text, re.M), text
    assert "to the builder" not in text, text


@pytest.mark.parametrize("language", ["python", "nodejs"])
def test_example_program_lifecycle(workspace: Workspace, language: str):
    ws = workspace
    program = ws.root / "examples" / language
    namespace = unique(f"engine-{language}")
    # A token of its own length, so the size the image records is this run's.
    token = "tok-" + pysecrets.token_hex(6 + pysecrets.randbelow(20))
    ws.new_stack(program, namespace, secret_buildToken=token)
    # This run's own busybox app, so its RUN steps run here (BuildKit's cache keys leave
    # secret values out: an identical earlier build would be reused, secret and all).
    with open(ws.root / "examples" / "app-busybox" / "index.html", "a") as f:
        f.write(f"<!-- {namespace} -->\n")
    reg = ws.registry
    start = len(ws.transcript)
    repos = (f"{namespace}/app", f"{namespace}/app-busybox")

    # What a user runs first in a fresh checkout: the program's dependencies (a venv with
    # requirements.txt; npm install), our SDK among them, from ../../sdk.
    ws.pulumi(program, "install")

    # preview: Check hashes, nothing is built or pushed.
    assert local_images(namespace) == set()
    preview = ws.pulumi(program, "preview")
    # The two images and the stack itself.
    assert "+ 3 to create" in preview.out, preview.text
    assert_no_build_lines(preview.text)
    assert local_images(namespace) == set(), "preview built an image"
    for repo in repos:
        assert reg.tags(repo) == [], f"preview pushed to {repo}"

    # up: both images built and pushed, their refs exported.
    up = ws.pulumi(program, "up", "--yes")
    outputs = ws.outputs(program)
    for key, repo in (("ref", repos[0]), ("busyboxRef", repos[1])):
        assert re.fullmatch(rf"{re.escape(reg.host)}/{re.escape(repo)}@sha256:[0-9a-f]{{64}}",
                            outputs[key]), outputs
    # The build's progress reached the CLI while it ran.
    assert "COPY index.html /srv/index.html" in up.out, up.text
    index_html = (ws.root / "examples" / "app" / "index.html").read_bytes()
    assert reg.read_file(outputs["ref"], "srv/index.html") == index_html
    # The build secret reached RUN (its size is in the image), never its value.
    assert reg.read_file(outputs["busyboxRef"], "srv/TOKEN_BYTES").strip() == str(len(token)).encode()
    for repo, ref in zip(repos, (outputs["ref"], outputs["busyboxRef"])):
        _, manifest = reg.image_manifest(ref)
        assert reg.blob(repo, manifest["config"]["digest"]), "config blob not served"
        assert token.encode() not in reg.blob(repo, manifest["config"]["digest"])

    # up again: nothing to do, nothing built.
    again = ws.pulumi(program, "up", "--yes", "--expect-no-changes")
    assert_no_build_lines(again.text)
    assert ws.outputs(program) == outputs

    # An edit .dockerignore keeps out: no change in preview or up.
    with open(ws.root / "examples" / "app" / "NOTES.md", "a") as f:
        f.write(f"ignored edit {namespace}\n")
    ws.pulumi(program, "preview", "--expect-no-changes")
    ws.pulumi(program, "up", "--yes", "--expect-no-changes")

    # An edit that reaches the image: preview --diff names the file, up rebuilds.
    index = ws.root / "examples" / "app" / "index.html"
    edited = index.read_text().replace("</body>", f"<!-- {namespace} --></body>")
    if edited == index.read_text():
        edited = index.read_text() + f"\n<!-- {namespace} -->\n"
    index.write_text(edited)
    diff = ws.pulumi(program, "preview", "--diff")
    # The provider's note (a diagnostic: the CLI prints it on stderr in --diff mode).
    assert "1 file changed in the build context: index.html" in diff.text, diff.text
    assert "~ 1 to update" in diff.out, diff.text
    ws.pulumi(program, "up", "--yes")
    updated = ws.outputs(program)
    assert updated["ref"] != outputs["ref"]
    assert updated["busyboxRef"] == outputs["busyboxRef"]
    assert reg.read_file(updated["ref"], "srv/index.html") == edited.encode()

    # refresh: the registry still has both images, nothing changes.
    ws.pulumi(program, "refresh", "--yes", "--expect-no-changes")

    # Secrets: nowhere in what the CLI printed, nor in the state outside envelopes.
    export = ws.export(program)
    clear = json.dumps(without_secret_envelopes(export))
    printed = "\n".join(ws.transcript[start:])
    for secret in (reg.password, token):
        assert secret not in printed, "a secret reached the CLI's output"
        assert secret not in clear, "a secret is in the state in clear"
    images = image_resources(export)
    assert set(images) == {"app", "app-busybox"}, images
    busybox = images["app-busybox"]
    assert secret_envelopes(busybox["inputs"]["registry"]), "the registry password is not a secret"
    assert secret_envelopes(busybox["inputs"]["secrets"]), "the build secrets are not secret"
    assert not export["deployment"].get("pending_operations"), export["deployment"]

    # destroy: the stack is empty; the registry keeps the images (they may be shared).
    ws.pulumi(program, "destroy", "--yes")
    assert not image_resources(ws.export(program))
    assert reg.read_file(updated["ref"], "srv/index.html") == edited.encode()
    ws.pulumi(program, "stack", "rm", "--yes")


YAML_PROGRAM = """\
name: {name}
runtime: yaml
config:
  registry: {{type: string}}
  username: {{type: string}}
  password: {{type: string, secret: true}}
  namespace: {{type: string}}
resources:
  app:
    type: docker-buildkit:Image
    properties:
      name: ${{registry}}/${{namespace}}/yaml-app
      context: ./app
      registry:
        server: ${{registry}}
        username: ${{username}}
        password: ${{password}}
outputs:
  ref: ${{app.ref}}
  contextHash: ${{app.contextHash}}
"""


def test_yaml_program_real_language_host(workspace: Workspace):
    """Pulumi's YAML host (a real language host, built from its module) asks the provider
    for its schema and registers an Image from it."""
    ws = workspace
    program = ws.root / "programs" / "yaml"
    (program / "app").mkdir(parents=True)
    (program / "Pulumi.yaml").write_text(YAML_PROGRAM.format(name="dbk-yaml"))
    (program / "app" / "Dockerfile").write_text("FROM scratch\nCOPY hello.txt /hello.txt\n")
    (program / "app" / "hello.txt").write_text("hello from yaml\n")
    namespace = unique("engine-yaml")
    ws.new_stack(program, namespace)
    ws.pulumi(program, "preview")
    assert ws.registry.tags(f"{namespace}/yaml-app") == []
    ws.pulumi(program, "up", "--yes")
    ref = ws.outputs(program)["ref"]
    assert ws.registry.read_file(ref, "hello.txt") == b"hello from yaml\n"
    ws.pulumi(program, "up", "--yes", "--expect-no-changes")
    ws.pulumi(program, "destroy", "--yes")
    ws.pulumi(program, "stack", "rm", "--yes")
