"""Reads for messages. Every query is scoped to one account and mode."""

from datetime import datetime

from datetime import timezone as dt_timezone

from django.db import connection
from django.db.models import Count, F, QuerySet, Sum
from django.db.models.functions import TruncDate

from messaging.models import Export, Message, OptOut, SendAttempt
from messaging.representation import ATTEMPT_FIELDS, MESSAGE_FIELDS
from mittis.accounts.models import Account
from mittis.errors import DomainError
from webhooks.models import Event


def message_scope(*, account: Account, livemode: bool) -> QuerySet[Message]:
    return Message.objects.filter(account=account, livemode=livemode)


def message_get(*, account: Account, livemode: bool, public_id: str) -> Message:
    message = message_scope(account=account, livemode=livemode).filter(public_id=public_id).first()
    if message is None:
        raise DomainError("resource_missing", f"No such message: '{public_id}'.", field="id")
    return message


def _columns(model, names: tuple[str, ...]) -> tuple[list[str], list]:
    fields = [model._meta.get_field(name) for name in names]
    return [field.column for field in fields], [getattr(field, "from_db_value", None) for field in fields]


_MESSAGE_COLUMNS, _MESSAGE_CONVERTERS = _columns(Message, MESSAGE_FIELDS)
_ATTEMPT_COLUMNS, _ATTEMPT_CONVERTERS = _columns(SendAttempt, ATTEMPT_FIELDS)
# The message and its attempts in one statement of fixed text: what integrations poll most, so it skips the ORM's
# compiling of two querysets (two thirds of its database time). A message with no attempt is one row of NULLs.
_MESSAGE_VALUES_SQL = (
    f"SELECT {', '.join(f'm.{c}' for c in _MESSAGE_COLUMNS)}, {', '.join(f'a.{c}' for c in _ATTEMPT_COLUMNS)} "
    f"FROM {Message._meta.db_table} m LEFT JOIN {SendAttempt._meta.db_table} a ON a.message_id = m.id "
    "WHERE m.account_id = %s AND m.livemode = %s AND m.public_id = %s ORDER BY a.number")


def message_values_get(*, account: Account, livemode: bool, public_id: str) -> tuple[dict, list[dict]]:
    """`message_get`'s message as MESSAGE_FIELDS values and its attempts' ATTEMPT_FIELDS values in order, for
    `representation.message_json`: the same values the ORM would give (each field's own conversion)."""
    with connection.cursor() as cursor:
        cursor.execute(_MESSAGE_VALUES_SQL, [account.pk, livemode, public_id])
        rows = cursor.fetchall()
    if not rows:
        raise DomainError("resource_missing", f"No such message: '{public_id}'.", field="id")
    split = len(_MESSAGE_COLUMNS)
    message = _converted(MESSAGE_FIELDS, _MESSAGE_CONVERTERS, rows[0][:split])
    attempts = [_converted(ATTEMPT_FIELDS, _ATTEMPT_CONVERTERS, row[split:]) for row in rows if row[split] is not None]
    return message, attempts


def _converted(names: tuple[str, ...], converters: list, values) -> dict:
    return {name: convert(value, None, connection) if convert and value is not None else value
            for name, convert, value in zip(names, converters, values)}


def message_list(*, account: Account, livemode: bool, status: str | None = None, to: str | None = None,
                 sender: str | None = None, direction: str | None = None, created_gte: datetime | None = None,
                 created_lt: datetime | None = None) -> QuerySet[Message]:
    messages = message_scope(account=account, livemode=livemode)
    if status:
        messages = messages.filter(status=status)
    if to:
        messages = messages.filter(to=_as_e164(to))
    if sender:
        messages = messages.filter(from_number=_as_e164(sender))
    if direction:
        messages = messages.filter(direction=direction)
    if created_gte:
        messages = messages.filter(created_at__gte=created_gte)
    if created_lt:
        messages = messages.filter(created_at__lt=created_lt)
    return messages


def message_attempts(*, message: Message) -> QuerySet[SendAttempt]:
    return message.attempts.order_by("number")


def message_events(*, message: Message) -> QuerySet[Event]:
    return message.events


USAGE_GROUPS = {
    "day": TruncDate("created_at", tzinfo=dt_timezone.utc),
    "country": F("country"),
    "status": F("status"),
}


def message_usage(*, account: Account, livemode: bool, start: datetime, end: datetime, group_by: str) -> list[dict]:
    """Message counts, segments and amounts per day, country or status, summed by the database."""
    rows = (message_scope(account=account, livemode=livemode)
            .filter(direction=Message.OUTBOUND, created_at__gte=start, created_at__lt=end)
            .annotate(group=USAGE_GROUPS[group_by]).values("group")
            .annotate(messages=Count("id"), segments=Sum("segments"), amount=Sum("price"))
            .order_by("group"))
    return list(rows)


def _as_e164(value: str) -> str:
    """`?to=+1804…` arrives as ` 1804…` when the client did not encode `+`: take what was meant."""
    value = value.strip()
    return f"+{value}" if value.isdigit() else value


def opt_out_scope(*, account: Account, livemode: bool) -> QuerySet[OptOut]:
    return OptOut.objects.filter(account=account, livemode=livemode)


def export_scope(*, account: Account, livemode: bool) -> QuerySet[Export]:
    return Export.objects.filter(account=account, livemode=livemode)


def export_get(*, account: Account, livemode: bool, public_id: str) -> Export:
    export = export_scope(account=account, livemode=livemode).filter(public_id=public_id).first()
    if export is None:
        raise DomainError("resource_missing", f"No such export: '{public_id}'.", field="id")
    return export
