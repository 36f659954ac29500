"""The /v1 schema never breaks a client: the committed copy against the one the code serves now."""

import copy

import pytest

from mittis.api.schema_compat import breaking_changes, committed_schema, generated_schema

MESSAGE = "/v1/messages/{id}"


@pytest.fixture(scope="module")
def served():
    return generated_schema()


def test_the_served_schema_keeps_every_promise_of_the_committed_one_and_is_committed(served, client, db):
    assert breaking_changes(committed_schema(), served) == []
    # Additions pass the check, and then the committed copy is updated in the same change:
    # `manage.py schema_check --write`.
    assert served == committed_schema(), "run `manage.py schema_check --write` and commit mittis/api/openapi-v1.json"
    assert client.get("/openapi.json").json()["paths"] == served["paths"]  # what clients actually read


def message_schema(schema):
    return schema["components"]["schemas"]["Message"]


@pytest.mark.parametrize("change, expected", [
    (lambda s: s["paths"].pop("/v1/balance"), "/v1/balance: path removed"),
    (lambda s: s["paths"][MESSAGE].pop("get"), f"GET {MESSAGE}: operation removed"),
    (lambda s: s["paths"]["/v1/messages"]["post"]["responses"].pop("402"), "POST /v1/messages: response 402 removed"),
    (lambda s: message_schema(s)["properties"].pop("segments"), f"GET {MESSAGE}: response 200: field 'segments' removed"),
    (lambda s: message_schema(s)["properties"].__setitem__("num_segments", message_schema(s)["properties"].pop("segments")),
     f"GET {MESSAGE}: response 200: field 'segments' removed"),
    (lambda s: s["components"]["schemas"]["MessageStatusEnum"]["enum"].remove("undelivered"),
     f"GET {MESSAGE}: response 200.status: enum value '\"undelivered\"' removed"),
    (lambda s: s["components"]["schemas"]["MessageCreateRequest"]["required"].append("metadata"),
     "POST /v1/messages: request body: field 'metadata' became required"),
    (lambda s: message_schema(s)["properties"]["segments"].__setitem__("type", "string"),
     f"GET {MESSAGE}: response 200.segments: type integer became string"),
])
def test_a_removal_a_rename_or_a_new_requirement_is_caught(served, change, expected):
    changed = copy.deepcopy(served)
    change(changed)

    assert expected in breaking_changes(served, changed)


def test_additions_pass(served):
    changed = copy.deepcopy(served)
    message_schema(changed)["properties"]["carrier_region"] = {"type": "string"}
    changed["components"]["schemas"]["MessageStatusEnum"]["enum"].append("held")
    changed["paths"]["/v1/messages"]["post"]["responses"]["504"] = {"description": "gateway timeout"}
    changed["paths"]["/v1/widgets"] = {"get": {"responses": {"200": {"description": "ok"}}}}
    changed["components"]["schemas"]["MessageCreateRequest"]["properties"]["tag"] = {"type": "string"}

    assert breaking_changes(served, changed) == []
