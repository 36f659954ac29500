"""Rate limits: every response says what limit applied and what is left; past it, 429 and nothing done."""

import time

from django.test import Client
import http_sf
import pytest
from rest_framework.test import APIClient

from messaging.models import Message
from mittis.api.models import IdempotencyRecord
from tests.conftest import SEED
from tests.factories import AccountFactory, SenderFactory, api_key_for

HEADERS = ["RateLimit-Policy", "RateLimit", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"]


def limits(response) -> dict:
    """The limit headers, parsed as the IETF draft defines them (structured-field lists)."""
    [(policy_name, policy)] = http_sf.parse(response["RateLimit-Policy"].encode(), tltype="list")
    [(limit_name, limit)] = http_sf.parse(response["RateLimit"].encode(), tltype="list")
    assert policy_name == limit_name == "default"
    assert int(response["X-RateLimit-Limit"]) == policy["q"]
    assert int(response["X-RateLimit-Remaining"]) == limit["r"]
    assert abs(int(response["X-RateLimit-Reset"]) - (time.time() + limit["t"])) <= 2
    return {"q": policy["q"], "w": policy["w"], "r": limit["r"], "t": limit["t"]}


@pytest.fixture
def crashing_urls(settings):
    settings.ROOT_URLCONF = "tests.api.crashing_urls"


@pytest.mark.parametrize("request_, status", [
    (lambda api, anon: api.get("/v1/messages"), 200),
    (lambda api, anon: api.post("/v1/messages", SEED, format="json"), 201),
    (lambda api, anon: api.post("/v1/messages", {**SEED, "to": "1"}, format="json"), 400),
    (lambda api, anon: anon.get("/v1/messages"), 401),
    (lambda api, anon: api.get("/v1/messages/msg_doesnotexist"), 404),
    (lambda api, anon: api.get("/v1/nowhere"), 404),
    (lambda api, anon: api.delete("/v1/messages"), 405),
    (lambda api, anon: api.post("/v1/messages", SEED, format="json", HTTP_IDEMPOTENCY_KEY="k" * 300), 400),
    (lambda api, anon: anon.get("/v1/pricing"), 200),
    (lambda api, anon: anon.get("/healthz"), 200),
])
def test_every_response_carries_the_limit_that_applied(api, anonymous, request_, status):
    response = request_(api, anonymous)

    assert response.status_code == status
    assert limits(response) == {"q": 100, "w": 1, "r": 99, "t": 1}


def test_a_500_carries_the_limit_too(crashing_urls, db):
    response = Client(raise_request_exception=False).get("/v1/crash")

    assert response.status_code == 500 and limits(response)["r"] == 99


@pytest.fixture
def limited(account):
    account.rate_limit, account.rate_limit_window = 3, 60
    account.save()
    return account


def test_each_request_uses_one_and_past_the_limit_is_429_with_retry_after(limited, api):
    answers = [api.get("/v1/messages") for _ in range(5)]

    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
    assert [limits(a)["r"] for a in answers] == [2, 1, 0, 0, 0]
    assert {limits(a)["q"] for a in answers} == {3} and {limits(a)["w"] for a in answers} == {60}
    refused = answers[3]
    error = refused.json()["error"]
    assert (error["code"], error["type"]) == ("rate_limit_exceeded", "rate_limit_error")
    assert "3 per 60 s" in error["message"]
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert int(refused["Retry-After"]) == limits(refused)["t"]
    assert refused["Request-Id"] == error["request_id"]


def test_a_refused_send_does_nothing_and_stores_no_idempotency_record(limited, api):
    for n in range(3):
        api.get("/v1/messages")

    response = api.post("/v1/messages", SEED, format="json", HTTP_IDEMPOTENCY_KEY="k")

    assert response.status_code == 429
    assert not Message.objects.exists() and not IdempotencyRecord.objects.exists()


def test_each_key_has_its_own_count_and_the_accounts_limit(limited, api, account):
    other_key = APIClient()
    other_key.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(account)}")
    other_account = AccountFactory()
    SenderFactory(account=other_account)
    default_account = APIClient()
    default_account.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(other_account)}")
    for _ in range(3):
        api.get("/v1/messages")

    assert limits(other_key.get("/v1/messages")) | {"t": None} == {"q": 3, "w": 60, "r": 2, "t": None}
    assert limits(default_account.get("/v1/messages"))["q"] == 100
    assert api.get("/v1/messages").status_code == 429


def test_without_a_key_the_limit_is_per_client_address(settings, db):
    settings.MITTIS_ANONYMOUS_RATE_LIMIT = 2
    here, there = Client(REMOTE_ADDR="203.0.113.7"), Client(REMOTE_ADDR="198.51.100.9")

    answers = [here.get("/v1/pricing").status_code for _ in range(3)]

    assert answers == [200, 200, 429]
    assert there.get("/v1/pricing").status_code == 200
    # A wrong key is counted against the address too: guessing keys is rate limited.
    wrong = here.get("/v1/messages", HTTP_AUTHORIZATION="Bearer mk_test_" + "x" * 32)
    assert wrong.status_code == 429


def test_the_staff_console_is_not_the_api_and_is_not_limited(admin_client):
    response = admin_client.get("/admin/")

    assert response.status_code == 200 and "RateLimit" not in response


def test_the_window_resets(settings, account, api):
    account.rate_limit, account.rate_limit_window = 1, 1
    account.save()
    assert api.get("/v1/messages").status_code == 200
    refused = api.get("/v1/messages")
    assert refused.status_code == 429

    time.sleep(int(refused["Retry-After"]) + 0.1)

    assert api.get("/v1/messages").status_code == 200
