"""Rate limits: every response says what limit applied and what is left; past it, 429 and nothing done."""

import logging
import time

from django.core.exceptions import ImproperlyConfigured
from django.test import Client, RequestFactory
import http_sf
import pytest
import redis
from rest_framework.test import APIClient

from messaging.models import Message
from mittis.api import ratelimit
from mittis.api.models import IdempotencyRecord
from mittis.redis import redis_client
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


# --- Redis down ------------------------------------------------------------------------------------
@pytest.fixture
def redis_down(settings, monkeypatch):
    """The limiter's Redis refuses connections (nothing listens on port 1), in a process that saw no outage yet.
    Returns a function that brings it back."""
    real_url = settings.MITTIS_RATE_LIMIT_REDIS_URL

    def point_at(url):
        settings.MITTIS_RATE_LIMIT_REDIS_URL = url
        redis_client.cache_clear()
        ratelimit._hit_script.cache_clear()  # bound to the client it was registered with

    point_at("redis://127.0.0.1:1/0")
    monkeypatch.setattr(ratelimit, "_outage", ratelimit._Outage())
    yield lambda: point_at(real_url)
    redis_client.cache_clear()  # rebuilt on the real URL, which `settings` puts back
    ratelimit._hit_script.cache_clear()


def limiter_warnings(caplog) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "mittis.api.ratelimit"]


def test_while_redis_is_down_requests_are_admitted_and_it_is_logged_once_per_interval(
        redis_down, api, caplog, monkeypatch):
    started = time.monotonic()
    answers = [api.get("/v1/messages") for _ in range(5)]

    assert time.monotonic() - started < 1.5  # no request waits on Redis (each waited 4 s for redis-py's retries)
    assert [a.status_code for a in answers] == [200] * 5
    assert {limits(a)["q"] for a in answers} == {100}  # the limit that applies, though nothing was counted
    [warning] = limiter_warnings(caplog)
    assert warning.exc_info is None and "unavailable" in warning.getMessage()
    assert "1 requests admitted uncounted" in warning.getMessage()

    monkeypatch.setattr(ratelimit, "OUTAGE_LOG_INTERVAL", 0.2)
    time.sleep(0.25)
    api.get("/v1/messages")
    api.get("/v1/messages")

    assert len(limiter_warnings(caplog)) == 2
    assert "5 requests admitted uncounted" in limiter_warnings(caplog)[1].getMessage()  # 4 quiet ones and this

    redis_down()  # Redis is back
    api.get("/v1/messages")
    api.get("/v1/messages")

    assert len(limiter_warnings(caplog)) == 3
    assert "available again" in limiter_warnings(caplog)[2].getMessage()


def test_set_to_fail_closed_a_request_it_cannot_count_is_refused_with_503(redis_down, api, settings, caplog):
    settings.MITTIS_RATE_LIMIT_FAIL_OPEN = False

    answers = [api.post("/v1/messages", SEED, format="json") for _ in range(3)]

    for response in answers:
        assert response.status_code == 503
        error = response.json()["error"]
        assert (error["code"], error["type"]) == ("service_unavailable", "api_error")
        assert error["request_id"] == response["Request-Id"] and int(response["Retry-After"]) >= 1
    assert not Message.objects.exists()
    [warning] = limiter_warnings(caplog)
    assert "refused with 503" in warning.getMessage()


# --- Behind a load balancer ------------------------------------------------------------------------
LOAD_BALANCER = "10.0.0.5"


@pytest.mark.parametrize("peer, header, client", [
    ("10.0.0.5", "203.0.113.7", "203.0.113.7"),  # one proxy of ours
    ("10.0.0.5", "203.0.113.7, 10.1.1.1", "203.0.113.7"),  # two
    ("10.0.0.5", "198.51.100.1, 203.0.113.7", "203.0.113.7"),  # the client's own entries come first: not believed
    ("10.0.0.5", " 2001:db8::7 ", "2001:db8::7"),
    ("10.0.0.5", "[2001:db8::7]:4711, 203.0.113.7:4711", "203.0.113.7"),  # with ports, as some proxies write
    ("10.0.0.5", "10.2.2.2, 10.1.1.1", "10.2.2.2"),  # every hop ours: where it began
    ("10.0.0.5", "not-an-address\x00, 10.1.1.1", "10.1.1.1"),  # the hop that handed the nonsense over
    ("10.0.0.5", "", "10.0.0.5"),
    ("203.0.113.50", "198.51.100.9", "203.0.113.50"),  # not from a proxy of ours: the header is the client's own
])
def test_the_client_behind_trusted_proxies_is_the_right_most_address_not_theirs(settings, peer, header, client):
    settings.MITTIS_TRUSTED_PROXIES = ["10.0.0.0/8", "fd00::/8"]
    request = RequestFactory().get("/v1/pricing", REMOTE_ADDR=peer, HTTP_X_FORWARDED_FOR=header)

    assert ratelimit.client_address(request) == client


def test_without_trusted_proxies_the_header_is_never_read(settings):
    request = RequestFactory().get("/v1/pricing", REMOTE_ADDR=LOAD_BALANCER, HTTP_X_FORWARDED_FOR="203.0.113.7")

    assert ratelimit.client_address(request) == LOAD_BALANCER


def test_a_trusted_proxy_that_is_no_network_is_a_configuration_error():
    with pytest.raises(ImproperlyConfigured, match="MITTIS_TRUSTED_PROXIES"):
        ratelimit.trusted_proxies(("10.0.0.0/33",))


def test_the_header_to_honour_is_a_setting(settings):
    settings.MITTIS_TRUSTED_PROXIES, settings.MITTIS_FORWARDED_FOR_HEADER = ["10.0.0.5/32"], "X-Real-IP"
    request = RequestFactory().get("/v1/pricing", REMOTE_ADDR=LOAD_BALANCER, HTTP_X_FORWARDED_FOR="198.51.100.9",
                                   HTTP_X_REAL_IP="203.0.113.7")

    assert ratelimit.client_address(request) == "203.0.113.7"


def test_behind_the_load_balancer_each_anonymous_client_has_its_own_bucket(settings, db):
    settings.MITTIS_ANONYMOUS_RATE_LIMIT, settings.MITTIS_TRUSTED_PROXIES = 2, ["10.0.0.0/8"]
    here, there = (Client(REMOTE_ADDR=LOAD_BALANCER, HTTP_X_FORWARDED_FOR=address)
                   for address in ("203.0.113.7", "198.51.100.9"))

    answers = [here.get("/v1/pricing").status_code for _ in range(3)]

    assert answers == [200, 200, 429]
    assert there.get("/v1/pricing").status_code == 200
    forged = Client(REMOTE_ADDR=LOAD_BALANCER, HTTP_X_FORWARDED_FOR="192.0.2.1, 203.0.113.7")
    assert forged.get("/v1/pricing").status_code == 429  # a made-up first hop does not make a new client
