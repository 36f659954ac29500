"""The beat tasks' sweeps: whatever a lost task, a dead worker or a down broker left behind is found here
and finished, so no message waits for ever. Each is harmless to run twice (claims keep sends single)."""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from messaging import statuses
from messaging.carriers.base import SendResult
from messaging.carriers.registry import get_carrier, reports_on_request
from messaging.errors import MESSAGE_ERRORS
from messaging.models import Carrier, Message, SendAttempt
from messaging.services.dispatch import dispatch_request
from messaging.services.lifecycle import expire_locked, message_expire, message_fail
from messaging.services.reports import messages_apply_delivery_reports
from messaging.services.send import Accepted, carriers_accepted, send_enqueue
from messaging.services.transitions import BatchWrites, transition

SWEEP_LIMIT = 1000  # messages per run of a sweep; the next run takes the rest


def messages_requeue_stale(*, older_than: timedelta) -> list[int]:
    """Enqueue again the sends whose task was lost (broker down, worker killed): queued messages older than
    `older_than`, and messages whose next attempt was a task's and is overdue (`send.hold_for_task`).

    Harmless for a message whose task is merely late: the attempt claim lets only one run send.
    """
    now = timezone.now()
    # Oldest first, in message_waiting_idx's order: PostgreSQL then reads that index from its start and stops at the
    # first entry young enough, where a plan from statistics alone may combine indexes that hold every message.
    queued = list(Message.objects.filter(status=statuses.QUEUED, updated_at__lt=now - older_than)
                  .filter(Q(dispatch_after__isnull=True) | Q(dispatch_after__lt=now))
                  .order_by("updated_at").values_list("pk", flat=True)[:SWEEP_LIMIT])
    for message_id in queued:
        send_enqueue(message_id)
    retries = list(Message.objects.filter(status=statuses.SENDING, dispatch_after__lt=now)
                   .values_list("pk", "send_attempts")[:SWEEP_LIMIT])
    for message_id, attempts in retries:
        send_enqueue(message_id, attempt=attempts + 1)
    return queued + [message_id for message_id, _ in retries]


def messages_recover_interrupted(*, older_than: timedelta, limit: int = SWEEP_LIMIT) -> list[int]:
    """Settle sends cut off by a dying worker, so no message stays `sending` for nothing.

    A message claimed for an attempt longer ago than any send can take (the task's time limit) either
    has a carrier's acceptance recorded but not applied (the worker died after the carrier answered):
    it becomes `sent`; or has nothing recorded for that attempt (the worker died mid-call): the carrier
    may or may not have it, so it is never sent again, and fails as `carrier_no_answer` (retryable: the
    customer decides). A message waiting for its next retry or for a report has its attempt recorded
    and is left alone.
    """
    cutoff = timezone.now() - older_than
    candidates = list(Message.objects.filter(status=statuses.SENDING, updated_at__lt=cutoff)
                      .order_by("updated_at").values_list("pk", flat=True)[:limit])  # as in messages_requeue_stale
    recovered = []
    for message_id in candidates:
        with transaction.atomic():
            message = Message.objects.select_for_update().get(pk=message_id)
            if message.status != statuses.SENDING or message.updated_at >= cutoff:
                continue
            attempts = SendAttempt.objects.of([message_id], since=message.created_at)
            latest = attempts.order_by("-number").first()
            interrupted = not attempts.filter(started_at__gte=message.updated_at).exists()  # nothing since the claim
            accepted = (latest is not None and latest.outcome == SendAttempt.ACCEPTED
                        and not message.carrier_message_id)
            if not interrupted and not accepted:
                continue  # waiting for its retry or its report
            recovered.append(message_id)
            if interrupted:
                # Numbered and failed under the row lock, in one transaction: a second run of the sweep finds
                # the message failed, and numbers nothing. Not before the message (SendAttempt.objects.of).
                SendAttempt.objects.create(
                    message_id=message_id, number=(latest.number + 1) if latest else 1,
                    carrier=latest.carrier if latest else "", started_at=max(message.updated_at, message.created_at),
                    outcome=SendAttempt.UNKNOWN, error_code="carrier_no_answer",
                    error_message="The send was interrupted (its worker stopped); the carrier may or may not have it.")
                message_fail(message_id=message_id, error_code="carrier_no_answer",
                             error_message=MESSAGE_ERRORS["carrier_no_answer"].message)
                continue
        if accepted:
            # The report the dead worker would have scheduled is lost with it: asked again where the carrier
            # answers (the sandbox); elsewhere the carrier's own callback brings it.
            try:
                report = get_carrier(latest.carrier).query_report(carrier_message_id=latest.carrier_message_id,
                                                                 to=message.to)
            except Carrier.DoesNotExist:  # deleted since: nobody left to ask
                report = None
            carriers_accepted([Accepted(message, latest.carrier, SendResult(
                carrier_message_id=latest.carrier_message_id, scheduled_report=report), attempt=None, attempts=None)])
    return recovered


# A message a carrier that answers on request (the sandbox) took is asked about again once its report is this
# late, past the sandbox's own delay: the report's task was lost (a broker that lost its queue, a publish during
# an outage). Asked for an hour, then left to `messages_close_stuck` (the sandbox never reports on some numbers).
REPORT_LOST_AFTER = timedelta(minutes=2)
REPORT_ASKED_FOR = timedelta(hours=1)


def messages_recover_lost_reports(*, limit: int = SWEEP_LIMIT) -> list[int]:
    """Ask the carriers that answer on request (`SmsClient.query_report`) what became of messages still `sent`
    well after their report was due, and apply the answers as reports."""
    now = timezone.now()
    due = now - REPORT_LOST_AFTER - timedelta(seconds=settings.MITTIS_SANDBOX_REPORT_DELAY)
    recovered = []
    for name in reports_on_request():
        late = list(Message.objects.filter(status=statuses.SENT, carrier=name, sent_at__lt=due,
                                           sent_at__gte=now - REPORT_ASKED_FOR)
                    .order_by("sent_at").values_list("pk", "carrier_message_id", "to")[:limit])
        if not late:
            continue
        client = get_carrier(name)
        answers = [(pk, client.query_report(carrier_message_id=carrier_message_id, to=to))
                   for pk, carrier_message_id, to in late]
        answers = [(pk, report) for pk, report in answers if report is not None]
        if answers:
            messages_apply_delivery_reports(carrier=name, reports=[report for _, report in answers],
                                            raws=[{"asked": "the report was late"} for _ in answers])
            recovered += [pk for pk, _ in answers]
    return recovered


def messages_dispatch_scheduled(*, limit: int = SWEEP_LIMIT) -> list[int]:
    """Queue the scheduled messages whose time has come (a beat task runs this every few seconds)."""
    now = timezone.now()
    due = list(Message.objects.filter(status=statuses.SCHEDULED, send_at__lte=now)
               .order_by("send_at").values_list("pk", flat=True)[:limit])
    queued = []
    for message_id in due:
        with transaction.atomic():
            message = Message.objects.select_for_update().get(pk=message_id)
            if message.status != statuses.SCHEDULED:
                continue  # canceled, or dispatched by a concurrent run
            if message.expires_at and now >= message.expires_at:
                expire_locked(message)
                continue
            writes = BatchWrites()
            transition(message, statuses.QUEUED, writes)
            writes.save()
            transaction.on_commit(dispatch_request)
            queued.append(message_id)
    return queued


def messages_expire_overdue(*, limit: int = SWEEP_LIMIT) -> list[int]:
    """Expire messages still waiting for a carrier past their validity (a throttled or retrying
    message is also checked at its next attempt). Its filter is message_expiry_idx's own condition, so that it
    reads only the overdue entries of that index."""
    overdue = list(Message.objects.filter(status__in=[statuses.SCHEDULED, statuses.QUEUED],
                                          expires_at__lte=timezone.now()).values_list("pk", flat=True)[:limit])
    for message_id in overdue:
        message_expire(message_id=message_id)
    return overdue


def messages_close_stuck(*, limit: int = SWEEP_LIMIT) -> list[int]:
    """Close messages a carrier took (or may have taken) whose final report never came: they end
    `undelivered` with `no_delivery_report`, so nothing stays open forever."""
    cutoff = timezone.now() - timedelta(hours=settings.MITTIS_STUCK_AFTER_HOURS)
    stuck = list(Message.objects.filter(
        Q(status=statuses.SENT, sent_at__lt=cutoff) | Q(status=statuses.SENDING, updated_at__lt=cutoff))
        .values_list("pk", flat=True)[:limit])
    for message_id in stuck:
        with transaction.atomic():
            message = Message.objects.select_for_update().get(pk=message_id)
            if message.status in (statuses.SENT, statuses.SENDING):
                writes = BatchWrites()
                transition(message, statuses.UNDELIVERED, writes, error_code="no_delivery_report",
                           error_message=MESSAGE_ERRORS["no_delivery_report"].message)
                writes.save()
    return stuck
