"""POST /v1/messages: the 201 of the contract, and a clear 4xx for every malformed request."""

from datetime import datetime, timedelta
import json
import re

from django.conf import settings as django_settings
from django.utils import timezone
import pytest

from messaging.models import Message
from tests.conftest import SEED
from webhooks.models import Event

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def test_seed_request_answers_201_in_the_contract_shape(send):
    response = send()

    assert response.status_code == 201
    body = response.json()
    assert list(body) == [
        "object", "id", "status", "direction", "from", "to", "body", "encoding", "segments", "price",
        "currency", "metadata", "status_callback", "error_code", "error_message", "retryable", "attempts",
        "send_at", "expires_at", "redacted_at", "created_at", "updated_at", "livemode",
        "sent_at", "delivered_at", "undelivered_at", "failed_at", "canceled_at", "expired_at",
    ]
    assert body["object"] == "message"
    assert re.fullmatch(r"msg_[A-Za-z0-9]{24}", body["id"])
    assert body | {"id": None, "created_at": None, "updated_at": None, "expires_at": None} == {
        "object": "message", "id": None, "status": "queued", "direction": "outbound",
        "from": "+18045550142", "to": "+18045550199", "body": "Your technician is 15 minutes out.",
        "encoding": "GSM-7", "segments": 1, "price": "0.008", "currency": "USD", "metadata": {},
        "status_callback": None, "error_code": None, "error_message": None, "retryable": None, "attempts": [],
        "send_at": None, "expires_at": None, "redacted_at": None, "created_at": None, "updated_at": None,
        "livemode": False, "sent_at": None, "delivered_at": None, "undelivered_at": None, "failed_at": None,
        "canceled_at": None, "expired_at": None,
    }
    assert TIMESTAMP.match(body["created_at"]) and TIMESTAMP.match(body["updated_at"])
    # Four hours to reach a carrier, by default.
    created, expires = (datetime.strptime(body[f], "%Y-%m-%dT%H:%M:%SZ") for f in ("created_at", "expires_at"))
    assert abs(expires - created - timedelta(hours=4)) <= timedelta(seconds=1)


def test_accepting_records_the_queued_event_and_enqueues_the_send_after_commit(send, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = send(metadata={"order_id": "A-1001"})

    message = Message.objects.get(public_id=response.json()["id"])
    assert message.metadata == {"order_id": "A-1001"}
    event = message.events.get()
    assert (event.type, event.sequence, event.data["status"]) == ("message.queued", 1, "queued")
    assert len(callbacks) == 1  # the send task, published only once the message is committed


def test_accepting_a_scheduled_message_records_the_scheduled_event_and_its_webhook(send):
    later = (timezone.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")

    answer = send(send_at=later).json()

    event = Event.objects.get(object_id=answer["id"])
    assert (event.type, event.status, event.sequence, json.loads(event.payload)["data"]) == (
        "message.scheduled", "scheduled", 1, answer)


@pytest.mark.parametrize("body, encoding, segments, price", [
    ("a" * 160, "GSM-7", 1, "0.008"),
    ("a" * 161, "GSM-7", 2, "0.016"),
    ("€" * 80, "GSM-7", 1, "0.008"),
    ("{" * 81, "GSM-7", 2, "0.016"),
    ("😀", "UCS-2", 1, "0.008"),
    ("ж" * 70, "UCS-2", 1, "0.008"),
    ("ж" * 71, "UCS-2", 2, "0.016"),
    ("a" * 1600, "GSM-7", 11, "0.088"),
])
def test_encoding_segments_and_price_follow_gsm_03_38(send, body, encoding, segments, price):
    response = send(body=body)

    assert response.status_code == 201, response.json()
    assert (response.json()["encoding"], response.json()["segments"], response.json()["price"]) == (
        encoding, segments, price)


def test_an_alphanumeric_sender_registered_to_the_account_may_send(send, account):
    account.senders.create(value="Acme", kind="alphanumeric")

    assert send(**{"from": "Acme"}).json()["from"] == "Acme"


def _error(response):
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert error["request_id"] == response["Request-Id"]
    assert error["doc_url"] == f"{django_settings.MITTIS_PUBLIC_URL}/docs/errors#{error['code']}"
    assert error["errors"][0] == {"code": error["code"], "message": error["message"], "field": error["field"]}
    return error


@pytest.mark.parametrize("overrides, code, field", [
    ({"to": None}, "parameter_missing", "to"),
    ({"to": 18045550199}, "parameter_invalid_type", "to"),
    ({"to": "8045550199"}, "invalid_phone_number", "to"),
    ({"to": "+1 804 555 0199"}, "invalid_phone_number", "to"),
    ({"to": "+1804555019"}, "invalid_phone_number", "to"),
    ({"to": "+99912345678"}, "invalid_phone_number", "to"),
    ({"to": ""}, "invalid_phone_number", "to"),
    ({"to": "+1804555019９"}, "invalid_phone_number", "to"),
    ({"from": "+18045550100"}, "unknown_sender", "from"),
    ({"from": "NotOurs"}, "unknown_sender", "from"),
    ({"from": "Way Too Long Id"}, "parameter_invalid", "from"),
    ({"from": ["+18045550142"]}, "parameter_invalid_type", "from"),
    ({"body": ""}, "body_empty", "body"),
    ({"body": "x" * 1601}, "body_too_long", "body"),
    ({"body": None}, "parameter_missing", "body"),
    ({"body": 42}, "parameter_invalid_type", "body"),
    ({"body": "nul \x00 byte"}, "parameter_invalid", "body"),
    ({"metadata": "order=1"}, "parameter_invalid_type", "metadata"),
    ({"metadata": {f"k{i}": "v" for i in range(21)}}, "metadata_invalid", "metadata"),
    ({"metadata": {"order_id": 1001}}, "metadata_invalid", "metadata.order_id"),
    ({"metadata": {"note": "x" * 501}}, "metadata_invalid", "metadata.note"),
    ({"metadata": {"": "v"}}, "metadata_invalid", "metadata.''"),
    ({"too": "+18045550199"}, "parameter_unknown", "too"),
])
def test_malformed_fields_get_a_400_naming_the_field(send, overrides, code, field):
    response = send(**overrides)

    assert response.status_code == 400
    error = _error(response)
    assert (error["type"], error["code"], error["field"]) == ("invalid_request_error", code, field)
    assert Message.objects.count() == 0


E164_FORMAT = "must be a phone number in E.164 format, like +18045550199"
NO_SUCH_NUMBER = "is not a valid phone number: it is in E.164 format, but no such number exists."


@pytest.mark.parametrize("field, value, says", [
    ("to", "+10000000000", f"'to' (+10000000000) {NO_SUCH_NUMBER}"),  # E.164-shaped, in no numbering plan
    ("to", "+1804555019", f"'to' (+1804555019) {NO_SUCH_NUMBER}"),  # a digit short of a US number
    ("to", "+99912345678", f"'to' (+99912345678) {NO_SUCH_NUMBER}"),  # no country has +999
    ("from", "+10000000000", f"'from' (+10000000000) {NO_SUCH_NUMBER}"),
    ("to", "8045550199", f"'to' {E164_FORMAT}."),
    ("to", "+1 804 555 0199", f"'to' {E164_FORMAT}."),
    ("from", "+1-804-555-0142", f"'from' {E164_FORMAT}, or an alphanumeric sender id."),
])
def test_a_number_in_e164_format_that_does_not_exist_is_told_apart_from_one_not_in_the_format(send, field, value,
                                                                                              says):
    error = _error(send(**{field: value}))

    assert (error["code"], error["field"], error["message"]) == ("invalid_phone_number", field, says)


def test_a_missing_field_is_named(api):
    response = api.post("/v1/messages", {"from": SEED["from"], "body": "hi"}, format="json")

    assert response.status_code == 400
    assert (_error(response)["code"], _error(response)["field"]) == ("parameter_missing", "to")


def test_every_field_error_is_listed_and_the_first_leads(api):
    response = api.post("/v1/messages", {"to": "nope", "body": ""}, format="json")

    errors = _error(response)["errors"]
    assert {(e["field"], e["code"]) for e in errors} == {
        ("from", "parameter_missing"), ("to", "invalid_phone_number"), ("body", "body_empty")}


@pytest.mark.parametrize("raw, code", [
    (b'{"from": "+18045550142", "to": ', "invalid_json"),
    (b"not json at all", "invalid_json"),
    (b'["+18045550199"]', "invalid_request_body"),
    (b'"just a string"', "invalid_request_body"),
    (b'{"from": "+18045550142", "to": "+18045550199", "body": "\\ud800"}', "parameter_invalid"),
    (b"\xff\xfe{}", "invalid_json"),
])
def test_a_body_that_is_not_a_json_object_gets_400(api, raw, code):
    response = api.post("/v1/messages", raw, content_type="application/json")

    assert response.status_code == 400
    assert _error(response)["code"] == code


def test_an_oversized_body_gets_413_not_a_crash(api):
    response = api.post("/v1/messages", json.dumps({**SEED, "body": "x" * 3_000_000}), content_type="application/json")

    assert response.status_code == 413
    assert _error(response)["code"] == "request_too_large"
    assert Message.objects.count() == 0


def test_a_form_encoded_body_gets_415(api):
    response = api.post("/v1/messages", "to=%2B18045550199&body=hi", content_type="application/x-www-form-urlencoded")

    assert response.status_code == 415
    assert _error(response)["code"] == "unsupported_media_type"


@pytest.mark.parametrize("header, code", [
    (None, "missing_api_key"),
    ("Bearer mk_test_doesnotexist000000000000000000", "invalid_api_key"),
    ("Bearer ", "invalid_api_key"),
    ("Token abc", "invalid_api_key"),
    ("Bearer sk_test_123", "invalid_api_key"),
])
def test_a_request_without_a_valid_key_gets_401(anonymous, db, header, code):
    if header is not None:
        anonymous.credentials(HTTP_AUTHORIZATION=header)

    response = anonymous.post("/v1/messages", SEED, format="json")

    assert response.status_code == 401
    error = _error(response)
    assert (error["type"], error["code"]) == ("authentication_error", code)
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_basic_auth_with_the_key_as_user_name_works_like_curl_u(anonymous, test_key, account):
    anonymous.credentials(HTTP_AUTHORIZATION="Basic " + __import__("base64").b64encode(f"{test_key}:".encode()).decode())

    assert anonymous.post("/v1/messages", SEED, format="json").status_code == 201


def test_a_live_key_creates_live_messages(anonymous, account, send):
    from billing.services import balance_top_up
    from tests.factories import api_key_for

    balance_top_up(account_id=account.pk, livemode=True, amount=__import__("decimal").Decimal("1"))
    anonymous.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(account, livemode=True)}")

    assert send(client=anonymous).json()["livemode"] is True


def test_a_json_body_with_a_charset_is_accepted(api):
    response = api.post("/v1/messages", json.dumps(SEED), content_type="application/json; charset=utf-8")

    assert response.status_code == 201


def test_a_live_send_writes_its_message_event_webhooks_and_charge_together(anonymous, account, settings):
    """The one statement that accepts a message (`_insert_in_one_statement`) writes every row a send needs."""
    from decimal import Decimal

    from billing.models import Balance, LedgerEntry
    from billing.services import balance_top_up
    from webhooks.models import Delivery, WebhookEndpoint
    from tests.factories import api_key_for

    settings.MITTIS_WEBHOOK_ALLOWED_PRIVATE, settings.MITTIS_WEBHOOK_ALLOW_HTTP = ["127.0.0.1"], True
    balance_top_up(account_id=account.pk, livemode=True, amount=Decimal("1"))
    endpoints = [WebhookEndpoint.objects.create(account=account, livemode=True, url="http://127.0.0.1:9/hooks",
                                                enabled_events=events, status=status, secret_encrypted="x")
                 for events, status in [(["*"], "enabled"), (["message.queued"], "enabled"),
                                        (["message.delivered"], "enabled"), (["*"], "disabled")]]
    anonymous.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(account, livemode=True)}")

    response = anonymous.post("/v1/messages", {**SEED, "body": "Ünïcode, so UCS-2", "metadata": {"order": "7"},
                                               "status_callback": "http://127.0.0.1:9/cb"}, format="json")

    assert response.status_code == 201, response.content
    answer = response.json()
    message = Message.objects.get(public_id=answer["id"])
    assert (message.status, message.encoding, message.segments, message.event_sequence) == ("queued", "UCS-2", 1, 1)
    webhook_event = message.events.get()  # one row, whose payload is what webhooks and the timeline give
    assert webhook_event.status == "queued"
    assert (webhook_event.type, webhook_event.object_id, webhook_event.sequence) == ("message.queued", answer["id"], 1)
    assert json.loads(webhook_event.payload)["data"] == answer
    assert sorted((d.endpoint_id or 0, d.callback_url, d.status) for d in Delivery.objects.filter(event=webhook_event)) \
        == [(0, "http://127.0.0.1:9/cb", "pending"), (endpoints[0].pk, "", "pending"), (endpoints[1].pk, "", "pending")]
    charge = LedgerEntry.objects.get(message_id=message.public_id)
    assert (charge.type, charge.amount, charge.livemode) == ("charge", -message.price, True)
    assert Balance.objects.get(account=account, livemode=True).amount == Decimal("1") - message.price


def test_a_free_live_send_is_charged_nothing_even_without_a_balance(anonymous, account):
    """A country priced at 0: the same statement, a charge entry of 0, no balance row needed."""
    from decimal import Decimal

    from django.utils import timezone

    from billing.models import Balance, LedgerEntry, Price
    from tests.factories import api_key_for

    Price.objects.create(country="US", unit_price=Decimal("0"), effective_from=timezone.now())
    anonymous.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(account, livemode=True)}")

    response = anonymous.post("/v1/messages", SEED, format="json", HTTP_IDEMPOTENCY_KEY="free-1")

    assert response.status_code == 201, response.content
    assert response.json()["price"] == "0"
    assert LedgerEntry.objects.get(message_id=response.json()["id"]).amount == 0
    assert not Balance.objects.filter(account=account, livemode=True).exists()


