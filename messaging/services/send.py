"""Handing a message to its carriers: once, failing over on a temporary error, within its sender's and
carriers' throughput, retried with back-off; and recording what the carriers answered.

A message is claimed for each attempt by a conditional UPDATE (`claim_attempt`), so two runs never send it
twice, and no transaction is held across a carrier call.
"""

from dataclasses import dataclass
from datetime import timedelta
import random
import time

from django.conf import settings
from django.db import transaction
from django.utils import timezone
import phonenumbers

from messaging import statuses, throughput
from messaging.carriers.base import (
    CarrierError, CarrierRejectedError, CarrierTemporaryError, OutboundSms, SendResult,
)
from messaging.carriers.registry import breaker_record, breaker_take_probe, carriers_for
from messaging.models import Message, SendAttempt, Sender
from messaging.services import reports
from messaging.services.lifecycle import message_expire, message_fail
from messaging.services.transitions import BatchWrites, transition
from mittis.celery import enqueue
from mittis.db import insert_many

# A temporary carrier error is retried this many times in all before the message fails.
MAX_SEND_ATTEMPTS = 5
# Retry a temporarily failing carrier after about 5 s, 10 s, 20 s, 40 s (capped), with jitter so that many
# messages held up by one outage do not return all at once.
SEND_RETRY_BASE_SECONDS = 5
SEND_RETRY_MAX_SECONDS = 150
# A message whose next attempt is a task's is left to that task until it is due and this much longer; then
# the dispatchers and the sweeps take it again, should the task be lost.
TASK_GRACE = timedelta(minutes=2)


@dataclass(frozen=True)
class SendOutcome:
    sent: bool = False
    retry: bool = False  # every carrier failed temporarily: attempt + 1 is scheduled
    skipped: bool = False  # another run holds (or held) this attempt
    throttled: float = 0.0  # seconds until the sender or carrier has a free slot: this attempt runs then


def send_retry_delay(attempt: int) -> float:
    delay = min(SEND_RETRY_BASE_SECONDS * 2 ** (attempt - 1), SEND_RETRY_MAX_SECONDS)
    return delay * random.uniform(0.8, 1.2)


def send_enqueue(message_id: int, *, attempt: int = 1, countdown: float | None = None) -> None:
    """A task of the message's own for `attempt` (the dispatchers send most messages: `dispatch_request`).
    A broker that cannot take it leaves the message to `messages_requeue_stale`."""
    enqueue("messaging.send_message", kwargs={"message_id": message_id, "attempt": attempt}, countdown=countdown)


def hold_for_task(message_ids: list[int], *, due_in: float, status: str, send_attempts: int) -> None:
    """Mark messages as their own tasks', due in `due_in` seconds: the dispatchers and sweeps leave them alone
    until TASK_GRACE after that."""
    Message.objects.filter(pk__in=message_ids, status=status, send_attempts=send_attempts).update(
        dispatch_after=timezone.now() + timedelta(seconds=due_in) + TASK_GRACE)


def message_send(*, message_id: int, attempt: int = 1) -> SendOutcome:
    """Hand a message to a carrier, once; on a temporary failure, to the next carrier of its route, then to a
    retry after a back-off (scheduled here); at its sender's or carrier's rate, again once a slot is free.

    Safe to call twice with the same attempt number: attempt 1 claims the message `queued -> sending`,
    a retry claims attempt N only while the message is still `sending` at attempt N-1. A carrier that
    may have taken the message without saying so (`maybe_sent`) ends the attempt: the message is
    never given to a second carrier unless the first definitely did not take it.
    """
    message = Message.objects.get(pk=message_id)
    if message.status not in (statuses.QUEUED, statuses.SENDING):
        return SendOutcome(skipped=True)
    if message.expires_at and timezone.now() >= message.expires_at and not message.carrier_message_id:
        message_expire(message_id=message_id)  # better not sent than sent late
        return SendOutcome()
    carriers = carriers_for(to=message.to, country=message.country, livemode=message.livemode)
    if message.livemode and carriers:
        wait = _throughput_wait(message, carriers[0])
        if wait:
            # Not claimed: the same attempt runs again once a slot is free.
            held = (statuses.QUEUED, 0) if attempt == 1 else (statuses.SENDING, attempt - 1)
            hold_for_task([message_id], due_in=wait, status=held[0], send_attempts=held[1])
            send_enqueue(message_id, attempt=attempt, countdown=wait)
            return SendOutcome(throttled=wait)
    if not claim_attempt(message_id, attempt):
        return SendOutcome(skipped=True)
    accepted: list[Accepted] = []
    # Attempt 1 was claimed from `queued`, so this call makes all of the message's attempts: they are known
    # without reading them back (the message's JSON, in its events, lists them).
    outcome = send_claimed(message, carriers, attempt, made=[] if attempt == 1 else None, accepted=accepted)
    carriers_accepted(accepted)
    return outcome


def send_claimed(message: Message, carriers: list, attempt: int, *, made: list | None,
                 accepted: list["Accepted"]) -> SendOutcome:
    """Try the carriers in order for an attempt the caller has claimed. A carrier's acceptance is appended to
    `accepted`, its attempt row not yet saved, for the caller's `carriers_accepted` (one call for a batch);
    every other outcome is written here and now. `made`: the attempts made so far, when they are all known.
    A carrier whose breaker is open is tried only as its half-open probe, which one send wins."""
    message_id = message.pk
    sms = OutboundSms(reference=message.public_id, sender=message.from_number, to=message.to,
                      body=message.body, livemode=message.livemode, attempt=attempt,
                      validity_seconds=_remaining_validity(message))
    number = 1 if attempt == 1 else SendAttempt.objects.of([message_id], since=message.created_at).count() + 1
    last_error, paused = None, 0
    refusals = []  # final for their carrier, not for the message (`fail_over`)
    for carrier in carriers:
        row = carrier.carrier
        if row is not None and row.breaker_state == row.OPEN and not breaker_take_probe(row):
            paused += 1
            continue  # another send is probing it, or its cool-down is not over
        # Never before the message, which bounds its attempts' reads (SendAttempt.objects.of): the clock of the web
        # process that stamped `created_at` may run ahead of this one.
        started_at, started = max(timezone.now(), message.created_at), time.monotonic()

        def record(**outcome):
            attempt_row = _attempt_row(message, carrier.name, started_at, started, number=number, **outcome)
            attempt_row.save(force_insert=True)
            if made is not None:
                made.append(attempt_row)

        try:
            result = carrier.send_sms(sms)
        except CarrierTemporaryError as error:
            record(error=error, outcome=SendAttempt.UNKNOWN if error.maybe_sent else SendAttempt.TEMPORARY_ERROR)
            number += 1
            if error.maybe_sent:
                return SendOutcome()  # its report (or the expiry) settles it; never a second carrier
            if error.throttled:  # it answered: healthy, only busy; the back-off below slows this message alone
                _breaker_answered(row, carrier.name)
            else:
                breaker_record(carrier.name, ok=False)
            last_error = (carrier.name, error)
            continue
        except CarrierRejectedError as error:
            record(error=error, outcome=SendAttempt.REJECTED)
            _breaker_answered(row, carrier.name)  # it answered: the carrier itself is healthy
            if error.fail_over:
                number += 1
                refusals.append((carrier.name, error))
                continue
            message_fail(message_id=message_id, error_code=error.code, error_message=error.message,
                         carrier=carrier.name, carrier_status=error.carrier_status)
            return SendOutcome()
        _breaker_answered(row, carrier.name)
        accepted_row = _attempt_row(message, carrier.name, started_at, started, number=number, result=result,
                                    outcome=SendAttempt.ACCEPTED)
        accepted.append(Accepted(message, carrier.name, result, accepted_row,
                                 None if made is None else [*made, accepted_row]))
        return SendOutcome(sent=True)

    if refusals and len(refusals) == len(carriers):
        # Every carrier refused it for good: a retry would only be refused again.
        carrier_name, error = refusals[-1]
        message_fail(message_id=message_id, error_code=error.code, error_message=error.message,
                     carrier=carrier_name, carrier_status=error.carrier_status)
        return SendOutcome()
    if attempt < MAX_SEND_ATTEMPTS:
        _retry_later(message_id, attempt)
        return SendOutcome(retry=True)
    # A carrier left out of `carriers` (carriers_for) or skipped here is paused by its breaker, or disabled.
    _fail_exhausted(message, made=number - 1, last_error=last_error, none_tried=paused == len(carriers))
    return SendOutcome()


def _breaker_answered(row, name: str) -> None:
    """The carrier answered: its breaker closes, and a healthy carrier's breaker writes nothing."""
    if row is not None and (row.breaker_failures or row.breaker_state != row.CLOSED):
        breaker_record(name, ok=True)


def _fail_exhausted(message: Message, *, made: int, last_error: tuple | None, none_tried: bool) -> None:
    """Fail a message out of attempts, with the code and words of the last carrier's answer. `made`: its attempts
    (SendAttempt rows), which a retry that found no carrier to try did not add to; `none_tried`: the last one."""
    message_id = message.pk
    if last_error is None:  # the answer of the last carrier tried, on an earlier attempt
        tried = (SendAttempt.objects.of([message_id], since=message.created_at).exclude(error_code="")
                 .order_by("-number").first())
        last_error = (tried.carrier, CarrierError(tried.error_code, tried.error_message,
                                                  carrier_status=tried.raw_code)) if tried else None
    carrier_name, error = last_error or ("", None)
    text = "No carrier could take the message" + (f" after {made} attempt{'s' * (made != 1)}" if made else "")
    if not none_tried:  # then the last attempt tried a carrier, which answered `last_error`
        text += f": {error.message}"
    else:
        untried = "no carrier could be tried (each paused by its circuit breaker, or disabled)."
        text += f"; when it was last retried, {untried}" if made else f": {untried}"
        text += f" The last answer: {error.message}" if error else ""
    message_fail(message_id=message_id, error_code=error.code if error else "carrier_unavailable",
                 error_message=text, carrier=carrier_name, carrier_status=error.carrier_status if error else "")


def _retry_later(message_id: int, attempt: int) -> None:
    """Attempt + 1 after a back-off: its due time is recorded first, so a retry the broker loses is sent
    again by `messages_requeue_stale`."""
    delay = send_retry_delay(attempt)
    hold_for_task([message_id], due_in=delay, status=statuses.SENDING, send_attempts=attempt)
    send_enqueue(message_id, attempt=attempt + 1, countdown=delay)


def _remaining_validity(message: Message) -> int | None:
    if not message.expires_at:
        return None
    return max(1, int((message.expires_at - timezone.now()).total_seconds()))


def claim_attempt(message_id: int, attempt: int) -> bool:
    now = timezone.now()
    if attempt == 1:
        claimed = Message.objects.filter(pk=message_id, status=statuses.QUEUED, send_attempts=0).update(
            status=statuses.SENDING, send_attempts=1, dispatch_after=None, updated_at=now)
    else:
        claimed = Message.objects.filter(pk=message_id, status=statuses.SENDING, send_attempts=attempt - 1).update(
            send_attempts=attempt, dispatch_after=None, updated_at=now)
    return claimed == 1


def _attempt_row(message: Message, carrier: str, started_at, started: float, *, number: int, outcome: str,
                 result: SendResult | None = None, error: CarrierError | None = None) -> SendAttempt:
    """Unsaved. Precondition: the caller holds the attempt's claim, which serialises the numbers."""
    return SendAttempt(
        message_id=message.pk, number=number, carrier=carrier, started_at=started_at,
        latency_ms=int((time.monotonic() - started) * 1000), outcome=outcome,
        carrier_message_id=result.carrier_message_id if result else "",
        raw_code=(error.carrier_status if error else "")[:64], error_code=(error.code if error else "")[:64],
        error_message=(error.message if error else "")[:500])


# --- Recording acceptances ---------------------------------------------------------------------
@dataclass
class Accepted:
    """A carrier took a message."""

    message: Message
    carrier: str
    result: SendResult
    attempt: SendAttempt | None  # its attempt row, not yet saved; None when it is recorded already
    attempts: list[SendAttempt] | None  # all of the message's attempts, when known


def carriers_accepted(accepted: list[Accepted]) -> None:
    """Record carriers' acceptances, one or a batch: their attempts, then `sent` with its events and
    webhooks, and the reports the carriers gave at once, scheduled."""
    if not accepted:
        return
    # Committed first, on their own: should the worker die before the rest commits, recovery finds each
    # acceptance recorded and applies it (`messages_recover_interrupted`), never sending again.
    insert_many([item.attempt for item in accepted if item.attempt is not None])
    with transaction.atomic():
        locked = Message.objects.select_for_update().filter(pk__in=[item.message.pk for item in accepted])
        locked = {message.pk: message for message in locked.order_by("pk")}
        writes = BatchWrites()
        for item in accepted:
            message = item.message = locked[item.message.pk]
            if item.attempts is not None:
                writes.know_attempts(message.pk, item.attempts)
        writes.load_attempts(locked.values())
        for item in accepted:
            message = item.message
            message.carrier, message.carrier_message_id = item.carrier, item.result.carrier_message_id
            writes.changed(message, ["carrier", "carrier_message_id"])
            if message.status == statuses.SENDING:
                transition(message, statuses.SENT, writes)
        writes.save()
        scheduled: dict[tuple[str, float], list[Accepted]] = {}
        for item in accepted:
            if item.result.scheduled_report:
                scheduled.setdefault((item.carrier, item.result.report_delay), []).append(item)
        for (carrier, delay), items in scheduled.items():
            transaction.on_commit(lambda carrier=carrier, delay=delay, items=items: reports.reports_enqueue(
                carrier, [item.result.scheduled_report for item in items], delay=delay,
                attempts={item.result.carrier_message_id: writes.attempts[item.message.pk] for item in items}))
    # A report can overtake the carrier's answer to the submit: apply any that waited for these ids.
    reports.messages_apply_waiting_reports(
        {(item.carrier, item.result.carrier_message_id) for item in accepted})


# --- Throughput --------------------------------------------------------------------------------
def _throughput_wait(message: Message, carrier) -> float:
    """Seconds until both the sender and the carrier have a free slot; 0.0 when one was taken."""
    sender = Sender.objects.filter(account_id=message.account_id, value=message.from_number).first()
    return throughput_waits([(message, carrier)], {(message.account_id, message.from_number): sender},
                            ahead=0.0).get(message.pk, 0.0)


def throughput_waits(sends: list[tuple[Message, object]], senders: dict,
                     ahead: float = throughput.BATCH_AHEAD) -> dict[int, float]:
    """The slots of (message, first carrier) pairs, in claim order: one reservation per sender and one per
    carrier, not one per message. Returns the seconds each message that got no slot should wait, spaced by
    the rate, so that they do not all come back at once. `senders`: by (account id, value)."""
    waits: dict[int, float] = {}
    by_sender: dict[tuple[int, str], list[Message]] = {}
    for message, _ in sends:
        by_sender.setdefault((message.account_id, message.from_number), []).append(message)
    for (account_id, value), queue in by_sender.items():
        _reserve_for(f"sender:{account_id}:{value}", sender_mps(senders.get((account_id, value))), 1, queue, waits,
                     ahead)
    by_carrier: dict[tuple[str, int], list[Message]] = {}
    for message, carrier in sends:
        if message.pk not in waits:  # as one message would, a sender's refusal takes no carrier slot
            tps = getattr(carrier.carrier, "tps", 0) if carrier.carrier is not None else 0
            by_carrier.setdefault((carrier.name, tps), []).append(message)
    for (name, tps), queue in by_carrier.items():
        _reserve_for(f"carrier:{name}", tps, max(tps, 1), queue, waits, ahead)
    return waits


def _reserve_for(key: str, per_second: float, burst: int, queue: list[Message], waits: dict[int, float],
                 ahead: float) -> None:
    granted, wait = throughput.reserve_many(key, per_second, len(queue), burst=burst, ahead=ahead)
    for place, message in enumerate(queue[granted:]):
        waits[message.pk] = wait + place / per_second


def sender_mps(sender: Sender | None) -> float:
    if sender is None:
        return 0.0
    if sender.mps:
        return sender.mps
    return settings.MITTIS_SENDER_MPS.get(sender.number_type or sender_number_type(sender.value), 1)


def sender_number_type(value: str) -> str:
    """long_code, toll_free, short_code or alphanumeric, from the sender's value."""
    if not value.startswith("+"):
        return Sender.SHORT_CODE if value.isdigit() else Sender.ALPHANUMERIC
    try:
        number = phonenumbers.parse(value)
    except phonenumbers.NumberParseException:
        return Sender.LONG_CODE
    if phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.TOLL_FREE:
        return Sender.TOLL_FREE
    return Sender.LONG_CODE
