"""Events can be read, redelivered one by one, and recovered for a window: only what never succeeded."""

from datetime import timedelta
import json

from django.utils import timezone
import pytest
from rest_framework.test import APIClient

from tests.factories import AccountFactory, SenderFactory, api_key_for
from webhooks.models import Delivery, Event
from webhooks.tasks import recover_endpoint
from tests.webhooks.test_delivery_rules import attempt_due


@pytest.fixture
def queued_only(api, endpoint):
    api.patch(f"/v1/webhook_endpoints/{endpoint[0]}", {"enabled_events": ["message.queued"]}, format="json")
    return endpoint


def sent_event_ids(receiver) -> list[str]:
    return [json.loads(r.body)["id"] for r in receiver.requests]


def test_events_are_listed_newest_first_filtered_and_scoped(api, send, receiver, endpoint):
    first, second = send().json(), send(to="+18045550111").json()
    other = APIClient()
    other_account = AccountFactory()
    SenderFactory(account=other_account, value="+18045550142")
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(other_account)}")
    other.post("/v1/messages", {"from": "+18045550142", "to": "+18045550199", "body": "x"}, format="json")

    listed = api.get("/v1/events?limit=1").json()
    queued = api.get("/v1/events?type=message.queued").json()["data"]

    assert listed["has_more"] is True and listed["data"][0]["data"]["id"] == second["id"]
    assert [e["data"]["id"] for e in queued] == [second["id"], first["id"]]
    event = queued[1]
    assert set(event) == {"object", "id", "type", "created_at", "livemode", "sequence", "data"}
    assert api.get(f"/v1/events/{event['id']}").json() == event
    their_event = Event.objects.get(account=other_account)
    assert their_event.public_id not in {e["id"] for e in api.get("/v1/events").json()["data"]}
    assert api.get(f"/v1/events/{their_event.public_id}").status_code == 404
    assert api.post(f"/v1/events/{their_event.public_id}/redeliver").status_code == 404


def test_an_event_is_redelivered_with_the_same_webhook_id(api, send, receiver, queued_only, fast_retries):
    send()
    attempt_due()
    event_id = sent_event_ids(receiver)[0]

    response = api.post(f"/v1/events/{event_id}/redeliver")
    attempt_due()

    assert response.status_code == 202
    assert response.json() == {"object": "event_redelivery", "event": event_id, "endpoints": [queued_only[0]]}
    assert sent_event_ids(receiver) == [event_id, event_id]
    assert receiver.requests[1].body == receiver.requests[0].body


def test_redelivery_to_one_endpoint(api, send, receiver, queued_only, fast_retries):
    other = api.post("/v1/webhook_endpoints", {"url": receiver.url + "/other"}, format="json").json()
    send()
    attempt_due()
    event_id = sent_event_ids(receiver)[0]
    receiver.requests.clear()

    response = api.post(f"/v1/events/{event_id}/redeliver", {"endpoint": other["id"]}, format="json")
    attempt_due()

    assert response.json()["endpoints"] == [other["id"]]
    assert [r.path for r in receiver.requests] == ["/hooks/other"]
    unknown = api.post(f"/v1/events/{event_id}/redeliver", {"endpoint": "we_nope"}, format="json")
    assert unknown.status_code == 404 and unknown.json()["error"]["field"] == "endpoint"
    api.patch(f"/v1/webhook_endpoints/{other['id']}", {"status": "disabled"}, format="json")
    disabled = api.post(f"/v1/events/{event_id}/redeliver", {"endpoint": other["id"]}, format="json")
    assert disabled.status_code == 400 and disabled.json()["error"]["code"] == "endpoint_disabled"


def test_recover_resends_exactly_the_failed_events_of_the_window(api, send, receiver, queued_only, settings):
    settings.MITTIS_WEBHOOK_RETRY_SCHEDULE = []  # one attempt each, so failures are final at once
    endpoint_id = queued_only[0]
    outcomes = {"before": 500, "ok": 200, "failed-1": 500, "failed-2": 503, "after": 500}
    ids = {}
    for name, status in outcomes.items():
        receiver.script = [(status, {})]
        ids[name] = send(body=name).json()["id"]
        attempt_due()
    events = {name: Event.objects.get(object_id=ids[name], type="message.queued") for name in outcomes}
    base = timezone.now() - timedelta(hours=1)
    for minutes, name in enumerate(outcomes):  # spread over the hour, in order
        when = base + timedelta(minutes=10 * minutes)
        Event.objects.filter(pk=events[name].pk).update(created_at=when)
        Delivery.objects.filter(event_id=events[name].pk).update(event_created_at=when)  # they keep their event's time
    receiver.requests.clear()

    response = api.post(f"/v1/webhook_endpoints/{endpoint_id}/recover", {
        "since": (base + timedelta(minutes=5)).isoformat(), "until": (base + timedelta(minutes=35)).isoformat()},
        format="json")
    recovered = recover_endpoint(Delivery.objects.get(event=events["ok"]).endpoint_id,
                                 (base + timedelta(minutes=5)).isoformat(),
                                 (base + timedelta(minutes=35)).isoformat())
    attempt_due()

    assert response.status_code == 202 and response.json()["status"] == "queued"
    assert recovered == 2
    assert sorted(sent_event_ids(receiver)) == sorted([events["failed-1"].public_id, events["failed-2"].public_id])
    assert recover_endpoint(events["ok"].deliveries.get().endpoint_id, (base + timedelta(minutes=5)).isoformat(),
                            (base + timedelta(minutes=35)).isoformat()) == 0  # they succeeded now


def test_recover_needs_a_valid_window(api, queued_only):
    url = f"/v1/webhook_endpoints/{queued_only[0]}/recover"

    missing = api.post(url, {}, format="json")
    backwards = api.post(url, {"since": "2026-06-02T00:00:00Z", "until": "2026-06-01T00:00:00Z"}, format="json")

    assert (missing.status_code, missing.json()["error"]["field"]) == (400, "since")
    assert (backwards.status_code, backwards.json()["error"]["field"]) == (400, "until")
