"""Reads for messages. Every query is scoped to one account and mode."""

from collections.abc import Callable, Sequence
from datetime import datetime, timezone as dt_timezone

from django.db import DEFAULT_DB_ALIAS, connection, connections
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


def _reader(model, names: tuple[str, ...]) -> tuple[list[str], Callable[[Sequence], dict]]:
    """The columns of `names`, and a function from a row of them to the {name: value} that `values(*names)` would
    give: each field's own conversion from the database (`from_db_value`; only JSON fields have one here)."""
    fields = [model._meta.get_field(name) for name in names]
    converting = [(field.name, field.from_db_value) for field in fields if hasattr(field, "from_db_value")]

    def read(row: Sequence) -> dict:
        values = dict(zip(names, row))
        for name, convert in converting:
            if values[name] is not None:
                values[name] = convert(values[name], None, connection)
        return values
    return [field.column for field in fields], read


_MESSAGE_COLUMNS, _message_values = _reader(Message, MESSAGE_FIELDS)
_ATTEMPT_COLUMNS, _attempt_values = _reader(SendAttempt, ATTEMPT_FIELDS)
# Messages and their attempts in one statement of fixed text, skipping the ORM's compiling of two querysets (two
# thirds of a retrieve's database time, most of a list page's cost). A message with no attempt is one row of NULLs.
# Attempts from the message's creation on (`SendAttempt.objects.of`): each message's probe skips the older months.
_MESSAGE_VALUES_SQL = (
    f"SELECT {', '.join(f'm.{c}' for c in _MESSAGE_COLUMNS)}, {', '.join(f'a.{c}' for c in _ATTEMPT_COLUMNS)} "
    f"FROM {{messages}} LEFT JOIN {SendAttempt._meta.db_table} a ON a.message_id = m.id "
    "AND a.started_at >= m.created_at WHERE {where} ORDER BY {order}a.number")
_MESSAGE_GET_SQL = _MESSAGE_VALUES_SQL.format(
    messages=f"{Message._meta.db_table} m", where="m.account_id = %s AND m.livemode = %s AND m.public_id = %s",
    order="")
# A page's ids, in its order: ARRAY(...) keeps the order of its query's rows, WITH ORDINALITY numbers them.
_MESSAGE_PAGE_SQL = _MESSAGE_VALUES_SQL.format(
    messages=f"unnest(ARRAY({{page}})) WITH ORDINALITY page (id, n) JOIN {Message._meta.db_table} m ON m.id = page.id",
    where="TRUE", order="page.n, ")


def message_values_get(*, account: Account, livemode: bool, public_id: str) -> tuple[dict, list[dict]]:
    """`message_get`'s message as MESSAGE_FIELDS values and its attempts' ATTEMPT_FIELDS values in order, for
    `representation.message_json`: the same values the ORM would give (each field's own conversion)."""
    found = _messages_values(DEFAULT_DB_ALIAS, _MESSAGE_GET_SQL, [account.pk, livemode, public_id])
    if not found:
        raise DomainError("resource_missing", f"No such message: '{public_id}'.", field="id")
    return found[0]


def message_page_values(page: QuerySet) -> list[tuple[dict, list[dict]]]:
    """The messages whose ids `page` selects (a slice of `message_list(...).values_list("pk", flat=True)`, as
    `paginate` reads a page), in its order, as `message_values_get` gives one: in one statement, so the page and
    its attempts are one snapshot, read from the database `page` reads (a list may read a replica)."""
    sql, params = page.query.sql_with_params()
    return _messages_values(page.db, _MESSAGE_PAGE_SQL.format(page=sql), params)


def _messages_values(using: str, sql: str, params) -> list[tuple[dict, list[dict]]]:
    with connections[using].cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    split, found, attempts, last = len(_MESSAGE_COLUMNS), [], [], None
    for row in rows:  # a message's rows are consecutive, its attempts in order
        if row[0] != last:  # MESSAGE_FIELDS begins with the id
            last, attempts = row[0], []
            found.append((_message_values(row[:split]), attempts))
        if row[split] is not None:  # ATTEMPT_FIELDS begins with message_id: NULL when it has none
            attempts.append(_attempt_values(row[split:]))
    return found


def message_list_order(*, status: str | None) -> tuple[str, ...]:
    """What a page of `message_list` is ordered by before the id (paginate's `leading`): the status it is filtered by,
    if any (`message_list` says why)."""
    return ("status",) if status else ()


def message_list(*, account: Account, livemode: bool, status: str | None = None, to: str | None = None,
                 sender: str | None = None, direction: str | None = None, created_gte: datetime | None = None,
                 created_lt: datetime | None = None) -> QuerySet[Message]:
    messages = message_scope(account=account, livemode=livemode)
    if status:
        # A range of one value, not an equality: a page ordered by status then id (`message_list_order`) comes in
        # order from message_status_idx alone. With `status = %s` the order is the id's alone, and PostgreSQL,
        # taking a status for spread evenly, may walk the primary key backward and filter out every newer message
        # of another status (all of a queued burst, for `?status=delivered`).
        messages = messages.filter(status__range=(status, status))
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
    return SendAttempt.objects.of([message.pk], since=message.created_at).order_by("number")


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
