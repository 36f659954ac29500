"""Bulk exports of messages and events, in bounded memory.

Rows are read with a server-side cursor (`QuerySet.iterator`), built by the API's own builder
(`messaging.representation`), and written line by line to a temporary file that the `exports` storage
then takes in chunks: memory stays flat whatever the size.

CSV columns are the API object's fields in the API's order. Cells: null is empty, booleans are
`true`/`false`, objects and lists (`metadata`, `attempts`, an event's `data`) are JSON. NDJSON lines
are the API objects exactly.
"""

from collections.abc import Iterator
import csv
from datetime import timedelta
import io
import json
import logging
import operator
import tempfile
import zlib

from django.conf import settings
from django.core.files import File
from django.core.files.storage import storages
from django.db import transaction
from django.utils import timezone

from messaging import selectors
from messaging.models import Export
from messaging.representation import MESSAGE_FIELDS, messages_json
from messaging.serializers import MessageSerializer
from mittis.celery import enqueue
from webhooks.models import Event

logger = logging.getLogger(__name__)

CHUNK_ROWS = 2000  # rows per database round trip
PROGRESS_EVERY = 10_000  # rows between progress writes

MESSAGE_COLUMNS = list(MessageSerializer().get_fields())
EVENT_COLUMNS = ["object", "id", "type", "created_at", "livemode", "sequence", "data"]


def export_storage():
    return storages["exports"]


def export_create(*, account, livemode: bool, type: str, format: str, start, end, filters: dict,
                  created_by: str = "") -> Export:
    with transaction.atomic():
        export = Export.objects.create(account=account, livemode=livemode, type=type, format=format, start=start,
                                       end=end, filters=filters, created_by=created_by)
        transaction.on_commit(lambda: enqueue("messaging.run_export", args=(export.pk,)))
    return export


def _rows(export: Export) -> tuple[int, Iterator[dict | str]]:
    """The row count and the rows: message objects (dicts) or event payloads (JSON text)."""
    if export.type == Export.MESSAGES:
        messages = selectors.message_list(
            account=export.account, livemode=export.livemode, status=export.filters.get("status"),
            direction=export.filters.get("direction"), created_gte=export.start, created_lt=export.end,
        ).order_by("pk")
        total = messages.count()
        rows = _message_rows(messages)
        return total, rows
    events = Event.objects.filter(account=export.account, livemode=export.livemode, created_at__gte=export.start,
                                  created_at__lt=export.end)
    if export.filters.get("event_type"):
        events = events.filter(type=export.filters["event_type"])
    events = events.order_by("pk")
    return events.count(), (payload for payload in events.values_list("payload", flat=True).iterator(chunk_size=CHUNK_ROWS))


def _message_rows(messages) -> Iterator[dict]:
    """Rows as plain values, a chunk at a time (a server-side cursor), with each chunk's attempts in one
    query: no model instances, which are most of an ORM read's cost at this volume."""
    chunk = []
    for values in messages.values(*MESSAGE_FIELDS).iterator(chunk_size=CHUNK_ROWS):
        chunk.append(values)
        if len(chunk) == CHUNK_ROWS:
            yield from messages_json(chunk)
            chunk = []
    yield from messages_json(chunk)


def export_run(*, export_id: int) -> Export | None:
    """Write the export's file. Claimed pending -> running, so a duplicate task does nothing."""
    if not Export.objects.filter(pk=export_id, status=Export.PENDING).update(status=Export.RUNNING):
        return None
    export = Export.objects.select_related("account").get(pk=export_id)
    try:
        total, rows = _rows(export)
        with tempfile.TemporaryFile(mode="w+b") as spool:
            text = io.TextIOWrapper(spool, encoding="utf-8", newline="")
            written = _write(export, rows, text, total)
            text.flush()
            spool.seek(0)
            name = export_storage().save(f"{export.account.public_id}/{export.public_id}.{export.format}", File(spool))
            size = export_storage().size(name)
            text.detach()
    except Exception as failure:
        logger.exception("export %s failed", export.public_id)
        Export.objects.filter(pk=export_id).update(status=Export.FAILED, error=str(failure)[:300],
                                                   completed_at=timezone.now())
        return Export.objects.get(pk=export_id)
    now = timezone.now()
    Export.objects.filter(pk=export_id).update(
        status=Export.SUCCEEDED, progress=100, row_count=written, file_name=name, file_size=size, completed_at=now,
        expires_at=now + timedelta(days=settings.MITTIS_EXPORT_DAYS))
    return Export.objects.get(pk=export_id)


def _write(export: Export, rows, out, total: int) -> int:
    columns = MESSAGE_COLUMNS if export.type == Export.MESSAGES else EVENT_COLUMNS
    writer = csv.writer(out) if export.format == Export.CSV else None
    if writer:
        writer.writerow(columns)
        cells_of = operator.itemgetter(*columns)
    written = 0
    for row in rows:
        if export.format == Export.NDJSON:
            out.write(row if isinstance(row, str) else _compact_json(row))
            out.write("\n")
        else:
            obj = json.loads(row) if isinstance(row, str) else row
            # The csv module writes text, numbers and None (empty) as they are: only the rest pay for a call.
            writer.writerow([csv_cell(cell) if cell.__class__ in _NOT_CSV_READY else cell for cell in cells_of(obj)])
        written += 1
        if written % PROGRESS_EVERY == 0 and total:
            Export.objects.filter(pk=export.pk).update(progress=min(99, written * 100 // total), row_count=written)
    return written


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


_NOT_CSV_READY = frozenset({bool, dict, list})
_compact_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def export_file_chunks(export: Export, *, gzip: bool, chunk_size: int = 64 * 1024) -> Iterator[bytes]:
    """The file, streamed from storage; gzipped on the fly when asked."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31) if gzip else None  # wbits 31: the gzip container
    with export_storage().open(export.file_name, "rb") as handle:
        while chunk := handle.read(chunk_size):
            yield compressor.compress(chunk) if compressor else chunk
    if compressor:
        yield compressor.flush()


def exports_delete_expired() -> int:
    """Delete the files of exports past `expires_at` (a beat task); the export objects stay, marked."""
    deleted = 0
    now = timezone.now()
    for export in Export.objects.filter(expires_at__lte=now, file_deleted_at__isnull=True).exclude(file_name=""):
        export_storage().delete(export.file_name)
        Export.objects.filter(pk=export.pk).update(file_deleted_at=now)
        deleted += 1
    return deleted
