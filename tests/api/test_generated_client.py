"""Clients generated from /openapi.json work as generated: every default the schema gives satisfies the schema
it is given in (a generated model sends its defaults), and a client generated with openapi-python-client
sends, reads, lists and previews a message against the real server, with nothing patched or set by hand."""

from collections.abc import Iterator

from openapi_schema_validator import OAS30Validator, oas30_format_checker
import pytest

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
