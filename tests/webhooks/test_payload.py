"""What webhook payloads say, through the real pipeline (the sandbox carrier, a worker on the configured broker,
a real receiver, signatures verified by the third-party `standardwebhooks` package): the product page's example
is true of a real `message.delivered`, and a scheduled message announces itself."""

from datetime import timedelta
import json
import re

from django.utils import timezone
import pytest
from standardwebhooks import Webhook

from messaging import statuses
from webhooks.serializers import EVENT_TYPES

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

# The page's example, `…` standing for a value of the page's choosing.
SEED_EXAMPLE = '{"type":"message.delivered","data":{"id":…,"status":"delivered","delivered_at":…}}'
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def shaped_like(example, value) -> bool:
    """`value` has every key of `example` with its value, `…` matching anything but null (more keys are fine)."""
    if example is ...:
        return value is not None
    if isinstance(example, dict):
        return isinstance(value, dict) and all(k in value and shaped_like(v, value[k]) for k, v in example.items())
    return example == value


def test_a_delivered_webhook_is_the_product_pages_example_with_a_real_delivered_at(worker, api, send, receiver,
                                                                                   endpoint):
    _endpoint_id, secret = endpoint
    created = send().json()
    receiver.wait_for(3)

    delivered = receiver.events("message.delivered")[0]
    payload = Webhook(secret).verify(delivered.body, delivered.headers)

    example = json.loads(SEED_EXAMPLE.replace("…", "null"), object_hook=lambda d: {
        k: ... if v is None else v for k, v in d.items()})
    assert shaped_like(example, payload), payload
    data = payload["data"]
    assert data["id"] == created["id"] and TIMESTAMP.match(data["delivered_at"])
    assert created["created_at"] <= data["sent_at"] <= data["delivered_at"] <= data["updated_at"]
    assert api.get(f"/v1/messages/{created['id']}").json()["delivered_at"] == data["delivered_at"]
    # The earlier events carry only what had happened by then.
    sent = json.loads(receiver.events("message.sent")[0].body)["data"]
    assert (sent["sent_at"], sent["delivered_at"]) == (data["sent_at"], None)


def test_a_message_accepted_with_send_at_sends_message_scheduled_to_an_endpoint_subscribed_to_it(
        worker, api, send, receiver, endpoint):
    endpoint_id, secret = endpoint
    subscribed = api.patch(f"/v1/webhook_endpoints/{endpoint_id}", {"enabled_events": ["message.scheduled"]},
                           format="json")
    assert subscribed.json()["enabled_events"] == ["message.scheduled"]
    send()  # queued: not this endpoint's
    send_at = (timezone.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    created = send(send_at=send_at).json()

    [request] = receiver.wait_for(1)
    payload = Webhook(secret).verify(request.body, request.headers)
    assert (payload["type"], payload["sequence"], payload["data"]) == ("message.scheduled", 1, created)
    assert payload["data"]["status"] == "scheduled" and payload["data"]["send_at"] == send_at


def test_every_type_a_message_event_has_is_one_an_endpoint_can_subscribe_to_and_the_reverse():
    assert sorted(set(statuses.EVENT_TYPES.values())) == sorted(EVENT_TYPES)
