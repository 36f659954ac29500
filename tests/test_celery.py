"""mittis/celery.py: a worker's log says what happened, not that beat's sweeps ran again and found nothing."""

import logging

from celery.app import trace
import pytest

SWEEP = "messaging.dispatch_scheduled"  # beat sends it every 5 s


def received(task: str) -> None:
    """The worker's "received" line, as celery.worker.strategy logs it."""
    context = {"id": "abc", "name": task, "args": "()", "kwargs": "{}", "eta": None}
    logging.getLogger("celery.worker.strategy").info(trace.LOG_RECEIVED, context, extra={"data": context})


def succeeded(task: str, returned) -> None:
    """The worker's "succeeded" line, through the function Celery's tracer calls."""
    trace.info(trace.LOG_SUCCESS, {"id": "abc", "name": task, "return_value": repr(returned), "runtime": 0.01,
                                   "args": "()", "kwargs": "{}"})


@pytest.mark.parametrize(("task", "returned", "level"), [
    (SWEEP, "received", "DEBUG"),
    (SWEEP, 0, "DEBUG"),  # found nothing
    (SWEEP, 3, "INFO"),  # queued three scheduled messages: an event
    ("webhooks.sweep_deliveries", 0, "DEBUG"),
    ("messaging.send_message", "received", "INFO"),
    ("messaging.send_message", None, "INFO"),
], ids=str)
def test_sweeps_that_found_nothing_log_at_debug(caplog, task, returned, level):
    caplog.set_level(logging.DEBUG, logger="celery")
    if returned == "received":
        received(task)
    else:
        succeeded(task, returned)

    assert [record.levelname for record in caplog.records] == [level]


def test_at_info_a_sweep_that_found_nothing_says_nothing(caplog):
    caplog.set_level(logging.INFO, logger="celery")
    received(SWEEP)
    succeeded(SWEEP, 0)
    succeeded(SWEEP, 2)

    assert [record.getMessage().split("]")[-1] for record in caplog.records] == [" succeeded in 0.01s: 2"]
