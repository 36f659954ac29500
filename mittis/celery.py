from functools import cache
import gc
import logging
import os

from celery import Celery
from celery.signals import worker_init
from django.conf import settings
from kombu import Exchange, Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mittis.settings")

app = Celery("mittis")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

logger = logging.getLogger(__name__)

# A task held by a worker (waiting out its countdown, or running) goes back to the queue when the worker
# has not acknowledged it within the broker's visibility timeout (Redis: CELERY_BROKER_TRANSPORT_OPTIONS):
# a countdown longer than MAX_COUNTDOWN plus the task time limit would be delivered twice. Tasks re-check
# their work when they run, so a longer wait is cut to MAX_COUNTDOWN: the task finds it early and leaves it
# to the sweep that knows its due time (a send's or a delivery's own column).
MAX_COUNTDOWN = 180


def enqueue(name: str, *, args: tuple = (), kwargs: dict | None = None, countdown: float | None = None) -> bool:
    """Publish the task `name` (tasks are named, so services never import the task modules that import them).
    Never raises: with the broker unreachable it logs and returns False, and the work waits in the database
    for the sweep that finds it (every task's work is recorded there before it is published)."""
    if countdown is not None:
        countdown = min(max(countdown, 0.0), MAX_COUNTDOWN)
    try:
        app.send_task(name, args=args, kwargs=kwargs, countdown=countdown, retry=False)
        return True
    except Exception:
        logger.warning("Could not enqueue %s%r%r; a sweep will", name, args, kwargs or {}, exc_info=True)
        return False


def queue_of(concern: str) -> str:
    return settings.MITTIS_QUEUE_PREFIX + concern


def queues() -> list[str]:
    """The queue of every concern (settings.MITTIS_TASK_QUEUES), in the table's order: what a worker for all
    of them consumes (`make run`'s, the tests', the bench's)."""
    return [queue_of(concern) for concern in dict.fromkeys(settings.MITTIS_TASK_QUEUES.values())]


@app.on_after_configure.connect
def consume_every_queue_by_default(sender, **_):
    """Celery's `task_queues`: the queues a worker started without `-Q` consumes (`celery -A mittis worker`, as
    Celery's docs start one), here every concern's and Celery's default queue, which nothing is routed to; it
    would otherwise consume that one alone and run nothing. `-Q sends` still selects one (the Procfile's pools).
    Each declared as Celery declares a queue it was not told of (`Queues.new_missing`), so that a queue made by
    a publish before and this one are the same."""
    sender.conf.task_queues = [Queue(name, Exchange(name), routing_key=name)
                               for name in [*queues(), sender.conf.task_default_queue]]


def route_by_concern(name, args, kwargs, options, task=None, **_) -> dict | None:
    """Celery's router (CELERY_TASK_ROUTES): a task goes to its concern's queue, for `enqueue`, `apply_async`
    and beat alike. Read at each publish, so a test's or a command's prefix (override_settings) applies."""
    concern = settings.MITTIS_TASK_QUEUES.get(name)
    return {"queue": queue_of(concern)} if concern else None


class SweepsAtDebug(logging.Filter):
    """Beat's and the worker's lines about beat's sweeps, at DEBUG: the sweeps run every few seconds and almost
    always find nothing. A sweep that found something (it returns how many) keeps its INFO "succeeded" line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or _task(record) not in _sweeps():
            return True
        if getattr(record, "data", {}).get("return_value", "0") not in ("0", "None"):
            return True
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def _task(record: logging.LogRecord) -> str | None:
    """The task of a worker's "received" or "succeeded" line (Celery passes it in the record's `data`, for
    handlers and filters), or of beat's "Sending due task" line (its last argument)."""
    if isinstance(getattr(record, "data", None), dict):
        return record.data.get("name")
    if record.name == "celery.beat" and isinstance(record.args, tuple) and record.args:
        return record.args[-1]
    return None


@cache
def _sweeps() -> frozenset[str]:
    return frozenset(entry["task"] for entry in app.conf.beat_schedule.values())


for _name in ("celery.beat", "celery.worker.strategy", "celery.app.trace"):
    logging.getLogger(_name).addFilter(SweepsAtDebug())


@worker_init.connect
def freeze_loaded_objects(**_):
    """The worker's main process has set Django up and imported every task: freeze what it loaded out of the
    garbage collector before the pool forks, as the web server does (mittis/serve.py). Otherwise
    each full collection in a pool process walks the whole loaded project (~100,000 objects, ~60 ms) in the
    middle of a batch."""
    gc.collect()
    gc.freeze()
