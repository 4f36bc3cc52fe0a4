"""The SDK generator is generic over the schema: a made-up package
(`tests/sdk/fixture/schema.json`, rendered by `codegen sdk --schema … --out …` and installed
by scripts/test-sdk.sh) exercises integers, numbers, enums, `Any`, nested arrays and maps of
object types with secrets at any depth, a top-level secret output, a resource in another
module, a Python keyword as a property name, and non-string provider config."""

import pulumi

import mockrt

mockrt.use_mocks(preview=False)

import pulumi_kitchen as kitchen  # noqa: E402

WIDGET = "kitchen:index:Widget"


def widget_outputs(typ, name, inputs):
    if typ != WIDGET:
        return {}
    return {
        "createdAt": "today",
        "secretOut": "s3cr3t",
        "primary": {"url": "https://a", "authToken": "t", "headers": [{"name": "h"}]},
    }


@pulumi.runtime.test
def test_every_type_kind_on_the_wire():
    mocks, monitor = mockrt.use_mocks(preview=False, outputs=widget_outputs)
    widget = kitchen.Widget(
        "w",
        size=3,
        anything={"free": ["form", 1]},
        endpoints=[
            kitchen.EndpointArgs(
                url="https://a",
                auth_token="token-a",
                weight=0.25,
                tags={"k": "v"},
                headers=[kitchen.HeaderArgs(name="X-Key", value="header-secret")],
                mode=kitchen.Mode.CAREFUL,
            )
        ],
        # Dicts may use the wire names or (as the TypedDicts spell them) the Python names.
        endpoints_by_name={
            "b": {"url": "https://b", "authToken": "token-b"},
            "c": {"url": "https://c", "auth_token": "token-c"},
        },
        password="pw",
        levels=[kitchen.Level.HIGH, kitchen.Level.LOW],
        matrix=[[1.5, 2.0], []],
    )

    async def check():
        await widget.urn.future()
        sent, request = monitor.sent(WIDGET, "w")
        assert sent["size"] == 3
        assert sent["ratio"] == 0.5 and sent["enabled"] is True and sent["mode"] == "fast"
        assert sent["anything"] == {"free": ["form", 1]}
        assert sent["levels"] == [10, 1]
        assert sent["matrix"] == [[1.5, 2.0], []]
        endpoint = sent["endpoints"][0]
        assert endpoint["url"] == "https://a" and endpoint["weight"] == 0.25
        assert endpoint["tags"] == {"k": "v"} and endpoint["mode"] == "safe"
        assert mockrt.reveal(endpoint["authToken"]) == "token-a"
        assert endpoint["headers"][0]["name"] == "X-Key"
        assert mockrt.reveal(endpoint["headers"][0]["value"]) == "header-secret"
        by_name = sent["endpointsByName"]["b"]
        assert by_name["url"] == "https://b"
        assert mockrt.reveal(by_name["authToken"]) == "token-b"
        assert mockrt.reveal(sent["endpointsByName"]["c"]["authToken"]) == "token-c"
        assert mockrt.reveal(sent["password"]) == "pw"
        assert sorted(request.additionalSecretOutputs) == ["password", "secretOut"]

        created, known, _ = await mockrt.resolved(widget.created_at)
        assert (created, known) == ("today", True)
        primary = await widget.primary.future()
        assert isinstance(primary, kitchen.outputs.Endpoint)
        assert primary.auth_token == "t"
        assert isinstance(primary.headers[0], kitchen.outputs.Header)

    return check()


@pulumi.runtime.test
def test_other_module_and_keyword_names():
    mocks, monitor = mockrt.use_mocks(preview=False)
    bucket = kitchen.Bucket("b", from_="elsewhere")
    empty = kitchen.Bucket("empty")

    async def check():
        await bucket.urn.future()
        await empty.urn.future()
        sent, _ = monitor.sent("kitchen:storage:Bucket", "b")
        assert sent == {"from": "elsewhere"}
        assert await bucket.from_.future() == "elsewhere"

    return check()


@pulumi.runtime.test
def test_provider_config_inputs_are_json_and_secret():
    mocks, monitor = mockrt.use_mocks(preview=False)
    provider = kitchen.Provider("p", region="eu", retries=5, api_key="key")

    async def check():
        await provider.urn.future()
        sent, _ = monitor.sent("pulumi:providers:kitchen", "p")
        assert sent["region"] == "eu"
        assert sent["retries"] == "5"
        assert mockrt.reveal(sent["apiKey"]) == "key"

    return check()


def test_config_getters_and_defaults():
    assert kitchen.config.retries == 3
    assert kitchen.config.verbose is None
    pulumi.runtime.set_config("kitchen:retries", "7")
    pulumi.runtime.set_config("kitchen:verbose", "true")
    assert kitchen.config.retries == 7
    assert kitchen.config.verbose is True


def test_docs_survive_escaping():
    doc = type(kitchen.config).region.__doc__
    assert 'a backslash \\ and a """ survive' in doc
