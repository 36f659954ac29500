"""Writes for messages: accepting, sending, and applying what carriers report.

Every status change goes through `_transition`, which checks the lifecycle (`statuses.py`) and
records the event in the same transaction, so a change and its event never exist one without the
other. No transaction is held across a carrier call.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
import functools
import json
import logging
import time

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone
import phonenumbers

from billing import services as billing
from billing.pricing import country_for
from billing.selectors import message_quote
from messaging import statuses, throughput
from messaging.carriers.base import (
    CarrierError, CarrierRejectedError, CarrierTemporaryError, DeliveryReport, InboundSms, OutboundSms, SendResult,
)
from messaging.carriers.registry import breaker_record, carriers_for, get_carrier, route_table
from messaging.encoding import analyze
from messaging.errors import MESSAGE_ERRORS
from messaging.models import (
    Carrier, CarrierReport, Message, MessageEvent, OptOut, SendAttempt, Sender, SmppSubmission,
)
from messaging.serializers import message_row
from mittis.accounts.models import Account
from mittis.api.exceptions import ApiError
from mittis.api.idempotency import KeyInStatement, StatementUndone, expiry_cutoff
from mittis.api.models import IdempotencyRecord
from mittis.db import Statement, insert_many, insert_rows, insert_select, quoted_table
from mittis.redis import MarkRequest, mark_clear, marks_take
from webhooks import services as webhooks

logger = logging.getLogger(__name__)

# What `mittis_refuse` (migration api 0004) raises when a send's balance does not cover it.
NOT_COVERED = "mittis: the balance does not cover this message"

# A temporary carrier error is retried this many times in all before the message fails.
MAX_SEND_ATTEMPTS = 5


# --- Senders ----------------------------------------------------------------------------------
def sender_create(*, account: Account, value: str) -> Sender:
    kind = Sender.PHONE_NUMBER if value.startswith("+") else Sender.ALPHANUMERIC
    sender, _ = Sender.objects.get_or_create(account=account, value=value, defaults={"kind": kind})
    return sender


# --- Accepting --------------------------------------------------------------------------------
def message_create(*, account: Account, livemode: bool, sender: str, to: str, body: str,
                   metadata: dict | None = None, status_callback: str = "", send_at: datetime | None = None,
                   validity_period: int | None = None, idempotency: KeyInStatement | None = None) -> Message:
    """Accept an outbound message: price it, charge it, store it `queued` with its event, and send
    after commit; with `send_at`, store it `scheduled` for the dispatcher. Without the balance to pay
    for it, nothing is stored (402 insufficient_funds).

    `idempotency`: the request's key, to hold and record in the same statement (`KeyInStatement`); the
    answer is then `idempotency.recorded`."""
    if status_callback:
        webhooks.callback_url_check(url=status_callback, livemode=livemode)
    quote = _message_quote(to=to, body=body)
    starts = send_at or timezone.now()
    message = Message(
        account=account, livemode=livemode, direction=Message.OUTBOUND,
        status=statuses.SCHEDULED if send_at else statuses.QUEUED,
        from_number=sender, to=to, body=body, encoding=quote.encoding, segments=quote.segments,
        country=quote.country, price=quote.price, currency=quote.currency, metadata=metadata or {},
        status_callback=status_callback, send_at=send_at,
        expires_at=starts + timedelta(seconds=validity_period or settings.MITTIS_DEFAULT_VALIDITY_PERIOD),
    )
    message.event_sequence = 0 if send_at else 1  # its `message.queued` event, written with it
    dispatcher = [] if send_at else [dispatch_mark_request()]
    if published := _insert_in_one_statement(message, key=idempotency):
        # After commit, one Redis round trip marks the dispatcher and the webhook flushes
        webhooks.deliveries_scheduled(*published, also=dispatcher)
        dispatcher = []
    if dispatcher:
        transaction.on_commit(lambda: marks_take(dispatcher))
    return message


def _unknown_sender(sender: str) -> ApiError:
    return ApiError("unknown_sender", f"'from' ({sender}) is not a sender registered to your account.",
                    field="from")


def _opted_out(to: str) -> ApiError:
    return ApiError("recipient_opted_out", f"{to} replied STOP to your messages; it gets none until it "
                    "replies START.", field="to")


def _insert_in_one_statement(message: Message, *, key: KeyInStatement | None = None
                             ) -> tuple[list[int], list[int]] | None:
    """The checks, the message, its `message.queued` event and webhook deliveries, and its charge, in one
    statement: the ORM's statement-by-statement cost was most of accepting a message. Every write is
    conditional on the checks (and in live mode on the debit), so a refusal has written nothing. The
    debit locks the balance row until commit, which follows this statement at once.

    With `key`, the request's idempotency key is held, checked and recorded by the same statement, which then
    runs on its own (autocommit); without, it runs inside the request's transaction. On its own, the debit
    comes last (the message, its event and its deliveries are written before it, not while the account's
    balance row is locked: every send of the account waits for that row), and a balance that does not cover
    the message fails the whole statement (`mittis_refuse`), which the transactional path then answers 402.

    Returns the webhook deliveries to schedule after commit (`webhooks.deliveries_scheduled`), if any."""
    statement = Statement()
    key_free = key.guard(statement) if key is not None else None
    statement.add("checks", f"SELECT EXISTS (SELECT 1 FROM {quoted_table(Sender)} WHERE account_id = %s AND value = %s) "
                            f"AS sender_known, EXISTS (SELECT 1 FROM {quoted_table(OptOut)} WHERE account_id = %s AND "
                            "livemode = %s AND phone_number = %s) AS opted_out",
                  [message.account_id, message.from_number, message.account_id, message.livemode, message.to])
    guard = "(SELECT sender_known AND NOT opted_out FROM checks)" + (f" AND {key_free}" if key_free else "")
    debit = billing.message_charge_parts(statement, account_id=message.account_id, livemode=message.livemode,
                                         message_id=message.public_id, amount=message.price,
                                         currency=message.currency, guard=guard)
    debit_last = debit is not None and key is not None
    message_part = statement.add("m", *insert_select(
        message, where=guard + (f" AND EXISTS (SELECT 1 FROM {debit})" if debit and not debit_last else "")))
    message.representation = message_row(message, attempts=())
    published = "NULL, NULL"
    if message.status == statuses.QUEUED:
        event = MessageEvent(type=statuses.EVENT_TYPES[message.status], status=message.status, sequence=1,
                             data=message.representation)
        statement.add("message_event", *insert_select(event, sql_values={"message_id": "m.id"}, source=message_part))
        event.message = message
        webhooks.event_publish_parts(statement, _webhook_event(event), source=message_part)
        published = webhooks.published_deliveries(statement)
    if key is not None:
        key.record(statement, status=201, data=message.representation, source=message_part)
    # The select list runs its parts in order: the message's, its deliveries', then (last) the debit's.
    covered = (f"CASE WHEN (SELECT id FROM m) IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {debit}) "
               f"THEN mittis_refuse('{NOT_COVERED}') END" if debit_last else "NULL")
    try:
        sender_known, opted_out, message_id, endpoint_ids, callbacks, free, _ = statement.run(
            f"SELECT checks.sender_known, checks.opted_out, (SELECT id FROM m), {published}, {key_free or 'true'}, "
            f"{covered} FROM checks")
    except DatabaseError as error:  # RAISE's P0001, a ProgrammingError to Django
        if NOT_COVERED in str(error):
            raise StatementUndone(NOT_COVERED) from error
        raise
    if key is not None:
        key.ran(free=free, done=message_id is not None)
    if not sender_known:
        raise _unknown_sender(message.from_number)
    if opted_out:
        raise _opted_out(message.to)
    if message_id is None:
        raise billing.insufficient_funds(amount=message.price, currency=message.currency)
    message.pk = message_id
    message._state.adding, message._state.db = False, connection.alias
    message._prefetched_objects_cache = {"attempts": _attempts_queryset()}
    return None if endpoint_ids is None else (endpoint_ids, callbacks)


@dataclass(frozen=True)
class MessageQuote:
    encoding: str
    segments: int
    non_gsm_characters: tuple[str, ...]
    country: str
    unit_price: Decimal
    price: Decimal
    currency: str


def message_preview(*, account: Account, sender: str, to: str, body: str) -> MessageQuote:
    """What sending would do, without sending or charging: the same checks and the same price."""
    if not Sender.objects.filter(account=account, value=sender).exists():
        raise _unknown_sender(sender)
    return _message_quote(to=to, body=body)


def _message_quote(*, to: str, body: str) -> MessageQuote:
    info = analyze(body)
    quote = message_quote(country=country_for(to), segments=info.segments)
    return MessageQuote(encoding=info.encoding, segments=info.segments, non_gsm_characters=info.non_gsm_characters,
                        country=quote.country, unit_price=quote.unit_price, price=quote.amount,
                        currency=quote.currency)


def _enqueue_send(message_id: int, *, countdown: float | None = None) -> None:
    """A task of the message's own (the dispatchers send most messages: `dispatch_request`)."""
    from messaging.tasks import send_message

    try:
        send_message.apply_async((message_id,), countdown=countdown, retry=False)
    except Exception:  # the broker is down: the message waits `queued`, and the requeue task sends it
        logger.warning("Could not enqueue message %s; requeue_stale_messages will", message_id, exc_info=True)


# --- Sending ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SendOutcome:
    sent: bool = False
    retry: bool = False  # every carrier failed temporarily: the caller schedules attempt + 1
    skipped: bool = False  # another run holds (or held) this attempt
    throttled: float = 0.0  # seconds until the sender or carrier has a free slot: run this attempt then


def message_send(*, message_id: int, attempt: int = 1) -> SendOutcome:
    """Hand a message to a carrier, once; on a temporary failure, to the next carrier of its route.

    Safe to call twice with the same attempt number: attempt 1 claims the message `queued -> sending`,
    a retry claims attempt N only while the message is still `sending` at attempt N-1. A carrier that
    may have taken the message without saying so (`maybe_sent`) ends the attempt: the message is
    never given to a second carrier unless the first definitely did not take it.
    """
    message = Message.objects.select_related("account").get(pk=message_id)
    if message.status not in (statuses.QUEUED, statuses.SENDING):
        return SendOutcome(skipped=True)
    if message.expires_at and timezone.now() >= message.expires_at and not message.carrier_message_id:
        message_expire(message_id=message_id)  # better not sent than sent late
        return SendOutcome()
    carriers = carriers_for(to=message.to, country=message.country, livemode=message.livemode)
    if message.livemode and carriers:
        wait = _throughput_wait(message, carriers[0])
        if wait:
            return SendOutcome(throttled=wait)
    if not _claim_attempt(message_id, attempt):
        return SendOutcome(skipped=True)
    # Attempt 1 was claimed from `queued`, so this call records all of the message's attempts: they are
    # known without reading them back (the message's JSON, in its events, lists them).
    recorded: list[SendAttempt] | None = [] if attempt == 1 else None

    def accept(carrier_name: str, result: SendResult, row: SendAttempt) -> None:
        row.save(force_insert=True)
        if recorded is not None:
            recorded.append(row)
        _accept(message_id, carrier_name, result, attempts=recorded)

    return _send_claimed(message, carriers, attempt, recorded=recorded, accept=accept)


def _send_claimed(message: Message, carriers: list, attempt: int, *, recorded: list | None, accept) -> SendOutcome:
    """Try the carriers in order for an attempt the caller has claimed. A carrier's acceptance is handed to
    `accept(carrier_name, result, attempt_row)` with its attempt row not yet saved: one message saves it at
    once, a batch saves all of them together. Every other outcome is written here and now."""
    message_id = message.pk
    sms = OutboundSms(reference=message.public_id, sender=message.from_number, to=message.to,
                      body=message.body, livemode=message.livemode, attempt=attempt,
                      validity_seconds=_remaining_validity(message))
    number = 1 if attempt == 1 else SendAttempt.objects.filter(message_id=message_id).count() + 1
    last_error = None
    for number, carrier in enumerate(carriers, start=number):
        started_at, started = timezone.now(), time.monotonic()

        def record(**outcome):
            row = _attempt_row(message, carrier.name, started_at, started, number=number, **outcome)
            row.save(force_insert=True)
            if recorded is not None:
                recorded.append(row)

        try:
            result = carrier.send_sms(sms)
        except CarrierTemporaryError as error:
            record(error=error, outcome=SendAttempt.UNKNOWN if error.maybe_sent else SendAttempt.TEMPORARY_ERROR)
            if error.maybe_sent:
                return SendOutcome()  # its report (or the expiry) settles it; never a second carrier
            breaker_record(carrier.name, ok=False)
            last_error = (carrier.name, error)
            continue
        except CarrierRejectedError as error:
            record(error=error, outcome=SendAttempt.REJECTED)
            breaker_record(carrier.name, ok=True)  # it answered: the carrier itself is healthy
            message_fail(message_id=message_id, error_code=error.code, error_message=error.message,
                         carrier=carrier.name, carrier_status=error.carrier_status)
            return SendOutcome()
        row = carrier.carrier
        if row is not None and (row.breaker_failures or row.breaker_state != row.CLOSED):
            breaker_record(carrier.name, ok=True)  # a healthy carrier's success writes nothing
        accept(carrier.name, result, _attempt_row(message, carrier.name, started_at, started, number=number,
                                                  result=result, outcome=SendAttempt.ACCEPTED))
        return SendOutcome(sent=True)

    if attempt < MAX_SEND_ATTEMPTS:
        return SendOutcome(retry=True)
    carrier_name, error = last_error or ("", None)
    message_fail(message_id=message_id, error_code="carrier_unavailable",
                 error_message=(f"No carrier could take the message after {attempt} attempts"
                                + (f": {error.message}" if error else " (every carrier is paused).")),
                 carrier=carrier_name, carrier_status=error.carrier_status if error else "")
    return SendOutcome()


def _throughput_wait(message: Message, carrier) -> float:
    """Seconds until both the sender and the carrier have a free slot; 0.0 when one was taken."""
    sender = Sender.objects.filter(account_id=message.account_id, value=message.from_number).first()
    return _throughput_waits([(message, carrier)], {(message.account_id, message.from_number): sender},
                             ahead=0.0).get(message.pk, 0.0)


def _throughput_waits(sends: list[tuple[Message, object]], senders: dict,
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


def _attempt_row(message: Message, carrier: str, started_at, started: float, *, number: int, outcome: str,
                 result: SendResult | None = None, error: CarrierError | None = None) -> SendAttempt:
    """Unsaved. Precondition: the caller holds the attempt's claim, which serialises the numbers."""
    return SendAttempt(
        message_id=message.pk, number=number, carrier=carrier, started_at=started_at,
        latency_ms=int((time.monotonic() - started) * 1000), outcome=outcome,
        carrier_message_id=result.carrier_message_id if result else "",
        raw_code=(error.carrier_status if error else "")[:64], error_code=(error.code if error else "")[:64],
        error_message=(error.message if error else "")[:500])


def _accept(message_id: int, carrier: str, result: SendResult, *, attempts: list | None = None) -> None:
    with transaction.atomic():
        message = Message.objects.select_for_update().get(pk=message_id)
        _known_attempts(message, attempts)
        message.carrier = carrier
        message.carrier_message_id = result.carrier_message_id
        fields = ["carrier", "carrier_message_id"]
        if message.status == statuses.SENDING:
            fields += _transition(message, statuses.SENT, sent_at=timezone.now())
        message.save(update_fields=fields)
        if result.scheduled_report:
            report = result.scheduled_report
            transaction.on_commit(lambda: _enqueue_report(carrier, report, delay=result.report_delay,
                                                          attempts=attempts))
    # A report can overtake the carrier's answer to the submit: apply any that waited for this id.
    for early in CarrierReport.objects.filter(carrier=carrier, carrier_message_id=result.carrier_message_id,
                                              message__isnull=True):
        message_apply_delivery_report(carrier=carrier, report=DeliveryReport(**early.raw["report"]), record=early)


def _known_attempts(message: Message, attempts: list | None) -> None:
    """Give `message` the attempts the caller already holds (all of them), so that serializing it reads none."""
    if attempts is not None:
        message._prefetched_objects_cache = {"attempts": _attempts_queryset(attempts)}


def _attempts_queryset(attempts=()) -> QuerySet:
    """A queryset of `attempts`, evaluated already, for a message's prefetch cache. A copy of one empty
    queryset's attributes (its query shared, never run): `objects.none()` clones a query each time, which was
    a tenth of a send batch's CPU, twice a message."""
    template = _empty_attempts()
    known = object.__new__(type(template))
    known.__dict__.update(template.__dict__)
    known._result_cache, known._prefetch_done = list(attempts), True
    return known


@functools.cache
def _empty_attempts() -> QuerySet:
    return SendAttempt.objects.none()


def _claim_attempt(message_id: int, attempt: int) -> bool:
    now = timezone.now()
    if attempt == 1:
        claimed = Message.objects.filter(pk=message_id, status=statuses.QUEUED, send_attempts=0).update(
            status=statuses.SENDING, send_attempts=1, updated_at=now)
    else:
        claimed = Message.objects.filter(pk=message_id, status=statuses.SENDING, send_attempts=attempt - 1).update(
            send_attempts=attempt, updated_at=now)
    return claimed == 1


def _enqueue_report(carrier: str, report: DeliveryReport, *, delay: float, attempts: list | None = None) -> None:
    """One message's report: the batch's way, as a batch of one."""
    _enqueue_reports(carrier, [report], delay=delay,
                     attempts={} if attempts is None else {report.carrier_message_id: attempts})


# --- Sending in batches -------------------------------------------------------------------------
# Accepted messages are sent by dispatchers, each claiming a batch of queued messages at once and writing
# their attempts, status changes, events, webhooks and delivery reports in a few statements per batch,
# where a task per message costs a task and some twenty-five statements each. A message whose carrier is
# behind a network call (`sends_in_batches` false), or whose sender or carrier is at its rate, is handed
# to a task of its own: the workers then overlap the carrier's latency, and the task waits out the rate
# (`throughput`) without holding a batch. The dispatchers leave it alone for HANDED_OFF_FOR.
#
# Up to MITTIS_SEND_DISPATCHERS run at once, each holding a Redis mark (a slot); a request finding every
# slot taken does nothing, since the running dispatchers take whatever is queued. A run ends after
# DISPATCH_RUN_SECONDS and hands over to a fresh one, at the back of the queue, if work is left: a time
# slice, so that webhook flushes and other tasks sharing the workers take turns with a large send instead
# of waiting for all of it (a run of 20 s held every webhook until the sends were done).
DISPATCH_BATCH = 100
DISPATCH_RUN_SECONDS = 2
DISPATCH_LEASE_SECONDS = 120
HANDED_OFF_FOR = timedelta(minutes=2)  # then a dispatcher may take it again, should its task be lost


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
    from messaging.tasks import dispatch

    if taken == []:
        return  # every slot's dispatcher is running or about to, and will claim this message
    slot = taken[0] if taken else 0  # without the marks, dispatchers may overlap: their row claims keep that safe
    try:
        dispatch.apply_async((slot,), retry=False)
    except Exception:  # the broker is down: the messages wait `queued`, and the requeue task sends them
        logger.warning("Could not enqueue a dispatcher; requeue_stale_messages will", exc_info=True)
        mark_clear(_dispatch_key(slot))


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
    """Claim attempt 1 of up to `size` queued messages, oldest first: the claim `_claim_attempt` makes for
    one, so a message is claimed by one dispatcher or one task, never both."""
    with transaction.atomic():
        # Longest waiting first, in the order of message_status_age_idx: a claim reads the queued messages'
        # index entries and stops at a batch, whatever the statistics say (in id order, stale ones had
        # PostgreSQL walk the primary key through every message already sent).
        ids = list(_dispatchable().select_for_update(skip_locked=True).order_by("updated_at", "id")
                   .values_list("pk", flat=True)[:size])
        if not ids:
            return []
        Message.objects.filter(pk__in=ids, status=statuses.QUEUED, send_attempts=0).update(
            status=statuses.SENDING, send_attempts=1, updated_at=timezone.now())
    return list(Message.objects.filter(pk__in=ids).order_by("id"))


@dataclass
class _Accepted:
    message: Message
    carrier: str
    result: SendResult
    attempts: list  # all of the message's attempts, the accepted one last and not yet saved


def _send_batch(messages: list[Message]) -> int:
    from messaging.tasks import send_message, send_retry_delay

    routes = {livemode: route_table(livemode=livemode) for livemode in {message.livemode for message in messages}}
    live = {(message.account_id, message.from_number) for message in messages if message.livemode}
    senders = {}
    if live:
        pairs = Q()
        for account_id, value in live:
            pairs |= Q(account_id=account_id, value=value)
        senders = {(sender.account_id, sender.value): sender for sender in Sender.objects.filter(pairs)}
    accepted: list[_Accepted] = []
    handed_off: dict[int, float] = {}  # message id: seconds until its task runs
    sendable: list[tuple[Message, list]] = []
    for message in messages:
        carriers = carriers_for(to=message.to, country=message.country, livemode=message.livemode,
                                routes=routes[message.livemode])
        if not carriers or not carriers[0].sends_in_batches:
            handed_off[message.pk] = 0.0
        else:
            sendable.append((message, carriers))
    handed_off |= _throughput_waits([(message, carriers[0]) for message, carriers in sendable if message.livemode],
                                    senders)
    for message, carriers in sendable:
        if message.pk in handed_off:
            continue
        recorded: list[SendAttempt] = []

        def accept(carrier_name, result, row, message=message, recorded=recorded):
            accepted.append(_Accepted(message, carrier_name, result, recorded + [row]))

        outcome = _send_claimed(message, carriers, 1, recorded=recorded, accept=accept)
        if outcome.retry:  # as the task does: attempt 2 claims from attempt 1, after a back-off
            send_message.apply_async(kwargs={"message_id": message.pk, "attempt": 2}, countdown=send_retry_delay(1))
    _accept_batch(accepted)
    if handed_off:
        # Unclaimed again, so that the task's own claim of attempt 1 is the one that counts.
        Message.objects.filter(pk__in=list(handed_off), status=statuses.SENDING, send_attempts=1).update(
            status=statuses.QUEUED, send_attempts=0, dispatch_after=timezone.now() + HANDED_OFF_FOR,
            updated_at=timezone.now())
        for message_id, wait in handed_off.items():
            _enqueue_send(message_id, countdown=wait or None)
    return len(accepted)


def _accept_batch(accepted: list[_Accepted]) -> None:
    """`_accept` for many messages: their attempts, `sent` with its events and webhooks, in one transaction."""
    if not accepted:
        return
    # Committed first, as one message's attempt is: should the worker die before the rest commits, recovery
    # finds each acceptance recorded and applies it (`messages_recover_interrupted`), never sending again.
    insert_many([item.attempts[-1] for item in accepted])
    with transaction.atomic():
        locked = Message.objects.select_for_update().filter(pk__in=[item.message.pk for item in accepted])
        locked = {message.pk: message for message in locked.order_by("pk")}
        writes, now = _BatchWrites(), timezone.now()
        for item in accepted:
            message = item.message = locked[item.message.pk]
            _known_attempts(message, item.attempts)
            message.carrier, message.carrier_message_id = item.carrier, item.result.carrier_message_id
            fields = ["carrier", "carrier_message_id"]
            if message.status == statuses.SENDING:
                fields += _transition(message, statuses.SENT, sent_at=now, batch=writes)
            writes.changed(message, fields)
        writes.save()
        reports: dict[tuple[str, float], list[_Accepted]] = {}
        for item in accepted:
            if item.result.scheduled_report:
                reports.setdefault((item.carrier, item.result.report_delay), []).append(item)
        for (carrier, delay), items in reports.items():
            transaction.on_commit(lambda carrier=carrier, delay=delay, items=items: _enqueue_reports(
                carrier, [item.result.scheduled_report for item in items], delay=delay,
                attempts={item.result.carrier_message_id: item.attempts for item in items}))
    # A report can overtake the carrier's answer to the submit: apply any that waited for these ids.
    waiting = CarrierReport.objects.filter(
        carrier__in={item.carrier for item in accepted}, message__isnull=True,
        carrier_message_id__in=[item.result.carrier_message_id for item in accepted])
    for early in waiting:
        message_apply_delivery_report(carrier=early.carrier, report=DeliveryReport(**early.raw["report"]),
                                      record=early)


def _enqueue_reports(carrier: str, reports: list[DeliveryReport], *, delay: float, attempts: dict) -> None:
    from messaging.tasks import process_delivery_reports

    if not delay:  # reports the carrier gave at once (the sandbox without delay): no task to wait for
        messages_apply_delivery_reports(carrier=carrier, reports=reports, attempts=attempts)
        return
    process_delivery_reports.apply_async(
        kwargs={"carrier": carrier, "reports": [report.__dict__ for report in reports]}, countdown=delay)


def messages_apply_delivery_reports(*, carrier: str, reports: list[DeliveryReport],
                                    attempts: dict | None = None) -> None:
    """`message_apply_delivery_report` for many reports of one carrier, written together. A report whose
    message is not found by the carrier's id takes the one-by-one path (matched by reference, or kept)."""
    unmatched = []
    with transaction.atomic():
        locked = (Message.objects.select_for_update()
                  .filter(carrier=carrier, carrier_message_id__in=[report.carrier_message_id for report in reports])
                  .order_by("pk"))
        by_carrier_id = {message.carrier_message_id: message for message in locked}
        records, writes = [], _BatchWrites()
        for report in reports:
            message = by_carrier_id.get(report.carrier_message_id)
            if message is None:
                unmatched.append(report)
                continue
            records.append(CarrierReport(carrier=carrier, carrier_message_id=report.carrier_message_id,
                                         status=report.status, raw={"report": report.__dict__, "received": {}},
                                         message=message))
            _known_attempts(message, (attempts or {}).get(report.carrier_message_id))
            writes.changed(message, _apply_report_locked(message, carrier, report, batch=writes))
        insert_many(records)
        writes.save()
    for report in unmatched:
        message_apply_delivery_report(carrier=carrier, report=report)


def message_fail(*, message_id: int, error_code: str, error_message: str, carrier: str = "",
                 carrier_status: str = "") -> Message:
    with transaction.atomic():
        message = Message.objects.select_for_update().get(pk=message_id)
        if not statuses.can_transition(message.status, statuses.FAILED):
            return message
        accepted_by_carrier = bool(message.carrier_message_id)
        message.carrier = carrier or message.carrier
        fields = ["carrier"] + _transition(message, statuses.FAILED, error_code=error_code,
                                           error_message=error_message[:500], carrier_status=carrier_status)
        message.save(update_fields=fields)
        if not accepted_by_carrier:  # no carrier took it, so nothing was spent on it
            billing.message_refund(account_id=message.account_id, livemode=message.livemode,
                                   message_id=message.public_id, reason=f"Failed before sending: {error_code}")
    return message


# --- Reports from carriers --------------------------------------------------------------------
def message_apply_delivery_report(*, carrier: str, report: DeliveryReport, raw: dict | None = None,
                                  record: CarrierReport | None = None, attempts: list | None = None) -> Message | None:
    """Apply a carrier's delivery report under the message's row lock. Every report is recorded raw.

    A report for a message already final, or one that would move its status backwards, changes
    nothing. A report for an id we do not know yet is kept and applied when a send learns that id.
    """
    with transaction.atomic():
        messages = Message.objects.select_for_update()
        message = messages.filter(carrier=carrier, carrier_message_id=report.carrier_message_id).first()
        if message is None and report.reference:
            message = messages.filter(public_id=report.reference).first()
            if message is not None and not message.carrier_message_id:
                # The carrier took it although its answer never reached us: now we know its id.
                message.carrier, message.carrier_message_id = carrier, report.carrier_message_id
                message.save(update_fields=["carrier", "carrier_message_id"])
        if record is None:
            record = CarrierReport.objects.create(
                carrier=carrier, carrier_message_id=report.carrier_message_id, status=report.status,
                raw={"report": report.__dict__, "received": raw or {}}, message=message)
        elif message is not None:
            CarrierReport.objects.filter(pk=record.pk).update(message=message)
        if message is None:
            logger.info("carrier=%s report for unknown message %s kept for a later match", carrier,
                        report.carrier_message_id)
            return None
        _known_attempts(message, attempts)
        fields = _apply_report_locked(message, carrier, report)
        if fields:
            message.save(update_fields=fields)
    return message


def _apply_report_locked(message: Message, carrier: str, report: DeliveryReport,
                         batch: "_BatchWrites | None" = None) -> list[str]:
    """The status change a report makes, if any; returns the fields to save (none: it changes nothing).
    Precondition: the caller holds the message's row lock."""
    fields = []
    if message.status == statuses.SENDING and report.status in (statuses.DELIVERED, statuses.UNDELIVERED):
        # The report overtook the submit's answer: the message was sent first.
        fields += _transition(message, statuses.SENT, sent_at=timezone.now(), batch=batch)
    if not statuses.can_transition(message.status, report.status):
        logger.info("carrier=%s report %s ignored for %s in status %s", carrier, report.status,
                    message.public_id, message.status)
        return fields
    changes = {"carrier_status": report.carrier_status}
    if report.status == statuses.DELIVERED:
        changes["delivered_at"] = timezone.now()
    elif report.status == statuses.SENT:
        changes["sent_at"] = timezone.now()
    else:
        changes.update(error_code=report.error_code or "unknown_error",
                       error_message=report.error_message or "The carrier did not deliver the message.")
    return fields + _transition(message, report.status, batch=batch, **changes)


# --- Lifecycle: scheduling, cancelling, expiry, stuck messages, redaction --------------------------
def _remaining_validity(message: Message) -> int | None:
    if not message.expires_at:
        return None
    return max(1, int((message.expires_at - timezone.now()).total_seconds()))


def messages_dispatch_scheduled(*, limit: int = 1000) -> list[int]:
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
                _expire_locked(message)
                continue
            message.save(update_fields=_transition(message, statuses.QUEUED))
            transaction.on_commit(dispatch_request)
            queued.append(message_id)
    return queued


def message_cancel(*, message: Message) -> Message:
    """Cancel a scheduled message: it is refunded and never sent. Anything else is 409."""
    with transaction.atomic():
        message = Message.objects.select_for_update().get(pk=message.pk)
        if message.status != statuses.SCHEDULED:
            raise ApiError("message_not_cancelable",
                           f"Only a scheduled message can be canceled; this one is {message.status}.")
        message.save(update_fields=_transition(message, statuses.CANCELED))
        billing.message_refund(account_id=message.account_id, livemode=message.livemode,
                               message_id=message.public_id, reason="Canceled before sending")
    return message


def message_expire(*, message_id: int) -> Message:
    with transaction.atomic():
        message = Message.objects.select_for_update().get(pk=message_id)
        if statuses.can_transition(message.status, statuses.EXPIRED) and not message.carrier_message_id:
            _expire_locked(message)
    return message


def _expire_locked(message: Message) -> None:
    """Precondition: the caller holds the message's row lock."""
    message.save(update_fields=_transition(
        message, statuses.EXPIRED, error_code="expired", error_message=MESSAGE_ERRORS["expired"].message))
    billing.message_refund(account_id=message.account_id, livemode=message.livemode,
                           message_id=message.public_id, reason="Expired before sending")


def messages_expire_overdue(*, limit: int = 1000) -> list[int]:
    """Expire messages still waiting for a carrier past their validity (a throttled or retrying
    message is also checked at its next attempt)."""
    overdue = list(Message.objects.filter(status__in=[statuses.SCHEDULED, statuses.QUEUED],
                                          expires_at__lte=timezone.now()).values_list("pk", flat=True)[:limit])
    for message_id in overdue:
        message_expire(message_id=message_id)
    return overdue


def messages_close_stuck(*, limit: int = 1000) -> list[int]:
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
                message.save(update_fields=_transition(
                    message, statuses.UNDELIVERED, error_code="no_delivery_report",
                    error_message=MESSAGE_ERRORS["no_delivery_report"].message))
    return stuck


def message_redact(*, message: Message) -> Message:
    """Remove a final message's body everywhere we keep it: the message, its events, the webhook
    payloads kept for retries, carrier reports, SMPP hand-overs and stored idempotent answers.
    Status, segments and price stay, so usage and billing still add up."""
    with transaction.atomic():
        message = Message.objects.select_for_update().get(pk=message.pk)
        if message.redacted_at:
            return message
        if not statuses.is_final(message.status):
            raise ApiError("message_not_redactable",
                           f"Only a message in a final status can be redacted; this one is {message.status}.")
        _redact_locked(message)
    return message


def _redact_locked(message: Message) -> None:
    now = timezone.now()
    message.body, message.redacted_at = "", now
    message.save(update_fields=["body", "redacted_at", "updated_at"])
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    for event in MessageEvent.objects.filter(message=message):
        event.data = {**event.data, "body": None, "redacted_at": stamp}
        event.save(update_fields=["data"])
    webhooks.events_redact(object_id=message.public_id, redacted_at=stamp)
    for report in CarrierReport.objects.filter(message=message):
        report.raw = {"report": report.raw.get("report", {}), "received": "redacted"}
        report.save(update_fields=["raw"])
    SmppSubmission.objects.filter(reference=message.public_id).update(body="")
    # Stored answers live a day at most (idempotency keys expire): few rows to look through.
    for record in IdempotencyRecord.objects.filter(account_id=message.account_id, livemode=message.livemode,
                                                   created_at__gte=expiry_cutoff(), method="POST"):
        if message.public_id.encode() in bytes(record.response_body):
            _redact_stored_answer(record, message.public_id, stamp)


def _redact_stored_answer(record: IdempotencyRecord, public_id: str, stamp: str) -> None:
    try:
        answer = json.loads(bytes(record.response_body))
    except ValueError:
        return
    if isinstance(answer, dict) and answer.get("id") == public_id:
        answer.update(body=None, redacted_at=stamp)
        record.response_body = json.dumps(answer).encode()
        record.save(update_fields=["response_body"])


def messages_redact_past_retention(*, batch: int = 500) -> int:
    """Redact every message older than its account's retention (a nightly beat task)."""
    redacted = 0
    now = timezone.now()
    for account in Account.objects.all().only("pk", "retention_days").iterator():
        cutoff = now - timedelta(days=account.retention_days)
        while True:
            ids = list(Message.objects.filter(account_id=account.pk, created_at__lt=cutoff, redacted_at__isnull=True,
                                              status__in=statuses.FINAL).values_list("pk", flat=True)[:batch])
            if not ids:
                break
            for message_id in ids:
                with transaction.atomic():
                    message = Message.objects.select_for_update().get(pk=message_id)
                    if not message.redacted_at:
                        _redact_locked(message)
                        redacted += 1
    return redacted


# --- Inbound messages and opt-outs --------------------------------------------------------------
# Keywords carriers and regulators (CTIA) expect every sender to honour, matched on the whole body.
OPT_OUT_KEYWORDS = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
OPT_IN_KEYWORDS = {"START", "UNSTOP", "YES"}
HELP_KEYWORDS = {"HELP", "INFO"}


def message_receive(*, carrier: str, inbound: InboundSms, raw: dict | None = None) -> Message | None:
    """A message from a phone to one of an account's senders: stored `received` with a
    `message.inbound` event. STOP-words opt the phone out, START-words back in, HELP gets the
    account's reply. A message to a number no account has is logged and dropped."""
    sender = (Sender.objects.select_related("account").filter(value=inbound.to, account__is_active=True)
              .order_by("id").first())
    if sender is None:
        logger.warning("carrier=%s inbound message to unknown number %s dropped", carrier, inbound.to)
        return None
    account = sender.account
    livemode = carrier != "sandbox"
    keyword = inbound.body.strip().upper().rstrip(".!")
    info = analyze(inbound.body)
    with transaction.atomic():
        message = Message(
            account=account, livemode=livemode, direction=Message.INBOUND, status=statuses.RECEIVED,
            from_number=inbound.sender[:16], to=inbound.to, body=inbound.body, encoding=info.encoding,
            segments=info.segments, country=country_for(inbound.sender), price=Decimal("0"), currency="USD",
            carrier=carrier, carrier_message_id=inbound.carrier_message_id[:100])
        message.save(force_insert=True)
        _record_event(message)
        Message.objects.filter(pk=message.pk).update(event_sequence=message.event_sequence)
        if keyword in OPT_OUT_KEYWORDS:
            OptOut.objects.get_or_create(account=account, livemode=livemode, phone_number=message.from_number,
                                         defaults={"sender": inbound.to, "keyword": keyword})
        elif keyword in OPT_IN_KEYWORDS:
            OptOut.objects.filter(account=account, livemode=livemode, phone_number=message.from_number).delete()
    if keyword in HELP_KEYWORDS and account.help_reply:
        try:
            message_create(account=account, livemode=livemode, sender=inbound.to, to=message.from_number,
                           body=account.help_reply)
        except ApiError as refused:  # e.g. no balance left: the inbound message is kept all the same
            logger.warning("HELP reply to %s not sent: %s", message.from_number, refused.code)
    return message


# --- The one way a status changes -------------------------------------------------------------
def _transition(message: Message, status: str, *, carrier_status: str = "", batch: "_BatchWrites | None" = None,
                **changes) -> list[str]:
    """Move `message` to `status` and record its event (or, with `batch`, collect it to be written with
    the batch's). Returns the fields to save.

    Precondition: the caller holds the message's row lock, inside the transaction that saves it.
    """
    if not statuses.can_transition(message.status, status):
        raise ValueError(f"{message.public_id}: {message.status} -> {status} is not allowed")
    message.status = status
    for name, value in changes.items():
        setattr(message, name, value)
    message.updated_at = timezone.now()
    _record_event(message, carrier_status=carrier_status, batch=batch)
    return ["status", "updated_at", "event_sequence", *changes]


def _record_event(message: Message, *, carrier_status: str = "", sequence: int | None = None,
                  batch: "_BatchWrites | None" = None) -> MessageEvent | None:
    """Precondition: the caller holds the row lock and saves `event_sequence` (or, for a new message,
    passes the `sequence` it was inserted with)."""
    event_type = statuses.EVENT_TYPES.get(message.status)
    if event_type is None:
        return None
    if sequence is None:
        message.event_sequence += 1
    event = MessageEvent(message=message, type=event_type, status=message.status, sequence=message.event_sequence,
                         data=message_row(message), carrier_status=carrier_status)
    message.representation = event.data  # the message as of now: an answer that follows can reuse it
    if batch is not None:
        batch.events.append(event)
        return event
    event.save(force_insert=True)
    # The same event, with the same id, to the account's endpoints and the message's status_callback:
    # in this transaction, so a status change never commits without its webhook.
    webhooks.event_publish(**_webhook_event(event).__dict__)
    return event


def _webhook_event(event: MessageEvent) -> webhooks.NewEvent:
    message = event.message
    return webhooks.NewEvent(
        account_id=message.account_id, livemode=message.livemode, event_id=event.public_id, type=event.type,
        object_id=message.public_id, sequence=event.sequence, data=event.data, created_at=event.created_at,
        callback_url=message.status_callback)


def _bulk_set(messages: list[Message], fields: list[str]) -> None:
    """`bulk_update` in one UPDATE ... FROM unnest(arrays): Django's CASE WHEN per row and field costs more
    Python than the rest of a batch together."""
    model_fields = [Message._meta.get_field(name) for name in fields]
    quote = connection.ops.quote_name
    table = quote(Message._meta.db_table)
    columns = ", ".join(f"{quote(field.column)} = data.{quote(field.column)}" for field in model_fields)
    arrays = ", ".join(f"unnest(%s::{field.db_type(connection)}[]) AS {quote(field.column)}"
                       for field in [Message._meta.pk, *model_fields])
    params = [[message.pk for message in messages]] + [
        [field.get_db_prep_save(getattr(message, field.attname), connection) for message in messages]
        for field in model_fields]
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET {columns} FROM (SELECT {arrays}) AS data WHERE {table}.id = data.id", params)


class _BatchWrites:
    """The status changes of many messages, written together: one UPDATE for the messages, then one
    statement for their events and webhooks. Events keep their order.

    Precondition: the caller holds the messages' row locks, inside the transaction that calls `save`."""

    def __init__(self):
        self.messages: dict[int, Message] = {}
        self.fields: set[str] = set()
        self.events: list[MessageEvent] = []

    def changed(self, message: Message, fields: list[str]) -> None:
        if fields:
            self.messages[message.pk] = message
            self.fields.update(fields)

    def save(self) -> None:
        if self.messages:
            _bulk_set(list(self.messages.values()), sorted(self.fields))
        if not self.events:
            return
        # The events and their webhooks in one statement: the ORM's bulk inserts were a third of a batch's CPU
        statement = Statement()
        statement.add("message_events", *insert_rows(self.events))
        webhooks.events_publish_parts(statement, [_webhook_event(event) for event in self.events])
        webhooks.deliveries_scheduled(*statement.run("SELECT " + webhooks.published_deliveries(statement)))


# --- Recovery ---------------------------------------------------------------------------------
def messages_recover_interrupted(*, older_than: timedelta, limit: int = 1000) -> list[int]:
    """Settle sends cut off by a dying worker, so no message stays `sending` for nothing.

    A message claimed for an attempt longer ago than any send can take (the task's time limit) either
    has a carrier's acceptance recorded but not applied (the worker died after the carrier answered):
    it becomes `sent`; or has nothing recorded for that attempt (the worker died mid-call): the carrier
    may or may not have it, so it is never sent again, and fails as `carrier_no_answer` (retryable: the
    customer decides). A message waiting for its next retry or for a report has its attempt recorded
    and is left alone.
    """
    cutoff = timezone.now() - older_than
    since_claim = SendAttempt.objects.filter(message=OuterRef("pk"), started_at__gte=OuterRef("updated_at"))
    candidates = list(Message.objects.filter(status=statuses.SENDING, updated_at__lt=cutoff)
                      .values_list("pk", flat=True)[:limit])
    recovered = []
    for message_id in candidates:
        latest = SendAttempt.objects.filter(message_id=message_id).order_by("-number").first()
        with transaction.atomic():
            message = Message.objects.select_for_update().get(pk=message_id)
            if message.status != statuses.SENDING or message.updated_at >= cutoff:
                continue
            interrupted = not Message.objects.filter(pk=message_id).filter(Exists(since_claim)).exists()
            accepted = (latest is not None and latest.outcome == SendAttempt.ACCEPTED
                        and not message.carrier_message_id)
            if not interrupted and not accepted:
                continue  # waiting for its retry or its report
            recovered.append(message_id)
        if accepted and not interrupted:
            # The report the dead worker would have scheduled is lost with it: asked again where the carrier
            # answers (the sandbox); elsewhere the carrier's own callback brings it.
            try:
                report = get_carrier(latest.carrier).query_report(carrier_message_id=latest.carrier_message_id,
                                                                 to=message.to)
            except Carrier.DoesNotExist:  # deleted since: nobody left to ask
                report = None
            _accept(message_id, latest.carrier, SendResult(carrier_message_id=latest.carrier_message_id,
                                                           scheduled_report=report))
            continue
        SendAttempt.objects.create(
            message_id=message_id, number=(latest.number + 1) if latest else 1, carrier=latest.carrier if latest else "",
            started_at=message.updated_at, outcome=SendAttempt.UNKNOWN, error_code="carrier_no_answer",
            error_message="The send was interrupted (its worker stopped); the carrier may or may not have it.")
        message_fail(message_id=message_id, error_code="carrier_no_answer",
                     error_message=MESSAGE_ERRORS["carrier_no_answer"].message)
    return recovered


def messages_requeue_stale(*, older_than) -> list[int]:
    """Enqueue again the queued messages whose send task was lost (broker down, worker killed).

    Harmless for a message whose task is merely late: the attempt claim lets only one run send.
    """
    stale = list(Message.objects.filter(status=statuses.QUEUED, updated_at__lt=timezone.now() - older_than)
                 .values_list("pk", flat=True)[:1000])
    for message_id in stale:
        _enqueue_send(message_id)
    return stale
