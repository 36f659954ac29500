"""The message object has one builder: what it builds is the served schema's `Message` in every state, and
it is what every way of reading a message answers."""

import copy
from datetime import timedelta
from decimal import Decimal
import itertools
import json

from django.utils import timezone
import jsonschema
from openapi_schema_validator import OAS30Validator, oas30_format_checker
import pytest

from messaging import statuses
from messaging.carriers.base import DeliveryReport
from messaging.models import Message, SendAttempt
from messaging.representation import message_row
from messaging.services import message_apply_delivery_report, message_send
from mittis.api.schema_compat import generated_schema
from tests.messaging.test_exports import download, run

# The contract's timestamps: UTC, to the second, with a Z.
TIMESTAMP = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"

STATES = list(itertools.product(statuses.ALL, [Message.OUTBOUND, Message.INBOUND], [False, True], [False, True]))


def state_id(state) -> str:
    status, direction, attempts, redacted = state
    return "-".join([status, direction] + ["attempts"] * attempts + ["redacted"] * redacted)


@pytest.fixture(scope="module")
def validate_message():
    """Validates against the served `Message`, closed: a field the schema does not declare fails too, and so
    does a timestamp in any form but the contract's."""
    schemas = copy.deepcopy(generated_schema()["components"]["schemas"])
    for name in ("Message", "SendAttempt"):
        schemas[name]["additionalProperties"] = False
        for field in schemas[name]["properties"].values():
            if field.get("format") == "date-time":
                field["pattern"] = TIMESTAMP
    return OAS30Validator({**schemas["Message"], "components": {"schemas": schemas}},
                          format_checker=oas30_format_checker).validate


def failed(status: str) -> bool:
    """The contract's failures: the statuses announced as `message.failed`."""
    return statuses.EVENT_TYPES.get(status) == "message.failed"


# The statuses with a time that a message in each status went through, on its usual path.
PASSED = {statuses.SENT: [statuses.SENT], statuses.DELIVERED: [statuses.SENT, statuses.DELIVERED],
          statuses.UNDELIVERED: [statuses.SENT, statuses.UNDELIVERED], statuses.FAILED: [statuses.FAILED],
          statuses.CANCELED: [statuses.CANCELED], statuses.EXPIRED: [statuses.EXPIRED]}


def store(account, *, status: str, direction: str, attempts: bool, redacted: bool) -> Message:
    outbound = direction == Message.OUTBOUND
    ours, theirs = "+18045550142", "+18045550199"
    now = timezone.now()
    passed = PASSED.get(status, [])
    times = {statuses.time_field(s): now - timedelta(seconds=len(passed) - n) for n, s in enumerate(passed)}
    message = Message.objects.create(
        account=account, livemode=False, direction=direction, status=status,
        from_number=ours if outbound else theirs, to=theirs if outbound else ours,
        body="" if redacted else "Your technician is 15 minutes out.", encoding="GSM-7", segments=1,
        price=Decimal("0.008") if outbound else Decimal("0"), currency="USD",
        metadata={"order_id": "A-1001"} if outbound else {},
        status_callback="https://example.com/sms" if outbound else "",
        error_code="unreachable" if failed(status) else "",
        error_message="Out of coverage" if failed(status) else "",
        # A whole second: Python's isoformat leaves the fraction out, unlike the other timestamps'.
        send_at=now.replace(microsecond=0) + timedelta(hours=1) if status == statuses.SCHEDULED else None,
        expires_at=now + timedelta(hours=4) if outbound else None, redacted_at=now if redacted else None, **times)
    if attempts:  # never before the message (SendAttempt.objects.of)
        SendAttempt.objects.bulk_create([
            SendAttempt(message=message, number=1, carrier="sandbox", started_at=message.created_at, latency_ms=2_000,
                        outcome=SendAttempt.TEMPORARY_ERROR, raw_code="503", error_code="carrier_unavailable"),
            SendAttempt(message=message, number=2, carrier="sandbox", started_at=message.created_at, latency_ms=12,
                        outcome=SendAttempt.ACCEPTED, carrier_message_id="sbx_1"),
        ])
    return message


def built(public_id: str) -> dict:
    """What the builder makes of the message as stored now."""
    return message_row(Message.objects.get(public_id=public_id))


@pytest.mark.parametrize("state", STATES, ids=map(state_id, STATES))
def test_the_message_object_is_the_served_schemas_in_every_state(account, validate_message, state):
    status, direction, attempts, redacted = state
    message = store(account, status=status, direction=direction, attempts=attempts, redacted=redacted)

    obj = built(message.public_id)

    validate_message(obj)
    assert (obj["status"], obj["direction"], len(obj["attempts"])) == (status, direction, 2 if attempts else 0)
    assert (obj["body"] is None) == redacted
    assert (obj["retryable"] is not None) == failed(status)
    assert [name for name in statuses.TIME_FIELDS if obj[name]] == [statuses.time_field(s) for s in PASSED.get(status, [])]


@pytest.mark.parametrize("change", [{"seen_at": None}, {"created_at": "2026-06-12T14:03:22.123456+00:00"},
                                    {"status": "lost"}, {"body": 1}])
def test_the_schema_check_refuses_what_the_schema_does_not_declare(account, validate_message, change):
    message = store(account, status=statuses.QUEUED, direction=Message.OUTBOUND, attempts=False, redacted=False)

    with pytest.raises(jsonschema.ValidationError):
        validate_message({**built(message.public_id), **change})


def test_retrieve_list_and_export_answer_what_the_builder_builds(api, account):
    ids = [store(account, status=s, direction=d, attempts=a, redacted=r).public_id for s, d, a, r in STATES]
    expected = [built(public_id) for public_id in ids]  # oldest first

    for public_id, obj in zip(ids, expected):
        assert api.get(f"/v1/messages/{public_id}").json() == obj
    assert api.get("/v1/messages?limit=100").json()["data"] == expected[::-1]
    export = run(api, type="messages", format="ndjson")
    assert [json.loads(line) for line in download(api, export).decode().splitlines()] == expected


def test_answers_and_events_carry_what_the_builder_builds(api, send):
    created = send().json()
    later = (timezone.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    scheduled = send(send_at=later).json()
    assert created == built(created["id"]) and scheduled == built(scheduled["id"])

    message_send(message_id=Message.objects.get(public_id=created["id"]).pk)
    message = Message.objects.get(public_id=created["id"])
    message_apply_delivery_report(carrier=message.carrier, report=DeliveryReport(
        message.carrier_message_id, "delivered", carrier_status="DELIVRD"))
    delivered = api.get(f"/v1/messages/{created['id']}/events").json()["data"][-1]
    assert delivered["type"] == "message.delivered" and delivered["data"]["attempts"]
    assert delivered["data"] == built(created["id"])
    assert api.get(f"/v1/events/{delivered['id']}").json()["data"] == built(created["id"])  # the webhook's

    assert api.post(f"/v1/messages/{scheduled['id']}/cancel").json() == built(scheduled["id"])
    assert api.post(f"/v1/messages/{created['id']}/redact").json() == built(created["id"])
