"""`<status>_at`: each path that moves a message stamps the time it entered a status that has one (through
`transition`, the one writer), keeps the earlier ones, and leaves the rest null; the events' data carry them."""

from datetime import datetime, timedelta, timezone as dt_timezone


from django.conf import settings
import pytest
import time_machine

from messaging import statuses
from messaging.carriers import sandbox
from messaging.carriers.base import DeliveryReport
from messaging.models import Message
from messaging.representation import message_row
from messaging.services import (
    message_apply_delivery_report, message_cancel, message_create, message_expire, message_fail, message_send,
    messages_close_stuck,
)
from messaging.services.send import claim_attempt
from messaging.services.transitions import BatchWrites, transition

START = datetime(2026, 12, 1, 9, 0, 0, tzinfo=dt_timezone.utc)
STEP = timedelta(minutes=1)


def at(step: int) -> str:
    return (START + step * STEP).strftime("%Y-%m-%dT%H:%M:%SZ")


def report(status: str):
    def apply(message: Message) -> None:
        message.refresh_from_db()
        message_apply_delivery_report(carrier="sandbox", report=DeliveryReport(
            message.carrier_message_id, status, carrier_status=status.upper(), error_code="unknown_subscriber",
            reference=message.public_id))
    return apply


def send(message: Message) -> None:
    message_send(message_id=message.pk)


def claim(message: Message) -> None:
    """Claimed for its first attempt, and the carrier's answer never recorded: still `sending`."""
    assert claim_attempt(message.pk, 1)
    Message.objects.filter(pk=message.pk).update(carrier="sandbox", carrier_message_id="sbx_overtaken")


def close_stuck(message: Message) -> None:
    with time_machine.travel(START + timedelta(hours=settings.MITTIS_STUCK_AFTER_HOURS + 1), tick=False):
        messages_close_stuck()


# (to, scheduled, the steps after creation, one a minute; what each `<status>_at` is: the step that stamped it)
PATHS = {
    "sent-then-delivered": (None, False, [send, report(statuses.DELIVERED)], {"sent_at": 1, "delivered_at": 2}),
    "sent-then-undelivered": (sandbox.UNDELIVERED, False, [send, report(statuses.UNDELIVERED)],
                              {"sent_at": 1, "undelivered_at": 2}),
    "refused-at-send": (sandbox.FAILS, False, [send], {"failed_at": 1}),
    # The report overtook the submit's answer: sent and delivered at once.
    "delivered-while-sending": (None, False, [claim, report(statuses.DELIVERED)], {"sent_at": 2, "delivered_at": 2}),
    "failed-from-queued": (None, False, [lambda m: message_fail(message_id=m.pk, error_code="carrier_no_answer",
                                                                error_message="No answer.")], {"failed_at": 1}),
    "sent-then-failed": (None, False, [send, report(statuses.FAILED)], {"sent_at": 1, "failed_at": 2}),
    "canceled": (None, True, [lambda m: message_cancel(message=m)], {"canceled_at": 1}),
    "expired": (None, False, [lambda m: message_expire(message_id=m.pk)], {"expired_at": 1}),
    "never-reported-closed": (sandbox.NEVER_REPORTS, False, [send, close_stuck], {"sent_at": 1, "undelivered_at": None}),
}


@pytest.mark.parametrize("path", PATHS)
def test_each_path_stamps_the_statuses_it_entered_and_no_other(account, settings, path,
                                                               django_capture_on_commit_callbacks):
    to, scheduled, steps, expected = PATHS[path]
    settings.MITTIS_SANDBOX_REPORT_DELAY = 3600  # the reports come from the steps, not from the sandbox
    with time_machine.travel(START, tick=False) as clock:
        message = message_create(account=account, livemode=False, sender="+18045550142", to=to or "+18045550199",
                                 body="Your technician is 15 minutes out.",
                                 send_at=START + timedelta(hours=1) if scheduled else None,
                                 validity_period=1 if path == "expired" else None)
        for step in steps:
            clock.shift(STEP)
            with django_capture_on_commit_callbacks():  # scheduled follow-ups (reports, dispatches) never run
                step(message)

    obj = message_row(Message.objects.get(pk=message.pk))
    stamped = {name: obj[name] for name in statuses.TIME_FIELDS if obj[name] is not None}
    assert set(stamped) == set(expected)
    for name, step in expected.items():
        if step is not None:  # None: stamped at a time of the sweep's own
            assert stamped[name] == at(step)
    assert obj["status"] + "_at" in stamped


def test_every_event_carries_the_times_reached_by_then(account, settings, django_capture_on_commit_callbacks):
    settings.MITTIS_SANDBOX_REPORT_DELAY = 3600
    with time_machine.travel(START, tick=False) as clock:
        message = message_create(account=account, livemode=False, sender="+18045550142", to="+18045550199",
                                 body="Your technician is 15 minutes out.")
        for step in (send, report(statuses.DELIVERED)):
            clock.shift(STEP)
            with django_capture_on_commit_callbacks():
                step(message)

    timeline = [(event.type, {name: event.data[name] for name in ("sent_at", "delivered_at")})
                for event in message.events.order_by("sequence")]
    assert timeline == [
        ("message.queued", {"sent_at": None, "delivered_at": None}),
        ("message.sent", {"sent_at": at(1), "delivered_at": None}),
        ("message.delivered", {"sent_at": at(1), "delivered_at": at(2)}),
    ]


def test_no_caller_sets_a_status_time_of_its_own(account):
    message = message_create(account=account, livemode=False, sender="+18045550142", to="+18045550199",
                             body="Your technician is 15 minutes out.")

    with pytest.raises(ValueError, match="transition's to stamp"):
        transition(message, statuses.CANCELED, BatchWrites(), canceled_at=START)
