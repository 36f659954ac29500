"""Exports: the account's messages and events as CSV or NDJSON files, field for field the API's objects."""

import csv
from datetime import timedelta
import gzip
import io
import json

from django.utils import timezone
import pytest
from rest_framework.test import APIClient

from messaging.carriers.base import DeliveryReport, InboundSms
from messaging.exports import EVENT_COLUMNS, MESSAGE_COLUMNS, export_run, exports_delete_expired
from messaging.models import Export, Message
from messaging.services import message_apply_delivery_report, message_receive, message_redact, message_send
from tests.conftest import SEED
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
    assert not export_storage().exists(export.file_name)


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

    from celery.contrib.testing.worker import start_worker

    from mittis.celery import app as celery_app

    account = AccountFactory()
    SenderFactory(account=account, value=SEED["from"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(account)}")
    for _ in range(3):
        client.post("/v1/messages", SEED, format="json")

    with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=10, loglevel="WARNING"):
        started = client.post("/v1/exports", {**window(), "type": "messages", "format": "csv"}, format="json").json()
        deadline = time.monotonic() + 20
        while (export := client.get(f"/v1/exports/{started['id']}").json())["status"] != "succeeded":
            assert time.monotonic() < deadline, export
            time.sleep(0.1)

    assert export["row_count"] == 3 and len(download(client, export).decode().splitlines()) == 4

