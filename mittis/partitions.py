"""Monthly partitions of the append-only tables (PostgreSQL's declarative partitioning, by range of a time column).

A model whose table is partitioned says so with `PARTITION_KEY`, the column its rows are partitioned by (a time that
never changes once written). Its table holds one partition a month, `<table>_p2026_12`, plus a default one that
catches a row no month holds yet, so an insert never fails for want of a partition. `partitions_maintain` (beat,
daily) creates the months ahead and drops whole months past the history kept: rows go with their partition, with no
DELETE, no dead tuples and no vacuum, in constant time however many rows the month held.

What partitioning costs in constraints: PostgreSQL enforces a unique index on a partitioned table only if it includes
the partition key, so these tables hold none besides their primary key (id, key). Nothing that money or
idempotency relies on is among them: the ledger's one charge per message, the idempotency keys and the messages' own
ids are on tables that are not partitioned. A partitioned row's `public_id` is unique because it is 24 random
base-62 characters (mittis/ids.py), as unique as a key's; it is indexed, not constrained. A send attempt's
(message, number) is indexed too, and unique as one writer at a time numbers a message's attempts (SendAttempt's
Meta says which); reads bound a message's attempts by its creation, so they read only the months since.
"""

from dataclasses import dataclass
from datetime import date, datetime, timezone as dt_timezone
import logging
import re

from django.db import connection, migrations, transaction
from django.utils import timezone

logger = logging.getLogger(__name__)

_MONTH = re.compile(r"_p(\d{4})_(\d{2})$")


@dataclass(frozen=True)
class Partitioned:
    table: str
    key: str  # the time column its rows are partitioned by


def month_of(moment: datetime | date) -> date:
    return date(moment.year, moment.month, 1)


def next_month(month: date, months: int = 1) -> date:
    index = month.year * 12 + month.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def partition_name(table: str, month: date) -> str:
    return f"{table}_p{month.year:04d}_{month.month:02d}"


def default_partition_name(table: str) -> str:
    return f"{table}_pdefault"


def partitions(table: str) -> dict[date, str]:
    """The monthly partitions of `table`, by month (the default one is not a month's)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                       "WHERE i.inhparent = %s::regclass", [table])
        names = [name for (name,) in cursor.fetchall()]
    found = {}
    for name in names:
        match = _MONTH.search(name)
        if match:
            found[date(int(match[1]), int(match[2]), 1)] = name
    return found


def partition_create(partitioned: Partitioned, month: date) -> bool:
    """Give `month` its partition, unless it has one. Rows of that month in the default partition (written while
    the month had none) move into it: the new partition is filled, then attached, in one transaction. Returns
    whether it was created."""
    table, key = partitioned.table, partitioned.key
    if month in partitions(table):
        return False
    quote = connection.ops.quote_name
    name, default = partition_name(table, month), default_partition_name(table)
    start, end = datetime.combine(month, datetime.min.time(), dt_timezone.utc), datetime.combine(
        next_month(month), datetime.min.time(), dt_timezone.utc)
    with transaction.atomic(), connection.cursor() as cursor:
        # The parent's lock first, as ATTACH takes it: two of these at once wait for each other, not deadlock.
        cursor.execute(f"LOCK TABLE {quote(table)} IN SHARE UPDATE EXCLUSIVE MODE")
        if month in partitions(table):
            return False
        cursor.execute(f"CREATE TABLE {quote(name)} (LIKE {quote(table)} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        cursor.execute(f"WITH moved AS (DELETE FROM {quote(default)} WHERE {quote(key)} >= %s AND {quote(key)} < %s "
                       f"RETURNING *) INSERT INTO {quote(name)} SELECT * FROM moved", [start, end])
        if cursor.rowcount:
            logger.warning("%s: %d rows of %s moved out of the default partition", table, cursor.rowcount, month)
        # Attaching builds the partition's copy of every index of the table.
        # DDL takes no parameters: the bounds are dates this module made, written as literals.
        cursor.execute(f"ALTER TABLE {quote(table)} ATTACH PARTITION {quote(name)} "
                       f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')")
    return True


def partitions_create(partitioned: Partitioned, first: date, last: date) -> list[str]:
    """Every month from `first` to `last` its partition (`partition_create`); returns those made."""
    made, month = [], first
    while month <= last:
        if partition_create(partitioned, month):
            made.append(partition_name(partitioned.table, month))
        month = next_month(month)
    return made


def partitions_drop_before(partitioned: Partitioned, month: date) -> list[str]:
    """Drop every month's partition of the table that ends by `month`'s start: its rows go with it."""
    quote = connection.ops.quote_name
    dropped = []
    for start, name in sorted(partitions(partitioned.table).items()):
        if next_month(start) > month:
            break
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {quote(partitioned.table)} DETACH PARTITION {quote(name)}")
            cursor.execute(f"DROP TABLE {quote(name)}")
        dropped.append(name)
    return dropped


def partitions_maintain(tables: list[Partitioned], *, today: date, ahead: int, keep: int) -> dict[str, list[str]]:
    """This month's partition and `ahead` more of every table, and none that ended over `keep` months before this
    month began. Returns what was created and dropped."""
    this_month = month_of(today)
    done = {"created": [], "dropped": []}
    for partitioned in tables:
        done["created"] += partitions_create(partitioned, this_month, next_month(this_month, ahead))
        done["dropped"] += partitions_drop_before(partitioned, next_month(this_month, -keep))
    return done


def partition_by_month(app_label: str, model_name: str, key: str, *, unique_to_index: dict[str, str]):
    """The model's table made partitioned by month of `key` (mittis/partitions.py), its rows kept: a partitioned table
    of the same columns, defaults and identity is made beside it, with its foreign keys and checks, its indexes, a
    primary key of (id, key), a default partition and one for each month from its oldest row to three months
    ahead; the rows are copied in and the old table dropped. It holds the table's lock throughout (minutes for tens
    of millions of rows: run it in a maintenance window). Unique constraints cannot be kept (PostgreSQL enforces
    uniqueness on a partitioned table only with the key in it): each one in `unique_to_index`, by name, becomes a
    plain index of that name. No way back: a reverse would be the same copy the other way."""

    def forwards(apps, schema_editor):
        table = apps.get_model(app_label, model_name)._meta.db_table
        quote = schema_editor.quote_name
        with schema_editor.connection.cursor() as cursor:
            cursor.execute("SELECT conname, contype, pg_get_constraintdef(oid), conindid FROM pg_constraint "
                           "WHERE conrelid = %s::regclass AND contype IN ('p', 'u', 'f', 'c') ORDER BY conname", [table])
            constraints = cursor.fetchall()
            # NOT NULL constraints (PostgreSQL 18 lists them) go with the columns.
            cursor.execute("SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = "
                           "x.indexrelid WHERE x.indrelid = %s::regclass AND x.indexrelid NOT IN "
                           "(SELECT conindid FROM pg_constraint WHERE conrelid = %s::regclass) ORDER BY 1",
                           [table, table])
            indexes = cursor.fetchall()
            old = f"{table}_unpartitioned"
            cursor.execute(f"ALTER TABLE {quote(table)} RENAME TO {quote(old)}")
            # Its index and constraint names free for the new table's (index names are the schema's).
            for name, _definition in indexes:
                cursor.execute(f"DROP INDEX {quote(name)}")
            for name, _type, _definition, _index in constraints:
                cursor.execute(f"ALTER TABLE {quote(old)} DROP CONSTRAINT {quote(name)}")
            cursor.execute(f"CREATE TABLE {quote(table)} (LIKE {quote(old)} INCLUDING DEFAULTS INCLUDING IDENTITY "
                           f"INCLUDING GENERATED INCLUDING STORAGE) PARTITION BY RANGE ({quote(key)})")
            for name, kind, definition, _index in constraints:
                if kind == "p":
                    columns = definition[definition.index("(") + 1:definition.rindex(")")]
                    cursor.execute(f"ALTER TABLE {quote(table)} ADD CONSTRAINT {quote(name)} "
                                   f"PRIMARY KEY ({columns}, {quote(key)})")
                elif kind == "u":
                    if name not in unique_to_index:
                        raise ValueError(f"{table}: unique constraint {name} cannot be kept once partitioned")
                    cursor.execute(f"CREATE INDEX {quote(unique_to_index[name])} ON {quote(table)} "
                                   f"{definition[len('UNIQUE '):]}")
                else:  # foreign keys and checks, as they were
                    cursor.execute(f"ALTER TABLE {quote(table)} ADD CONSTRAINT {quote(name)} {definition}")
            for _name, definition in indexes:
                cursor.execute(definition)  # it names the table by its name, now the new one's
            cursor.execute(f"CREATE TABLE {quote(default_partition_name(table))} PARTITION OF {quote(table)} DEFAULT")
            cursor.execute(f"SELECT min({quote(key)}) FROM {quote(old)}")
            oldest = cursor.fetchone()[0]
        this_month = month_of(timezone.now())
        partitions_create(Partitioned(table, key), min(month_of(oldest), this_month) if oldest else this_month,
                          next_month(this_month, 3))
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(f"INSERT INTO {quote(table)} SELECT * FROM {quote(old)}")
            cursor.execute(f"SELECT setval(pg_get_serial_sequence(%s, 'id'), coalesce(max(id), 0) + 1, false) "
                           f"FROM {quote(table)}", [table])
            cursor.execute(f"DROP TABLE {quote(old)}")

    return migrations.RunPython(forwards, elidable=False)
