"""mittis/celery.py: a worker's log says what happened, not that beat's sweeps ran again and found nothing."""

import logging

from celery.app import trace
from celery.beat import ScheduleEntry, Scheduler
import pytest

from mittis.celery import app

SWEEP = "messaging.dispatch_scheduled"  # beat sends it every 5 s


def sent_by_beat(task: str) -> None:
    """Beat's "Sending due task" line, as its scheduler logs it (sending nothing)."""
    scheduler = Scheduler(app, lazy=True)
    scheduler.apply_async = lambda *args, **kwargs: None
    scheduler.apply_entry(ScheduleEntry(name="a-schedule", task=task, app=app))


def received(task: str) -> None:
    """The worker's "received" line, as celery.worker.strategy logs it."""
    context = {"id": "abc", "name": task, "args": "()", "kwargs": "{}", "eta": None}
    logging.getLogger("celery.worker.strategy").info(trace.LOG_RECEIVED, context, extra={"data": context})


def succeeded(task: str, returned: str) -> None:
    """The worker's "succeeded" line, through the function Celery's tracer calls (`returned`: the repr)."""
    trace.info(trace.LOG_SUCCESS, {"id": "abc", "name": task, "return_value": returned, "runtime": 0.01,
                                   "args": "()", "kwargs": "{}"})


LINES = {"beat sends it": sent_by_beat, "received": received}


@pytest.mark.parametrize(("task", "line", "level"), [
    (SWEEP, "beat sends it", "DEBUG"),
    (SWEEP, "received", "DEBUG"),
    (SWEEP, "succeeded: 0", "DEBUG"),  # found nothing
    (SWEEP, "succeeded: 3", "INFO"),  # queued three scheduled messages: an event
    ("webhooks.sweep_deliveries", "succeeded: 0", "DEBUG"),
    ("messaging.send_message", "beat sends it", "INFO"),  # a schedule staff added in the admin
    ("messaging.send_message", "received", "INFO"),
    ("messaging.send_message", "succeeded: None", "INFO"),
], ids=str)
def test_sweeps_that_found_nothing_log_at_debug(caplog, task, line, level):
    caplog.set_level(logging.DEBUG, logger="celery")
    if line in LINES:
        LINES[line](task)
    else:
        succeeded(task, line.removeprefix("succeeded: "))

    assert caplog.records[0].levelname == level  # (beat then says at DEBUG that it sent it)


def test_at_info_a_sweep_that_found_nothing_says_nothing(caplog):
    caplog.set_level(logging.INFO, logger="celery")
    sent_by_beat(SWEEP)
    received(SWEEP)
    succeeded(SWEEP, "0")
    succeeded(SWEEP, "2")

    assert [record.getMessage().split("]")[-1] for record in caplog.records] == [" succeeded in 0.01s: 2"]
