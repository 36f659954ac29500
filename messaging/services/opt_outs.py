"""Opt-outs that carriers report. A carrier that refuses a message because its recipient unsubscribed (Twilio's
21610) opts the number out here too, so that the next send to it is refused when accepted, uncharged
(`422 recipient_opted_out`), rather than charged and refused by the carrier again. STOP, START and the other
words a phone texts to a sender are `inbound`'s."""

from messaging.models import Message, OptOut

# The error code of a message refused because its recipient unsubscribed, whichever carrier said so.
RECIPIENT_OPTED_OUT = "recipient_opted_out"
# An opt-out's `keyword` when a carrier reported it, rather than a word the phone texted to a sender.
CARRIER_KEYWORD = "CARRIER"


def opt_outs_from_refusals(messages: list[Message]) -> None:
    """Opt out the recipients of `messages`, which a carrier refused as unsubscribed, in each message's account
    and mode. A number opted out already stays as it was (its keyword and sender are kept)."""
    OptOut.objects.bulk_create(
        [OptOut(account_id=message.account_id, livemode=message.livemode, phone_number=message.to,
                sender=message.from_number, keyword=CARRIER_KEYWORD) for message in messages],
        ignore_conflicts=True)
