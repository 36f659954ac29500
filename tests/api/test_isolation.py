"""Nobody is let in: for every endpoint of /v1, another account's key and the owner's own test key get
404 for the owner's live objects, see none of them in any list, and change nothing by trying.

The table below names every path of the served schema; a new endpoint fails
`test_every_endpoint_is_covered` until it is added here.
"""

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone
import pytest
from rest_framework.test import APIClient

from billing.services import balance_top_up
from messaging.carriers.base import InboundSms
from messaging.models import Message
from messaging.services import message_receive
from mittis.api.schema_compat import committed_schema
from tests.conftest import SEED
from tests.factories import AccountFactory, SenderFactory, api_key_for
from webhooks.models import WebhookEndpoint

# path -> the methods tried on another account's object, with a body that would otherwise be valid
OBJECT_PATHS = {
    "/v1/messages/{id}": {"get": None},
    "/v1/messages/{id}/events": {"get": None},
    "/v1/messages/{id}/cancel": {"post": {}},
    "/v1/messages/{id}/redact": {"post": {}},
    "/v1/events/{id}": {"get": None},
    "/v1/events/{id}/redeliver": {"post": {}},
    "/v1/exports/{id}": {"get": None},
    "/v1/exports/{id}/download": {"get": None},
    "/v1/webhook_endpoints/{id}": {"get": None, "patch": {"description": "mine now"}, "delete": None},
    "/v1/webhook_endpoints/{id}/deliveries": {"get": None},
    "/v1/webhook_endpoints/{id}/recover": {"post": {"since": "2020-01-01T00:00:00Z"}},
    "/v1/webhook_endpoints/{id}/rotate_secret": {"post": {}},
    "/v1/test_helpers/messages/{id}/delivery_report": {"post": {"status": "delivered"}},
}
# Lists, and the objects of the owner's each must never show to a stranger.
LIST_PATHS = {
    "/v1/messages": ["scheduled", "delivered"],
    "/v1/events": ["event"],
    "/v1/exports": ["export"],
    "/v1/webhook_endpoints": ["endpoint"],
    "/v1/ledger": [],  # checked by amount: the owner's top-up
    "/v1/opt_outs": [],  # checked by phone number
}
# Per account by construction (no id in the path), checked below by value.
ACCOUNT_PATHS = {"/v1/balance", "/v1/usage", "/v1/callback_secret", "/v1/callback_secret/rotate",
                 "/v1/messages/preview", "/v1/pricing", "/v1/test_helpers/inbound_messages"}
STOPPED = "+18045550177"


def client_for(key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


@pytest.fixture
def owner(account, public_dns, django_capture_on_commit_callbacks):
    """Account A's live objects, one of every kind, made through the API."""
    balance_top_up(account_id=account.pk, livemode=True, amount=Decimal("7.77"))
    live = client_for(api_key_for(account, livemode=True))
    scheduled = live.post("/v1/messages", {**SEED, "send_at": (timezone.now() + timedelta(days=1)).isoformat()},
                          format="json").json()
    delivered = live.post("/v1/messages", SEED, format="json").json()
    endpoint = live.post("/v1/webhook_endpoints", {"url": "https://hooks.example.com/a"}, format="json").json()
    with django_capture_on_commit_callbacks(execute=False):  # the export stays pending: no worker here
        export = live.post("/v1/exports", {"type": "messages", "start": "2020-01-01T00:00:00Z",
                                            "end": "2030-01-01T00:00:00Z"}, format="json").json()
    message_receive(carrier="twilio-main", inbound=InboundSms(sender=STOPPED, to=SEED["from"], body="STOP",
                                                          carrier_message_id="SM1"))
    event = live.get(f"/v1/messages/{delivered['id']}/events").json()["data"][0]
    ids = {"scheduled": scheduled["id"], "delivered": delivered["id"], "endpoint": endpoint["id"],
           "export": export["id"], "event": event["id"]}
    assert all(ids.values()), ids
    return {"api": live, "ids": ids, "secret": endpoint["secret"], "account": account}


@pytest.fixture
def stranger(db):
    other = AccountFactory(name="Other Co")
    SenderFactory(account=other, value="+18045550143")
    balance_top_up(account_id=other.pk, livemode=True, amount=Decimal("1"))
    return client_for(api_key_for(other, livemode=True))


@pytest.fixture
def own_test_key(account):
    return client_for(api_key_for(account, livemode=False))


def object_for(path: str, ids: dict) -> str:
    if path.startswith("/v1/messages/{id}/cancel"):
        return ids["scheduled"]
    if path.startswith(("/v1/messages/", "/v1/test_helpers/messages/")):
        return ids["delivered"]
    if path.startswith("/v1/events/"):
        return ids["event"]
    if path.startswith("/v1/exports/"):
        return ids["export"]
    return ids["endpoint"]


def test_every_endpoint_is_covered():
    assert set(committed_schema()["paths"]) == set(OBJECT_PATHS) | set(LIST_PATHS) | ACCOUNT_PATHS


@pytest.mark.parametrize("intruder", ["stranger", "own_test_key"])
@pytest.mark.parametrize("path, method", [(p, m) for p, methods in OBJECT_PATHS.items() for m in methods])
def test_another_accounts_key_and_a_test_key_get_404_for_a_live_object(request, owner, intruder, path, method):
    client = request.getfixturevalue(intruder)
    body = OBJECT_PATHS[path][method]
    url = path.replace("{id}", object_for(path, owner["ids"]))

    response = getattr(client, method)(url, body, format="json") if body is not None else getattr(client, method)(url)

    assert response.status_code == 404, (url, response.content)
    assert response.json()["error"]["type"] == "not_found_error"


def test_the_owner_still_has_everything_unchanged_after_every_intrusion(owner, stranger, own_test_key):
    for client in (stranger, own_test_key):
        for path, methods in OBJECT_PATHS.items():
            url = path.replace("{id}", object_for(path, owner["ids"]))
            for method, body in methods.items():
                getattr(client, method)(url, body, format="json") if body is not None else getattr(client, method)(url)

    live, ids = owner["api"], owner["ids"]
    assert live.get(f"/v1/messages/{ids['scheduled']}").json()["status"] == "scheduled"  # not canceled
    delivered = live.get(f"/v1/messages/{ids['delivered']}").json()
    assert (delivered["body"], delivered["status"]) == (SEED["body"], "queued")  # not redacted, nor reported on
    endpoint = live.get(f"/v1/webhook_endpoints/{ids['endpoint']}").json()
    assert endpoint["description"] == "" and endpoint["status"] == "enabled"  # not edited, not deleted
    from mittis import crypto
    stored = WebhookEndpoint.objects.get(public_id=ids["endpoint"])
    assert crypto.decrypt(stored.secret_encrypted) == owner["secret"]  # not rotated
    assert Message.objects.filter(account=owner["account"], redacted_at__isnull=False).count() == 0


@pytest.mark.parametrize("intruder", ["stranger", "own_test_key"])
@pytest.mark.parametrize("path", LIST_PATHS)
def test_no_list_shows_another_accounts_or_the_other_modes_objects(request, owner, intruder, path):
    client = request.getfixturevalue(intruder)

    response = client.get(path)

    assert response.status_code == 200
    text = response.content.decode()
    for name in LIST_PATHS[path]:
        assert owner["ids"][name] not in text
    assert "7.77" not in text and STOPPED not in text
    assert owner["api"].get(path).json()["data"], f"the owner's own {path} is not empty"  # the check means something


@pytest.mark.parametrize("intruder", ["stranger", "own_test_key"])
def test_balance_usage_and_callback_secret_are_the_callers_own(owner, request, intruder):
    client = request.getfixturevalue(intruder)

    mine = Decimal(owner["api"].get("/v1/balance").json()["available"])
    assert Decimal(client.get("/v1/balance").json()["available"]) != mine
    window = "?start=2020-01-01T00:00:00Z&end=2030-01-01T00:00:00Z"
    assert owner["api"].get("/v1/usage" + window).json()["data"]  # the owner's own usage is there
    assert client.get("/v1/usage" + window).json()["data"] == []
    assert client.get("/v1/callback_secret").json()["secret"] != owner["api"].get("/v1/callback_secret").json()["secret"]
    rotated = client.post("/v1/callback_secret/rotate").json()["secret"]
    assert owner["api"].get("/v1/callback_secret").json()["secret"] != rotated


def test_a_test_inbound_message_to_another_accounts_sender_reaches_no_one(owner, stranger):
    stranger_test_key = client_for(api_key_for(AccountFactory(name="Third Co"), livemode=False))
    body = {"from": STOPPED, "to": SEED["from"], "body": "STOP"}  # the owner's sender

    live_refused = stranger.post("/v1/test_helpers/inbound_messages", body, format="json")
    test_refused = stranger_test_key.post("/v1/test_helpers/inbound_messages", body, format="json")

    assert (live_refused.status_code, live_refused.json()["error"]["code"]) == (404, "url_not_found")
    assert (test_refused.status_code, test_refused.json()["error"]["code"]) == (400, "unknown_sender")
    assert not Message.objects.filter(direction="inbound").exclude(carrier="twilio-main").exists()
