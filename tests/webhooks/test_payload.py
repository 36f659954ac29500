"""The product page's webhook example is true of a real payload: a message sent through the sandbox carrier by the
real pipeline (a worker on the configured broker, a real receiver), its `message.delivered` webhook verified with
the third-party `standardwebhooks` package and read as the page's code reads it."""

import json
import re

import pytest
from standardwebhooks import Webhook

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
