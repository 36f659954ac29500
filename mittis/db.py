"""One statement for many writes: PostgreSQL's data-modifying CTEs built from model instances.

Accepting a message writes seven rows in four apps' tables. Through the ORM that is a statement, a
round trip and a compiler run each, which was most of the request's cost; `Statement` sends them as
one `WITH ... SELECT`. The rows' values are the instances' own, prepared as `Model.save` prepares them,
so defaults, `auto_now` and field types stay Django's. Each app builds the parts about its own tables.
"""

from dataclasses import dataclass, field
import functools
from typing import Protocol

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import ForeignKey, Model


class StatementUndone(Exception):
    """A statement failed itself on purpose (`mittis_refuse`, e.g. a balance that does not cover a send):
    everything it wrote is undone."""


class StatementGuard(Protocol):
    """What a caller adds to the statement of a write it asks for (a keyed POST's idempotency key): a first
    part whose SQL condition every write of the statement meets, a record written with the rows of the part
    whose rows mean the write was done, and what the statement's outcome means to it."""

    def guard(self, statement: "Statement") -> str:
        """Adds its part, first; returns the SQL condition."""

    def record(self, statement: "Statement", *, status: int, data: dict, source: str) -> None:
        """Adds the record of the write's outcome (`status`, `data`: plain JSON data)."""

    def ran(self, *, free: bool, done: bool) -> None:
        """The statement's answer: whether the guard held, whether the write (and the record) were made."""


@dataclass
class Statement:
    """`WITH name AS (sql), ... SELECT ...`: parts run in one snapshot; a part sees another's rows only
    through its RETURNING (name it in FROM)."""

    parts: list[tuple[str, str, list]] = field(default_factory=list)

    def add(self, name: str, sql: str, params: list | tuple = ()) -> str:
        self.parts.append((name, sql, list(params)))
        return name

    def run(self, select: str, params: list | tuple = ()) -> tuple:
        sql = "WITH " + ",\n".join(f"{name} AS ({part})" for name, part, _ in self.parts) + "\n" + select
        values = [value for _, _, part_params in self.parts for value in part_params] + list(params)
        with connection.cursor() as cursor:
            cursor.execute(sql, values)
            return cursor.fetchone()


def quoted_table(model: type[Model]) -> str:
    """The model's table name, quoted for SQL written by hand."""
    return connection.ops.quote_name(model._meta.db_table)


def insert_select(instance: Model, *, sql_values: dict[str, str] | None = None, source: str = "",
                  source_params: list | tuple = (), where: str = "", where_params: list | tuple = (),
                  returning: str = "id") -> tuple[str, list]:
    """`INSERT INTO table (columns) SELECT values [FROM source] [WHERE where] RETURNING returning` for one
    unsaved instance. `sql_values` puts SQL in place of some fields' values (by attname: `"message_id":
    "m.id"`); a row is inserted once per row of `source`, none when `where` is false."""
    sql_values = sql_values or {}
    table, columns = _insert_columns(type(instance))
    database = connections[DEFAULT_DB_ALIAS]  # the thread's own, not the proxy: one lookup, not one per field
    names, values, params = [], [], []
    for model_field, column, placeholder, as_is in columns:
        if model_field.attname in sql_values:
            values.append(sql_values[model_field.attname])
        elif model_field.primary_key and getattr(instance, model_field.attname) is None:
            continue  # the sequence numbers it
        else:
            values.append(placeholder)
            value = getattr(instance, model_field.attname)
            params.append(value if type(value) in as_is else
                          model_field.get_db_prep_save(model_field.pre_save(instance, add=True), database))
        names.append(column)
    sql = f"INSERT INTO {table} ({', '.join(names)}) SELECT {', '.join(values)}"
    if source:
        sql += f" FROM {source}"
        params += list(source_params)
    if where:
        sql += f" WHERE {where}"
        params += list(where_params)
    return f"{sql} RETURNING {returning}", params


def insert_rows(instances: list[Model], *, returning: str = "id", where: str = "") -> tuple[str, list]:
    """`INSERT INTO table (columns) SELECT * FROM unnest(arrays) [WHERE where] RETURNING returning` for unsaved
    instances of one model, values prepared as `insert_select` prepares them: an array per column, so the
    statement is the same for any number of rows (prepared once) and its parameters travel as binary arrays.
    One instance is `insert_select`'s single row instead: dumping a dozen one-element arrays cost a send's
    request more Python than the rest of its event's publishing."""
    if len(instances) == 1:
        return insert_select(instances[0], where=where, returning=returning)
    table, columns = _insert_columns(type(instances[0]))
    database = connections[DEFAULT_DB_ALIAS]
    names, arrays, params = [], [], []
    for model_field, column, placeholder, as_is in columns:
        values = [getattr(instance, model_field.attname) for instance in instances]
        if not model_field.primary_key and not all(type(value) in as_is for value in values):
            values = [model_field.get_db_prep_save(model_field.pre_save(instance, add=True), database)
                      for instance in instances]
        if model_field.primary_key and all(value is None for value in values):
            continue  # the sequence numbers them
        names.append(column)
        arrays.append(placeholder + "[]")
        params.append(values)
    condition = f" WHERE {where}" if where else ""
    return (f"INSERT INTO {table} ({', '.join(names)}) SELECT * FROM unnest({', '.join(arrays)}){condition} "
            f"RETURNING {returning}"), params


def rows_source(alias: str, columns: list[tuple[str, str]], rows: list[tuple]) -> tuple[str, list]:
    """A FROM item `alias (column, ...)` holding `rows`, for a statement to join: `unnest` of an array per column
    for many (one statement text for any number), a plain row of parameters for one. `columns`: (name, SQL type)."""
    if len(rows) == 1:
        return (f"(SELECT {', '.join(f'%s::{kind} AS {name}' for name, kind in columns)}) AS {alias}",
                list(rows[0]))
    return (f"unnest({', '.join(f'%s::{kind}[]' for _, kind in columns)}) AS {alias} "
            f"({', '.join(name for name, _ in columns)})", [list(column) for column in zip(*rows)])


def insert_many(instances: list[Model]) -> None:
    """`Model.objects.bulk_create(instances)` (their primary keys set), in `insert_rows`' one statement: the
    ORM's compiler and its statement of a placeholder per value were a fifth of a send batch. The instances are
    then saved ones, as `_saved` says."""
    if not instances:
        return
    sql, params = insert_rows(instances)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for instance, (pk,) in zip(instances, cursor.fetchall()):  # RETURNING gives the rows in unnest's order
            _saved(instance, pk)


def insert(instance: Model) -> None:
    """`instance.save(force_insert=True)`, without the ORM's compiler, for a request's hot path."""
    sql, params = insert_select(instance)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        _saved(instance, cursor.fetchone()[0])


def _saved(instance: Model, pk) -> None:
    """Marks a row inserted by hand as saved, as Django's save and bulk_create do and as `Model.from_db`'s
    documentation has its overrides do: `_state.adding` off (validation then excludes the row itself, a form
    edits it) and `_state.db` its database. tests/test_db.py holds such a row to Django's own."""
    instance.pk = pk
    instance._state.adding, instance._state.db = False, connection.alias


@functools.cache
def _insert_columns(model: type[Model]) -> tuple[str, list]:
    """(table, [(field, quoted column, typed placeholder, types passed as they are)]): the same for every row,
    and costly to rebuild (`db_type` alone was a fifth of a request)."""
    quote = connection.ops.quote_name
    return quote(model._meta.db_table), [
        (model_field, quote(model_field.column), f"%s::{model_field.db_type(connection)}", _as_is(model_field))
        for model_field in model._meta.concrete_fields]


def _as_is(model_field) -> frozenset:
    """The value types for which `get_db_prep_save(pre_save(...))` returns the field's value unchanged: text in
    a text field, an int in an integer field or a foreign key to one, a bool in a boolean field, None where
    the field allows it. Those skip Django's chain of conversions, seven calls a field (a send inserts seventy
    values). Anything else, a field with its own `pre_save` or conversion among them, goes through it."""
    from django.db.models import fields

    none = {type(None)} if model_field.null else set()
    if isinstance(model_field, ForeignKey):
        target = model_field.target_field
        return frozenset({int} | none) if type(target) in (fields.AutoField, fields.BigAutoField) else frozenset()
    # An integer field's value is wrapped in psycopg's sized integer type, so that a parameter bound on the
    # server has the column's type; these statements cast every placeholder to it already (`%s::smallint`).
    plain = (type(model_field).pre_save is fields.Field.pre_save
             and type(model_field).get_db_prep_save is fields.Field.get_db_prep_save
             and type(model_field).get_db_prep_value in (fields.Field.get_db_prep_value,
                                                          fields.IntegerField.get_db_prep_value))
    if not plain:
        return frozenset()
    for field_class, prep, value_type in [(fields.CharField, fields.CharField.get_prep_value, str),
                                          (fields.TextField, fields.TextField.get_prep_value, str),
                                          (fields.BooleanField, fields.BooleanField.get_prep_value, bool),
                                          (fields.IntegerField, fields.IntegerField.get_prep_value, int)]:
        if isinstance(model_field, field_class) and type(model_field).get_prep_value is prep:
            return frozenset({value_type} | none)
    return frozenset()


def cache_statement_conversion() -> None:
    """psycopg converts a statement's `%s` into `$n` in Python, and caches the conversion only for statements of
    up to 50 parameters and 4 KB (against ORM bulk inserts, whose texts and parameter counts vary). The accept
    statement never changes but has 58 to 95 parameters and 2.9 to 4.7 KB (keyed, live, with a status callback:
    the most). Converted anew it took ~100 us against 0.15 from the cache, and a keyed POST /v1/messages x1.11
    the CPU (`manage.py bench_internals`, December 2026, 2 shared cores: x1.107, x1.120, x1.112 in three runs).
    The bounds are private module constants psycopg reads at each call; tests/test_db.py fails when the accept
    statement is no longer served from the cache. Statements over 200 parameters stay out, and the cache keeps
    128 at most."""
    from psycopg import _queries

    _queries.MAX_CACHED_STATEMENT_PARAMS = max(getattr(_queries, "MAX_CACHED_STATEMENT_PARAMS", 0), 200)
    _queries.MAX_CACHED_STATEMENT_LENGTH = max(getattr(_queries, "MAX_CACHED_STATEMENT_LENGTH", 0), 16384)


def postgresql_tuned(sender, connection, **kwargs) -> None:
    """`connection_created`: two of psycopg's own fast paths that Django's defaults leave unused.

    - Lists travel as binary arrays. Django's bulk inserts pass each column as one array (`unnest`), and
      psycopg's text format escapes every element with a regular expression: for a batch of JSON payloads,
      full of quotes, that was over a third of a send worker's CPU.
    - Times are read by psycopg's compiled loader. Django reads `timestamptz` with a Python subclass of
      psycopg's Python loader, to attach its time zone; in UTC, the zone the compiled loader attaches is that
      same `datetime.timezone.utc`. Parsing times in Python was a tenth of applying a batch of reports.
    """
    from psycopg.types.array import ListBinaryDumper

    connection.connection.adapters.register_dumper(list, ListBinaryDumper)
    if connection.timezone_name == "UTC" and settings.USE_TZ:
        psycopg_connection = connection.connection
        psycopg_connection.cursor_factory = _with_compiled_time_loader(psycopg_connection.cursor_factory)
        psycopg_connection.server_cursor_factory = _with_compiled_time_loader(psycopg_connection.server_cursor_factory)


@functools.cache
def _with_compiled_time_loader(cursor_class: type) -> type:
    from psycopg import adapters
    from psycopg.pq import Format

    oid = adapters.types["timestamptz"].oid
    compiled = adapters.get_loader(oid, Format.TEXT)  # psycopg_binary's, where it is installed
    if not compiled.__module__.startswith("psycopg_binary"):
        return cursor_class

    class Cursor(cursor_class):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            # On the cursor: Django's check of the connection's loader (`create_cursor`) still finds its own.
            self.adapters.register_loader(oid, compiled)

    return Cursor
