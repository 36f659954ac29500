"""The test helpers: what the sandbox carrier does on its own schedule (or never), done on demand, through the
very services a carrier's inbound message and delivery report go through. So a test-mode client sees exactly
what a carrier would make happen: the events, the webhooks, STOP/START/HELP, the final status rule."""

from django.db import transaction

from messaging import statuses
from messaging.carriers import sandbox
from messaging.carriers.base import InboundSms
from messaging.models import Message
from messaging.services.inbound import message_receive
from messaging.services.reports import message_apply_delivery_report
from mittis.accounts.models import Account
from mittis.errors import DomainError
from mittis.ids import new_public_id

# What staff read in the raw record (CarrierInbound, CarrierReport) of what a helper made: not the carrier itself.
SOURCE = "test_helper"


def sandbox_message_receive(*, account: Account, sender: str, to: str, body: str) -> Message:
    """A message from the phone `sender` to `to`, one of `account`'s senders, as the sandbox carrier hands it
    over: in test mode, in `account` only (`unknown_sender` on `to` when it has no such sender)."""
    inbound = InboundSms(sender=sender, to=to, body=body, carrier_message_id=new_public_id("sbx"))
    return message_receive(carrier=sandbox.SandboxClient.name, inbound=inbound, account=account,
                           raw={"source": SOURCE, "from": sender, "to": to, "body": body})


def sandbox_delivery_report(*, message: Message, status: str, error_code: str = "") -> Message:
    """The sandbox's report of `status` (delivered, undelivered or failed; `error_code` for a failure, else its
    default) on a `sent` message, applied as a carrier's is. A message not sent yet (or inbound) is
    `message_not_sent`; a final one `message_already_final`, rather than a report the rule would ignore.

    Precondition: `message` is the caller's, in test mode (`selectors.message_get`)."""
    with transaction.atomic():
        # Checked under the row lock the report then takes again: the sandbox's own report (or a sweep) cannot
        # settle the message between the check and this report, leaving it silently ignored.
        locked = Message.objects.select_for_update().get(pk=message.pk)
        if locked.direction == Message.INBOUND:
            raise DomainError("message_not_sent", f"{locked.public_id} is an inbound message: only messages you "
                                                  "sent get delivery reports.")
        if statuses.is_final(locked.status):
            raise DomainError("message_already_final", f"{locked.public_id} is {locked.status} already: a final "
                                                       "status never changes.")
        if locked.status != statuses.SENT:
            raise DomainError("message_not_sent", f"{locked.public_id} is {locked.status}: no carrier has accepted "
                                                  "it yet. Wait for its message.sent event.")
        report = sandbox.report(locked.carrier_message_id, status, error_code=error_code, reference=locked.public_id)
        return message_apply_delivery_report(carrier=locked.carrier, report=report,
                                             raw={"source": SOURCE, "status": status, "error_code": error_code})
