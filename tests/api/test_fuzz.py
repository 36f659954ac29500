"""Schemathesis against the served /openapi.json: every operation, with a test key and with a live key,
with generated valid and invalid input. No 5xx, no answer outside its documented schema, status codes
and content type, and invalid input always refused with a 4xx.

Half of the cases address objects that exist (a message, an event, an endpoint, an export of the
caller's), so the generator gets past the 404 and into the handlers.
"""

from datetime import timedelta
from decimal import Decimal
import json
import random
from urllib.parse import quote

from django.utils import timezone
from hypothesis import HealthCheck, Phase, settings as hypothesis_settings, strategies as st
import pytest
from rest_framework.test import APIClient
import schemathesis
from schemathesis.core import NotSet
from schemathesis.core.parameters import EncodedPath
from schemathesis.checks import (
    content_type_conformance, negative_data_rejection, not_a_server_error, response_headers_conformance,
    response_schema_conformance, status_code_conformance,
)

from billing.services import balance_top_up
from mittis.wsgi import application
from tests.conftest import SEED
from tests.factories import api_key_for

schema = schemathesis.openapi.from_wsgi("/openapi.json", application)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance, negative_data_rejection]
FUZZ = hypothesis_settings(max_examples=25, deadline=None, derandomize=True,
                           suppress_health_check=list(HealthCheck))


@pytest.fixture
def caller(account, settings):
    """Both of the account's keys, and for each mode an object of every kind to address."""
    settings.MITTIS_WEBHOOK_ALLOWED_PRIVATE, settings.MITTIS_WEBHOOK_ALLOW_HTTP = ["127.0.0.1"], True
    account.rate_limit = 10**6  # the generator, not the rate limit, is under test here
    account.save()
    balance_top_up(account_id=account.pk, livemode=True, amount=Decimal("100"))
    found = {}
    for livemode in (False, True):
        key = api_key_for(account, livemode=livemode)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        message = client.post("/v1/messages", {**SEED, "send_at": (timezone.now() + timedelta(days=1)).isoformat()},
                              format="json").json()
        event = client.get(f"/v1/messages/{message['id']}/events").json()["data"] or \
            client.get("/v1/events").json()["data"]
        endpoint = client.post("/v1/webhook_endpoints", {"url": "http://127.0.0.1:9/hooks"}, format="json").json()
        export = client.post("/v1/exports", {"type": "messages", "start": "2020-01-01T00:00:00Z",
                                             "end": "2030-01-01T00:00:00Z"}, format="json").json()
        found[livemode] = {"key": key, "/v1/messages/": message["id"], "/v1/webhook_endpoints/": endpoint["id"],
                           "/v1/exports/": export["id"], "/v1/events/": event[0]["id"] if event else "evt_none"}
    return found


def call(case, objects):
    if "id" in (case.path_parameters or {}) and not isinstance(case.path_parameters["id"], EncodedPath) and \
            random.Random(repr(case.path_parameters)).random() < 0.5:
        for prefix, object_id in objects.items():
            if case.path.startswith(prefix):
                case.path_parameters["id"] = object_id
    return case.call_and_validate(headers={"Authorization": f"Bearer {objects['key']}"}, checks=CHECKS)


@pytest.mark.django_db(transaction=True)
@schema.parametrize()
@FUZZ
def test_every_operation_with_a_test_key(case, caller):
    call(case, caller[False])


@pytest.mark.django_db(transaction=True)
@schema.parametrize()
@FUZZ
def test_every_operation_with_a_live_key(case, caller):
    call(case, caller[True])


# --- Hostile characters ---------------------------------------------------------------------------
# Each generated case with a NUL byte or a lone surrogate put in one place: the path's id, a query value, a
# header, or a JSON string or key. In a URL a lone surrogate is the three bytes that spell it, percent-encoded
# (what a client that encodes without checking sends); in a header it is sent as it is, in JSON as its escape.
HOSTILE_CHARACTERS = ["\x00", "\ud800", "\udfff"]
HOSTILE = [*HOSTILE_CHARACTERS, "msg_\x00", "a\x00b", "x\ud800y"]
IN_A_URL = [quote(c.encode("utf-8", "surrogatepass"), safe="") for c in HOSTILE_CHARACTERS]  # %00, %ED%A0%80...
IN_JSON = [json.dumps(c).strip('"') for c in HOSTILE_CHARACTERS]  # \u0000, \ud800...


def _injected(case, place: str, value: str):
    """A new case (schemathesis revalidates an edited one, and its validator takes no lone surrogate), as `case`
    but with `value` in `place`."""
    parts = {"path_parameters": dict(case.path_parameters or {}), "query": dict(case.query or {}),
             "headers": dict(case.headers or {}), "body": case.body}
    wire = value.encode("utf-8", "surrogatepass")  # a URL's bytes
    if place == "path":
        # Schemathesis quotes a path parameter as UTF-8, which has no lone surrogate: it gets the bytes quoted.
        parts["path_parameters"]["id"] = EncodedPath(quote(wire, safe=""))
    elif place == "query":
        declared = [parameter.name for parameter in case.operation.query] or ["hostile"]
        parts["query"][declared[len(value) % len(declared)]] = wire
    elif place == "header":
        parts["headers"]["Idempotency-Key" if case.method == "POST" and len(value) % 2 else "X-Hostile"] = value
    elif isinstance(case.body, dict):
        strings = [key for key, item in case.body.items() if isinstance(item, str)]
        if place == "json-value" and strings:
            parts["body"] = {**case.body, strings[len(value) % len(strings)]: value}
        else:
            parts["body"] = {**case.body, "metadata": {"k": value} if place == "json-value" else {value: "v"}}
    else:
        parts["body"] = value
    return case.operation.Case(media_type=case.media_type, **parts)


def flatmap_case(context, case):
    """A schemathesis hook: the case, with one of HOSTILE in one of the places it can go."""
    places = ["query", "header"]
    if "id" in (case.path_parameters or {}):
        places.append("path")
    if not isinstance(case.body, NotSet):
        places += ["json-value", "json-key"]
    return st.tuples(st.sampled_from(places), st.sampled_from(HOSTILE)).map(lambda choice: _injected(case, *choice))


def carries_hostile(request) -> bool:
    """Whether the request as sent holds what was injected (a guard against an upgrade quoting it away)."""
    body = request.body.decode("latin-1") if isinstance(request.body, bytes) else request.body or ""
    return (any(mark in request.url for mark in IN_A_URL) or any(mark in body for mark in IN_JSON)
            or any(c in value for value in request.headers.values() for c in HOSTILE_CHARACTERS))


@pytest.mark.django_db(transaction=True)
@schema.hooks.apply(flatmap_case)
@schema.parametrize()
@hypothesis_settings(FUZZ, phases=[Phase.generate])  # the schema's examples go as they are: no hook sees them
def test_every_operation_with_nul_bytes_and_lone_surrogates(case, caller, caplog):
    response = call(case, caller[False])

    assert carries_hostile(response.request), case
    assert not any("\x00" in record.getMessage() for record in caplog.records)
