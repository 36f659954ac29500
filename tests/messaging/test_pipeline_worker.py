"""The whole path with a real Celery worker consuming from the configured broker (Redis in CI):
POST /v1/messages -> worker sends through the sandbox -> delivery report -> `delivered`."""

import time

import pytest

from messaging.services import send
from messaging.carriers import sandbox
from tests.conftest import in_process_worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker(settings, monkeypatch):
    settings.MITTIS_SANDBOX_REPORT_DELAY = 0.2
    monkeypatch.setattr(send, "SEND_RETRY_BASE_SECONDS", 0.2)
    with in_process_worker():
        yield


def wait_for_status(api, message_id, expected, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = api.get(f"/v1/messages/{message_id}").json()
        if message["status"] == expected:
            return message
        time.sleep(0.1)
    raise AssertionError(f"{message_id} is {message['status']}, not {expected}, after {timeout} s")


def event_types(api, message_id):
    return [e["type"] for e in api.get(f"/v1/messages/{message_id}/events").json()["data"]]


def test_a_message_reaches_delivered_through_a_real_worker(worker, api, send):
    created = send().json()

    delivered = wait_for_status(api, created["id"], "delivered")

    assert delivered["updated_at"] >= created["created_at"]
    assert event_types(api, created["id"]) == ["message.queued", "message.sent", "message.delivered"]


@pytest.mark.parametrize("to, status, error_code, events", [
    (sandbox.FAILS, "failed", "carrier_rejected", ["message.queued", "message.failed"]),
    (sandbox.UNDELIVERED, "undelivered", "unknown_subscriber", ["message.queued", "message.sent", "message.failed"]),
    (sandbox.TEMPORARILY_UNAVAILABLE, "delivered", None, ["message.queued", "message.sent", "message.delivered"]),
])
def test_sandbox_outcomes_through_a_real_worker(worker, api, send, to, status, error_code, events):
    created = send(to=to).json()

    final = wait_for_status(api, created["id"], status)

    assert final["error_code"] == error_code
    assert event_types(api, created["id"]) == events
