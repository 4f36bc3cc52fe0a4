"""Builds ../app (FROM scratch) and ../app-busybox (a RUN step) with docker-buildkit and pushes
both to the registry named in config:

    pulumi config set registry 127.0.0.1:5055
    pulumi config set username dbk
    pulumi config set --secret password <password>

Optional: `namespace` (the repository path under the registry, default "examples") and a
secret `buildToken`, handed to the busybox build as the build secret `token` (read by
`RUN --mount=type=secret,id=token`; it never reaches the image, the state or the logs).
"""

import pulumi
import pulumi_docker_buildkit as docker_buildkit

config = pulumi.Config()
registry_host = config.require("registry")
namespace = config.get("namespace") or "examples"
build_token = config.get_secret("buildToken")
credentials = docker_buildkit.RegistryArgs(
    server=registry_host,
    username=config.get("username"),
    password=config.get_secret("password"),
)

app = docker_buildkit.Image(
    "app",
    name=f"{registry_host}/{namespace}/app",
    context="../app",
    build_args={"VERSION": "1"},
    registry=credentials,
)

busybox = docker_buildkit.Image(
    "app-busybox",
    name=f"{registry_host}/{namespace}/app-busybox",
    context="../app-busybox",
    secrets={"token": build_token} if build_token is not None else None,
    # RUN steps get no network: the test daemon has no bridge.
    network="none",
    registry=credentials,
)

pulumi.export("ref", app.ref)
pulumi.export("busyboxRef", busybox.ref)
