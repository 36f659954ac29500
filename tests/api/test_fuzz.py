"""Schemathesis against the served /openapi.json: every operation, with a test key and with a live key,
with generated valid and invalid input. No 5xx, no answer outside its documented schema, status codes
and content type, and invalid input always refused with a 4xx.

Half of the cases address objects that exist (a message, an event, an endpoint, an export of the
caller's), so the generator gets past the 404 and into the handlers.
"""

from datetime import timedelta
from decimal import Decimal
import random

from django.utils import timezone
from hypothesis import HealthCheck, settings as hypothesis_settings
import pytest
from rest_framework.test import APIClient
import schemathesis
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
    if "id" in (case.path_parameters or {}) and random.Random(repr(case.path_parameters)).random() < 0.5:
        for prefix, object_id in objects.items():
            if case.path.startswith(prefix):
                case.path_parameters["id"] = object_id
    case.call_and_validate(headers={"Authorization": f"Bearer {objects['key']}"}, checks=CHECKS)


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
