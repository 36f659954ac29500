"""Status changes of one message that staff, customers or a send ask for: failing it, expiring it, canceling
it. Each refunds what no carrier took, in the transaction that records why."""

from django.db import transaction

from billing import services as billing
from messaging import statuses
from messaging.errors import MESSAGE_ERRORS
from messaging.models import Message
from messaging.services.transitions import BatchWrites, transition
from mittis.errors import DomainError


def message_fail(*, message_id: int, error_code: str, error_message: str, carrier: str = "",
                 carrier_status: str = "") -> Message:
    with transaction.atomic():
        message = Message.objects.select_for_update().get(pk=message_id)
        if not statuses.can_transition(message.status, statuses.FAILED):
            return message
        accepted_by_carrier = bool(message.carrier_message_id)
        writes = BatchWrites()
        message.carrier = carrier or message.carrier
        writes.changed(message, ["carrier"])
        transition(message, statuses.FAILED, writes, error_code=error_code, error_message=error_message[:500],
                   carrier_status=carrier_status)
        writes.save()
        if not accepted_by_carrier:  # no carrier took it, so nothing was spent on it
            billing.message_refund(account_id=message.account_id, livemode=message.livemode,
                                   message_id=message.public_id, reason=f"Failed before sending: {error_code}")
    return message


def message_expire(*, message_id: int) -> Message:
    with transaction.atomic():
        message = Message.objects.select_for_update().get(pk=message_id)
        if statuses.can_transition(message.status, statuses.EXPIRED) and not message.carrier_message_id:
            expire_locked(message)
    return message


def expire_locked(message: Message) -> None:
    """Better not sent than sent late. Precondition: the caller holds the message's row lock."""
    writes = BatchWrites()
    transition(message, statuses.EXPIRED, writes, error_code="expired",
               error_message=MESSAGE_ERRORS["expired"].message)
    writes.save()
    billing.message_refund(account_id=message.account_id, livemode=message.livemode,
                           message_id=message.public_id, reason="Expired before sending")


def message_cancel(*, message: Message) -> Message:
    """Cancel a scheduled message: it is refunded and never sent. Anything else is 409."""
    with transaction.atomic():
        message = Message.objects.select_for_update().get(pk=message.pk)
        if message.status != statuses.SCHEDULED:
            raise DomainError("message_not_cancelable",
                           f"Only a scheduled message can be canceled; this one is {message.status}.")
        writes = BatchWrites()
        transition(message, statuses.CANCELED, writes)
        writes.save()
        billing.message_refund(account_id=message.account_id, livemode=message.livemode,
                               message_id=message.public_id, reason="Canceled before sending")
    return message
