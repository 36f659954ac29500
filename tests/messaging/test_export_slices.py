"""Exports of any size: each task writes a slice of rows for a bounded time, stores it as the next part of the file,
checkpoints and enqueues the next slice. The file is the one a single task writes, and a slice cut off (its worker
killed) is written again from the checkpoint, without a row lost or written twice.

`MITTIS_EXPORT_SLICE_SECONDS = 0` makes each slice write one row, whatever the machine's speed."""

from datetime import timedelta
import gzip

from django.utils import timezone
import pytest
import time_machine

from messaging import exports, tasks
from messaging.exports import export_run, export_slice, export_storage, exports_resume_stalled
from messaging.models import Export
from tests.conftest import drain_queued_tasks, in_process_worker
from tests.messaging.test_exports import download, history, run, tasks_named, window  # noqa: F401 (a fixture)


class WorkerKilled(BaseException):
    """What the outside world does to a worker (SIGKILL, the hard time limit, the host lost): no `except Exception`
    of ours runs."""


def start(api, **fields) -> Export:
    drain_queued_tasks()
    response = api.post("/v1/exports", {**window(), **fields}, format="json")
    assert response.status_code == 202, response.json()
    return Export.objects.get(public_id=response.json()["id"])


def run_slices(*first: tuple[int, int]) -> int:
    """Run an export's slices as the exports pool would, `first` (export id, after) and then each the task the one
    before put on the broker (from the broker's queue when no `first`). Returns how many ran."""
    ran, pending = 0, list(first) or tasks_named("messaging.run_export")
    while pending:
        for args in pending:
            export_run(export_id=args[0], after=args[1])
            ran += 1
        pending = tasks_named("messaging.run_export")
    return ran


def files_of(export: Export) -> set[str]:
    """The export's files in storage, parts and leftovers alike."""
    folder = export.account.public_id
    return {f"{folder}/{name}" for name in export_storage().listdir(folder)[1] if name.startswith(export.public_id)}


@pytest.mark.parametrize("type", ["messages", "events"])
@pytest.mark.parametrize("format", ["csv", "ndjson"])
def test_an_export_written_in_many_slices_is_the_file_one_task_writes(api, history, settings, type, format):
    whole = run(api, type=type, format=format)  # the default slice: all of it at once
    assert len(Export.objects.get(public_id=whole["id"]).file_parts) == 1
    settings.MITTIS_EXPORT_SLICE_SECONDS = 0
    export = start(api, type=type, format=format)

    export_run(export_id=export.pk)
    during = api.get(f"/v1/exports/{export.public_id}").json()
    assert (during["status"], during["row_count"], during["download_url"]) == ("running", 1, None)
    assert 0 < during["progress"] < 100
    ran = 1 + run_slices()

    sliced = api.get(f"/v1/exports/{export.public_id}").json()
    rows = whole["row_count"]
    assert rows > 2 and (sliced["status"], sliced["progress"], sliced["row_count"]) == ("succeeded", 100, rows)
    assert ran == rows + 1  # one row each, and the one that found none left
    assert len(Export.objects.get(pk=export.pk).file_parts) == rows
    content = download(api, sliced)
    assert content == download(api, whole) and sliced["size"] == whole["size"] == len(content)
    assert gzip.decompress(download(api, sliced, HTTP_ACCEPT_ENCODING="gzip")) == content  # the parts as one stream


@pytest.mark.parametrize("killed", ["while writing its rows", "after storing its part"])
def test_a_slice_killed_midway_is_written_again_from_the_checkpoint(api, history, settings, monkeypatch, killed):
    whole = run(api, type="messages", format="csv")
    settings.MITTIS_EXPORT_SLICE_SECONDS = 0
    export = start(api, type="messages", format="csv")
    export_run(export_id=export.pk)  # one row, checkpointed
    checkpoint = Export.objects.get(pk=export.pk)
    assert checkpoint.row_count == 1 and tasks_named("messaging.run_export") == [(export.pk, checkpoint.last_key)]

    settings.MITTIS_EXPORT_SLICE_SECONDS = 3600  # the rest in this slice, which dies
    if killed == "while writing its rows":
        rows_of = exports._rows

        def rows_then_killed(*args, **kwargs):
            for n, row in enumerate(rows_of(*args, **kwargs)):
                if n == 2:
                    raise WorkerKilled
                yield row
        monkeypatch.setattr(exports, "_rows", rows_then_killed)
    else:
        def killed_before_the_checkpoint(name):
            raise WorkerKilled
        monkeypatch.setattr(exports, "_make_durable", killed_before_the_checkpoint)
    with pytest.raises(WorkerKilled):
        export_run(export_id=export.pk, after=checkpoint.last_key)
    monkeypatch.undo()

    left = Export.objects.get(pk=export.pk)
    assert (left.status, left.last_key, left.row_count, left.file_parts) == (
        "running", checkpoint.last_key, 1, checkpoint.file_parts)
    export_run(export_id=export.pk, after=checkpoint.last_key)  # the task, given back by the broker

    done = api.get(f"/v1/exports/{export.public_id}").json()
    assert (done["status"], done["row_count"]) == ("succeeded", whole["row_count"])
    assert download(api, done) == download(api, whole)
    parts = set(Export.objects.get(pk=export.pk).file_parts)
    assert len(parts) == 2 and len(files_of(export) - parts) == (1 if killed == "after storing its part" else 0)


def test_a_slice_delivered_twice_at_once_is_written_once(api, history, settings, monkeypatch):
    """Both deliveries read the rows after the checkpoint and store a part; the second to checkpoint finds it moved,
    and deletes its part."""
    whole = run(api, type="messages", format="ndjson")
    export = start(api, type="messages", format="ndjson")
    rows_of, raced = exports._rows, {}

    def rows_while_the_other_delivery_finishes(export, *, after):
        if "other" not in raced:
            raced["other"] = None  # the other delivery reads its rows as they are
            raced["other"] = export_slice(export_id=export.pk, after=after)
        return rows_of(export, after=after)
    monkeypatch.setattr(exports, "_rows", rows_while_the_other_delivery_finishes)

    assert export_run(export_id=export.pk) is None
    assert raced["other"][0].status == "succeeded"
    done = api.get(f"/v1/exports/{export.public_id}").json()
    assert download(api, done) == download(api, whole) and done["row_count"] == whole["row_count"]
    assert files_of(export) == set(Export.objects.get(pk=export.pk).file_parts)
    assert export_run(export_id=export.pk) is None  # a later copy of the task: nothing left to do
    assert tasks_named("messaging.run_export") == []


def test_a_message_redacted_between_slices_is_redacted_in_the_parts_written_before(api, history, settings):
    from tests.messaging.test_exports import REDACTED_LATER

    settings.MITTIS_EXPORT_SLICE_SECONDS = 0
    export = start(api, type="messages", format="ndjson")
    after = 0
    for _ in range(4):  # the message (the third) is in the file
        export_run(export_id=export.pk, after=after)  # one row each
        [(_, after)] = tasks_named("messaging.run_export")
    assert REDACTED_LATER.encode() in b"".join(exports.export_file_chunks(Export.objects.get(pk=export.pk),
                                                                          gzip=False))

    api.post(f"/v1/messages/{history[2]}/redact")
    run_slices((export.pk, after))

    done = api.get(f"/v1/exports/{export.public_id}").json()
    assert done["status"] == "succeeded" and done["rewritten_at"] is not None
    assert REDACTED_LATER.encode() not in download(api, done)
    assert len(Export.objects.get(pk=export.pk).file_parts) == 1  # re-written as one part, the old parts deleted
    assert files_of(export) == set(Export.objects.get(pk=export.pk).file_parts)


def test_a_failed_slice_fails_the_export_and_deletes_its_parts(api, history, settings, monkeypatch):
    settings.MITTIS_EXPORT_SLICE_SECONDS = 0
    export = start(api, type="messages", format="csv")
    export_run(export_id=export.pk)
    after = Export.objects.get(pk=export.pk).last_key
    assert files_of(export) and tasks_named("messaging.run_export") == [(export.pk, after)]

    def storage_down(*args, **kwargs):
        raise OSError("No space left on device")
    monkeypatch.setattr(type(export_storage()), "save", storage_down)
    export_run(export_id=export.pk, after=after)

    failed = api.get(f"/v1/exports/{export.public_id}").json()
    assert (failed["status"], failed["error"], failed["download_url"]) == ("failed", "No space left on device", None)
    assert files_of(export) == set() and tasks_named("messaging.run_export") == []


@pytest.mark.parametrize("lost", ["its first task", "a later slice's task"])
def test_an_export_whose_task_was_lost_is_resumed_by_beat(api, history, settings, lost):
    whole = run(api, type="messages", format="csv")
    settings.MITTIS_EXPORT_SLICE_SECONDS = 0
    export = start(api, type="messages", format="csv")  # its task taken off the broker: lost
    if lost == "a later slice's task":
        export_run(export_id=export.pk)
        drain_queued_tasks()
    after = Export.objects.get(pk=export.pk).last_key

    assert exports_resume_stalled() == []  # not yet: it may be waiting its turn on the queue
    with time_machine.travel(timezone.now() + timedelta(minutes=16)):
        assert tasks.resume_exports() == 1
        assert exports_resume_stalled() == []  # once in a while, not once a sweep
    queued = tasks_named("messaging.run_export")
    assert queued == [(export.pk, after)]

    settings.MITTIS_EXPORT_SLICE_SECONDS = 3600
    run_slices(*queued)
    done = api.get(f"/v1/exports/{export.public_id}").json()
    assert done["status"] == "succeeded" and download(api, done) == download(api, whole)
    assert "resume-stalled-exports" in settings.CELERY_BEAT_SCHEDULE


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_sliced_export_runs_to_its_end_on_a_real_worker(settings):
    """Each slice's task published on the real broker and taken by a worker, as in production."""
    import time

    from rest_framework.test import APIClient

    from tests.conftest import SEED
    from tests.factories import AccountFactory, SenderFactory, api_key_for

    settings.MITTIS_EXPORT_SLICE_SECONDS = 0
    account = AccountFactory()
    SenderFactory(account=account, value=SEED["from"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(account)}")
    for _ in range(4):
        client.post("/v1/messages", SEED, format="json")

    with in_process_worker():
        started = client.post("/v1/exports", {**window(), "type": "messages", "format": "ndjson"}, format="json").json()
        deadline = time.monotonic() + 30
        while (export := client.get(f"/v1/exports/{started['id']}").json())["status"] != "succeeded":
            assert time.monotonic() < deadline and export["status"] != "failed", export
            time.sleep(0.1)

    assert export["row_count"] == 4 and len(Export.objects.get(public_id=export["id"]).file_parts) == 4
    assert len(download(client, export).decode().splitlines()) == 4
