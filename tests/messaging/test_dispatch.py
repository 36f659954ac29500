"""Test-mode sends in batches: a dispatcher claims many queued messages and writes their outcomes together,
with every promise of the one-by-one path kept (sent once, events in order, webhooks for each event)."""

import ast
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone as dt_timezone
import time

from django.db import connection
from django.test.utils import CaptureQueriesContext
import pytest

from messaging import statuses, tasks
from messaging.carriers import sandbox
from messaging.models import Carrier, Message, Route, RouteCarrier, SendAttempt, Sender
from messaging.services import dispatch_request, message_create, message_send, messages_dispatch
from tests.conftest import drain_queued_tasks
from tests.factories import AccountFactory, SenderFactory
from webhooks import services as webhooks
from webhooks.models import Delivery, Event


@pytest.fixture
def create(account):
    def _create(to="+18045550199", body="Your technician is 15 minutes out."):
        return message_create(account=account, livemode=False, sender="+18045550142", to=to, body=body)
    return _create


@pytest.fixture
def endpoint(account, public_dns):
    return webhooks.endpoint_create(account=account, livemode=False, url="https://hooks.example.com/mittis",
                                    enabled_events=["*"]).endpoint


def timeline(message):
    return [(e.sequence, e.type) for e in message.events.order_by("sequence")]


def test_a_batch_sends_every_message_once_with_its_events_and_webhooks_in_order(
        create, endpoint, settings, django_capture_on_commit_callbacks):
    settings.MITTIS_SANDBOX_REPORT_DELAY = 0  # the report comes back with the carrier's answer
    plain = [create() for _ in range(7)]
    rejected, undelivered = create(to=sandbox.FAILS), create(to=sandbox.UNDELIVERED)
    silent, flaky = create(to=sandbox.NEVER_REPORTS), create(to=sandbox.TEMPORARILY_UNAVAILABLE)
    drain_queued_tasks()

    with django_capture_on_commit_callbacks(execute=True):
        accepted = messages_dispatch(batch=4)  # three batches, the last one short

    assert accepted == 9  # the plain seven, the undelivered one and the silent one
    for message in plain:
        message.refresh_from_db()
        assert message.status == statuses.DELIVERED and message.send_attempts == 1
        assert message.created_at < message.sent_at <= message.delivered_at <= message.updated_at
        assert (message.carrier, message.event_sequence) == ("sandbox", 3)
        assert timeline(message) == [(1, "message.queued"), (2, "message.sent"), (3, "message.delivered")]
        [attempt] = message.attempts.all()
        assert (attempt.number, attempt.outcome, attempt.carrier_message_id) == (
            1, SendAttempt.ACCEPTED, message.carrier_message_id)
        # The frozen copies list the attempt, and each event went out as a webhook with its id and sequence.
        sent_event = message.events.get(type="message.sent")
        assert [a["outcome"] for a in sent_event.data["attempts"]] == ["accepted"]
        outbox = Event.objects.filter(object_id=message.public_id).order_by("sequence")
        assert [(e.public_id, e.sequence) for e in outbox] == [
            (e.public_id, e.sequence) for e in message.events.order_by("sequence")]
        assert Delivery.objects.filter(event__object_id=message.public_id, endpoint=endpoint).count() == 3
    for message, status, last_event in [(rejected, statuses.FAILED, "message.failed"),
                                        (undelivered, statuses.UNDELIVERED, "message.failed"),
                                        (silent, statuses.SENT, "message.sent")]:
        message.refresh_from_db()
        assert message.status == status and timeline(message)[-1][1] == last_event
        assert Event.objects.filter(object_id=message.public_id).count() == len(timeline(message))
    assert rejected.error_code == "carrier_rejected" and undelivered.error_code == "unknown_subscriber"
    # The carrier was briefly unavailable: attempt 1 is recorded, attempt 2 waits its back-off as a task.
    flaky.refresh_from_db()
    assert (flaky.status, [a.outcome for a in flaky.attempts.all()]) == ("sending", ["temporary_error"])
    [retry] = [t for t in drain_queued_tasks() if t["task"] == "messaging.send_message"]
    assert ast.literal_eval(retry["kwargsrepr"]) == {"message_id": flaky.pk, "attempt": 2} and retry["eta"]
    assert message_send(message_id=flaky.pk, attempt=2).sent


@pytest.mark.parametrize("livemode", [False, True], ids=["test", "live"])
def test_a_hundred_messages_cost_the_statements_of_ten(account, endpoint, settings, livemode,
                                                       django_capture_on_commit_callbacks):
    """The batching itself: what a batch writes is a fixed number of statements, not some per message."""
    from billing.services import balance_top_up

    settings.MITTIS_SANDBOX_REPORT_DELAY = 0
    balance_top_up(account_id=account.pk, livemode=True, amount=10)
    Sender.objects.filter(account=account).update(mps=10**6)  # the rate is not what is measured here
    counts = []
    for size in (10, 100):
        for _ in range(size):
            message_create(account=account, livemode=livemode, sender="+18045550142", to="+18045550199",
                           body="Your technician is 15 minutes out.")
        with CaptureQueriesContext(connection) as queries, django_capture_on_commit_callbacks(execute=True):
            assert messages_dispatch(batch=100) == size
        counts.append(len(queries))
    # Equal on PostgreSQL; SQLite's cap on parameters splits the larger INSERTs in two. Per message, it
    # would be some 2,000 more.
    assert counts[1] - counts[0] <= 3, counts
    assert Message.objects.filter(status=statuses.DELIVERED).count() == 110


def test_reports_that_come_later_are_one_task_for_the_batch(create, settings, django_capture_on_commit_callbacks):
    settings.MITTIS_SANDBOX_REPORT_DELAY = 2.0
    messages = [create() for _ in range(3)]
    drain_queued_tasks()

    with django_capture_on_commit_callbacks(execute=True):
        assert messages_dispatch() == 3

    [task] = [t for t in drain_queued_tasks() if t["task"].startswith("messaging.process_delivery_report")]
    assert task["task"] == "messaging.process_delivery_reports" and task["eta"]
    tasks.process_delivery_reports.run(**ast.literal_eval(task["kwargsrepr"]))  # what the worker runs, later
    for message in messages:
        message.refresh_from_db()
        assert message.status == statuses.DELIVERED
        assert timeline(message)[-1] == (3, "message.delivered")


def test_a_message_whose_carrier_does_not_batch_is_handed_to_a_task_of_its_own(account, create):
    """An HTTP carrier's latency is overlapped by many tasks, not paid in turn inside one batch."""
    twilio = Carrier.objects.create(name="twilio", kind="twilio", settings={"account_sid": "AC123"})
    RouteCarrier.objects.create(route=Route.objects.create(livemode=False, prefix="+44"), carrier=twilio)
    drain_queued_tasks()
    abroad, home = create(to="+447700900123"), create()

    assert messages_dispatch() == 1
    abroad.refresh_from_db()
    home.refresh_from_db()
    assert (abroad.status, abroad.send_attempts, home.status) == (statuses.QUEUED, 0, statuses.SENT)
    [task] = [t for t in drain_queued_tasks() if t["task"] == "messaging.send_message"]
    assert ast.literal_eval(task["kwargsrepr"]) == {"message_id": abroad.pk, "attempt": 1} and not task["eta"]
    assert messages_dispatch() == 0  # the dispatchers leave it to its task
    assert Message.objects.get(pk=abroad.pk).status == statuses.QUEUED


def test_a_live_message_over_its_senders_rate_waits_in_a_task_of_its_own(account):
    from billing.services import balance_top_up

    balance_top_up(account_id=account.pk, livemode=True, amount=10)
    Sender.objects.filter(account=account).update(mps=1)
    drain_queued_tasks()
    first, second = [message_create(account=account, livemode=True, sender="+18045550142", to="+18045550199",
                                    body=f"Part {n}") for n in (1, 2)]

    assert messages_dispatch() == 1  # one a second: the first goes, the second waits for its slot
    second.refresh_from_db()
    assert (Message.objects.get(pk=first.pk).status, second.status) == (statuses.SENT, statuses.QUEUED)
    [task] = [t for t in drain_queued_tasks() if t["task"] == "messaging.send_message"]
    assert ast.literal_eval(task["kwargsrepr"])["message_id"] == second.pk and task["eta"]  # run when the slot is free
    time.sleep(1.0)
    assert message_send(message_id=second.pk).sent


def test_a_batch_over_its_senders_rate_spaces_the_waiting_messages_by_the_rate(account):
    from billing.services import balance_top_up

    balance_top_up(account_id=account.pk, livemode=True, amount=10)
    Sender.objects.filter(account=account).update(mps=2)
    drain_queued_tasks()
    created = [message_create(account=account, livemode=True, sender="+18045550142", to="+18045550199",
                              body=f"Part {n}") for n in range(4)]
    started = datetime.now(dt_timezone.utc)

    assert messages_dispatch() == 1
    took = (datetime.now(dt_timezone.utc) - started).total_seconds()
    tasks = {ast.literal_eval(t["kwargsrepr"])["message_id"]: t for t in drain_queued_tasks()
             if t["task"] == "messaging.send_message"}
    runs = [datetime.fromisoformat(tasks[m.pk]["eta"]) for m in created[1:]]
    # Each in the slot it can have, half a second apart, not all three back at once to be refused again.
    assert 0.45 <= (runs[0] - started).total_seconds() <= 0.5 + took
    assert [round((later - earlier).total_seconds(), 1) for earlier, later in zip(runs, runs[1:])] == [0.5, 0.5]


def test_a_dispatch_request_takes_a_free_slot_or_does_nothing(settings, create):
    drain_queued_tasks()
    for _ in range(10):
        dispatch_request()
    assert [t["task"] for t in drain_queued_tasks()] == ["messaging.dispatch"] * settings.MITTIS_SEND_DISPATCHERS

    create()  # every slot is taken (their tasks were drained): nothing more is queued...
    assert drain_queued_tasks() == []
    assert messages_dispatch(slot=0) == 1  # ...until a run ends and frees its slot
    dispatch_request()
    assert [t["task"] for t in drain_queued_tasks()] == ["messaging.dispatch"]


@pytest.mark.django_db(transaction=True)
def test_two_dispatchers_and_a_task_per_message_all_at_once_send_each_message_once(settings):
    settings.MITTIS_SANDBOX_REPORT_DELAY = 0
    account = AccountFactory()
    SenderFactory(account=account, value="+18045550142")
    ids = [message_create(account=account, livemode=False, sender="+18045550142", to="+18045550199",
                          body=f"Message {n}").pk for n in range(200)]

    def dispatcher(slot):
        try:
            return messages_dispatch(slot=slot, batch=20)
        finally:
            connection.close()

    def one_by_one(_):  # as requeue_stale_messages does for messages it thinks lost
        try:
            return sum(message_send(message_id=pk).sent for pk in ids)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=3) as pool:
        sent = [pool.submit(dispatcher, 0), pool.submit(dispatcher, 1), pool.submit(one_by_one, None)]
        accepted = [future.result() for future in sent]

    assert sum(accepted) == 200
    assert SendAttempt.objects.filter(message_id__in=ids).count() == 200
    assert Event.objects.filter(object_id__in=Message.objects.filter(pk__in=ids).values("public_id"),
                                type="message.sent").count() == 200
    assert set(Message.objects.filter(pk__in=ids).values_list("status", flat=True)) == {statuses.DELIVERED}
