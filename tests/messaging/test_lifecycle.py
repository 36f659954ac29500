"""The lifecycle after the first POST, with time under the test's control (time-machine): scheduled
sends, cancelling, expiry, stuck messages, and the failure catalogue."""

from datetime import datetime, timedelta, timezone as dt_timezone
from decimal import Decimal

import pytest
from rest_framework.test import APIClient
import time_machine

from billing.models import Balance, LedgerEntry
from billing.services import balance_top_up
from messaging import tasks
from messaging.carriers import sandbox
from messaging.models import Message
from messaging.services import message_send
from tests.conftest import SEED
from tests.factories import api_key_for

START = datetime(2026, 12, 1, 9, 0, 0, tzinfo=dt_timezone.utc)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


@pytest.fixture
def live_api(account, clock):
    balance_top_up(account_id=account.pk, livemode=True, amount=Decimal("1"))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(account, livemode=True)}")
    return client


def balance(account) -> Decimal:
    return Balance.objects.get(account=account, livemode=True).amount


def events(client, message_id) -> list[str]:
    return [e["type"] for e in client.get(f"/v1/messages/{message_id}/events").json()["data"]]


def run_sends():
    """What a worker does with the queued messages' send tasks (the broker's part is tested elsewhere)."""
    for message_id in Message.objects.filter(status="queued").values_list("pk", flat=True):
        message_send(message_id=message_id)


@pytest.mark.parametrize("field, value, problem", [
    ("send_at", lambda: iso(START + timedelta(seconds=30)), "between 60 seconds and 35 days"),
    ("send_at", lambda: iso(START + timedelta(days=36)), "between 60 seconds and 35 days"),
    ("send_at", lambda: iso(START - timedelta(hours=1)), "between 60 seconds and 35 days"),
    ("send_at", lambda: "tomorrow", "datetime"),
    ("validity_period", lambda: 0, "greater than or equal to 1"),
    ("validity_period", lambda: 36001, "less than or equal to 36000"),
])
def test_a_bad_schedule_or_validity_is_400_naming_the_field(live_api, account, field, value, problem):
    response = live_api.post("/v1/messages", {**SEED, field: value()}, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["field"] == field and problem in error["message"]
    assert not Message.objects.exists() and balance(account) == Decimal("1")


def test_a_scheduled_message_is_charged_now_and_goes_out_at_its_time(live_api, account, clock):
    send_at = START + timedelta(hours=2)
    created = live_api.post("/v1/messages", {**SEED, "send_at": iso(send_at)}, format="json").json()
    run_sends()  # nothing to send yet

    assert (created["status"], created["send_at"]) == ("scheduled", iso(send_at))
    assert created["expires_at"] == iso(send_at + timedelta(hours=4))  # validity counts from send_at
    assert balance(account) == Decimal("0.992")
    assert events(live_api, created["id"]) == ["message.scheduled"]  # announced as accepted, as a send is

    clock.move_to(send_at - timedelta(seconds=5))
    assert tasks.dispatch_scheduled() == 0

    clock.move_to(send_at + timedelta(seconds=3))  # the next run of the 5-second dispatcher
    assert tasks.dispatch_scheduled() == 1
    run_sends()

    message = live_api.get(f"/v1/messages/{created['id']}").json()
    assert message["status"] == "sent" and message["attempts"][0]["attempted_at"] == iso(send_at + timedelta(seconds=3))
    assert events(live_api, created["id"]) == ["message.scheduled", "message.queued", "message.sent"]
    assert tasks.dispatch_scheduled() == 0  # once


def test_a_canceled_message_is_refunded_and_never_sent(live_api, account, clock):
    send_at = START + timedelta(days=3)
    created = live_api.post("/v1/messages", {**SEED, "send_at": iso(send_at)}, format="json").json()

    canceled = live_api.post(f"/v1/messages/{created['id']}/cancel")

    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    assert balance(account) == Decimal("1")
    assert LedgerEntry.objects.get(type="refund").message_id == created["id"]
    assert events(live_api, created["id"]) == ["message.scheduled", "message.canceled"]
    clock.move_to(send_at + timedelta(minutes=1))
    assert tasks.dispatch_scheduled() == 0
    again = live_api.post(f"/v1/messages/{created['id']}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "message_not_cancelable"
    assert Message.objects.get(public_id=created["id"]).attempts.count() == 0


def test_only_a_scheduled_message_can_be_canceled(live_api):
    queued = live_api.post("/v1/messages", SEED, format="json").json()

    response = live_api.post(f"/v1/messages/{queued['id']}/cancel")

    assert response.status_code == 409
    assert "this one is queued" in response.json()["error"]["message"]
    assert live_api.post("/v1/messages/msg_nope/cancel").status_code == 404


def test_a_message_not_handed_to_a_carrier_in_time_expires_and_is_refunded(live_api, account, clock):
    created = live_api.post("/v1/messages", {**SEED, "validity_period": 60}, format="json").json()
    clock.move_to(START + timedelta(seconds=61))  # the worker was busy (or down) for a minute

    run_sends()

    message = live_api.get(f"/v1/messages/{created['id']}").json()
    assert (message["status"], message["error_code"], message["retryable"]) == ("expired", "expired", True)
    assert message["attempts"] == []  # never sent late
    assert balance(account) == Decimal("1")
    assert events(live_api, created["id"]) == ["message.queued", "message.failed"]


def test_the_expiry_sweep_catches_messages_whose_task_never_ran(live_api, account, clock):
    created = live_api.post("/v1/messages", {**SEED, "validity_period": 120}, format="json").json()
    # Its send task is lost (broker down, worker killed): only the sweep can settle it.
    clock.move_to(START + timedelta(minutes=3))

    assert tasks.expire_overdue() == 1

    assert Message.objects.get(public_id=created["id"]).status == "expired" and balance(account) == Decimal("1")


def test_a_scheduled_message_past_its_validity_when_dispatched_expires_instead(live_api, account, clock):
    send_at = START + timedelta(minutes=10)
    created = live_api.post("/v1/messages", {**SEED, "send_at": iso(send_at), "validity_period": 60},
                            format="json").json()
    clock.move_to(send_at + timedelta(minutes=5))  # beat was down

    tasks.dispatch_scheduled()

    assert Message.objects.get(public_id=created["id"]).status == "expired"


def test_a_sent_message_without_a_final_report_is_closed_after_72_hours(live_api, account, clock):
    created = live_api.post("/v1/messages", {**SEED, "to": sandbox.NEVER_REPORTS}, format="json").json()
    run_sends()
    clock.move_to(START + timedelta(hours=71))
    assert tasks.close_stuck() == 0

    clock.move_to(START + timedelta(hours=72, minutes=1))
    assert tasks.close_stuck() == 1

    message = live_api.get(f"/v1/messages/{created['id']}").json()
    assert (message["status"], message["error_code"], message["retryable"]) == (
        "undelivered", "no_delivery_report", True)
    assert events(live_api, created["id"])[-1] == "message.failed"
    assert balance(account) == Decimal("0.992")  # the carrier took it: no refund


def test_a_rejected_message_is_not_retryable(live_api, clock):
    created = live_api.post("/v1/messages", {**SEED, "to": sandbox.FAILS}, format="json").json()
    run_sends()

    message = live_api.get(f"/v1/messages/{created['id']}").json()
    assert (message["status"], message["error_code"], message["retryable"]) == ("failed", "carrier_rejected", False)


def test_the_beat_schedule_runs_the_lifecycle_sweeps(settings):
    tasks_on_beat = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"messaging.dispatch_scheduled", "messaging.expire_overdue", "messaging.close_stuck",
            "messaging.redact_past_retention"} <= tasks_on_beat
    dispatcher = next(e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == "messaging.dispatch_scheduled")
    assert dispatcher["schedule"] <= 5


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("livemode", [True, False], ids=["live", "test"])
def test_the_dispatcher_puts_the_message_on_the_broker_when_the_time_comes(clock, livemode):
    from tests.conftest import drain_queued_tasks
    from tests.factories import AccountFactory, SenderFactory

    account = AccountFactory()
    SenderFactory(account=account, value=SEED["from"])
    balance_top_up(account_id=account.pk, livemode=True, amount=Decimal("5"))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(account, livemode=livemode)}")
    send_at = START + timedelta(minutes=30)
    drain_queued_tasks()  # what earlier tests left on this run's queue
    created = client.post("/v1/messages", {**SEED, "send_at": iso(send_at)}, format="json").json()
    assert drain_queued_tasks() == []  # no task waits in the broker for a scheduled message

    clock.move_to(send_at + timedelta(seconds=2))
    tasks.dispatch_scheduled()

    [task] = [t for t in drain_queued_tasks() if t["task"] == "messaging.dispatch"]
    assert tasks.dispatch.run() == 1  # what the worker runs: the batch that holds this message
    message = Message.objects.get(public_id=created["id"])
    assert message.status == "sent" and [a.outcome for a in message.attempts.all()] == ["accepted"]
