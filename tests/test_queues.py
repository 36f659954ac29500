"""Queues by concern: every task has a route (settings.MITTIS_TASK_QUEUES), a task published by name lands on
its concern's queue on the real broker, and production runs a worker pool per concern while `make run` runs one
worker for them all, as does a worker started without `-Q`. The separation under load is
tests/test_queue_separation.py."""

from datetime import timedelta
import queue as queue_module
import shlex
import socket
import sys
import uuid

from django.conf import settings
from django.utils import timezone
import pytest

from messaging.models import Export, Message
from mittis.celery import app as celery_app, enqueue, queue_of, queues
from mittis.ops.localhost import ROOT, procfile_command
from tests.conftest import SEED, drain_queued_tasks
from tests.faults.conftest import process_env, running, wait_until
from tests.webhooks.conftest import receiver  # noqa: F401 (a fixture)

CONCERNS = ["sends", "reports", "webhooks", "exports", "sweeps"]


def test_every_task_of_the_app_has_a_route_and_every_route_a_task():
    celery_app.loader.import_default_modules()  # every app's tasks module, as a worker imports them
    tasks = {name for name in celery_app.tasks if not name.startswith("celery.")}  # Celery's own are unused

    assert sorted(tasks - set(settings.MITTIS_TASK_QUEUES)) == [], "tasks without a route"
    assert sorted(set(settings.MITTIS_TASK_QUEUES) - tasks) == [], "routes of tasks that do not exist"
    assert sorted(set(settings.MITTIS_TASK_QUEUES.values())) == sorted(CONCERNS)


def test_every_beat_sweep_is_routed():
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert sorted(scheduled - set(settings.MITTIS_TASK_QUEUES)) == []


def _taken(name: str) -> list[str]:
    """The tasks waiting on queue `name` of the real broker, taken off it."""
    taken = []
    with celery_app.connection_for_read() as conn:
        queue = conn.SimpleQueue(name)
        try:
            while True:
                try:
                    message = queue.get(block=False)
                except queue_module.Empty:
                    return taken
                taken.append(message.headers["task"])
                message.ack()
        finally:
            queue.close()


def test_a_task_published_by_name_lands_on_its_concerns_queue_on_the_broker():
    drain_queued_tasks()  # what earlier tests left
    for name in settings.MITTIS_TASK_QUEUES:
        assert enqueue(name, args=(0,))  # never run: no worker consumes these queues here

    on_the_broker = {concern: sorted(_taken(queue_of(concern))) for concern in CONCERNS}
    assert on_the_broker == {concern: sorted(task for task, of in settings.MITTIS_TASK_QUEUES.items() if of == concern)
                             for concern in CONCERNS}
    assert _taken(celery_app.conf.task_default_queue) == []


def test_the_queues_carry_the_prefix_so_that_each_test_run_has_its_own(settings):
    assert queues() == [f"{settings.MITTIS_QUEUE_PREFIX}{concern}" for concern in CONCERNS]
    assert settings.MITTIS_QUEUE_PREFIX.startswith("mittis-test-")
    settings.MITTIS_QUEUE_PREFIX = "other-"
    assert queue_of("sends") == "other-sends"
    assert celery_app.amqp.router.route({}, "messaging.dispatch")["queue"].name == "other-sends"


def _option(command: list[str], *names: str) -> str:
    return command[max(command.index(name) for name in names if name in command) + 1]


@pytest.mark.parametrize("concern", CONCERNS)
def test_production_runs_a_worker_pool_per_concern(concern):
    command = procfile_command(f"worker-{concern}")
    assert command[command.index("celery") + 1:][:3] == ["-A", "mittis", "worker"]
    assert _option(command, "-Q") == concern
    assert _option(command, "-n") == f"{concern}@%h"  # pools on one host need names of their own


def test_production_has_no_worker_but_the_pools():
    processes = [line.split(":")[0] for line in (ROOT / "Procfile").read_text().splitlines() if line.strip()]
    assert sorted(p for p in processes if "worker" in p) == sorted(f"worker-{concern}" for concern in CONCERNS)


def test_make_run_runs_one_worker_for_every_queue():
    line = next(line for line in (ROOT / "Procfile.dev").read_text().splitlines() if line.startswith("worker:"))
    command = shlex.split(line.removeprefix("worker:"))
    assert sorted(_option(command, "-Q").split(",")) == sorted(CONCERNS)
    assert _option(command, "--concurrency") == "2"  # a 2-core laptop


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_started_without_queues_runs_the_tasks_of_every_concern(api, receiver):
    """`celery -A mittis worker` with no `-Q`, as Celery's docs start one, consumes every concern's queue: a message is
    sent (sends), delivered (reports) and called back (webhooks), an export is written (exports) and a sweep expires
    an overdue message (sweeps). Without `task_queues` it would consume Celery's default queue alone, and do nothing."""
    drain_queued_tasks()
    overdue = api.post("/v1/messages", {**SEED, "send_at": (timezone.now() + timedelta(days=1)).isoformat()},
                       format="json").json()
    Message.objects.filter(public_id=overdue["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    bare = [sys.executable, "-m", "celery", "-A", "mittis", "worker", "-n", f"bare-{uuid.uuid4().hex[:8]}@%h",
            "--pool", "solo", "--without-gossip", "--without-mingle", "--loglevel", "WARNING"]
    env = process_env(MITTIS_WEBHOOK_ALLOWED_PRIVATE="127.0.0.1", MITTIS_SANDBOX_REPORT_DELAY="0.2")

    with running(bare, env):
        sent = api.post("/v1/messages", {**SEED, "status_callback": receiver.url}, format="json").json()
        export = api.post("/v1/exports", {"type": "messages", "start": "2020-01-01T00:00:00Z",
                                          "end": "2099-01-01T00:00:00Z"}, format="json").json()
        enqueue("messaging.expire_overdue")

        status_of = lambda public_id: Message.objects.get(public_id=public_id).status  # noqa: E731
        wait_until(lambda: status_of(sent["id"]) == "delivered", timeout=60, what="the message delivered")
        receiver.wait_for(1)
        wait_until(lambda: Export.objects.get(public_id=export["id"]).status == "succeeded", timeout=60,
                   what="the export written")
        wait_until(lambda: status_of(overdue["id"]) == "expired", timeout=60, what="the overdue message expired")
    assert Message.objects.get(public_id=sent["id"]).sent_at is not None


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_started_with_queues_consumes_those_alone():
    """`-Q` still picks a concern, as the Procfile's pools do: the worker says which queues it consumes."""
    name = f"pool-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
    command = [sys.executable, "-m", "celery", "-A", "mittis", "worker", "-Q", queue_of("exports"), "-n", name,
               "--pool", "solo", "--without-gossip", "--without-mingle", "--loglevel", "WARNING"]

    with running(command, process_env()):
        answer = wait_until(lambda: celery_app.control.inspect(destination=[name], timeout=1).active_queues(),
                            timeout=60, what="the worker answering")
    assert [queue["name"] for queue in answer[name]] == [queue_of("exports")]
