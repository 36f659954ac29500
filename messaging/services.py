"""Writes for messages: accepting, sending, and applying what carriers report.

Every status change goes through `_transition`, which checks the lifecycle (`statuses.py`) and
records the event in the same transaction, so a change and its event never exist one without the
other. No transaction is held across a carrier call.
"""

from dataclasses import dataclass
from decimal import Decimal
import logging

from django.db import transaction
from django.utils import timezone

from billing import services as billing
from billing.pricing import country_for
from billing.selectors import message_quote
from messaging import statuses
from messaging.carriers.base import (
    CarrierRejectedError, CarrierTemporaryError, DeliveryReport, OutboundSms,
)
from messaging.carriers.registry import carrier_for
from messaging.encoding import analyze
from messaging.models import Message, MessageEvent, Sender
from messaging.serializers import MessageSerializer
from mittis.accounts.models import Account
from mittis.api.exceptions import ApiError
from webhooks import services as webhooks

logger = logging.getLogger(__name__)

# A temporary carrier error is retried this many times in all before the message fails.
MAX_SEND_ATTEMPTS = 5


# --- Senders ----------------------------------------------------------------------------------
def sender_create(*, account: Account, value: str) -> Sender:
    kind = Sender.PHONE_NUMBER if value.startswith("+") else Sender.ALPHANUMERIC
    sender, _ = Sender.objects.get_or_create(account=account, value=value, defaults={"kind": kind})
    return sender


# --- Accepting --------------------------------------------------------------------------------
def message_create(*, account: Account, livemode: bool, sender: str, to: str, body: str,
                   metadata: dict | None = None, status_callback: str = "") -> Message:
    """Accept an outbound message: price it, charge it, store it `queued` with its event, and send
    after commit. Without the balance to pay for it, nothing is stored (402 insufficient_funds)."""
    quote = message_preview(account=account, sender=sender, to=to, body=body)
    if status_callback:
        webhooks.callback_url_check(url=status_callback, livemode=livemode)
    with transaction.atomic():
        message = Message(
            account=account, livemode=livemode, direction=Message.OUTBOUND, status=statuses.QUEUED,
            from_number=sender, to=to, body=body, encoding=quote.encoding, segments=quote.segments,
            country=quote.country, price=quote.price, currency=quote.currency, metadata=metadata or {},
            status_callback=status_callback,
        )
        billing.message_charge(account_id=account.pk, livemode=livemode, message_id=message.public_id,
                               amount=quote.price, currency=quote.currency)
        message.save(force_insert=True)
        _record_event(message)
        Message.objects.filter(pk=message.pk).update(event_sequence=message.event_sequence)
        transaction.on_commit(lambda: _enqueue_send(message.pk))
    return message


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
        raise ApiError("unknown_sender", f"'from' ({sender}) is not a sender registered to your account.",
                       field="from")
    info = analyze(body)
    quote = message_quote(country=country_for(to), segments=info.segments)
    return MessageQuote(encoding=info.encoding, segments=info.segments, non_gsm_characters=info.non_gsm_characters,
                        country=quote.country, unit_price=quote.unit_price, price=quote.amount,
                        currency=quote.currency)


def _enqueue_send(message_id: int) -> None:
    from messaging.tasks import send_message

    try:
        send_message.apply_async((message_id,), retry=False)
    except Exception:  # the broker is down: the message waits `queued`, and the requeue task sends it
        logger.warning("Could not enqueue message %s; requeue_stale_messages will", message_id, exc_info=True)


# --- Sending ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SendOutcome:
    sent: bool = False
    retry: bool = False  # a temporary failure: the caller schedules attempt + 1
    skipped: bool = False  # another run holds (or held) this attempt


def message_send(*, message_id: int, attempt: int = 1) -> SendOutcome:
    """Hand a message to its carrier, once. Safe to call twice with the same attempt number.

    Attempt 1 claims the message `queued -> sending`; a retry claims attempt N only while the
    message is still `sending` at attempt N-1. A duplicate task therefore claims nothing.
    """
    if not _claim_attempt(message_id, attempt):
        return SendOutcome(skipped=True)
    message = Message.objects.get(pk=message_id)
    carrier = carrier_for(livemode=message.livemode)
    sms = OutboundSms(reference=message.public_id, sender=message.from_number, to=message.to,
                      body=message.body, livemode=message.livemode, attempt=attempt)
    try:
        result = carrier.send_sms(sms)
    except CarrierTemporaryError as error:
        if attempt < MAX_SEND_ATTEMPTS:
            return SendOutcome(retry=True)
        message_fail(message_id=message_id, error_code="carrier_unavailable",
                     error_message=f"The carrier was unavailable after {attempt} attempts: {error.message}",
                     carrier=carrier.name, carrier_status=error.carrier_status)
        return SendOutcome()
    except CarrierRejectedError as error:
        message_fail(message_id=message_id, error_code=error.code, error_message=error.message,
                     carrier=carrier.name, carrier_status=error.carrier_status)
        return SendOutcome()

    with transaction.atomic():
        message = Message.objects.select_for_update().get(pk=message_id)
        message.carrier = carrier.name
        message.carrier_message_id = result.carrier_message_id
        fields = ["carrier", "carrier_message_id"]
        if message.status == statuses.SENDING:
            fields += _transition(message, statuses.SENT, sent_at=timezone.now())
        message.save(update_fields=fields)
        if result.scheduled_report:
            report = result.scheduled_report
            transaction.on_commit(lambda: _enqueue_report(carrier.name, report, delay=result.report_delay))
    return SendOutcome(sent=True)


def _claim_attempt(message_id: int, attempt: int) -> bool:
    now = timezone.now()
    if attempt == 1:
        claimed = Message.objects.filter(pk=message_id, status=statuses.QUEUED, send_attempts=0).update(
            status=statuses.SENDING, send_attempts=1, updated_at=now)
    else:
        claimed = Message.objects.filter(pk=message_id, status=statuses.SENDING, send_attempts=attempt - 1).update(
            send_attempts=attempt, updated_at=now)
    return claimed == 1


def _enqueue_report(carrier: str, report: DeliveryReport, *, delay: float) -> None:
    from messaging.tasks import process_delivery_report

    process_delivery_report.apply_async(
        kwargs={"carrier": carrier, "report": report.__dict__}, countdown=delay or None)


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
def message_apply_delivery_report(*, carrier: str, report: DeliveryReport) -> Message | None:
    """Apply a carrier's delivery report. A report for an unknown message, or one that would move a
    status backwards or change a final one, changes nothing."""
    with transaction.atomic():
        message = (Message.objects.select_for_update()
                   .filter(carrier=carrier, carrier_message_id=report.carrier_message_id).first())
        if message is None:
            logger.warning("carrier=%s report for unknown message %s", carrier, report.carrier_message_id)
            return None
        if not statuses.can_transition(message.status, report.status):
            logger.info("carrier=%s report %s ignored for %s in status %s", carrier, report.status,
                        message.public_id, message.status)
            return message
        changes = {"carrier_status": report.carrier_status}
        if report.status == statuses.DELIVERED:
            changes["delivered_at"] = timezone.now()
        else:
            changes.update(error_code=report.error_code or "unknown_error",
                           error_message=report.error_message or "The carrier did not deliver the message.")
        message.save(update_fields=_transition(message, report.status, **changes))
    return message


# --- The one way a status changes -------------------------------------------------------------
def _transition(message: Message, status: str, *, carrier_status: str = "", **changes) -> list[str]:
    """Move `message` to `status` and record its event. Returns the fields to save.

    Precondition: the caller holds the message's row lock, inside the transaction that saves it.
    """
    if not statuses.can_transition(message.status, status):
        raise ValueError(f"{message.public_id}: {message.status} -> {status} is not allowed")
    message.status = status
    for name, value in changes.items():
        setattr(message, name, value)
    message.updated_at = timezone.now()
    _record_event(message, carrier_status=carrier_status)
    return ["status", "updated_at", "event_sequence", *changes]


def _record_event(message: Message, *, carrier_status: str = "") -> MessageEvent | None:
    event_type = statuses.EVENT_TYPES.get(message.status)
    if event_type is None:
        return None
    message.event_sequence += 1
    event = MessageEvent.objects.create(
        message=message, type=event_type, status=message.status, sequence=message.event_sequence,
        data=MessageSerializer(message).data, carrier_status=carrier_status,
    )
    # The same event, with the same id, to the account's endpoints and the message's status_callback:
    # in this transaction, so a status change never commits without its webhook.
    webhooks.event_publish(
        account_id=message.account_id, livemode=message.livemode, event_id=event.public_id, type=event_type,
        object_id=message.public_id, sequence=event.sequence, data=event.data, created_at=event.created_at,
        callback_url=message.status_callback)
    return event


# --- Recovery ---------------------------------------------------------------------------------
def messages_requeue_stale(*, older_than) -> list[int]:
    """Enqueue again the queued messages whose send task was lost (broker down, worker killed).

    Harmless for a message whose task is merely late: the attempt claim lets only one run send.
    """
    stale = list(Message.objects.filter(status=statuses.QUEUED, updated_at__lt=timezone.now() - older_than)
                 .values_list("pk", flat=True)[:1000])
    for message_id in stale:
        _enqueue_send(message_id)
    return stale
