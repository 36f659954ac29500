"""`manage.py createapikey`: the bootstrap a developer runs first; its last line is a working key."""

from io import StringIO

from django.core.management import CommandError, call_command
import pytest
from rest_framework.test import APIClient

from messaging.models import Sender
from mittis.accounts.keys import hash_secret
from mittis.accounts.models import Account, ApiKey
from tests.factories import AccountFactory

MESSAGE = {"from": "+18045550142", "to": "+18045550199", "body": "hi"}


def createapikey(*args: str) -> str:
    """The command's last line of stdout."""
    out = StringIO()
    call_command("createapikey", *args, stdout=out, stderr=StringIO())
    return out.getvalue().rstrip("\n").splitlines()[-1]


def client_for(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def test_the_last_line_is_a_test_key_that_sends_from_the_registered_sender(db):
    key = createapikey("--account", "Demo", "--sender", "+18045550142")

    assert key.startswith("mk_test_")
    assert ApiKey.objects.get().hashed_secret == hash_secret(key)
    assert client_for(key).post("/v1/messages", MESSAGE, format="json").status_code == 201


def test_running_it_twice_reuses_the_account_and_sender_and_makes_two_keys(db):
    first = createapikey("--account", "Demo", "--sender", "+18045550142")
    second = createapikey("--account", "Demo", "--sender", "+18045550142")

    assert first != second
    assert (Account.objects.count(), Sender.objects.count(), ApiKey.objects.count()) == (1, 1, 2)
    assert [client_for(key).get("/v1/messages").status_code for key in (first, second)] == [200, 200]


def test_live_makes_a_live_key(db):
    key = createapikey("--account", "Demo", "--sender", "+18045550142", "--live")

    assert key.startswith("mk_live_") and ApiKey.objects.get().livemode is True


def test_an_existing_account_is_found_by_its_id(db):
    existing = AccountFactory(name="Acme Plumbing")

    createapikey("--account", existing.public_id, "--name", "ci")

    assert Account.objects.get() == existing
    assert ApiKey.objects.get().name == "ci"


@pytest.mark.parametrize("value, kind", [("+18045550142", Sender.PHONE_NUMBER), ("Mittis", Sender.ALPHANUMERIC)])
def test_a_sender_is_registered_with_its_kind(db, value, kind):
    createapikey("--account", "Demo", "--sender", value)

    assert list(Sender.objects.values_list("value", "kind")) == [(value, kind)]


@pytest.mark.parametrize("value", ["not a number!!", "+1804555", "+18045550142x", "+1 804 555 0142",
                                   "WayTooLongSenderId"])
def test_an_invalid_sender_is_refused_and_nothing_is_created(db, value):
    with pytest.raises(CommandError):
        createapikey("--account", "Demo", "--sender", value)

    assert (Account.objects.count(), Sender.objects.count(), ApiKey.objects.count()) == (0, 0, 0)
