"""Builds ../app (FROM scratch) and ../app-busybox (a RUN step) with docker-buildkit and pushes
both to the registry named in config:

    pulumi config set registry 127.0.0.1:5055
    pulumi config set username dbk
    pulumi config set --secret password <password>
"""

import pulumi
import pulumi_docker_buildkit as docker_buildkit

config = pulumi.Config()
registry_host = config.require("registry")
credentials = docker_buildkit.RegistryArgs(
    server=registry_host,
    username=config.get("username"),
    password=config.get_secret("password"),
)

app = docker_buildkit.Image(
    "app",
    name=f"{registry_host}/examples/app",
    context="../app",
    build_args={"VERSION": "1"},
    registry=credentials,
)

busybox = docker_buildkit.Image(
    "app-busybox",
    name=f"{registry_host}/examples/app-busybox",
    context="../app-busybox",
    # RUN steps get no network: the test daemon has no bridge.
    network="none",
    registry=credentials,
)

pulumi.export("ref", app.ref)
pulumi.export("busyboxRef", busybox.ref)
