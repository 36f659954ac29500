"""Accepting a send: price it, charge it and store it with its event and webhooks, in one statement."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from billing import services as billing
from billing.pricing import country_for
from billing.selectors import message_quote
from messaging import statuses
from messaging.encoding import analyze
from messaging.models import Message, OptOut, Sender
from messaging.representation import message_row
from messaging.services.dispatch import dispatch_mark_request
from messaging.services.transitions import message_event
from mittis.accounts.models import Account
from mittis.errors import DomainError
from mittis.db import Statement, StatementGuard, StatementUndone, insert_select, quoted_table
from webhooks import services as webhooks

# What `mittis_refuse` (migration api 0004) raises when a send's balance does not cover it.
NOT_COVERED = "mittis: the balance does not cover this message"


def sender_create(*, account: Account, value: str) -> Sender:
    kind = Sender.PHONE_NUMBER if value.startswith("+") else Sender.ALPHANUMERIC
    sender, _ = Sender.objects.get_or_create(account=account, value=value, defaults={"kind": kind})
    return sender


def message_create(*, account: Account, livemode: bool, sender: str, to: str, body: str,
                   metadata: dict | None = None, status_callback: str | None = None, send_at: datetime | None = None,
                   validity_period: int | None = None, guard: StatementGuard | None = None) -> Message:
    """Accept an outbound message: price it, charge it, store it `queued` with its event, and send
    after commit; with `send_at`, store it `scheduled` (with its `message.scheduled` event) for the
    dispatcher. Without the balance to pay for it, nothing is stored (402 insufficient_funds).

    `guard`: what the caller adds to the statement (a keyed request's idempotency key), told the outcome."""
    if status_callback:
        webhooks.callback_url_check(url=status_callback, livemode=livemode)
    quote = _message_quote(to=to, body=body)
    starts = send_at or timezone.now()
    message = Message(
        account=account, livemode=livemode, direction=Message.OUTBOUND,
        status=statuses.SCHEDULED if send_at else statuses.QUEUED,
        from_number=sender, to=to, body=body, encoding=quote.encoding, segments=quote.segments,
        country=quote.country, price=quote.price, currency=quote.currency, metadata=metadata or {},
        status_callback=status_callback or "", send_at=send_at,
        expires_at=starts + timedelta(seconds=validity_period or settings.MITTIS_DEFAULT_VALIDITY_PERIOD),
    )
    message.event_sequence = 1  # its first event (`message.queued` or `message.scheduled`), written with it
    endpoint_ids, callbacks = _insert_in_one_statement(message, guard=guard)
    # After commit, one Redis round trip marks the dispatcher and the webhook flushes.
    webhooks.deliveries_scheduled(endpoint_ids, callbacks, also=[] if send_at else [dispatch_mark_request()])
    return message


def unknown_sender(sender: str, *, field: str = "from") -> DomainError:
    """`sender`, given as `field`, is none of the account's senders."""
    return DomainError("unknown_sender", f"'{field}' ({sender}) is not a sender registered to your account.",
                       field=field)


def _opted_out(to: str) -> DomainError:
    return DomainError("recipient_opted_out", f"{to} opted out of your messages (it replied STOP, or its carrier "
                    "refused a message to it as unsubscribed); it gets none until it replies START.", field="to")


def _insert_in_one_statement(message: Message, *, guard: StatementGuard | None = None) -> tuple[list[int], list[int]]:
    """The checks, the message, its first event and webhook deliveries, and its charge, in one
    statement: the ORM's statement-by-statement cost was most of accepting a message. Every write is
    conditional on the checks (and in live mode on the debit), so a refusal has written nothing. The
    debit locks the balance row until commit, which follows this statement at once.

    With `guard` (a keyed request's idempotency key: held, checked and recorded by the same statement), the
    statement runs on its own (autocommit); without, inside the caller's transaction. With a guard, the debit
    comes last (the message, its event and its deliveries are written before it, not while the account's
    balance row is locked: every send of the account waits for that row), and a balance that does not cover
    the message fails the whole statement (`mittis_refuse`, raised as `StatementUndone`), which the caller
    then answers through a transaction of its own.

    Returns the webhook deliveries to schedule after commit (`webhooks.deliveries_scheduled`)."""
    statement = Statement()
    guarded = guard.guard(statement) if guard is not None else None
    statement.add("checks", f"SELECT EXISTS (SELECT 1 FROM {quoted_table(Sender)} WHERE account_id = %s AND value = %s) "
                            f"AS sender_known, EXISTS (SELECT 1 FROM {quoted_table(OptOut)} WHERE account_id = %s AND "
                            "livemode = %s AND phone_number = %s) AS opted_out",
                  [message.account_id, message.from_number, message.account_id, message.livemode, message.to])
    condition = "(SELECT sender_known AND NOT opted_out FROM checks)" + (f" AND {guarded}" if guarded else "")
    debit = billing.message_charge_parts(statement, account_id=message.account_id, livemode=message.livemode,
                                         message_id=message.public_id, amount=message.price,
                                         currency=message.currency, guard=condition)
    debit_last = debit is not None and guard is not None
    message_part = statement.add("m", *insert_select(
        message, where=condition + (f" AND EXISTS (SELECT 1 FROM {debit})" if debit and not debit_last else "")))
    representation = message_row(message, attempts=())
    event = message_event(message, statuses.EVENT_TYPES[message.status], data=representation,
                          created_at=message.created_at)
    webhooks.events_publish(statement, [event], only_if=f"EXISTS (SELECT 1 FROM {message_part})")
    published = webhooks.published_deliveries(statement)
    if guard is not None:
        guard.record(statement, status=201, data=representation, source=message_part)
    # The select list runs its parts in order: the message's, its deliveries', then (last) the debit's.
    covered = (f"CASE WHEN (SELECT id FROM m) IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {debit}) "
               f"THEN mittis_refuse('{NOT_COVERED}') END" if debit_last else "NULL")
    try:
        sender_known, opted_out, message_id, endpoint_ids, callbacks, free, _ = statement.run(
            f"SELECT checks.sender_known, checks.opted_out, (SELECT id FROM m), {published}, {guarded or 'true'}, "
            f"{covered} FROM checks")
    except DatabaseError as error:  # RAISE's P0001, a ProgrammingError to Django
        if NOT_COVERED in str(error):
            raise StatementUndone(NOT_COVERED) from error
        raise
    if guard is not None:
        guard.ran(free=free, done=message_id is not None)
    if not sender_known:
        raise unknown_sender(message.from_number)
    if opted_out:
        raise _opted_out(message.to)
    if message_id is None:
        raise billing.insufficient_funds(amount=message.price, currency=message.currency)
    message.pk = message_id
    message.representation = representation  # the answer, built once for its event too
    return endpoint_ids, callbacks


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
        raise unknown_sender(sender)
    return _message_quote(to=to, body=body)


def _message_quote(*, to: str, body: str) -> MessageQuote:
    info = analyze(body)
    quote = message_quote(country=country_for(to), segments=info.segments)
    return MessageQuote(encoding=info.encoding, segments=info.segments, non_gsm_characters=info.non_gsm_characters,
                        country=quote.country, unit_price=quote.unit_price, price=quote.amount,
                        currency=quote.currency)
