"""Clients generated from /openapi.json work as generated: every default the schema gives satisfies the schema
it is given in (a generated model sends its defaults), and a client generated with openapi-python-client
sends, reads, lists and previews a message against the real server, with nothing patched or set by hand."""

from collections.abc import Iterator
import importlib
import os
from pathlib import Path
import subprocess
import sys
import urllib.request

from openapi_schema_validator import OAS30Validator, oas30_format_checker
import pytest

from tests.conftest import SEED
from tests.factories import AccountFactory, SenderFactory, api_key_for
from tests.test_serving import web_server

# Maps whose keys are names (a property, a status code, a media type...), not keywords: a property named
# `default` or a `default` response is not a schema's default.
NAMED_MAPS = {"properties", "patternProperties", "paths", "responses", "headers", "content", "schemas",
              "parameters", "securitySchemes", "requestBodies", "links", "callbacks", "encoding"}
# Values that are data, not schemas.
DATA_KEYWORDS = {"default", "enum", "example", "examples"}


def schema_defaults(node, where: str = "#") -> Iterator[tuple[str, dict]]:
    """(JSON pointer, schema) of every schema object in an OpenAPI document that declares a `default`."""
    if isinstance(node, list):
        for index, item in enumerate(node):
            yield from schema_defaults(item, f"{where}/{index}")
    elif isinstance(node, dict):
        if "default" in node:
            yield where, node
        for key, value in node.items():
            if key in NAMED_MAPS and isinstance(value, dict):
                for name, item in value.items():
                    yield from schema_defaults(item, f"{where}/{key}/{name}")
            elif key not in DATA_KEYWORDS:
                yield from schema_defaults(value, f"{where}/{key}")


def default_problems(document: dict) -> list[str]:
    """Each default that its own schema refuses, with why (`$ref`s resolved against the document)."""
    problems = []
    for where, schema in schema_defaults(document):
        constraints = {key: value for key, value in schema.items() if key != "default"}
        validator = OAS30Validator({**constraints, "components": document.get("components", {})},
                                   format_checker=oas30_format_checker)
        problems += [f"{where}: default {schema['default']!r}: {error.message}"
                     for error in validator.iter_errors(schema["default"])]
    return problems


def test_no_default_of_the_schema_is_refused_by_its_own_constraints(client, db):
    document = client.get("/openapi.json").json()

    assert len(list(schema_defaults(document))) > 10  # the walk reaches properties and parameters
    assert default_problems(document) == []


@pytest.mark.parametrize("schema", [
    {"type": "string", "minLength": 1, "default": ""},
    {"type": "string", "maxLength": 2, "default": "abc"},
    {"type": "string", "enum": ["day", "country"], "default": "week"},
    {"type": "string", "pattern": "^\\+[0-9]+$", "default": "0800"},
    {"type": "integer", "minimum": 1, "default": 0},
    {"type": "integer", "maximum": 100, "default": 101},
    {"type": "integer", "default": "20"},
    {"type": "string", "default": None},
    {"type": "string", "format": "date-time", "default": "tomorrow"},
    {"allOf": [{"$ref": "#/components/schemas/Format"}], "default": "xml"},
], ids=["minLength", "maxLength", "enum", "pattern", "minimum", "maximum", "type", "nullable", "format", "$ref"])
def test_a_default_its_schema_refuses_is_found(schema):
    document = {"components": {"schemas": {"Format": {"type": "string", "enum": ["csv", "ndjson"]},
                                           "Request": {"type": "object", "properties": {"field": schema}}}}}

    problems = default_problems(document)
    assert problems and all(p.startswith("#/components/schemas/Request/properties/field: default") for p in problems)


def test_a_property_named_default_and_a_default_response_are_not_defaults():
    document = {"paths": {"/x": {"get": {"responses": {"default": {"description": "Any error."}}}}},
                "components": {"schemas": {"Prices": {"type": "object", "properties": {
                    "default": {"type": "string"}}}}}}

    assert list(schema_defaults(document)) == []


# --- a generated client against the real server ------------------------------------------------------
GENERATOR = Path(sys.executable).parent / "openapi-python-client"


@pytest.fixture
def server_key(transactional_db):
    """A test key of an account that owns SEED's sender, committed where the server sees it."""
    account = AccountFactory()
    SenderFactory(account=account, value=SEED["from"])
    return api_key_for(account)


@pytest.fixture
def generated_client(tmp_path, monkeypatch):
    """`generate(url)`: the package openapi-python-client generates from the schema at `url`, imported."""
    def generate(url: str):
        schema = tmp_path / "openapi.json"
        schema.write_bytes(urllib.request.urlopen(url, timeout=10).read())
        package = tmp_path / "mittis_client"
        # The generator formats its output with ruff, which is installed beside it.
        ran = subprocess.run([GENERATOR, "generate", "--path", schema, "--output-path", package, "--meta", "none"],
                             capture_output=True, text=True, timeout=60,
                             env={**os.environ, "PATH": f"{GENERATOR.parent}{os.pathsep}{os.environ['PATH']}"})
        assert ran.returncode == 0 and "Warning" not in ran.stdout + ran.stderr, ran.stdout + ran.stderr
        monkeypatch.syspath_prepend(tmp_path)
        return importlib.import_module("mittis_client")

    yield generate
    for name in [name for name in sys.modules if name.split(".")[0] == "mittis_client"]:
        del sys.modules[name]


def test_a_generated_client_sends_reads_lists_and_previews_a_message(server_key, generated_client):
    with web_server(WEB_CONCURRENCY="1") as (_, port):
        base_url = f"http://127.0.0.1:{port}"
        mittis_client = generated_client(f"{base_url}/openapi.json")
        from mittis_client.api.messages import messages_create, messages_list, messages_preview, messages_retrieve
        from mittis_client.models import Message, MessageCreateRequest, MessageList, MessagePreview

        with mittis_client.AuthenticatedClient(base_url=base_url, token=server_key,
                                               raise_on_unexpected_status=True) as client:
            request = MessageCreateRequest(from_=SEED["from"], to=SEED["to"], body=SEED["body"])
            preview = messages_preview.sync_detailed(client=client, body=request)
            sent = messages_create.sync_detailed(client=client, body=request)
            assert sent.status_code == 201, sent.content
            read = messages_retrieve.sync_detailed(client=client, id=sent.parsed.id)
            listed = messages_list.sync_detailed(client=client, to=SEED["to"])

    assert [preview.status_code, read.status_code, listed.status_code] == [200, 200, 200]
    assert isinstance(preview.parsed, MessagePreview) and isinstance(sent.parsed, Message)
    assert (preview.parsed.segments, preview.parsed.price) == (1, "0.008")
    message = sent.parsed
    assert message.id.startswith("msg_") and message.status.value == "queued" and message.price == "0.008"
    assert (message.from_, message.to, message.body, message.status_callback) == (*SEED.values(), None)
    assert isinstance(read.parsed, Message) and read.parsed.id == message.id
    assert isinstance(listed.parsed, MessageList) and [m.id for m in listed.parsed.data] == [message.id]
