"""Bulk exports of messages and events, in bounded memory and, task by task, bounded time.

Rows are read in key order, a chunk at a time (`_rows`), built by the API's own builder
(`messaging.representation`), and written line by line to a temporary file that the `exports` storage
then takes in chunks: memory stays flat whatever the size. A task writes for at most
`MITTIS_EXPORT_SLICE_SECONDS`, stores what it wrote as the next part of the file, checkpoints (the last key
written) and enqueues the next slice (`export_slice`): time stays bounded whatever the size too. The parts are
served one after the other, byte for byte the file one task would have written; no step copies them into one.

CSV columns are the API object's fields in the API's order. Cells: null is empty, booleans are
`true`/`false`, objects and lists (`metadata`, `attempts`, an event's `data`) are JSON. NDJSON lines
are the API objects exactly. With `csv_safe`, a text cell that a spreadsheet would take for a formula gets a
leading `'` (OWASP's advice on CSV injection); the default keeps every cell exact.

A message redacted after an export's file was written is redacted in the file too: the redaction marks the
exports whose range may hold it (`exports_mark_redacted`), and the file is re-written without its body
(`export_scrub`), keeping its export's id; until then it is not served.
"""

from collections.abc import Iterable, Iterator
import csv
from datetime import timedelta
import hashlib
import io
import itertools
import json
import logging
import operator
import os
import tempfile
import time
import zlib

from django.conf import settings
from django.core.files import File
from django.core.files.storage import storages
from django.db import connection, connections, transaction
from django.db.models import F, Q
from django.utils import timezone

from messaging import selectors
from messaging.models import Export, Message
from messaging.representation import MESSAGE_FIELDS, messages_json
from messaging.serializers import MessageSerializer
from mittis.celery import enqueue
from mittis.replica import primary_position, replica_reads
from mittis.errors import DomainError
from webhooks.models import Event

logger = logging.getLogger(__name__)

CHUNK_ROWS = 2000  # rows per query
PROGRESS_EVERY = 10_000  # rows between progress writes

MESSAGE_COLUMNS = list(MessageSerializer().get_fields())
EVENT_COLUMNS = ["object", "id", "type", "created_at", "livemode", "sequence", "data"]
# OWASP's CSV injection list: a cell beginning with one of these is a formula to a spreadsheet.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
# An export pending or running that has not moved for this long lost its task: longer than Redis takes to give back
# a killed worker's task (the visibility timeout, 5 min) and than a slice waits behind a few others' on the exports
# queue. A copy enqueued early costs nothing: whichever of the two runs second finds its slice written.
STALLED_AFTER = timedelta(minutes=15)
BUSY_RETRY_AFTER = 30  # seconds to wait for a free export slot: about what an export of a busy day takes
SCRUB_ROUNDS = 3  # re-writes of one file in one go, when redactions keep arriving while it is re-written


def export_storage():
    return storages["exports"]


class TooManyExports(DomainError):
    def __init__(self, at_once: int):
        super().__init__("too_many_exports", f"{at_once} of your exports are already pending or running, the most "
                                             "at once; start this one when one of them has finished.")


def export_create(*, account, livemode: bool, type: str, format: str, start, end, filters: dict,
                  csv_safe: bool = False, created_by: str = "") -> Export:
    """An export, run by a worker once committed. An account runs at most `MITTIS_EXPORTS_AT_ONCE` exports at once
    in each mode (pending or running); beyond that, `TooManyExports`. Staff exports (`created_by`) are never
    refused, and count. The count and the insert hold a lock of the account's exports (a transaction-scoped
    advisory lock, which nothing else waits on), so two requests at the limit cannot both pass."""
    with transaction.atomic():
        if not created_by:
            _lock_exports_of(account.pk, livemode)
            at_once = settings.MITTIS_EXPORTS_AT_ONCE
            if Export.objects.filter(account=account, livemode=livemode,
                                     status__in=[Export.PENDING, Export.RUNNING]).count() >= at_once:
                raise TooManyExports(at_once)
        export = Export.objects.create(account=account, livemode=livemode, type=type, format=format, start=start,
                                       end=end, filters=filters, csv_safe=csv_safe, created_by=created_by)
        transaction.on_commit(lambda: enqueue("messaging.run_export", args=(export.pk,)))
    return export


def _lock_exports_of(account_id: int, livemode: bool) -> None:
    material = f"exports:{account_id}:{livemode}".encode()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)",
                       [int.from_bytes(hashlib.sha256(material).digest()[:8], "big", signed=True)])


def _source(export: Export):
    """The export's rows in key order: messages, or events."""
    if export.type == Export.MESSAGES:
        return selectors.message_list(
            account=export.account, livemode=export.livemode, status=export.filters.get("status"),
            direction=export.filters.get("direction"), created_gte=export.start, created_lt=export.end,
        ).order_by("pk")
    events = Event.objects.filter(account=export.account, livemode=export.livemode, created_at__gte=export.start,
                                  created_at__lt=export.end)
    if export.filters.get("event_type"):
        events = events.filter(type=export.filters["event_type"])
    return events.order_by("pk")


def _rows(export: Export, *, after: int) -> Iterator[tuple[int, dict | str]]:
    """(key, row) of the rows after key `after`: message objects (dicts) or event payloads (JSON text). Read a chunk
    at a time, each chunk a query of its own from the key where the one before ended (keyset pagination), an index
    range: no cursor is held, as a server-side cursor outside a transaction is WITH HOLD, which PostgreSQL fills
    with every remaining row before it gives the first, each slice again. As plain values, with each chunk's
    attempts in one query: no model instances, which are most of an ORM read's cost at this volume."""
    source = _source(export)
    while True:
        after_key = source.filter(pk__gt=after)
        if export.type == Export.MESSAGES:
            chunk = _planned_for_its_values(after_key.values(*MESSAGE_FIELDS)[:CHUNK_ROWS])
            keys = [values["id"] for values in chunk]
            yield from zip(keys, messages_json(chunk))
        else:
            chunk = _planned_for_its_values(after_key.values_list("pk", "payload")[:CHUNK_ROWS])
            keys = [key for key, _ in chunk]
            yield from chunk
        if len(chunk) < CHUNK_ROWS:
            return
        after = keys[-1]


def _planned_for_its_values(query) -> list:
    """The rows of `query`, planned for its own values. Prepared (DATABASE_PREPARE_THRESHOLD), a statement is soon
    planned once for any values, and for a `created_at` range it cannot see PostgreSQL guesses a narrow one: it reads
    the whole range through message_created_idx and sorts it, for every chunk (180 ms a chunk at 300,000 messages,
    against 1 ms for the key's index range)."""
    alias = query.db  # the replica or the primary, as the router says now
    with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
        cursor.execute("SET LOCAL plan_cache_mode = force_custom_plan")  # until the transaction's end
        return list(query.using(alias))


def export_run(*, export_id: int, after: int = 0) -> Export | None:
    """Write the export's next slice, the rows after key `after` (`run_export`'s task), and enqueue the slice after
    it; the slice that reaches the end marks the export succeeded. Returns the export, or None when this slice was
    not this task's to write (see `export_slice`)."""
    export, more = export_slice(export_id=export_id, after=after)
    if more:
        enqueue("messaging.run_export", args=(export_id, export.last_key))
    return export


def export_slice(*, export_id: int, after: int = 0) -> tuple[Export | None, bool]:
    """Write the rows after key `after` for at most `MITTIS_EXPORT_SLICE_SECONDS` as the next part of the export's
    file, then checkpoint: (the export, whether rows remain). Its task fits the worker's time limit however large
    the export; each slice goes to the back of the exports queue, so a large export never holds up a small one.

    The first slice claims the export, pending -> running. A slice is written only when the checkpoint is still at
    `after`, and the checkpoint (last key, rows, part, bytes) is written only after the part is in storage, by a
    conditional update on `after`: a task delivered twice (acks_late after a worker was killed, or the sweep's copy)
    writes at most one part of that slice, and a worker killed mid-slice leaves the checkpoint where it was, to be
    resumed from there, without a row lost or written twice. None when the export has finished, failed, or moved
    past `after` (a duplicate task).

    The claim forgets redactions marked while the export was pending (its rows are read after they committed:
    the claim waits for a marking's transaction); one marked while it runs is applied to the file at the end."""
    deadline = time.monotonic() + settings.MITTIS_EXPORT_SLICE_SECONDS
    if after == 0:
        Export.objects.filter(pk=export_id, status=Export.PENDING).update(status=Export.RUNNING, redactions_pending=0,
                                                                         moved_at=timezone.now())
    export = Export.objects.select_related("account").filter(pk=export_id).first()
    if export is None or export.status != Export.RUNNING or export.last_key != after:
        return None, False
    first, part, size = not export.file_parts, None, 0
    try:
        # From the replica once it has replayed the claim: the rows then reflect every redaction the claim forgot.
        with replica_reads(after=primary_position()), tempfile.TemporaryFile(mode="w+b") as spool:
            total = _source(export).count() if first else export.row_total
            text = io.TextIOWrapper(spool, encoding="utf-8", newline="")
            written, last_key, more = _write(export, _rows(export, after=after), text, total=total, header=first,
                                             before=export.row_count, deadline=deadline)
            text.flush()
            if written or first:  # an empty export is its header (CSV) or nothing, as a file all the same
                spool.seek(0)
                part = export_storage().save(_part_name(export, len(export.file_parts)), File(spool))
                _make_durable(part)
                size = export_storage().size(part)
            text.detach()
    except Exception as failure:
        logger.exception("export %s failed", export.public_id)
        _fail(export_id, failure, part)
        return Export.objects.get(pk=export_id), False
    now = timezone.now()
    rows = export.row_count + written
    checkpoint = {"last_key": last_key or after, "row_count": rows, "row_total": total, "moved_at": now,
                  "file_parts": [*export.file_parts, part] if part else export.file_parts,
                  "file_size": export.file_size + size,
                  "progress": min(99, rows * 100 // total) if total else 0}
    if not more:
        checkpoint.update(status=Export.SUCCEEDED, progress=100, completed_at=now,
                          expires_at=now + timedelta(days=settings.MITTIS_EXPORT_DAYS))
    if not Export.objects.filter(pk=export_id, status=Export.RUNNING, last_key=after).update(**checkpoint):
        if part:  # another task wrote this slice meanwhile (a duplicate): its part is the file's
            export_storage().delete(part)
        return None, False
    export = Export.objects.get(pk=export_id)
    if not more and export.redactions_pending:  # a message in its range was redacted while its rows were read
        return export_scrub(export_id=export_id), False
    return export, more


def _part_name(export: Export, index: int) -> str:
    suffix = f".part{index}" if index else ""
    return f"{export.account.public_id}/{export.public_id}{suffix}.{export.format}"


def _make_durable(name: str) -> None:
    """A local file's bytes on disk before its checkpoint commits (a remote storage's upload has returned)."""
    try:
        path = export_storage().path(name)
    except NotImplementedError:
        return
    for target, flags in ((path, os.O_RDONLY), (os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY)):
        descriptor = os.open(target, flags)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _fail(export_id: int, failure: Exception, part: str | None) -> None:
    """Mark the export failed and delete its parts. A failure of a duplicate task fails the export too: whatever
    failed (the storage, the database) is the export's."""
    with transaction.atomic():
        export = Export.objects.select_for_update().filter(pk=export_id, status=Export.RUNNING).first()
        if export:
            Export.objects.filter(pk=export_id).update(status=Export.FAILED, error=str(failure)[:300],
                                                       completed_at=timezone.now(), file_parts=[], file_size=0)
    for name in {*(export.file_parts if export else []), *([part] if part else [])}:
        export_storage().delete(name)


def _write(export: Export, rows, out, *, total: int, header: bool, before: int,
           deadline: float) -> tuple[int, int | None, bool]:
    """Write `rows` ((key, row) pairs) to `out` until they end or `deadline` (time.monotonic()) passes, after at
    least one row: (rows written, the last one's key, whether rows may remain). `before`: rows in earlier slices."""
    columns = MESSAGE_COLUMNS if export.type == Export.MESSAGES else EVENT_COLUMNS
    writer = csv.writer(out) if export.format == Export.CSV else None
    if writer:
        if header:
            writer.writerow(columns)
        cells_of = operator.itemgetter(*columns)
    written, key, clock = 0, None, time.monotonic
    for key, row in rows:
        if export.format == Export.NDJSON:
            out.write(row if isinstance(row, str) else _compact_json(row))
            out.write("\n")
        else:
            obj = json.loads(row) if isinstance(row, str) else row
            # The csv module writes text, numbers and None (empty) as they are: only the rest pay for a call.
            cells = [csv_cell(cell) if cell.__class__ in _NOT_CSV_READY else cell for cell in cells_of(obj)]
            writer.writerow([spreadsheet_safe(cell) for cell in cells] if export.csv_safe else cells)
        written += 1
        if written % PROGRESS_EVERY == 0 and total:
            Export.objects.filter(pk=export.pk).update(progress=min(99, (before + written) * 100 // total))
        if clock() >= deadline:
            return written, key, True
    return written, key, False


def csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        if not value:  # most rows' attempts: no encoder call for `[]`
            return "{}" if isinstance(value, dict) else "[]"
        return _compact_json(value)
    return str(value)


def spreadsheet_safe(cell):
    """A text cell that a spreadsheet would evaluate (`=HYPERLINK(…)`, `+1…`, `-2+3`, `@SUM(…)`), made text with a
    leading `'`; anything else as it is. Phone numbers (`+1804…`) are among those changed: see `csv_safe`."""
    return "'" + cell if cell.__class__ is str and cell.startswith(FORMULA_TRIGGERS) else cell


_NOT_CSV_READY = frozenset({bool, dict, list})
_compact_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def export_file_chunks(export: Export, *, gzip: bool, chunk_size: int = 64 * 1024) -> Iterator[bytes]:
    """The file, its parts one after the other, streamed from storage; gzipped on the fly when asked."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31) if gzip else None  # wbits 31: the gzip container
    for part in export.file_parts:
        with export_storage().open(part, "rb") as handle:
            while chunk := handle.read(chunk_size):
                yield compressor.compress(chunk) if compressor else chunk
    if compressor:
        yield compressor.flush()


def exports_delete_expired() -> int:
    """Delete the files of exports past `expires_at` (a beat task); the export objects stay, marked."""
    deleted = 0
    now = timezone.now()
    for export in Export.objects.filter(expires_at__lte=now, file_deleted_at__isnull=True).exclude(file_parts=[]):
        for part in export.file_parts:
            export_storage().delete(part)
        Export.objects.filter(pk=export.pk).update(file_deleted_at=now)
        deleted += 1
    return deleted


def exports_resume_stalled() -> list[int]:
    """Enqueue again the next slice of every export pending or running that has not moved for STALLED_AFTER (a
    beat task): its task was published while the broker was down. Each is stamped as moved, so that one waiting
    long in the queue gains at most one copy per STALLED_AFTER. Returns their ids."""
    now = timezone.now()
    stalled = Export.objects.filter(status__in=[Export.PENDING, Export.RUNNING], moved_at__lt=now - STALLED_AFTER)
    resumed = []
    for export_id, last_key, moved_at in stalled.values_list("pk", "last_key", "moved_at"):
        if Export.objects.filter(pk=export_id, last_key=last_key, moved_at=moved_at).update(moved_at=now):
            enqueue("messaging.run_export", args=(export_id, last_key))
            resumed.append(export_id)
    return resumed


# --- Redaction: bodies removed from the files that hold them ------------------------------------------------------
def exports_mark_redacted(*, account_id: int, livemode: bool, created_at) -> list[int]:
    """Mark the account's exports whose file may hold a message created at `created_at`, as it is redacted: those
    of messages whose range has it, and those of events that end after it (its events come after it). Call in
    the redaction's transaction: the marks commit with it. Pending and running exports are marked too (their
    rows may have been read before the redaction committed; `export_run` settles them). Returns the exports
    whose file is written already, to re-write once committed (`export_scrub`)."""
    may_hold = (Export.objects.filter(account_id=account_id, livemode=livemode, end__gt=created_at,
                                      status__in=[Export.PENDING, Export.RUNNING, Export.SUCCEEDED],
                                      file_deleted_at__isnull=True)
                .filter(Q(type=Export.EVENTS) | Q(start__lte=created_at)))
    # Locked in id order, as every redaction locks them: two redactions of one account never deadlock.
    marked = list(may_hold.select_for_update().order_by("pk").values_list("pk", "status"))
    if marked:
        Export.objects.filter(pk__in=[pk for pk, _ in marked]).update(redactions_pending=F("redactions_pending") + 1)
    return [pk for pk, status in marked if status == Export.SUCCEEDED]


def exports_scrub_enqueue(export_ids: Iterable[int]) -> None:
    for export_id in export_ids:
        enqueue("messaging.scrub_export", args=(export_id,))


def exports_scrub_pending() -> int:
    """Enqueue the re-write of every written file with redactions pending (a beat task: a lost task's work)."""
    pending = list(Export.objects.filter(redactions_pending__gt=0, status=Export.SUCCEEDED,
                                         file_deleted_at__isnull=True).values_list("pk", flat=True))
    exports_scrub_enqueue(pending)
    return len(pending)


def export_scrub(*, export_id: int) -> Export:
    """Re-write the export's file with the bodies of messages redacted since it was written removed, as a new
    export would show them (`body` null, `redacted_at` set); every other byte as it was. The export keeps its id,
    its download URL and its `created_at`; `rewritten_at` says when.

    Without locks: the re-written file, one part, replaces the old one only if no other re-write replaced it
    meanwhile (the list of the file's parts is its version), and the redactions it applied are subtracted from the count, so one marked
    meanwhile leaves it above zero and goes round again."""
    for _ in range(SCRUB_ROUNDS):
        export = Export.objects.select_related("account").get(pk=export_id)
        if not export.redactions_pending or export.status != Export.SUCCEEDED or export.file_deleted_at:
            return export
        seen, old_parts = export.redactions_pending, export.file_parts
        rewritten = _scrubbed_file(export)
        updates = {"redactions_pending": F("redactions_pending") - seen}
        if rewritten:
            updates.update(file_parts=[rewritten[0]], file_size=rewritten[1], rewritten_at=timezone.now())
        if Export.objects.filter(pk=export_id, file_parts=old_parts, file_deleted_at__isnull=True).update(**updates):
            if rewritten:
                for part in old_parts:
                    export_storage().delete(part)
        elif rewritten:
            export_storage().delete(rewritten[0])
    return Export.objects.get(pk=export_id)


def _scrubbed_file(export: Export) -> tuple[str, int] | None:
    """(the new file's name, its size), or None when no row of the file holds a body now redacted."""
    with tempfile.TemporaryFile(mode="w+b") as original, tempfile.TemporaryFile(mode="w+b") as spool:
        for chunk in export_file_chunks(export, gzip=False):  # a local copy: any storage, read as text
            original.write(chunk)
        original.seek(0)
        source = io.TextIOWrapper(original, encoding="utf-8", newline="" if export.format == Export.CSV else "\n")
        out = io.TextIOWrapper(spool, encoding="utf-8", newline="")
        changed = _scrub_rows(export, source, out)
        out.flush()
        if not changed:
            return None
        spool.seek(0)
        name = export_storage().save(_part_name(export, 0), File(spool))
        out.detach()
        source.detach()
        return name, export_storage().size(name)


def _scrub_rows(export: Export, source, out) -> int:
    """Copy the rows of `source` to `out`, those of a message now redacted without its body; returns how many."""
    if export.format == Export.CSV:
        rows, writer = csv.reader(source), csv.writer(out)
        header = next(rows)
        writer.writerow(header)
        write = writer.writerow
    else:
        rows, header, write = source, None, out.write
    holder = _body_holder(export, header)
    changed = 0
    while chunk := list(itertools.islice(rows, CHUNK_ROWS)):
        held = [holder(row) for row in chunk]
        redacted = _redacted_at_of(export, [message_id for message_id, _ in filter(None, held)])
        for row, holds in zip(chunk, held):
            if holds is not None and holds[0] in redacted:
                row = holds[1](redacted[holds[0]])
                changed += 1
            write(row)
    return changed


def _body_holder(export: Export, header: list[str] | None):
    """row -> None for a row that holds no body, else (its message's id, stamp -> the row without the body, as a
    new export would write it)."""
    messages = export.type == Export.MESSAGES
    if header is not None and messages:
        at_id, at_body, at_redacted = header.index("id"), header.index("body"), header.index("redacted_at")

        def holder(row):
            if not row[at_body]:
                return None

            def scrubbed(stamp):
                row[at_body], row[at_redacted] = "", stamp
                return row
            return row[at_id], scrubbed
        return holder
    at_data = header.index("data") if header is not None else None

    def holder(row):
        obj = json.loads(row if at_data is None else row[at_data])  # an event's `data` is the message
        message = obj if messages or at_data is not None else obj.get("data")
        if not isinstance(message, dict) or message.get("object") != "message" or message.get("body") is None:
            return None

        def scrubbed(stamp):
            message.update(body=None, redacted_at=stamp)  # as the redaction changes the message's events
            if at_data is None:
                return _compact_json(obj) + "\n"
            row[at_data] = _compact_json(message)
            return row
        return message["id"], scrubbed
    return holder


def _redacted_at_of(export: Export, message_ids: list[str]) -> dict[str, str]:
    """{message id: its redaction's time, as the API writes it} for those of `message_ids` now redacted."""
    if not message_ids:
        return {}
    return {public_id: redacted_at.strftime("%Y-%m-%dT%H:%M:%SZ") for public_id, redacted_at in Message.objects.filter(
        account_id=export.account_id, livemode=export.livemode, public_id__in=message_ids,
        redacted_at__isnull=False).values_list("public_id", "redacted_at")}
