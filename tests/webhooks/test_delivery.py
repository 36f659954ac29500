"""Webhooks end to end: a real receiver, a real worker on the configured broker, and signatures checked
by the third-party `standardwebhooks` package, unmodified."""

from datetime import timedelta
import time

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from webhooks.models import LANE_KEYS, Delivery, DeliveryAttempt, lane_key
from tests.conftest import broker_down, drain_queued_tasks, in_process_worker
from webhooks.services import deliveries_sweep, endpoint_flush
from messaging.models import Message
from messaging.services import message_expire

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

MESSAGE_EVENTS = ["message.queued", "message.sent", "message.delivered"]


def verified(secret: str, request) -> dict:
    return Webhook(secret).verify(request.body, request.headers)


def test_every_event_of_a_message_arrives_signed_in_order_before_and_after_a_rotation(
        worker, api, send, receiver, endpoint):
    endpoint_id, secret = endpoint

    first = send().json()
    receiver.wait_for(3)

    payloads = [verified(secret, r) for r in receiver.requests]
    assert [p["type"] for p in payloads] == MESSAGE_EVENTS
    assert [p["sequence"] for p in payloads] == [1, 2, 3]
    assert {p["data"]["id"] for p in payloads} == {first["id"]}
    assert payloads[-1]["data"]["status"] == "delivered"
    for request, payload in zip(receiver.requests, payloads):
        assert request.headers["webhook-id"] == payload["id"]
        assert payload == api.get(f"/v1/events/{payload['id']}").json()  # the API and the webhook agree
    timeline = [e["id"] for e in api.get(f"/v1/messages/{first['id']}/events").json()["data"]]
    assert timeline == [p["id"] for p in payloads]

    new_secret = api.post(f"/v1/webhook_endpoints/{endpoint_id}/rotate_secret").json()["secret"]
    second = send().json()
    after = receiver.wait_for(6)[3:]

    assert new_secret != secret
    for request in after:
        assert verified(new_secret, request)["data"]["id"] == second["id"]
        assert verified(secret, request)  # the old secret still signs for 24 hours
        assert len(request.headers["webhook-signature"].split(" ")) == 2
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 43 + "=").verify(after[0].body, after[0].headers)


def test_a_receiver_failing_twice_gets_three_attempts_and_the_event_once_as_success(
        worker, api, send, receiver, endpoint):
    endpoint_id, secret = endpoint
    api.patch(f"/v1/webhook_endpoints/{endpoint_id}", {"enabled_events": ["message.queued"]}, format="json")
    receiver.script = [(500, {}), (503, {})]

    send()
    receiver.wait_for(3)
    time.sleep(1.0)  # time enough for a fourth attempt, if one were (wrongly) made

    event_id = verified(secret, receiver.requests[0])["id"]
    assert len(receiver.requests) == 3 and {r.headers["webhook-id"] for r in receiver.requests} == {event_id}
    attempts = api.get(f"/v1/webhook_endpoints/{endpoint_id}/deliveries").json()["data"]
    assert [(a["event"], a["attempt"], a["response_status"], a["succeeded"]) for a in reversed(attempts)] == [
        (event_id, 1, 500, False), (event_id, 2, 503, False), (event_id, 3, 200, True)]
    assert [a["next_attempt_at"] is not None for a in reversed(attempts)] == [True, True, False]
    assert attempts[0]["response_body"] == "received with 200" and attempts[0]["latency_ms"] >= 0
    assert Delivery.objects.get(event__public_id=event_id).status == Delivery.SUCCEEDED


def test_an_event_created_while_the_broker_is_down_is_delivered_by_the_sweeper(api, send, receiver, endpoint,
                                                                               settings, fast_retries):
    endpoint_id, secret = endpoint
    # This test is about the queued event; the message's own send is tests/faults' subject.
    api.patch(f"/v1/webhook_endpoints/{endpoint_id}", {"enabled_events": ["message.queued"]}, format="json")
    with broker_down():
        created = send()

    assert created.status_code == 201  # the message and its event are safe in the database
    pending = Delivery.objects.get()
    assert pending.status == Delivery.PENDING and receiver.requests == []

    with in_process_worker():
        assert deliveries_sweep(overdue_by=timedelta(0)) == [pending.pk]
        [request] = receiver.wait_for(1)

    assert verified(secret, request)["data"]["id"] == created.json()["id"]
    assert Delivery.objects.get(pk=pending.pk).status == Delivery.SUCCEEDED
    assert DeliveryAttempt.objects.count() == 1, (list(DeliveryAttempt.objects.values("delivery_id", "number", "succeeded", "response_status", "error", "attempted_at")), len(receiver.requests))


@pytest.fixture
def one_lane(settings):
    """An endpoint's flush in one lane: what a lane does, without the split between lanes."""
    settings.MITTIS_WEBHOOK_FLUSH_LANES = 1


def test_a_backlog_for_one_endpoint_is_one_task_and_arrives_in_order_over_one_connection(
        api, send, receiver, endpoint, settings, monkeypatch, one_lane):
    endpoint_id, secret = endpoint
    api.patch(f"/v1/webhook_endpoints/{endpoint_id}", {"enabled_events": ["message.queued"]}, format="json")
    monkeypatch.setattr("webhooks.services.flush.FLUSH_BATCH", 5)  # so the backlog takes several batches
    drain_queued_tasks()

    sent = [send().json()["id"] for _ in range(12)]

    tasks = [task["task"] for task in drain_queued_tasks()]
    assert "messaging.send_message" not in tasks  # test-mode sends go to the batch dispatchers
    assert tasks.count("messaging.dispatch") == settings.MITTIS_SEND_DISPATCHERS  # every slot, no more
    assert tasks.count("webhooks.flush_endpoint") == 1  # not one task per event
    flushed = endpoint_flush(endpoint_id=Delivery.objects.first().endpoint_id)  # what that task runs
    assert flushed == 12
    assert [verified(secret, r)["data"]["id"] for r in receiver.requests] == sent
    assert len({r.peer for r in receiver.requests}) == 1  # one kept-alive connection for the backlog
    assert set(Delivery.objects.values_list("status", "attempts")) == {(Delivery.SUCCEEDED, 1)}
    assert DeliveryAttempt.objects.filter(succeeded=True).count() == 12


def queued_events(api, send, endpoint_id, count):
    """`count` message.queued events pending for the endpoint, with no task to send them (drained)."""
    api.patch(f"/v1/webhook_endpoints/{endpoint_id}", {"enabled_events": ["message.queued"]}, format="json")
    drain_queued_tasks()
    sent = [send().json()["id"] for _ in range(count)]
    drain_queued_tasks()
    return sent, Delivery.objects.first().endpoint_id


def test_a_flush_whose_time_is_up_hands_the_rest_of_the_backlog_to_a_fresh_flush_in_order(
        api, send, receiver, endpoint, one_lane, monkeypatch):
    """A flush is a time slice: a slow receiver's backlog takes turns with the other tasks of the workers."""
    from webhooks.services import flush

    endpoint_id, secret = endpoint
    sent, pk = queued_events(api, send, endpoint_id, 6)
    receiver.delay = 0.1
    monkeypatch.setattr(flush, "FLUSH_RUN_SECONDS", 0.25)

    first = endpoint_flush(endpoint_id=pk)

    assert 1 <= first < 6  # stopped inside its batch when its time was up
    assert [t["task"] for t in drain_queued_tasks()] == ["webhooks.flush_endpoint"]  # the rest's own flush
    assert set(Delivery.objects.filter(status=Delivery.PENDING).values_list("locked_until", "attempts")) == {
        (None, 0)}  # handed back unattempted, for the next flush to claim at once
    receiver.delay = 0
    assert endpoint_flush(endpoint_id=pk) == 6 - first
    assert [verified(secret, r)["data"]["id"] for r in receiver.requests] == sent  # once each, in order


def test_one_refused_event_follows_its_retries_while_the_rest_of_the_backlog_goes_on(
        api, send, receiver, endpoint, one_lane):
    endpoint_id, secret = endpoint
    sent, pk = queued_events(api, send, endpoint_id, 4)
    receiver.script = [(503, {})]

    assert endpoint_flush(endpoint_id=pk) == 3

    assert [verified(secret, r)["data"]["id"] for r in receiver.requests] == sent
    refused = Delivery.objects.get(event__object_id=sent[0])
    assert (refused.status, refused.attempts) == (Delivery.PENDING, 1) and refused.next_attempt_at is not None


def test_an_endpoint_refusing_several_in_a_row_holds_the_rest_in_order_until_it_answers_again(
        api, send, receiver, endpoint, fast_retries, one_lane):
    endpoint_id, secret = endpoint
    sent, pk = queued_events(api, send, endpoint_id, 5)
    receiver.script = [(503, {})] * 3

    assert endpoint_flush(endpoint_id=pk) == 0
    assert len(receiver.requests) == 3  # then it stopped: the last two were not attempted
    held = Delivery.objects.filter(event__object_id__in=sent[3:])
    assert set(held.values_list("status", "attempts")) == {(Delivery.PENDING, 0)}

    time.sleep(0.6)  # the three refused are due again (fast retries)
    assert endpoint_flush(endpoint_id=pk) == 5
    later = [verified(secret, r)["data"]["id"] for r in receiver.requests[3:]]
    assert later == sent  # everything, in order, once the endpoint answers


def test_an_endpoints_lanes_share_its_messages_each_with_all_its_events_in_order(
        api, send, receiver, endpoint, settings):
    settings.MITTIS_WEBHOOK_FLUSH_LANES = 2
    endpoint_id, secret = endpoint
    drain_queued_tasks()
    sent = [send().json()["id"] for _ in range(30)]
    for message in Message.objects.filter(public_id__in=sent):
        message_expire(message_id=message.pk)  # a second event: message.failed after message.queued

    tasks = drain_queued_tasks()
    pk = Delivery.objects.first().endpoint_id
    assert sorted(t["argsrepr"] for t in tasks if t["task"] == "webhooks.flush_endpoint") == [
        f"({pk}, 0)", f"({pk}, 1)"]  # a task per lane, not per event
    lanes = []
    for lane in (0, 1):
        before = len(receiver.requests)
        assert endpoint_flush(endpoint_id=pk, lane=lane) > 0  # both lanes have work: they share the messages
        lanes.append([verified(secret, r) for r in receiver.requests[before:]])

    events = [(e["data"]["id"], e["type"]) for lane in lanes for e in lane]
    assert sorted(events) == sorted([(m, t) for m in sent for t in ("message.queued", "message.failed")])
    for lane in lanes:  # a message is in one lane only, its events in their order there
        ids = [e["data"]["id"] for e in lane]
        assert all(ids.count(m) in (0, 2) for m in sent)
        assert all([e["type"] for e in lane if e["data"]["id"] == m] == ["message.queued", "message.failed"]
                   for m in set(ids))


def test_a_delivery_gets_the_same_lane_key_whether_published_in_sql_or_through_the_orm(api, send, endpoint):
    """Events published in one statement get their lane key in SQL, redeliveries and recoveries in Python:
    if the two differed, one message's events could go out in two lanes, out of order."""
    sent = [send().json()["id"] for _ in range(20)]
    published = {d.event.object_id: d.lane_key for d in Delivery.objects.filter(endpoint__isnull=False)
                 .select_related("event")}

    assert set(published) == set(sent)
    assert published == {message_id: lane_key(message_id) for message_id in sent}
    assert {key < LANE_KEYS // 2 for key in published.values()} == {True, False}  # spread over two lanes
