"""Messages from phones to an account's senders, and the opt-outs and replies their keywords ask for."""

from decimal import Decimal
import logging

from django.db import transaction

from billing.pricing import country_for
from messaging import statuses
from messaging.carriers.base import InboundSms, storable
from messaging.encoding import analyze
from messaging.models import CarrierInbound, Message, OptOut, Sender
from messaging.services.accept import message_create, unknown_sender
from messaging.services.transitions import BatchWrites
from mittis.accounts.models import Account
from mittis.errors import DomainError

logger = logging.getLogger(__name__)

# Keywords carriers and regulators (CTIA) expect every sender to honour, matched on the whole body.
OPT_OUT_KEYWORDS = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
OPT_IN_KEYWORDS = {"START", "UNSTOP", "YES"}
HELP_KEYWORDS = {"HELP", "INFO"}


def message_receive(*, carrier: str, inbound: InboundSms, raw: dict | None = None,
                    account: Account | None = None) -> Message | None:
    """A message from a phone to one of an account's senders: stored `received` with a
    `message.inbound` event. STOP-words opt the phone out, START-words back in, HELP gets the
    account's reply. Each is also kept as it came (CarrierInbound); one to a number no active account
    has is kept there alone, for staff, and None is returned. Its text may hold anything: a NUL reads
    U+FFFD (`storable`). Precondition: `inbound.to` is in our form (E.164, a short code, a name).

    `account`: the account the message is for, when the caller knows it (the sandbox's test helper: its caller).
    Then only that account's sender takes it, never another account's with the same value (the first such
    would, routed by the number alone), and a number the account does not have is refused (`unknown_sender`,
    field `to`), keeping nothing."""
    inbound, raw = storable(inbound), storable(raw or {})
    senders = Sender.objects.select_related("account").filter(value=inbound.to, account__is_active=True)
    if account is not None:
        senders = senders.filter(account=account)
    sender = senders.order_by("id").first()
    if sender is None and account is not None:
        raise unknown_sender(inbound.to, field="to")
    as_received = CarrierInbound(carrier=carrier, from_number=inbound.sender[:64], to=inbound.to[:64],
                                 body=inbound.body, raw=raw)
    if sender is None:
        logger.warning("carrier=%s inbound message to unknown number %s kept unrouted", carrier, inbound.to)
        as_received.save(force_insert=True)
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
            carrier=carrier, carrier_message_id=inbound.carrier_message_id[:100], event_sequence=1)
        message.save(force_insert=True)
        writes = BatchWrites()
        writes.know_attempts(message.pk, [])
        writes.event(message, sequence=1)
        writes.save()
        as_received.message = message
        as_received.save(force_insert=True)
        if keyword in OPT_OUT_KEYWORDS:
            OptOut.objects.get_or_create(account=account, livemode=livemode, phone_number=message.from_number,
                                         defaults={"sender": inbound.to, "keyword": keyword})
        elif keyword in OPT_IN_KEYWORDS:
            OptOut.objects.filter(account=account, livemode=livemode, phone_number=message.from_number).delete()
    if keyword in HELP_KEYWORDS and account.help_reply:
        try:
            message_create(account=account, livemode=livemode, sender=inbound.to, to=message.from_number,
                           body=account.help_reply)
        except DomainError as refused:  # e.g. no balance left: the inbound message is kept all the same
            logger.warning("HELP reply to %s not sent: %s", message.from_number, refused.code)
    return message
