"""`make bench --preload`'s measuring tools: a median of in-process runs, a dispatcher's claim undone, the
database's sizes."""

import statistics
import time

from django.db import connection, transaction

from messaging.services.dispatch import DISPATCH_BATCH

SWEEP_RUNS = 7  # runs of each sweep and of the claim, in-process; the median is printed


def hours_or_minutes(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 7200 else f"{seconds / 60:.1f} min"


def median_ms(run, times: int = SWEEP_RUNS) -> float:
    """The median wall time of `run()` over `times` runs, in milliseconds."""
    elapsed = []
    for _ in range(times):
        started = time.perf_counter()
        run()
        elapsed.append((time.perf_counter() - started) * 1000)
    return statistics.median(elapsed)


def claim_rolled_back() -> None:
    """A dispatcher's claim of a batch, undone: the claim reads as a dispatcher's does and changes nothing."""
    from messaging.services.dispatch import _claim_batch

    with transaction.atomic():
        _claim_batch(DISPATCH_BATCH)
        transaction.set_rollback(True)


def database_sizes() -> list[str]:
    """The database's size, its bytes per message, and its largest tables and indexes."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_database_size(current_database()), (SELECT count(*) FROM messaging_message)")
        size, messages = cursor.fetchone()
        lines = [f"database: {size / 2**30:.2f} GiB for {messages:,} messages, {size / messages:,.0f} bytes per message"]
        # A partitioned table's (and index's) months added up under its own name.
        cursor.execute("SELECT coalesce(p.relname, c.relname), sum(pg_total_relation_size(c.oid)), "
                       "sum(pg_relation_size(c.oid)) FROM pg_class c LEFT JOIN pg_inherits i ON i.inhrelid = c.oid "
                       "LEFT JOIN pg_class p ON p.oid = i.inhparent WHERE c.relkind = 'r' "
                       "AND c.relnamespace = 'public'::regnamespace GROUP BY 1 ORDER BY 2 DESC LIMIT 8")
        lines += [f"  table {name}: {total / 2**20:,.0f} MiB with its indexes and TOAST ({heap / 2**20:,.0f} MiB heap), "
                  f"{total / messages:,.0f} bytes per message" for name, total, heap in cursor.fetchall()]
        cursor.execute("SELECT coalesce(p.relname, c.relname), sum(pg_relation_size(c.oid)) FROM pg_class c "
                       "LEFT JOIN pg_inherits i ON i.inhrelid = c.oid LEFT JOIN pg_class p ON p.oid = i.inhparent "
                       "WHERE c.relkind = 'i' AND c.relnamespace = 'public'::regnamespace GROUP BY 1 "
                       "ORDER BY 2 DESC LIMIT 8")
        lines += [f"  index {name}: {total / 2**20:,.0f} MiB" for name, total in cursor.fetchall()]
    return lines


def month_freed() -> tuple[float, str, str]:
    """Drop the oldest month of every partitioned table, as the daily task does once it ages out:
    (seconds, "s", what it held)."""
    from mittis.ops.tasks import partitioned_tables
    from mittis.partitions import next_month, partitions, partitions_drop_before

    tables = partitioned_tables()
    oldest = min(min(partitions(p.table)) for p in tables)
    names = [partitions(p.table).get(oldest) for p in tables]
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(sum(reltuples), 0), coalesce(sum(pg_total_relation_size(oid)), 0) "
                       "FROM pg_class WHERE relname = ANY(%s)", [[name for name in names if name]])
        rows, size = cursor.fetchone()
    started = time.monotonic()
    for partitioned in tables:
        partitions_drop_before(partitioned, next_month(oldest))
    seconds = time.monotonic() - started
    return seconds, "s", f"{oldest:%Y-%m}: {rows:,.0f} rows, {size / 2**20:,.0f} MiB, in {len(tables)} tables"


def growth_table(growth: list[tuple]) -> list[str]:
    """The lines of the preload's table: (name, the empty figure or None, the grown figure) rows, each figure
    (value, unit, its ratio to R1 or None, or a note in its place for the rows measured once)."""
    rows = [("measurement", "empty", "preloaded", "ratio")]
    for name, (value, unit, relative), (grown, grown_unit, grown_relative) in (
            (name, empty or (0, "", None), grown) for name, empty, grown in growth):
        if isinstance(grown_relative, str):  # retention, the month freed: a note, not a ratio
            rows.append((name, "", f"{grown:,.{3 if grown_unit == 'x R1' else 1}f} {grown_unit}", grown_relative))
        elif relative is not None:
            rows.append((name, f"{value:,.0f} {unit} ({relative:.3f} x R1)",
                         f"{grown:,.0f} {grown_unit} ({grown_relative:.3f} x R1)",
                         f"{grown_relative / relative:.2f} (x R1)"))
        else:
            precision = 0 if unit == "req/s" else 2
            rows.append((name, f"{value:,.{precision}f} {unit}", f"{grown:,.{precision}f} {unit}",
                         f"{grown / value:.2f}" if value else ""))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    return [lines[0], "-" * (sum(widths) + 9), *lines[1:]]
