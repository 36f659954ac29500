"""Redaction: after the account's retention (or on request) a message's body is gone from everywhere we
keep it, while its status, counts and price still add up in usage."""

from datetime import datetime, timedelta, timezone as dt_timezone
from decimal import Decimal
import json

from django.apps import apps
from django.db import models
import pytest
from rest_framework.test import APIClient
import time_machine

from billing.services import balance_top_up
from messaging import tasks
from messaging.carriers.base import DeliveryReport, InboundSms
from messaging.models import Message, RetentionMark
from messaging.services import (
    message_apply_delivery_report, message_receive, message_send, messages_redact_past_retention,
)
from tests.conftest import SEED
from tests.factories import api_key_for

SECRET_BODY = "Door code 4711, the key is under the blue pot"
START = datetime(2026, 12, 1, 9, 0, 0, tzinfo=dt_timezone.utc)


def rows_mentioning(text: str) -> list[str]:
    """Every row of every table with `text` in a text, JSON or binary column: the whole database."""
    found = []
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if isinstance(field, (models.CharField, models.TextField)):
                lookup = {f"{field.name}__contains": text}
            elif isinstance(field, models.JSONField):
                matches = [obj for obj in model.objects.exclude(**{f"{field.name}__isnull": True})
                           if text in json.dumps(getattr(obj, field.name), ensure_ascii=False)]
                found += [f"{model._meta.label}.{field.name}#{obj.pk}" for obj in matches]
                continue
            elif isinstance(field, models.BinaryField):  # as the model reads it: compressed text is text again
                matches = [obj for obj in model.objects.all() if _holds(getattr(obj, field.name), text)]
                found += [f"{model._meta.label}.{field.name}#{obj.pk}" for obj in matches]
                continue
            else:
                continue
            found += [f"{model._meta.label}.{field.name}#{pk}"
                      for pk in model.objects.filter(**lookup).values_list("pk", flat=True)]
    return found


def _holds(value, text: str) -> bool:
    return text in value if isinstance(value, str) else text.encode() in bytes(value or b"")


@pytest.fixture
def live_api(account):
    balance_top_up(account_id=account.pk, livemode=True, amount=Decimal("1"))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(account, livemode=True)}")
    return client


@pytest.fixture
def delivered(live_api, receiver, settings):
    """A delivered message, sent with an idempotency key, with a webhook endpoint and a status callback."""
    settings.MITTIS_WEBHOOK_ALLOWED_PRIVATE = ["127.0.0.1"]
    settings.MITTIS_WEBHOOK_ALLOW_HTTP = True  # the local receiver has no TLS
    live_api.post("/v1/webhook_endpoints", {"url": receiver.url}, format="json")
    created = live_api.post("/v1/messages", {**SEED, "body": SECRET_BODY, "status_callback": receiver.url},
                            format="json", HTTP_IDEMPOTENCY_KEY="order-1").json()
    message = Message.objects.get(public_id=created["id"])
    message_send(message_id=message.pk)
    message.refresh_from_db()
    message_apply_delivery_report(carrier=message.carrier, report=DeliveryReport(
        message.carrier_message_id, "delivered", carrier_status="DELIVRD"), raw={"text": SECRET_BODY})
    return created["id"]


@pytest.fixture
def receiver(settings):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    import threading

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(500)  # failing, so every delivery stays stored for its retries
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    class Url:
        url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    yield Url
    server.shutdown()
    server.server_close()


def test_redacting_removes_the_body_from_everywhere_and_keeps_the_rest(live_api, delivered):
    assert rows_mentioning(SECRET_BODY)  # before: in the message, its events, webhook payloads, ...

    response = live_api.post(f"/v1/messages/{delivered}/redact")

    assert response.status_code == 200
    message = response.json()
    assert message["body"] is None and message["redacted_at"] is not None
    assert (message["status"], message["segments"], message["price"]) == ("delivered", 1, "0.008")
    assert rows_mentioning(SECRET_BODY) == []
    for event in live_api.get(f"/v1/messages/{delivered}/events").json()["data"]:
        assert event["data"]["body"] is None and event["data"]["redacted_at"] == message["redacted_at"]
    for event in live_api.get("/v1/events").json()["data"]:
        assert event["data"]["body"] is None
    replay = live_api.post("/v1/messages", {**SEED, "body": SECRET_BODY, "status_callback": live_api.get(
        f"/v1/messages/{delivered}").json()["status_callback"]}, format="json", HTTP_IDEMPOTENCY_KEY="order-1")
    assert replay["Idempotent-Replayed"] == "true" and replay.json()["body"] is None


def test_webhook_retries_after_redaction_carry_no_body(live_api, delivered, receiver):
    from webhooks.models import Delivery

    live_api.post(f"/v1/messages/{delivered}/redact")
    pending = Delivery.objects.filter(status="pending")
    assert pending.exists()

    for delivery in pending:
        assert SECRET_BODY not in delivery.event.payload
        assert json.loads(delivery.event.payload)["data"]["body"] is None


def test_a_message_on_its_way_cannot_be_redacted(live_api):
    created = live_api.post("/v1/messages", SEED, format="json").json()

    response = live_api.post(f"/v1/messages/{created['id']}/redact")

    assert response.status_code == 409 and response.json()["error"]["code"] == "message_not_redactable"
    assert live_api.get(f"/v1/messages/{created['id']}").json()["body"] == SEED["body"]


def deliver(public_id: str) -> None:
    message = Message.objects.get(public_id=public_id)
    message_send(message_id=message.pk)
    message.refresh_from_db()
    message_apply_delivery_report(carrier=message.carrier, report=DeliveryReport(
        message.carrier_message_id, "delivered", carrier_status="DELIVRD"))


def test_retention_redacts_old_messages_nightly_and_usage_still_adds_up(live_api, account):
    account.retention_days = 7
    account.created_at = START  # before its messages, as always outside time travel: redaction starts there
    account.save()
    with time_machine.travel(START, tick=False) as clock:
        old = live_api.post("/v1/messages", {**SEED, "body": SECRET_BODY}, format="json").json()
        deliver(old["id"])
        inbound = message_receive(carrier="twilio-main", inbound=InboundSms(
            sender="+18045550199", to=SEED["from"], body=SECRET_BODY + " (reply)"), raw={"Body": SECRET_BODY})
        clock.move_to(START + timedelta(days=6))
        recent = live_api.post("/v1/messages", {**SEED, "body": SECRET_BODY + " again"}, format="json").json()
        deliver(recent["id"])
        clock.move_to(START + timedelta(days=7, hours=1))

        assert tasks.redact_past_retention() == 2

        assert live_api.get(f"/v1/messages/{old['id']}").json()["body"] is None
        assert live_api.get(f"/v1/messages/{inbound.public_id}").json()["body"] is None
        assert live_api.get(f"/v1/messages/{recent['id']}").json()["body"] == SECRET_BODY + " again"
        usage = live_api.get(f"/v1/usage?start=2026-11-30T00:00:00Z&end=2026-12-31T00:00:00Z&group_by=status").json()
        assert sum(row["messages"] for row in usage["data"]) == 2  # outbound, both still counted
        assert sum(Decimal(row["amount"]) for row in usage["data"]) == Decimal("0.016")
        # What still holds the body belongs to the recent message alone.
        assert rows_mentioning(SECRET_BODY) == rows_mentioning(SECRET_BODY + " again") != []


# --- The nightly job reads from where it left off (RetentionMark), whatever the retention becomes -----------------------
def message_on(api, day: float, **fields) -> str:
    """A message created `day` days after START (the account's creation), delivered unless `fields` say otherwise."""
    with time_machine.travel(START + timedelta(days=day), tick=False):
        created = api.post("/v1/messages", {**SEED, "body": f"{SECRET_BODY} (day {day})", **fields},
                           format="json").json()
    if "send_at" not in fields:
        Message.objects.filter(public_id=created["id"]).update(status="delivered")
    return created["id"]


def night(day: float, **options) -> int:
    with time_machine.travel(START + timedelta(days=day, hours=3), tick=False):
        return messages_redact_past_retention(**options)


def redacted(*public_ids: str) -> list[bool]:
    return [Message.objects.get(public_id=public_id).redacted_at is not None for public_id in public_ids]


@pytest.fixture
def since_start(account):
    """The account created at START, before its messages, as the API always has it."""
    account.created_at = START
    account.save()
    return account


def set_retention(account, days: int) -> None:
    account.retention_days = days
    account.save()


def test_a_retention_made_shorter_redacts_at_once_what_falls_due(api, since_start):
    set_retention(since_start, 30)
    early, middle, late = message_on(api, 0), message_on(api, 10), message_on(api, 20)
    assert night(31) == 1 and redacted(early, middle, late) == [True, False, False]

    set_retention(since_start, 7)

    assert night(32) == 2 and redacted(early, middle, late) == [True, True, True]


def test_a_retention_made_longer_keeps_what_was_redacted_and_waits_for_the_new_cutoff(api, since_start):
    set_retention(since_start, 7)
    early, later = message_on(api, 0), message_on(api, 5)
    assert night(8) == 1 and redacted(early, later) == [True, False]
    mark = RetentionMark.objects.get(account=since_start).redacted_before

    set_retention(since_start, 30)

    assert night(9) == 0 and redacted(early, later) == [True, False]  # not due for 30 days
    assert RetentionMark.objects.get(account=since_start).redacted_before == mark  # it never moves down
    assert night(34) == 0 and redacted(later) == [False]
    assert night(36) == 1 and redacted(early, later) == [True, True]


def test_a_message_not_final_on_the_night_is_redacted_the_night_after_it_ends(api, since_start):
    set_retention(since_start, 7)
    scheduled = message_on(api, 0, send_at=(START + timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    after_it = message_on(api, 1)
    assert night(9) == 1 and redacted(scheduled, after_it) == [False, True]  # passed, and what follows it done

    Message.objects.filter(public_id=scheduled).update(status="delivered")  # sent on day 10, then delivered

    assert night(11) == 1 and redacted(scheduled) == [True]


def test_messages_not_final_that_fill_batches_at_one_instant_are_passed(api, since_start):
    """Ties of `created_at` (a batch request stamps its messages alike): the job moves past those it read."""
    set_retention(since_start, 7)
    waiting = [message_on(api, 0, send_at=(START + timedelta(days=20)).strftime("%Y-%m-%dT%H:%M:%SZ"))
               for _ in range(5)]
    Message.objects.filter(public_id__in=waiting).update(created_at=START + timedelta(days=1))
    done = message_on(api, 1)
    Message.objects.filter(public_id=done).update(created_at=START + timedelta(days=1))

    assert night(9, batch=2) == 1 and redacted(done, *waiting) == [True] + [False] * 5
