"""What a lost task, a down broker or a dead worker leaves behind is found by beat's sweeps and finished."""

from datetime import timedelta

from django.conf import settings as django_settings
from django.utils import timezone
import pytest
import time_machine

from messaging import statuses
from messaging.carriers import sandbox
from messaging.models import Message
from messaging.services import (
    message_create, message_send, messages_dispatch, messages_recover_lost_reports, messages_requeue_stale,
)
from messaging.tasks import STALE_QUEUED_AFTER, send_message
from mittis.celery import MAX_COUNTDOWN
from tests.conftest import broker_down, drain_queued_tasks


@pytest.fixture
def create(account):
    def _create(to="+18045550199"):
        return message_create(account=account, livemode=False, sender="+18045550142", to=to, body="hi")
    return _create


def test_a_retry_the_broker_could_not_take_is_sent_again_by_the_sweep_and_delivered(
        create, settings, django_capture_on_commit_callbacks):
    settings.MITTIS_SANDBOX_REPORT_DELAY = 0
    message = create(to=sandbox.TEMPORARILY_UNAVAILABLE)  # its first attempt fails, its retry succeeds
    drain_queued_tasks()

    with broker_down():
        send_message.run(message_id=message.pk)  # attempt 1 fails; publishing attempt 2 fails with the broker

    message.refresh_from_db()
    assert (message.status, message.send_attempts) == (statuses.SENDING, 1)
    assert drain_queued_tasks() == []  # the retry is nowhere but in the database
    assert messages_requeue_stale(older_than=STALE_QUEUED_AFTER) == []  # not before it is due
    with time_machine.travel(timezone.now() + timedelta(minutes=5)):
        assert messages_requeue_stale(older_than=STALE_QUEUED_AFTER) == [message.pk]
    [retry] = drain_queued_tasks()
    assert (retry["task"], retry["kwargsrepr"]) == ("messaging.send_message", repr({"message_id": message.pk,
                                                                                   "attempt": 2}))
    with django_capture_on_commit_callbacks(execute=True):
        send_message.run(message_id=message.pk, attempt=2)  # what the worker runs

    message.refresh_from_db()
    assert message.status == statuses.DELIVERED
    assert [(a.number, a.outcome) for a in message.attempts.all()] == [(1, "temporary_error"), (2, "accepted")]


def test_a_retry_on_its_way_is_left_alone_by_the_sweep(create):
    message = create(to=sandbox.TEMPORARILY_UNAVAILABLE)
    message_send(message_id=message.pk)  # its retry is published, due in seconds

    assert messages_requeue_stale(older_than=STALE_QUEUED_AFTER) == []
    with time_machine.travel(timezone.now() + timedelta(seconds=60)):
        assert messages_requeue_stale(older_than=STALE_QUEUED_AFTER) == []  # due, and its task has time yet


def test_a_report_whose_task_was_lost_is_asked_for_again_and_applied(create, settings):
    settings.MITTIS_SANDBOX_REPORT_DELAY = 2
    sent, silent = create(), create(to=sandbox.NEVER_REPORTS)
    assert messages_dispatch() == 2
    drain_queued_tasks()  # the report task is lost: a broker that lost its queue

    assert messages_recover_lost_reports() == []  # not late yet
    with time_machine.travel(timezone.now() + timedelta(minutes=3)):
        assert messages_recover_lost_reports() == [sent.pk]

    sent.refresh_from_db()
    silent.refresh_from_db()
    assert sent.status == statuses.DELIVERED
    assert [e.type for e in sent.events.order_by("sequence")] == ["message.queued", "message.sent",
                                                                  "message.delivered"]
    assert silent.status == statuses.SENT  # the sandbox never reports on it: left to close_stuck
    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        assert messages_recover_lost_reports() == []  # asked for an hour, then no more


def test_a_task_a_killed_worker_held_comes_back_within_minutes_and_never_while_still_held():
    """Redis gives an unacknowledged task back after the visibility timeout: long enough for the longest a
    worker holds a task (a countdown, then the hard time limit), short enough for minutes, not an hour."""
    visibility = django_settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]

    assert MAX_COUNTDOWN + django_settings.CELERY_TASK_TIME_LIMIT < visibility <= 300


def test_a_countdown_longer_than_the_broker_holds_a_task_is_cut(create, settings):
    """A sender at its rate far into the future: its task comes back within MAX_COUNTDOWN and waits again,
    instead of outliving the visibility timeout and being delivered twice."""
    message = create()
    Message.objects.filter(pk=message.pk).update(livemode=True)
    settings.MITTIS_SENDER_MPS = {**settings.MITTIS_SENDER_MPS, "long_code": 0.001}  # one per 1,000 s
    drain_queued_tasks()

    message_send(message_id=message.pk)  # takes the one slot there is; nothing is sent beyond this line
    second = create()
    Message.objects.filter(pk=second.pk).update(livemode=True)
    outcome = message_send(message_id=second.pk)

    assert outcome.throttled > MAX_COUNTDOWN
    [again] = [t for t in drain_queued_tasks() if t["task"] == "messaging.send_message"]
    eta = timezone.datetime.fromisoformat(again["eta"])
    assert (eta - timezone.now()).total_seconds() <= MAX_COUNTDOWN
