"""Batch dispatchers: accepted messages are sent by dispatchers, each claiming a batch of queued messages
at once and writing their attempts, status changes, events, webhooks and delivery reports in a few
statements per batch, where a task per message costs a task and some twenty-five statements each.

A message whose carrier is behind a network call (`sends_in_batches` false), or whose sender or carrier is
at its rate, is handed to a task of its own: the workers then overlap the carrier's latency, and the task
waits out the rate (`throughput`) without holding a batch. The dispatchers leave it alone meanwhile
(`send.TASK_GRACE`).

Up to MITTIS_SEND_DISPATCHERS run at once, each holding a Redis mark (a slot); a request finding every
slot taken does nothing, since the running dispatchers take whatever is queued. A run ends after
DISPATCH_RUN_SECONDS and hands over to a fresh one, at the back of the queue, if work is left: a time
slice, so that webhook flushes and other tasks sharing the workers take turns with a large send instead
of waiting for all of it (a run of 20 s held every webhook until the sends were done).
"""

from datetime import timedelta
import time

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from messaging import statuses
from messaging.carriers.registry import carriers_for, route_table
from messaging.models import Message, Sender
from messaging.services.send import (
    TASK_GRACE, Accepted, carriers_accepted, send_claimed, send_enqueue, throughput_waits,
)
from mittis.celery import enqueue
from mittis.redis import MarkRequest, mark_clear, marks_take

DISPATCH_BATCH = 100
DISPATCH_RUN_SECONDS = 2
DISPATCH_LEASE_SECONDS = 120


def _dispatch_key(slot: int) -> str:
    return f"{settings.MITTIS_RATE_LIMIT_PREFIX}:messaging:dispatch:{slot}"


def dispatch_request() -> None:
    """Make sure a dispatcher runs soon; a no-op while every slot is taken."""
    marks_take([dispatch_mark_request()])


def dispatch_mark_request() -> MarkRequest:
    """`dispatch_request` as a mark to take, to share a Redis round trip with others (`marks_take`)."""
    return MarkRequest([_dispatch_key(slot) for slot in range(settings.MITTIS_SEND_DISPATCHERS)],
                       DISPATCH_LEASE_SECONDS, _dispatch_start, first_only=True)


def _dispatch_start(taken: list[int] | None) -> None:
    if taken == []:
        return  # every slot's dispatcher is running or about to, and will claim this message
    slot = taken[0] if taken else 0  # without the marks, dispatchers may overlap: their row claims keep that safe
    if not enqueue("messaging.dispatch", args=(slot,)):
        mark_clear(_dispatch_key(slot))  # the messages wait `queued`, and the requeue sweep sends them


def _dispatchable():
    now = timezone.now()
    return (Message.objects.filter(status=statuses.QUEUED, send_attempts=0)
            .filter(Q(dispatch_after__isnull=True) | Q(dispatch_after__lte=now))
            .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now)))


def messages_dispatch(*, slot: int = 0, batch: int = DISPATCH_BATCH, run_for: float = DISPATCH_RUN_SECONDS) -> int:
    """Send queued messages a batch at a time until none is left (or the run's time is up). Returns how
    many a carrier accepted."""
    accepted, deadline = 0, time.monotonic() + run_for
    try:
        while time.monotonic() < deadline:
            claimed = _claim_batch(batch)
            if not claimed:
                break
            accepted += _send_batch(claimed)
    finally:
        mark_clear(_dispatch_key(slot))
    # A message committed after the last claim but before the mark was cleared asked for no dispatcher.
    # (Read as a claim reads, in the index's order: `exists()` drops the order and may scan the table.)
    if _dispatchable().order_by("updated_at", "id").values_list("pk", flat=True)[:1]:
        dispatch_request()
    return accepted


def _claim_batch(size: int) -> list[Message]:
    """Claim attempt 1 of up to `size` queued messages, oldest first: the claim `send.claim_attempt` makes for
    one, so a message is claimed by one dispatcher or one task, never both."""
    with transaction.atomic():
        # Longest waiting first, in the order of message_waiting_idx: a claim reads the queued messages'
        # index entries and stops at a batch, whatever the statistics say (in id order, stale ones had
        # PostgreSQL walk the primary key through every message already sent).
        ids = list(_dispatchable().select_for_update(skip_locked=True).order_by("updated_at", "id")
                   .values_list("pk", flat=True)[:size])
        if not ids:
            return []
        Message.objects.filter(pk__in=ids, status=statuses.QUEUED, send_attempts=0).update(
            status=statuses.SENDING, send_attempts=1, updated_at=timezone.now())
    return list(Message.objects.filter(pk__in=ids).order_by("id"))


def _send_batch(messages: list[Message]) -> int:
    routes = {livemode: route_table(livemode=livemode) for livemode in {message.livemode for message in messages}}
    live = {(message.account_id, message.from_number) for message in messages if message.livemode}
    senders = {}
    if live:
        pairs = Q()
        for account_id, value in live:
            pairs |= Q(account_id=account_id, value=value)
        senders = {(sender.account_id, sender.value): sender for sender in Sender.objects.filter(pairs)}
    handed_off: dict[int, float] = {}  # message id: seconds until its task runs
    sendable: list[tuple[Message, list]] = []
    for message in messages:
        carriers = carriers_for(to=message.to, country=message.country, livemode=message.livemode,
                                routes=routes[message.livemode])
        if not carriers or not carriers[0].sends_in_batches:
            handed_off[message.pk] = 0.0
        else:
            sendable.append((message, carriers))
    handed_off |= throughput_waits([(message, carriers[0]) for message, carriers in sendable if message.livemode],
                                   senders)
    accepted: list[Accepted] = []
    for message, carriers in sendable:
        if message.pk not in handed_off:
            send_claimed(message, carriers, 1, made=[], accepted=accepted)
    carriers_accepted(accepted)
    if handed_off:
        # Unclaimed again, so that the task's own claim of attempt 1 is the one that counts; held for the tasks
        # (`send.hold_for_task`) until the last of them is due.
        now = timezone.now()
        Message.objects.filter(pk__in=list(handed_off), status=statuses.SENDING, send_attempts=1).update(
            status=statuses.QUEUED, send_attempts=0, updated_at=now,
            dispatch_after=now + timedelta(seconds=max(handed_off.values())) + TASK_GRACE)
        for message_id, wait in handed_off.items():
            send_enqueue(message_id, countdown=wait or None)
    return len(accepted)
