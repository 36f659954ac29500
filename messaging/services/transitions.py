"""The one way a message's status changes, for one message or a batch alike.

`transition` checks the move against the lifecycle (`statuses.py`) and collects the message's event into a
`BatchWrites`, whose `save` writes the messages, their events and the events' webhooks together: one UPDATE,
then one statement. An event is one row (`webhooks.Event`): the message's timeline and its webhooks read it. A change and its event never exist one without the other. A carrier's refusal of an
unsubscribed recipient (`recipient_opted_out`) opts the number out with it, whichever path failed the message
(the send's answer or a later report).
"""

from django.db import connection
from django.utils import timezone

from messaging import statuses
from messaging.models import Message, SendAttempt
from messaging.representation import message_row
from messaging.services.opt_outs import RECIPIENT_OPTED_OUT, opt_outs_from_refusals
from mittis.db import Statement
from mittis.ids import new_public_id
from webhooks import services as webhooks


class BatchWrites:
    """The status changes of one or many messages, written together by `save`. Events keep their order.

    Precondition: the caller holds the messages' row locks, inside the transaction that calls `save`."""

    def __init__(self):
        self.messages: dict[int, Message] = {}
        self.fields: set[str] = set()
        self.events: list[webhooks.NewEvent] = []
        self.attempts: dict[int, list[SendAttempt]] = {}  # by message id: every attempt, for the events' JSON
        self.opted_out: list[Message] = []  # refused by a carrier as unsubscribed

    def know_attempts(self, message_id: int, attempts: list[SendAttempt]) -> None:
        """All of a message's attempts, which the caller holds already (a send that just made them)."""
        self.attempts[message_id] = attempts

    def load_attempts(self, messages) -> None:
        """Read the attempts of the messages whose events are to be written, in one query, for those not known."""
        missing = {message.pk: message for message in messages if message.pk not in self.attempts}
        if not missing:
            return
        for pk in missing:
            self.attempts[pk] = []
        oldest = min(message.created_at for message in missing.values())
        for attempt in SendAttempt.objects.of(list(missing), since=oldest).order_by("message_id", "number"):
            self.attempts[attempt.message_id].append(attempt)

    def changed(self, message: Message, fields: list[str]) -> None:
        if fields:
            self.messages[message.pk] = message
            self.fields.update(fields)

    def event(self, message: Message, *, carrier_status: str = "", sequence: int | None = None) -> None:
        """The event of the message's current status, with the message as it is now. `sequence`: the number a
        new message was inserted with (its `event_sequence`); otherwise the next one, saved with the message."""
        event_type = statuses.EVENT_TYPES.get(message.status)
        if event_type is None:
            return
        if sequence is None:
            message.event_sequence += 1
            self.changed(message, ["event_sequence"])
        self.load_attempts([message])
        self.events.append(message_event(message, event_type, data=message_row(message, attempts=self.attempts[message.pk]),
                                         carrier_status=carrier_status, created_at=timezone.now()))

    def save(self) -> None:
        if self.messages:
            _bulk_set(list(self.messages.values()), sorted(self.fields))
        if self.opted_out:
            opt_outs_from_refusals(self.opted_out)
        if not self.events:
            return
        # The events and their webhooks in one statement: the ORM's bulk inserts were a third of a batch's CPU.
        statement = Statement()
        webhooks.events_publish(statement, self.events)
        webhooks.deliveries_scheduled(*statement.run("SELECT " + webhooks.published_deliveries(statement)))


def transition(message: Message, status: str, writes: BatchWrites, *, carrier_status: str = "", **changes) -> None:
    """Move `message` to `status` with `changes` to its fields, stamp the status's `<status>_at` (the one
    place that sets those), and collect its event into `writes`.

    Precondition: the caller holds the message's row lock, inside the transaction that calls `writes.save()`.
    """
    if not statuses.can_transition(message.status, status):
        raise ValueError(f"{message.public_id}: {message.status} -> {status} is not allowed")
    if not changes.keys().isdisjoint(statuses.TIME_FIELDS):
        raise ValueError(f"{message.public_id}: the `<status>_at` times are transition's to stamp, not a caller's")
    message.status = status
    for name, value in changes.items():
        setattr(message, name, value)
    message.updated_at = timezone.now()
    stamped = statuses.time_field(status)
    if stamped:
        setattr(message, stamped, message.updated_at)
    writes.changed(message, ["status", "updated_at", *changes, *([stamped] if stamped else [])])
    writes.event(message, carrier_status=carrier_status)
    if changes.get("error_code") == RECIPIENT_OPTED_OUT:
        writes.opted_out.append(message)


def message_event(message: Message, event_type: str, *, data: dict, created_at, carrier_status: str = "") -> webhooks.NewEvent:
    """The event of `message`'s current status and `event_sequence`, with `data` (the message as it is now)."""
    return webhooks.NewEvent(
        account_id=message.account_id, livemode=message.livemode, event_id=new_public_id("evt"), type=event_type,
        object_id=message.public_id, sequence=message.event_sequence, data=data, created_at=created_at,
        callback_url=message.status_callback, status=message.status, carrier_status=carrier_status)


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
