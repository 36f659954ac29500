"""`client.webhooks.verify` agrees with the Standard Webhooks reference library (`standardwebhooks`) on valid and
tampered input, and verifies what the real server delivers, returning the typed event."""

import json
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from mittis_sdk import SignatureVerificationError, models, webhooks
from tests.conftest import SEED

SECRET = webhooks.generate_secret()
OTHER_SECRET = webhooks.generate_secret()
BODY = json.dumps({"object": "event", "id": "evt_1", "type": "message.delivered", "sequence": 3,
                   "created_at": "2026-12-07T12:00:00Z", "livemode": False, "data": {
                       "object": "message", "id": "msg_1", "status": "delivered", "direction": "outbound",
                       "from": "+18045550142", "to": "+18045550199", "body": "Hi", "encoding": "GSM-7",
                       "segments": 1, "price": "0.008", "currency": "USD", "created_at": "2026-12-07T12:00:00Z",
                       "updated_at": "2026-12-07T12:00:02Z", "delivered_at": "2026-12-07T12:00:02Z",
                       "livemode": False}})


def signed(body: str = BODY, *, secret: str = SECRET, age: int = 0, id: str = "evt_1") -> dict[str, str]:
    return webhooks.sign(body, id=id, secret=secret, timestamp=int(time.time()) - age)


def _tamper_signature(headers):
    version, _, digest = headers["webhook-signature"].partition(",")
    return {**headers, "webhook-signature": f"{version},{'A' if digest[0] != 'A' else 'B'}{digest[1:]}"}


# name: (body, headers, accepted), each made when its test runs: a timestamp is relative to now
CASES = {
    "valid": lambda: (BODY, signed(), True),
    "valid, header names in capitals": lambda: (BODY, {k.title(): v for k, v in signed().items()}, True),
    "rotation: the old secret's signature beside the new": lambda: (BODY, {**signed(), "webhook-signature": " ".join(
        [signed(secret=OTHER_SECRET)["webhook-signature"], signed()["webhook-signature"]])}, True),
    "four minutes old": lambda: (BODY, signed(age=240), True),
    "body changed": lambda: (BODY.replace("delivered", "failed", 1), signed(), False),
    "one byte of whitespace added": lambda: (BODY + " ", signed(), False),
    "another secret": lambda: (BODY, signed(secret=OTHER_SECRET), False),
    "signature changed": lambda: (BODY, _tamper_signature(signed()), False),
    "id changed": lambda: (BODY, {**signed(), "webhook-id": "evt_2"}, False),
    "timestamp changed": lambda: (BODY, {**(headers := signed()),
                                         "webhook-timestamp": str(int(headers["webhook-timestamp"]) - 1)}, False),
    "ten minutes old": lambda: (BODY, signed(age=600), False),
    "ten minutes ahead": lambda: (BODY, signed(age=-600), False),
    "no signature": lambda: (BODY, {k: v for k, v in signed().items() if k != "webhook-signature"}, False),
    "v2 scheme only": lambda: (BODY, {**(headers := signed()),
                                      "webhook-signature": headers["webhook-signature"].replace("v1,", "v2,")}, False),
}


@pytest.mark.parametrize("name", CASES)
def test_verify_agrees_with_the_standard_webhooks_library(name):
    body, headers, accepted = CASES[name]()

    try:
        Webhook(SECRET).verify(body, headers)
        reference_accepts = True
    except WebhookVerificationError:
        reference_accepts = False
    try:
        event = webhooks.verify(body, headers, SECRET)
        sdk_accepts = True
    except SignatureVerificationError:
        sdk_accepts = False

    assert (sdk_accepts, reference_accepts) == (accepted, accepted)
    if accepted:
        assert isinstance(event, models.Event) and event.data.delivered_at is not None


def test_verify_returns_the_typed_event_of_a_real_delivery(client, receiver, worker):
    endpoint = client.webhook_endpoints.create(url=receiver.url, enabled_events=["message.delivered"])
    message = client.messages.create(from_=SEED["from"], to=SEED["to"], body=SEED["body"])

    delivery = receiver.wait_for(1)[0]
    event = client.webhooks.verify(delivery.body.encode(), delivery.headers, endpoint.secret)

    assert event.type == "message.delivered" and event.id == delivery.headers["webhook-id"]
    assert isinstance(event.data, models.Message) and event.data.id == message.id and event.data.delivered_at
    Webhook(endpoint.secret).verify(delivery.body, delivery.headers)
    with pytest.raises(SignatureVerificationError):
        client.webhooks.verify(delivery.body.encode(), delivery.headers, webhooks.generate_secret())


def test_a_status_callback_verifies_with_the_callback_secret(client, receiver, worker):
    secret = client.callback_secret.retrieve().secret
    client.messages.create(from_=SEED["from"], to=SEED["to"], body=SEED["body"], status_callback=receiver.url)

    deliveries = receiver.wait_for(3)

    events = sorted((client.webhooks.verify(d.body, d.headers, secret) for d in deliveries), key=lambda e: e.sequence)
    assert [e.type for e in events] == ["message.queued", "message.sent", "message.delivered"]
