"""The generated Python SDK (`pip install ./sdk/python`) against Pulumi's mock runtime: the
program of the product brief registers `docker-buildkit:index:Image` with camelCase inputs,
schema defaults applied, the registry password as a secret, typed outputs, and in preview an
unknown digest."""

import os
import runpy

import pulumi

import mockrt

# The mocks must be in place before the SDK is imported.
mockrt.use_mocks(preview=False)

import pulumi_docker_buildkit as docker_buildkit  # noqa: E402
from pulumi_docker_buildkit import outputs  # noqa: E402

IMAGE = "docker-buildkit:index:Image"
DIGEST = "sha256:" + "ab" * 32


def image_outputs(typ, name, inputs):
    if typ != IMAGE:
        return {}
    repository = inputs["name"]
    return {
        "digest": DIGEST,
        "ref": f"{repository}@{DIGEST}",
        "repoDigest": f"{repository}@{DIGEST}",
        "contextHash": "0" * 32,
    }


def every_input(**overrides):
    args = dict(
        name="127.0.0.1:5000/app",
        tags=["v1", "127.0.0.1:5000/other:v1"],
        dockerfile_inline="FROM scratch\nCOPY index.html /srv/\n",
        platforms=["linux/amd64"],
        build_args={"VERSION": "1.2"},
        target="release",
        labels={"team": "web"},
        cache_from=["127.0.0.1:5000/cache"],
        no_cache=True,
        network="none",
        registry=docker_buildkit.RegistryArgs(server="127.0.0.1:5000", username="u", password="hunter2"),
        triggers=["1"],
    )
    args.update(overrides)
    return args


@pulumi.runtime.test
def test_every_input_reaches_the_engine_by_its_wire_name():
    mocks, monitor = mockrt.use_mocks(preview=False, outputs=image_outputs)
    image = docker_buildkit.Image("image", **every_input())

    async def check():
        await image.urn.future()
        sent, request = monitor.sent(IMAGE, "image")
        assert request.custom
        assert [r.typ for r in mocks.registered] == [IMAGE]
        assert sent["name"] == "127.0.0.1:5000/app"
        assert sent["tags"] == ["v1", "127.0.0.1:5000/other:v1"]
        assert sent["dockerfileInline"].startswith("FROM scratch")
        assert sent["platforms"] == ["linux/amd64"]
        assert sent["buildArgs"] == {"VERSION": "1.2"}
        assert sent["target"] == "release"
        assert sent["labels"] == {"team": "web"}
        assert sent["cacheFrom"] == ["127.0.0.1:5000/cache"]
        assert sent["noCache"] is True
        assert sent["network"] == "none"
        assert sent["triggers"] == ["1"]
        # Schema defaults are applied when not given, as Pulumi's codegen does. `context` has
        # none: the provider decides ("." or, with an inline Dockerfile, an empty context).
        assert "context" not in sent
        assert sent["inlineCache"] is True
        assert sent["push"] is True
        # Output-only properties are not inputs.
        for out in ("digest", "ref", "repoDigest", "contextHash"):
            assert out not in sent
        # No snake_case name leaks onto the wire.
        assert not [k for k in sent if "_" in k]
        # The password, and only it, travels as a secret.
        registry = sent["registry"]
        assert registry["server"] == "127.0.0.1:5000"
        assert registry["username"] == "u"
        assert mockrt.reveal(registry["password"]) == "hunter2"
        assert request.version == docker_buildkit._utilities.get_version()

        ref, known, secret = await mockrt.resolved(image.ref)
        assert (ref, known, secret) == (f"127.0.0.1:5000/app@{DIGEST}", True, False)
        assert await image.digest.future() == DIGEST
        assert await image.name.future() == "127.0.0.1:5000/app"
        assert await image.build_args.future() == {"VERSION": "1.2"}
        assert await image.no_cache.future() is True
        # The registry output is the typed output class, and secret (it holds the password).
        registry_out, _, registry_secret = await mockrt.resolved(image.registry)
        assert isinstance(registry_out, outputs.Registry)
        assert registry_out.server == "127.0.0.1:5000"
        assert registry_out.password == "hunter2"
        assert registry_secret

    return check()


@pulumi.runtime.test
def test_args_object_and_dict_registry():
    mocks, monitor = mockrt.use_mocks(preview=False, outputs=image_outputs)
    args = docker_buildkit.ImageArgs(**every_input(registry={"server": "r", "username": "u", "password": "p"}))
    image = docker_buildkit.Image("from-args", args, pulumi.ResourceOptions(protect=False))

    async def check():
        await image.urn.future()
        sent, _ = monitor.sent(IMAGE, "from-args")
        assert sent["buildArgs"] == {"VERSION": "1.2"}
        assert sent["registry"]["server"] == "r"
        assert mockrt.reveal(sent["registry"]["password"]) == "p"
        # The caller's args object is not changed in place.
        assert args.registry == {"server": "r", "username": "u", "password": "p"}

    return check()


@pulumi.runtime.test
def test_password_given_as_an_output_stays_secret():
    mocks, monitor = mockrt.use_mocks(preview=False, outputs=image_outputs)
    password = pulumi.Output.from_input("from-elsewhere")
    image = docker_buildkit.Image(
        "output-password",
        name="r/app",
        registry=docker_buildkit.RegistryArgs(server="r", password=password),
    )

    async def check():
        await image.urn.future()
        sent, _ = monitor.sent(IMAGE, "output-password")
        assert mockrt.reveal(sent["registry"]["password"]) == "from-elsewhere"

    return check()


def test_name_is_required():
    mockrt.use_mocks(preview=False)
    try:
        docker_buildkit.Image("nameless", context=".")
    except TypeError as e:
        assert "name" in str(e)
    else:
        raise AssertionError("an Image without a name was accepted")


@pulumi.runtime.test
def test_preview_leaves_the_digest_unknown():
    mocks, monitor = mockrt.use_mocks(preview=True)
    image = docker_buildkit.Image("image", name="127.0.0.1:5000/app", context="./app")

    async def check():
        await image.urn.future()
        _, known, _ = await mockrt.resolved(image.digest)
        assert not known
        _, known, _ = await mockrt.resolved(image.ref)
        assert not known
        # Inputs are known in preview.
        value, known, _ = await mockrt.resolved(image.context)
        assert (value, known) == ("./app", True)

    return check()


@pulumi.runtime.test
def test_get_reads_by_id():
    mocks, _ = mockrt.use_mocks(preview=False)
    image = docker_buildkit.Image.get("existing", "existing-id")

    async def check():
        await image.urn.future()
        assert [(r.typ, r.resource_id) for r in mocks.reads] == [(IMAGE, "existing-id")]

    return check()


@pulumi.runtime.test
def test_provider_takes_the_config_inputs():
    mocks, monitor = mockrt.use_mocks(preview=False)
    provider = docker_buildkit.Provider("local", host="unix:///run/docker.sock", cert_path="/certs")
    image = docker_buildkit.Image("with-provider", name="r/app", opts=pulumi.ResourceOptions(provider=provider))

    async def check():
        await image.urn.future()
        sent, _ = monitor.sent("pulumi:providers:docker-buildkit", "local")
        assert sent == {"host": "unix:///run/docker.sock", "certPath": "/certs"}
        _, request = monitor.sent(IMAGE, "with-provider")
        assert "pulumi:providers:docker-buildkit::local::local-id" in request.provider

    return check()


def test_config_reads_the_provider_namespace():
    pulumi.runtime.set_config("docker-buildkit:host", "tcp://10.0.0.1:2376")
    assert docker_buildkit.config.host == "tcp://10.0.0.1:2376"
    assert docker_buildkit.config.cert_path is None


def test_plugin_metadata():
    import importlib.resources
    import json

    meta = json.loads(importlib.resources.files("pulumi_docker_buildkit").joinpath("pulumi-plugin.json").read_text())
    assert meta["resource"] is True
    assert meta["name"] == "docker-buildkit"
    assert meta["version"] == docker_buildkit._utilities.get_version()
    assert importlib.resources.files("pulumi_docker_buildkit").joinpath("py.typed").is_file()


@pulumi.runtime.test
def test_the_python_example_program():
    mocks, monitor = mockrt.use_mocks(preview=False, outputs=image_outputs)
    pulumi.runtime.set_all_config(
        {"sdk-test:registry": "127.0.0.1:5055", "sdk-test:username": "dbk", "sdk-test:password": "pw"},
        ["sdk-test:password"],
    )
    example = os.path.join(os.path.dirname(__file__), "..", "..", "..", "examples", "python", "__main__.py")
    program = runpy.run_path(example, run_name="__main__")

    async def check():
        await program["app"].urn.future()
        await program["busybox"].urn.future()
        app, _ = monitor.sent(IMAGE, "app")
        busybox, _ = monitor.sent(IMAGE, "app-busybox")
        assert (app["name"], app["context"]) == ("127.0.0.1:5055/examples/app", "../app")
        assert (busybox["context"], busybox["network"]) == ("../app-busybox", "none")
        for sent in (app, busybox):
            assert sent["registry"]["username"] == "dbk"
            assert mockrt.reveal(sent["registry"]["password"]) == "pw"

    return check()
