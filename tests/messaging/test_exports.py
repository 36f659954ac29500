"""Exports: the account's messages and events as CSV or NDJSON files, field for field the API's objects."""

import csv
from datetime import timedelta
import gzip
import io
import json

from django.utils import timezone
import pytest
from rest_framework.test import APIClient
import time_machine

from messaging.carriers.base import DeliveryReport, InboundSms
from messaging.exports import (
    EVENT_COLUMNS, MESSAGE_COLUMNS, export_run, export_scrub, exports_delete_expired, spreadsheet_safe,
)
from messaging.models import Export, Message
from messaging.services import message_apply_delivery_report, message_receive, message_redact, message_send
from tests.conftest import SEED, drain_queued_tasks, in_process_worker
from tests.factories import AccountFactory, SenderFactory, api_key_for

AWKWARD_BODIES = [
    'Plain text', 'Commas, "quotes", and\nnew lines\r\nof every kind', "Ünïcödé — 日本語 — 😀 emoji",
    "€ and {braces} and [brackets] ~ | ^ \\", "=SUM(A1:A9) looks like a formula",
]


@pytest.fixture
def history(api, account):
    """Messages of every shape, sent, delivered or received, plus one redacted."""
    ids = []
    for n, body in enumerate(AWKWARD_BODIES):
        created = api.post("/v1/messages", {**SEED, "body": body, "metadata": {"order": f"A-{n}", "note": "x,y"}},
                           format="json").json()
        message = Message.objects.get(public_id=created["id"])
        message_send(message_id=message.pk)
        message.refresh_from_db()
        message_apply_delivery_report(carrier=message.carrier, report=DeliveryReport(
            message.carrier_message_id, "delivered", carrier_status="DELIVRD"))
        ids.append(created["id"])
    message_receive(carrier="sandbox", inbound=InboundSms(sender="+18045550199", to=SEED["from"], body="Thanks!"))
    message_redact(message=Message.objects.get(public_id=ids[0]))
    return ids


def window():
    now = timezone.now()
    return {"start": (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")}


def run(api, **fields) -> dict:
    """Start an export through the API and run its task (the worker's part)."""
    response = api.post("/v1/exports", {**window(), **fields}, format="json")
    assert response.status_code == 202, response.json()
    export_run(export_id=Export.objects.get(public_id=response.json()["id"]).pk)
    return api.get(f"/v1/exports/{response.json()['id']}").json()


def download(api, export, **headers) -> bytes:
    response = api.get(f"/v1/exports/{export['id']}/download", **headers)
    assert response.status_code == 200
    return b"".join(response.streaming_content)


def api_messages(api) -> list[dict]:
    return list(reversed(api.get("/v1/messages?limit=100").json()["data"]))  # oldest first, like the file


def from_csv_cell(value: str, column: str):
    """The documented CSV rules, backwards: empty is null, JSON columns are JSON, flags are true/false."""
    if value == "":
        return None
    if column in ("metadata", "attempts", "data"):
        return json.loads(value)
    if value in ("true", "false") and column in ("livemode", "retryable"):
        return value == "true"
    if column in ("segments", "sequence"):
        return int(value)
    return value


def test_an_ndjson_export_is_the_api_objects_line_for_line(api, history):
    export = run(api, type="messages", format="ndjson")

    assert (export["object"], export["status"], export["progress"], export["row_count"]) == ("export", "succeeded",
                                                                                           100, 6)
    lines = download(api, export).decode().splitlines()
    assert [json.loads(line) for line in lines] == api_messages(api)
    assert json.loads(lines[0])["body"] is None  # the redacted one


def test_a_csv_export_round_trips_through_pythons_csv_module(api, history):
    export = run(api, type="messages", format="csv")

    reader = csv.reader(io.StringIO(download(api, export).decode(), newline=""))
    header, *rows = list(reader)

    assert header == MESSAGE_COLUMNS
    parsed = [{column: from_csv_cell(cell, column) for column, cell in zip(header, row)} for row in rows]
    assert parsed == api_messages(api)
    assert {row["body"] for row in parsed} >= set(AWKWARD_BODIES[1:])


@pytest.mark.parametrize("format", ["ndjson", "csv"])
def test_an_events_export_is_the_events_api(api, history, format):
    export = run(api, type="events", format=format, event_type="message.delivered")

    content = download(api, export).decode()
    expected = list(reversed(api.get("/v1/events?type=message.delivered&limit=100").json()["data"]))
    if format == "ndjson":
        assert [json.loads(line) for line in content.splitlines()] == expected
    else:
        header, *rows = list(csv.reader(io.StringIO(content, newline="")))
        assert header == EVENT_COLUMNS
        assert [{c: from_csv_cell(v, c) for c, v in zip(header, row)} for row in rows] == expected
    assert export["row_count"] == len(expected) == 5


def test_filters_narrow_the_export(api, history):
    inbound = run(api, type="messages", direction="inbound")
    delivered = run(api, type="messages", status="delivered")

    assert inbound["row_count"] == 1 and delivered["row_count"] == 5
    assert json.loads(download(api, inbound))["body"] == "Thanks!"


def test_the_download_is_gzipped_when_asked(api, history):
    export = run(api, type="messages", format="ndjson")

    response = api.get(f"/v1/exports/{export['id']}/download", HTTP_ACCEPT_ENCODING="gzip, deflate")
    compressed = b"".join(response.streaming_content)

    assert response["Content-Encoding"] == "gzip"
    assert gzip.decompress(compressed) == download(api, export)
    assert response["Content-Disposition"] == f'attachment; filename="{export["id"]}.ndjson"'


def test_another_accounts_export_is_404_before_and_after_it_finishes(api, history):
    other = AccountFactory()
    SenderFactory(account=other)
    stranger = APIClient()
    stranger.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(other)}")
    started = api.post("/v1/exports", {**window(), "type": "messages"}, format="json").json()

    for path in ("", "/download"):
        assert stranger.get(f"/v1/exports/{started['id']}{path}").status_code == 404
    export_run(export_id=Export.objects.get(public_id=started["id"]).pk)
    for path in ("", "/download"):
        assert stranger.get(f"/v1/exports/{started['id']}{path}").status_code == 404
    assert stranger.get("/v1/exports").json()["data"] == []
    live = APIClient()
    live.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(Message.objects.first().account, livemode=True)}")
    assert live.get(f"/v1/exports/{started['id']}").status_code == 404  # test and live never mix


def test_a_download_before_the_export_succeeded_is_409_and_after_its_expiry_410(api, history):
    started = api.post("/v1/exports", {**window(), "type": "messages"}, format="json").json()

    early = api.get(f"/v1/exports/{started['id']}/download")
    assert early.status_code == 409 and early.json()["error"]["code"] == "export_not_ready"

    export_run(export_id=Export.objects.get(public_id=started["id"]).pk)
    export = Export.objects.get(public_id=started["id"])
    assert export.expires_at - export.completed_at == timedelta(days=7)
    Export.objects.filter(pk=export.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert exports_delete_expired() == 1

    late = api.get(f"/v1/exports/{started['id']}/download")
    assert late.status_code == 410 and late.json()["error"]["code"] == "export_expired"
    assert api.get(f"/v1/exports/{started['id']}").json()["download_url"] is None
    from messaging.exports import export_storage
    assert export.file_parts and not any(export_storage().exists(part) for part in export.file_parts)


@pytest.mark.parametrize("fields, field", [
    ({"type": "calls"}, "type"), ({"type": "messages", "format": "xlsx"}, "format"),
    ({"type": "messages", "event_type": "message.sent"}, "event_type"),
    ({"type": "events", "status": "delivered"}, "status"),
    ({"type": "messages", "start": "2026-06-02T00:00:00Z", "end": "2026-06-01T00:00:00Z"}, "end"),
])
def test_a_bad_export_request_is_400_naming_the_field(api, fields, field):
    response = api.post("/v1/exports", {**window(), **fields}, format="json")

    assert response.status_code == 400 and response.json()["error"]["field"] == field
    assert not Export.objects.exists()


def test_exports_are_listed_newest_first(api, history):
    first, second = run(api, type="messages"), run(api, type="events")

    assert [e["id"] for e in api.get("/v1/exports").json()["data"]] == [second["id"], first["id"]]


def test_staff_start_an_export_for_an_account_and_see_its_progress(admin_client, api, account, history):
    admin_client.post("/admin/messaging/export/add/", {
        "account": account.pk, "type": "messages", "format": "csv",
        "start_0": "2000-01-01", "start_1": "00:00:00", "end_0": "2100-01-01", "end_1": "00:00:00"})
    export = Export.objects.get()
    assert (export.account, export.livemode, export.created_by, export.status) == (account, False, "admin", "pending")

    export_run(export_id=export.pk)

    page = admin_client.get(f"/admin/messaging/export/{export.pk}/change/").content.decode()
    assert "succeeded" in page and export.public_id in page
    assert api.get(f"/v1/exports/{export.public_id}").json()["row_count"] == 6


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_an_export_runs_on_a_real_worker_from_the_broker():
    import time

    account = AccountFactory()
    SenderFactory(account=account, value=SEED["from"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(account)}")
    for _ in range(3):
        client.post("/v1/messages", SEED, format="json")

    with in_process_worker():
        started = client.post("/v1/exports", {**window(), "type": "messages", "format": "csv"}, format="json").json()
        deadline = time.monotonic() + 20
        while (export := client.get(f"/v1/exports/{started['id']}").json())["status"] != "succeeded":
            assert time.monotonic() < deadline, export
            time.sleep(0.1)

    assert export["row_count"] == 3 and len(download(client, export).decode().splitlines()) == 4



# --- Redaction reaches files written before it -------------------------------------------------------------------
def tasks_named(name: str) -> list[tuple]:
    """The arguments of each task `name` on this run's queue (which is drained)."""
    import ast

    return [ast.literal_eval(task["argsrepr"]) for task in drain_queued_tasks() if task["task"] == name]


def rows_of(content: bytes, format: str) -> list:
    text = content.decode()
    return list(csv.reader(io.StringIO(text, newline=""))) if format == "csv" else text.splitlines()


REDACTED_LATER = AWKWARD_BODIES[2]  # "Ünïcödé — 日本語 — 😀 emoji": in every file below until redacted


@pytest.mark.parametrize("type", ["messages", "events"])
@pytest.mark.parametrize("format", ["ndjson", "csv"])
def test_a_file_written_before_a_redaction_is_rewritten_without_the_body_and_keeps_its_id(
        api, history, type, format, django_capture_on_commit_callbacks):
    export = run(api, type=type, format=format)
    before = download(api, export)
    assert REDACTED_LATER.encode() in before
    drain_queued_tasks()

    with django_capture_on_commit_callbacks(execute=True):
        redacted = api.post(f"/v1/messages/{history[2]}/redact").json()

    busy = api.get(f"/v1/exports/{export['id']}/download")  # until re-written, the file is not served
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "export_not_ready"
    assert tasks_named("messaging.scrub_export") == [(Export.objects.get(public_id=export["id"]).pk,)]
    export_scrub(export_id=Export.objects.get(public_id=export["id"]).pk)  # the task's part

    after = api.get(f"/v1/exports/{export['id']}").json()
    assert (after["id"], after["download_url"], after["row_count"]) == (export["id"], export["download_url"],
                                                                        export["row_count"])
    assert after["rewritten_at"] is not None and export["rewritten_at"] is None
    content = download(api, export)
    assert REDACTED_LATER.encode() not in content and after["size"] == len(content)
    old, new = rows_of(before, format), rows_of(content, format)
    changed = [i for i, (a, b) in enumerate(zip(old, new)) if a != b]
    assert len(old) == len(new) and changed  # one row per object of the message: the rest byte for byte
    for i in changed:
        if format == "csv" and type == "messages":
            row = dict(zip(MESSAGE_COLUMNS, new[i]))
            assert (row["id"], row["body"], row["redacted_at"]) == (history[2], "", redacted["redacted_at"])
        else:
            line = json.loads(new[i] if format == "ndjson" else new[i][EVENT_COLUMNS.index("data")])
            message = line if type == "messages" or format == "csv" else line["data"]
            assert (message["id"], message["body"], message["redacted_at"]) == (
                history[2], None, redacted["redacted_at"])
    if format == "ndjson":  # as a new export shows the message, but for `updated_at` (the redaction's time)
        fresh = [json.loads(line) for line in rows_of(download(api, run(api, type=type, format=format)), format)]
        updated = ("updated_at",) if type == "messages" else ()
        strip = (lambda obj: {k: v for k, v in obj.items() if k not in updated}) if type == "messages" else (
            lambda obj: obj)
        assert [strip(json.loads(line)) for line in new] == [strip(obj) for obj in fresh]


def test_a_file_outside_the_messages_range_is_left_alone(api, history):
    earlier = run(api, type="messages", start="2026-01-01T00:00:00Z", end="2026-01-02T00:00:00Z")

    api.post(f"/v1/messages/{history[2]}/redact")

    assert Export.objects.get(public_id=earlier["id"]).redactions_pending == 0
    assert api.get(f"/v1/exports/{earlier['id']}/download").status_code == 200


def test_an_export_whose_rows_were_read_before_a_redaction_committed_applies_it_when_it_ends(api, history,
                                                                                          monkeypatch):
    from messaging import exports

    write = exports._write

    def write_then_redact(*args, **kwargs):
        written = write(*args, **kwargs)  # every row read and written, the body among them
        message_redact(message=Message.objects.get(public_id=history[2]))
        return written

    monkeypatch.setattr(exports, "_write", write_then_redact)
    export = run(api, type="messages", format="csv")

    assert export["status"] == "succeeded" and export["rewritten_at"] is not None
    assert REDACTED_LATER.encode() not in download(api, export)


def test_an_export_pending_when_a_message_is_redacted_reads_it_redacted(api, history):
    started = api.post("/v1/exports", {**window(), "type": "messages"}, format="json").json()
    api.post(f"/v1/messages/{history[2]}/redact")
    assert Export.objects.get(public_id=started["id"]).redactions_pending == 1

    export_run(export_id=Export.objects.get(public_id=started["id"]).pk)

    export = api.get(f"/v1/exports/{started['id']}").json()
    assert export["rewritten_at"] is None  # nothing to re-write: its rows were read after the redaction
    assert REDACTED_LATER.encode() not in download(api, export)


def test_the_nightly_redaction_rewrites_each_file_once_however_many_messages_it_holds(api, account):
    from messaging import tasks

    old = timezone.now() - timedelta(days=3)
    account.retention_days = 1
    account.created_at = old  # before its messages, as always outside time travel: redaction starts there
    account.save()
    with time_machine.travel(old, tick=False):
        for n in range(4):
            created = api.post("/v1/messages", {**SEED, "body": f"Old secret {n}"}, format="json").json()
            Message.objects.filter(public_id=created["id"]).update(status="delivered")
    files = [run(api, type="messages", format=format, start="2020-01-01T00:00:00Z", end="2099-01-01T00:00:00Z")
             for format in ("csv", "ndjson")]
    drain_queued_tasks()

    assert tasks.redact_past_retention() == 4

    queued = tasks_named("messaging.scrub_export")
    assert sorted(queued) == sorted([(Export.objects.get(public_id=f["id"]).pk,) for f in files])  # once each
    for (export_id,) in queued:
        export_scrub(export_id=export_id)
    for export in files:
        assert b"Old secret" not in download(api, export)


def test_a_lost_rewrite_task_is_swept_up_by_beat(api, history, settings):
    from messaging import tasks

    export = run(api, type="messages", format="ndjson")
    api.post(f"/v1/messages/{history[2]}/redact")
    drain_queued_tasks()  # the task lost

    assert tasks.scrub_exports() == 1
    assert tasks_named("messaging.scrub_export") == [(Export.objects.get(public_id=export["id"]).pk,)]
    assert "scrub-redacted-exports" in settings.CELERY_BEAT_SCHEDULE


# --- Spreadsheet-safe CSV ------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell, safe", [
    ("=SUM(A1:A9)", "'=SUM(A1:A9)"), ("+18045550199", "'+18045550199"), ("-2+3", "'-2+3"),
    ("@SUM(1)", "'@SUM(1)"), ("\tleading tab", "'\tleading tab"), ("\rcarriage return", "'\rcarriage return"),
    ("plain text", "plain text"), ("a=b", "a=b"), ("", ""), ("{\"k\":\"=1\"}", "{\"k\":\"=1\"}"), (5, 5), (None, None),
])
def test_spreadsheet_safe_cells(cell, safe):
    assert spreadsheet_safe(cell) == safe


def test_a_csv_safe_export_prefixes_formula_cells_and_the_default_keeps_them_exact(api, history):
    exact = run(api, type="messages", format="csv")
    safe = run(api, type="messages", format="csv", csv_safe=True)

    assert (exact["csv_safe"], safe["csv_safe"]) == (False, True)
    exact_rows, safe_rows = (list(csv.DictReader(io.StringIO(download(api, e).decode(), newline="")))
                             for e in (exact, safe))
    assert {row["body"] for row in exact_rows} >= {AWKWARD_BODIES[4]}
    assert {row["body"] for row in safe_rows} >= {"'" + AWKWARD_BODIES[4], AWKWARD_BODIES[1]}
    assert {row["to"] for row in safe_rows} == {"'" + row["to"] for row in exact_rows}  # the trade-off: +1804…
    for row in safe_rows:
        assert not row["body"].startswith(("=", "+", "-", "@", "\t", "\r"))


@pytest.mark.parametrize("fields, code", [
    ({"format": "ndjson", "csv_safe": True}, "parameter_invalid"),
    ({"format": "csv", "csv_safe": "yes"}, "parameter_invalid_type"),
    ({"format": "csv", "csv_safe": 1}, "parameter_invalid_type"),
])
def test_csv_safe_is_for_csv_and_a_json_boolean(api, fields, code):
    response = api.post("/v1/exports", {**window(), "type": "messages", **fields}, format="json")

    assert response.status_code == 400
    assert (response.json()["error"]["code"], response.json()["error"]["field"]) == (code, "csv_safe")


# --- A bounded number of exports at once -------------------------------------------------------------------------
def test_beyond_three_exports_at_once_the_answer_is_429_until_one_finishes(api, account, settings):
    assert settings.MITTIS_EXPORTS_AT_ONCE == 3
    started = [api.post("/v1/exports", {**window(), "type": "messages"}, format="json") for _ in range(3)]
    assert [r.status_code for r in started] == [202] * 3

    refused = api.post("/v1/exports", {**window(), "type": "messages"}, format="json", HTTP_IDEMPOTENCY_KEY="fourth")

    error = refused.json()["error"]
    assert refused.status_code == 429 and (error["code"], error["type"]) == ("too_many_exports", "rate_limit_error")
    assert int(refused["Retry-After"]) > 0 and refused["Request-Id"] == error["request_id"]
    assert Export.objects.count() == 3
    live = APIClient()  # each mode counts its own
    live.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(account, livemode=True)}")
    assert live.post("/v1/exports", {**window(), "type": "messages"}, format="json").status_code == 202
    export_run(export_id=Export.objects.get(public_id=started[0].json()["id"]).pk)
    # The 429 was not stored: the same key now starts the export.
    again = api.post("/v1/exports", {**window(), "type": "messages"}, format="json", HTTP_IDEMPOTENCY_KEY="fourth")
    assert again.status_code == 202 and "Idempotent-Replayed" not in again


@pytest.mark.django_db(transaction=True)
def test_two_requests_at_the_limit_cannot_both_start_an_export(settings, monkeypatch):
    """The first holds the account's export lock between its count and its insert (paused there); the second
    waits for it, then counts it. Without the lock both would count none and both start."""
    import threading
    import time

    from django.db import connection

    from messaging import exports

    settings.MITTIS_EXPORTS_AT_ONCE = 1
    account = AccountFactory()
    counted = threading.Event()
    create = Export.objects.create
    holder = {}

    def slow_create(**fields):
        if threading.current_thread() is holder.get("thread"):
            counted.set()
            time.sleep(0.5)  # the second request is waiting on the lock by then
        return create(**fields)

    monkeypatch.setattr(Export.objects, "create", slow_create)
    window_ = {name: timezone.now() + timedelta(hours=offset) for name, offset in (("start", -1), ("end", 1))}

    def start(outcome):
        try:
            outcome.append(exports.export_create(account=account, livemode=False, type="messages", format="csv",
                                                 filters={}, **window_))
        except exports.TooManyExports as refusal:
            outcome.append(refusal)
        finally:
            connection.close()

    firsts, seconds = [], []
    holder["thread"] = threading.Thread(target=start, args=(firsts,))
    holder["thread"].start()
    assert counted.wait(5)
    start(seconds)
    holder["thread"].join()

    assert isinstance(firsts[0], Export) and isinstance(seconds[0], exports.TooManyExports)
    assert Export.objects.filter(account=account).count() == 1
