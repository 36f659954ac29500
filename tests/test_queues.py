"""Queues by concern: every task has a route (settings.MITTIS_TASK_QUEUES), a task published by name lands on
its concern's queue on the real broker, and production runs a worker pool per concern while `make run` runs one
worker for them all. The separation under load is tests/test_queue_separation.py."""

import queue as queue_module
import shlex

from django.conf import settings
import pytest

from mittis.celery import app as celery_app, enqueue, queue_of, queues
from mittis.ops.localhost import ROOT, procfile_command

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
    from tests.conftest import drain_queued_tasks

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
