"""Webhook payloads in their receiver's API version, end to end (a real receiver, a real worker), with a change of the
tests' own registered (`body_renamed`: versions before it call a message's `body` `text`): an endpoint's payloads in
its `api_version`, a `status_callback`'s in the account's, and the current version's as stored, untouched."""

import json
from types import SimpleNamespace

import pytest
from standardwebhooks import Webhook

from mittis import versions
from tests.conftest import NEXT_VERSION, SEED
from webhooks.models import Event
from webhooks.services import payloads

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

FIRST = versions.FIRST_VERSION


def pin(account, version: str) -> None:
    account.api_version = version
    account.save()


def endpoint_at(api, url: str, **fields) -> str:
    created = api.post("/v1/webhook_endpoints", {"url": url, "enabled_events": ["message.queued"], **fields},
                       format="json")
    assert created.status_code == 201, created.json()
    return created.json()["secret"]


def test_each_endpoint_gets_its_payloads_in_its_own_version(worker, body_renamed, api, account, send, receiver):
    pin(account, NEXT_VERSION)
    old_secret = endpoint_at(api, receiver.url + "/old", api_version=FIRST)
    new_secret = endpoint_at(api, receiver.url + "/new")  # the account's version

    message = send().json()
    receiver.wait_for(2)

    arrived = {request.path: request for request in receiver.requests}
    old = Webhook(old_secret).verify(arrived["/hooks/old"].body, arrived["/hooks/old"].headers)  # signed as sent
    new = Webhook(new_secret).verify(arrived["/hooks/new"].body, arrived["/hooks/new"].headers)
    assert old["data"]["id"] == new["data"]["id"] == message["id"]
    assert old["data"]["text"] == SEED["body"] and "body" not in old["data"]
    assert new["data"]["body"] == SEED["body"] and "text" not in new["data"]
    assert {k: v for k, v in old["data"].items() if k != "text"} == {k: v for k, v in new["data"].items() if k != "body"}
    assert arrived["/hooks/new"].body == Event.objects.get(public_id=new["id"]).payload  # stored as the newest shape
    assert (arrived["/hooks/old"].headers["mittis-version"], arrived["/hooks/new"].headers["mittis-version"]) == (
        FIRST, NEXT_VERSION)


def test_a_status_callback_gets_its_payloads_in_the_accounts_version(worker, body_renamed, api, account, send,
                                                                     receiver):
    pin(account, FIRST)
    secret = api.get("/v1/callback_secret").json()["secret"]

    message = send(status_callback=receiver.url + "/msg").json()
    receiver.wait_for(1)

    queued = Webhook(secret).verify(receiver.requests[0].body, receiver.requests[0].headers)
    assert (queued["type"], queued["data"]["id"]) == ("message.queued", message["id"])
    assert queued["data"]["text"] == SEED["body"] and "body" not in queued["data"]
    assert receiver.requests[0].headers["mittis-version"] == FIRST


def test_in_the_current_version_the_stored_payload_is_sent_untouched(worker, body_renamed, api, account, send,
                                                                      receiver, monkeypatch):
    pin(account, NEXT_VERSION)
    endpoint_at(api, receiver.url)

    def never(*args, **kwargs):
        raise AssertionError("nothing is transformed for a receiver on the current version")

    monkeypatch.setattr(versions, "downgrade", never)
    monkeypatch.setattr(payloads, "json", SimpleNamespace(loads=never, dumps=json.dumps))  # not even parsed
    send()
    [request] = receiver.wait_for(1)
    monkeypatch.undo()

    event = Event.objects.get(public_id=request.headers["webhook-id"])
    assert request.body == event.payload and json.loads(request.body)["data"]["body"] == SEED["body"]
