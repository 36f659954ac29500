"""The send pipeline's rules, service by service: one send per message, no status going backwards."""

from datetime import timedelta

import pytest
from django.utils import timezone
import time_machine

from messaging import statuses
from messaging.carriers import sandbox
from messaging.carriers.base import DeliveryReport, OutboundSms
from messaging.models import Message, SendAttempt
from messaging.services import (
    MAX_SEND_ATTEMPTS, message_apply_delivery_report, message_create, message_send, messages_recover_interrupted,
    messages_requeue_stale,
)


@pytest.fixture
def create(account):
    def _create(to="+18045550199", body="Your technician is 15 minutes out."):
        return message_create(account=account, livemode=False, sender="+18045550142", to=to, body=body)
    return _create


def timeline(message):
    return [(e.sequence, e.type, e.status) for e in message.events.order_by("sequence")]


def test_a_send_moves_queued_to_sent_and_records_the_carrier_id(create, django_capture_on_commit_callbacks):
    message = create()

    with django_capture_on_commit_callbacks() as callbacks:
        outcome = message_send(message_id=message.pk)

    message.refresh_from_db()
    assert outcome.sent
    assert (message.status, message.carrier, message.send_attempts) == ("sent", "sandbox", 1)
    assert message.carrier_message_id.startswith("sbx_") and message.sent_at is not None
    assert timeline(message) == [(1, "message.queued", "queued"), (2, "message.sent", "sent")]
    assert len(callbacks) == 1  # the sandbox's delivery report, scheduled once the send is committed


def test_a_task_that_runs_twice_sends_once(create):
    message = create()

    first = message_send(message_id=message.pk)
    second = message_send(message_id=message.pk)

    message.refresh_from_db()
    assert first.sent and second.skipped
    assert message.send_attempts == 1
    assert [t for _, t, _ in timeline(message)].count("message.sent") == 1


def test_a_delivery_report_moves_sent_to_delivered(create):
    message = create()
    message_send(message_id=message.pk)
    message.refresh_from_db()

    message_apply_delivery_report(carrier="sandbox", report=DeliveryReport(
        message.carrier_message_id, statuses.DELIVERED, carrier_status="DELIVRD"))

    message.refresh_from_db()
    assert message.status == "delivered" and message.delivered_at is not None
    assert timeline(message)[-1] == (3, "message.delivered", "delivered")
    assert message.events.get(sequence=3).carrier_status == "DELIVRD"


@pytest.mark.parametrize("late_status", [statuses.UNDELIVERED, statuses.FAILED, statuses.DELIVERED])
def test_a_report_for_a_final_message_changes_nothing(create, late_status):
    message = create()
    message_send(message_id=message.pk)
    message.refresh_from_db()
    report = DeliveryReport(message.carrier_message_id, statuses.DELIVERED, carrier_status="DELIVRD")
    message_apply_delivery_report(carrier="sandbox", report=report)
    before = timeline(message)

    message_apply_delivery_report(carrier="sandbox", report=DeliveryReport(
        message.carrier_message_id, late_status, carrier_status="LATE", error_code="unknown_error"))

    message.refresh_from_db()
    assert message.status == "delivered" and message.error_code == ""
    assert timeline(message) == before


def test_a_report_that_overtakes_the_send_record_is_applied_and_the_late_send_record_keeps_it(create):
    message = create()
    Message.objects.filter(pk=message.pk).update(status=statuses.SENDING, send_attempts=1,
                                                 carrier="sandbox", carrier_message_id="early")

    message_apply_delivery_report(carrier="sandbox", report=DeliveryReport("early", statuses.DELIVERED, "DELIVRD"))

    message.refresh_from_db()
    assert message.status == "delivered"


def test_a_report_for_an_unknown_carrier_id_is_ignored(create):
    assert message_apply_delivery_report(
        carrier="sandbox", report=DeliveryReport("nobody", statuses.DELIVERED, "DELIVRD")) is None


def test_the_sandbox_rejection_fails_the_message_with_a_reason(create):
    message = create(to=sandbox.FAILS)

    message_send(message_id=message.pk)

    message.refresh_from_db()
    assert (message.status, message.error_code) == ("failed", "carrier_rejected")
    assert timeline(message)[-1] == (2, "message.failed", "failed")


def test_a_temporary_carrier_error_asks_for_a_retry_and_the_retry_sends(create):
    message = create(to=sandbox.TEMPORARILY_UNAVAILABLE)

    first = message_send(message_id=message.pk, attempt=1)
    duplicate_of_first = message_send(message_id=message.pk, attempt=1)
    retry = message_send(message_id=message.pk, attempt=2)

    message.refresh_from_db()
    assert first.retry and duplicate_of_first.skipped and retry.sent
    assert (message.status, message.send_attempts) == ("sent", 2)


def test_a_carrier_down_for_every_attempt_fails_the_message_as_unavailable(create, monkeypatch):
    message = create(to=sandbox.TEMPORARILY_UNAVAILABLE)
    # The sandbox fails only attempt 1; make every attempt look like the first.
    real = sandbox.SandboxClient.try_send_sms
    monkeypatch.setattr(sandbox.SandboxClient, "try_send_sms",
                        lambda self, sms: real(self, OutboundSms(**{**sms.__dict__, "attempt": 1})))

    outcomes = [message_send(message_id=message.pk, attempt=n) for n in range(1, MAX_SEND_ATTEMPTS + 1)]

    message.refresh_from_db()
    assert [o.retry for o in outcomes] == [True] * (MAX_SEND_ATTEMPTS - 1) + [False]
    assert (message.status, message.error_code) == ("failed", "carrier_unavailable")


def test_the_sandbox_undelivered_number_is_reported_undelivered(create):
    message = create(to=sandbox.UNDELIVERED)
    message_send(message_id=message.pk)
    message.refresh_from_db()
    sms = OutboundSms(message.public_id, message.from_number, message.to, message.body, False, 1)
    report = sandbox.SandboxClient().send_sms(sms).scheduled_report  # what the sandbox reports later

    message_apply_delivery_report(carrier="sandbox", report=report)

    message.refresh_from_db()
    assert (message.status, message.error_code) == ("undelivered", "unknown_subscriber")
    assert timeline(message)[-1][1:] == ("message.failed", "undelivered")


def test_the_sandbox_silent_number_never_reports():
    result = sandbox.SandboxClient().try_send_sms(OutboundSms("msg_x", "+18045550142", sandbox.NEVER_REPORTS, "hi", False, 1))

    assert result.carrier_message_id and result.scheduled_report is None


def test_stale_queued_messages_are_enqueued_again(create):
    stale, fresh, sent = create(), create(), create()
    message_send(message_id=sent.pk)
    Message.objects.filter(pk__in=[stale.pk, sent.pk]).update(updated_at=timezone.now() - timedelta(minutes=10))

    assert messages_requeue_stale(older_than=timedelta(minutes=2)) == [stale.pk]


@pytest.mark.parametrize("to, ends", [("+18045550199", "delivered"), (sandbox.UNDELIVERED, "undelivered"),
                                      (sandbox.NEVER_REPORTS, "sent")])
def test_a_send_whose_worker_died_after_the_carrier_took_it_is_settled_with_the_carriers_report(
        create, to, ends, django_capture_on_commit_callbacks):
    """The worker recorded the carrier's acceptance and died before applying it (and the sandbox's report
    with it). Recovery marks it sent and asks the carrier again for its report, so it does not wait two days
    for `no_delivery_report`; a carrier that cannot be asked (none here) would call back instead."""
    message = create(to=to)
    Message.objects.filter(pk=message.pk).update(status="sending", send_attempts=1)
    result = sandbox.SandboxClient().try_send_sms(OutboundSms(message.public_id, message.from_number, to, "hi", False, 1))
    SendAttempt.objects.create(message=message, number=1, carrier="sandbox", started_at=timezone.now(),
                               outcome=SendAttempt.ACCEPTED, carrier_message_id=result.carrier_message_id)

    with django_capture_on_commit_callbacks(execute=True):
        assert messages_recover_interrupted(older_than=timedelta(0)) == [message.pk]

    message.refresh_from_db()
    assert (message.status, message.carrier_message_id) == (ends, result.carrier_message_id)
    assert [t for _, t, _ in timeline(message)][:2] == ["message.queued", "message.sent"]
    assert message.attempts.count() == 1  # never sent again


# --- An attempt is never older than its message: every read of a message's attempts starts at its creation -----------
def test_a_worker_whose_clock_runs_behind_the_webs_stamps_its_attempt_no_earlier_than_the_message(create, api):
    message = create()

    with time_machine.travel(message.created_at - timedelta(seconds=5), tick=False):
        message_send(message_id=message.pk)

    assert SendAttempt.objects.get(message=message).started_at == message.created_at
    assert [a["outcome"] for a in api.get(f"/v1/messages/{message.public_id}").json()["attempts"]] == ["accepted"]


def test_an_interrupted_send_claimed_by_a_clock_behind_the_webs_is_recorded_no_earlier_than_the_message(create, api):
    message = create()
    Message.objects.filter(pk=message.pk).update(status="sending", send_attempts=1,
                                                 updated_at=message.created_at - timedelta(seconds=5))

    assert messages_recover_interrupted(older_than=timedelta(0)) == [message.pk]

    assert SendAttempt.objects.get(message=message).started_at == message.created_at
    assert [a["outcome"] for a in api.get(f"/v1/messages/{message.public_id}").json()["attempts"]] == ["unknown"]
