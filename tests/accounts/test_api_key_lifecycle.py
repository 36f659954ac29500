"""API keys: shown once, stored hashed, revocable, with last_used_at; the bootstrap command."""

from io import StringIO

from django.core.management import CommandError, call_command
import pytest

from messaging.models import Sender
from mittis.accounts.models import Account, ApiKey
from mittis.accounts.services import api_key_create, api_key_revoke, hash_secret
from tests.conftest import SEED


@pytest.mark.parametrize("livemode, prefix", [(False, "mk_test_"), (True, "mk_live_")])
def test_the_database_keeps_a_hash_and_a_prefix_never_the_secret(account, livemode, prefix):
    created = api_key_create(account=account, livemode=livemode)

    row = ApiKey.objects.filter(pk=created.api_key.pk).values().get()
    assert created.secret.startswith(prefix) and len(created.secret) == len(prefix) + 32
    assert created.secret not in [str(value) for value in row.values()]
    assert row["hashed_secret"] == hash_secret(created.secret)
    assert row["prefix"] == created.secret[:12]


def test_a_request_records_last_used_at_at_most_once_a_minute(anonymous, account, django_assert_num_queries):
    created = api_key_create(account=account, livemode=False)
    anonymous.credentials(HTTP_AUTHORIZATION=f"Bearer {created.secret}")
    assert created.api_key.last_used_at is None

    anonymous.get("/v1/messages")
    first_use = ApiKey.objects.get(pk=created.api_key.pk).last_used_at
    with django_assert_num_queries(2):  # the key lookup and the page: no second write
        anonymous.get("/v1/messages")

    assert first_use is not None
    assert ApiKey.objects.get(pk=created.api_key.pk).last_used_at == first_use


def test_a_revoked_key_gets_401(anonymous, account):
    created = api_key_create(account=account, livemode=False)
    anonymous.credentials(HTTP_AUTHORIZATION=f"Bearer {created.secret}")
    assert anonymous.get("/v1/messages").status_code == 200

    api_key_revoke(api_key=created.api_key)

    response = anonymous.get("/v1/messages")
    assert (response.status_code, response.json()["error"]["code"]) == (401, "invalid_api_key")


def test_a_deactivated_accounts_key_gets_401(anonymous, account, test_key):
    anonymous.credentials(HTTP_AUTHORIZATION=f"Bearer {test_key}")
    Account.objects.filter(pk=account.pk).update(is_active=False)

    response = anonymous.get("/v1/messages")

    assert (response.status_code, response.json()["error"]["code"]) == (401, "invalid_api_key")


def createapikey(*args):
    out = StringIO()
    call_command("createapikey", *args, stdout=out, stderr=StringIO())
    return out.getvalue().strip().splitlines()[-1]


def test_createapikey_prints_a_working_key_on_its_last_line(db, anonymous):
    key = createapikey("--account", "Demo", "--sender", "+18045550142")

    anonymous.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert key.startswith("mk_test_")
    assert anonymous.post("/v1/messages", SEED, format="json").status_code == 201


def test_createapikey_reuses_the_account_and_sender_and_makes_a_new_key(db):
    first = createapikey("--account", "Demo", "--sender", "+18045550142")
    second = createapikey("--account", "Demo", "--sender", "+18045550142", "--live")

    assert first != second and second.startswith("mk_live_")
    assert (Account.objects.count(), Sender.objects.count(), ApiKey.objects.count()) == (1, 1, 2)


def test_createapikey_refuses_an_invalid_sender(db):
    with pytest.raises(CommandError):
        createapikey("--account", "Demo", "--sender", "not a number!!")
