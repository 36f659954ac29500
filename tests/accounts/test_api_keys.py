"""API keys as a customer meets them: prefixed, kept only as a hash, recording use, refused once revoked."""

import base64
from datetime import timedelta

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
import pytest

from mittis.accounts.keys import hash_secret
from mittis.accounts.models import ApiKey
from mittis.accounts.services import api_key_create, api_key_revoke
from tests.factories import AccountFactory


def _error(response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def _key_writes(queries) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith("UPDATE") and "accounts_apikey" in q["sql"]]


@pytest.mark.parametrize("livemode, prefix", [(False, "mk_test_"), (True, "mk_live_")])
def test_a_new_key_is_prefixed_by_mode_and_stored_only_as_a_hash(account, livemode, prefix):
    created = api_key_create(account=account, livemode=livemode)

    row = ApiKey.objects.filter(pk=created.api_key.pk).values().get()
    assert created.secret.startswith(prefix)
    assert not [column for column, value in row.items() if created.secret in str(value)]
    assert row["hashed_secret"] == hash_secret(created.secret) and len(row["hashed_secret"]) == 64
    assert row["prefix"] == created.secret[:12] and len(row["prefix"]) == 12


def test_two_keys_never_share_a_secret(account):
    assert api_key_create(account=account, livemode=False).secret != api_key_create(account=account, livemode=False).secret


def test_a_request_records_last_used_at_and_a_second_within_a_minute_writes_nothing(anonymous, account):
    created = api_key_create(account=account, livemode=False)
    anonymous.credentials(HTTP_AUTHORIZATION=f"Bearer {created.secret}")
    before = timezone.now()

    assert anonymous.get("/v1/messages").status_code == 200
    first_use = ApiKey.objects.get(pk=created.api_key.pk).last_used_at
    with CaptureQueriesContext(connection) as queries:
        assert anonymous.get("/v1/messages").status_code == 200

    assert first_use is not None and first_use >= before
    assert _key_writes(queries.captured_queries) == []
    assert ApiKey.objects.get(pk=created.api_key.pk).last_used_at == first_use


def test_a_request_a_minute_after_the_last_records_it_again(anonymous, account):
    created = api_key_create(account=account, livemode=False)
    long_ago = timezone.now() - timedelta(minutes=5)
    ApiKey.objects.filter(pk=created.api_key.pk).update(last_used_at=long_ago)
    anonymous.credentials(HTTP_AUTHORIZATION=f"Bearer {created.secret}")

    assert anonymous.get("/v1/messages").status_code == 200

    assert ApiKey.objects.get(pk=created.api_key.pk).last_used_at > long_ago


@pytest.mark.parametrize("header, expected", [
    ("Bearer {secret}", 200),
    ("bearer {secret}", 200),
    ("Basic {basic}", 200),  # curl -u mk_test_…:
    ("Bearer mk_test_" + "x" * 32, "invalid_api_key"),
    ("Bearer sk_test_whatever", "invalid_api_key"),
    ("Bearer {secret}x", "invalid_api_key"),
    ("Basic %%%notbase64", "invalid_api_key"),
    ("Token {secret}", "invalid_api_key"),
    (None, "missing_api_key"),
])
def test_the_authorization_header(anonymous, test_key, header, expected):
    if header:
        basic = base64.b64encode(f"{test_key}:".encode()).decode()
        anonymous.credentials(HTTP_AUTHORIZATION=header.format(secret=test_key, basic=basic))

    response = anonymous.get("/v1/messages")

    if expected == 200:
        assert response.status_code == 200
    else:
        assert _error(response) == (401, expected)


def test_a_revoked_key_gets_401_invalid_api_key(anonymous, account):
    created = api_key_create(account=account, livemode=False)
    anonymous.credentials(HTTP_AUTHORIZATION=f"Bearer {created.secret}")
    assert anonymous.get("/v1/messages").status_code == 200

    api_key_revoke(api_key=created.api_key)

    assert _error(anonymous.get("/v1/messages")) == (401, "invalid_api_key")


def test_revoking_one_key_leaves_the_accounts_other_keys_working(anonymous, account):
    revoked, kept = api_key_create(account=account, livemode=False), api_key_create(account=account, livemode=False)

    api_key_revoke(api_key=revoked.api_key)

    anonymous.credentials(HTTP_AUTHORIZATION=f"Bearer {kept.secret}")
    assert anonymous.get("/v1/messages").status_code == 200


def test_revoking_twice_keeps_the_first_revocation_time(account):
    created = api_key_create(account=account, livemode=False)
    first = api_key_revoke(api_key=created.api_key).revoked_at

    assert api_key_revoke(api_key=created.api_key).revoked_at == first


def test_an_inactive_accounts_key_gets_401_invalid_api_key(anonymous, db):
    account = AccountFactory(is_active=False)
    anonymous.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(account=account, livemode=False).secret}")

    assert _error(anonymous.get("/v1/messages")) == (401, "invalid_api_key")
