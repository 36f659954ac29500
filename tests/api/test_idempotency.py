"""`Idempotency-Key`: a repeat of a request gets its answer back and creates, sends and charges nothing."""

from datetime import timedelta
from decimal import Decimal

from django.test import Client
from django.utils import timezone
import pytest
from rest_framework.test import APIClient

from billing.models import LedgerEntry
from billing.services import balance_top_up
from messaging.models import Message
from mittis.api.models import IdempotencyRecord
from mittis.api.tasks import purge_expired_idempotency_keys
from tests.conftest import SEED
from tests.factories import AccountFactory, SenderFactory, api_key_for
from webhooks.models import Event


def post(client, body=None, key="order-1042-reminder", path="/v1/messages", **headers):
    if key is not None:
        headers["HTTP_IDEMPOTENCY_KEY"] = key
    return client.post(path, SEED if body is None else body, format="json", **headers)


def error_of(response):
    return response.json()["error"]


@pytest.fixture
def live_api(account):
    balance_top_up(account_id=account.pk, livemode=True, amount=Decimal("1"))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(account, livemode=True)}")
    return client


def test_a_repeat_gets_the_first_answer_and_sends_and_charges_once(live_api, account):
    first = post(live_api)
    second = post(live_api)

    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert "Idempotent-Replayed" not in first
    assert second["Idempotent-Replayed"] == "true"
    message = Message.objects.get()
    assert message.public_id == first.json()["id"]
    assert LedgerEntry.objects.filter(type="charge").count() == 1
    assert Event.objects.filter(type="message.queued").count() == 1
    assert live_api.get("/v1/balance").json()["available"] == "0.992"


def test_a_different_key_is_a_different_message(api):
    post(api, key="a")
    post(api, key="b")
    post(api, key=None)

    assert Message.objects.count() == 3


@pytest.mark.parametrize("change", [
    {"body": {**SEED, "body": "A different text"}},
    {"path": "/v1/messages/preview"},
])
def test_the_same_key_for_a_different_request_is_422_and_does_nothing(api, change):
    assert post(api).status_code == 201

    response = post(api, **change)

    assert response.status_code == 422
    error = error_of(response)
    assert (error["code"], error["type"], error["field"]) == ("idempotency_key_reused", "idempotency_error",
                                                              "Idempotency-Key")
    assert "POST /v1/messages" in error["message"]
    assert Message.objects.count() == 1


def test_the_same_json_with_its_keys_in_another_order_is_the_same_request(api):
    first = api.post("/v1/messages", data='{"from": "+18045550142", "to": "+18045550199", "body": "hi"}',
                     content_type="application/json", HTTP_IDEMPOTENCY_KEY="k")
    second = api.post("/v1/messages", data='{"body":"hi","to":"+18045550199","from":"+18045550142"}',
                      content_type="application/json", HTTP_IDEMPOTENCY_KEY="k")

    assert second["Idempotent-Replayed"] == "true" and second.json()["id"] == first.json()["id"]


def test_keys_belong_to_one_account_and_one_mode(api, account, live_api):
    other = AccountFactory()
    SenderFactory(account=other, value="+18045550142")
    other_api = APIClient()
    other_api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(other)}")

    ids = {post(client).json()["id"] for client in (api, live_api, other_api)}

    assert len(ids) == 3
    assert Message.objects.filter(account=account).count() == 2
    assert Message.objects.filter(account=other).count() == 1


def test_a_rejected_request_is_stored_and_replayed_with_the_same_error(api):
    first = post(api, {**SEED, "to": "12345"})
    second = post(api, {**SEED, "to": "12345"})

    assert first.status_code == second.status_code == 400
    assert second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"
    # The replay is the original answer: its Request-Id is the one its body names.
    assert second["Request-Id"] == first["Request-Id"] == error_of(second)["request_id"]
    assert not Message.objects.exists()


def test_a_402_is_stored_too_and_a_top_up_does_not_change_the_answer_to_that_key(account):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(account, livemode=True)}")
    assert post(client).status_code == 402

    balance_top_up(account_id=account.pk, livemode=True, amount=Decimal("1"))

    assert post(client).status_code == 402
    assert post(client, key="after-top-up").status_code == 201


@pytest.fixture
def crashing_urls(settings):
    settings.ROOT_URLCONF = "tests.api.crashing_urls"


def test_a_crash_stores_nothing_and_undoes_the_write_so_a_retry_goes_through(crashing_urls, test_key, api):
    client = Client(raise_request_exception=False, HTTP_AUTHORIZATION=f"Bearer {test_key}")

    crashed = client.post("/v1/crash-after-write", {"body": "hi"}, content_type="application/json",
                          HTTP_IDEMPOTENCY_KEY="k")

    assert crashed.status_code == 500 and error_of(crashed)["code"] == "internal_error"
    assert not Message.objects.exists() and not IdempotencyRecord.objects.exists()
    retried = post(api, key="k", path="/v1/messages")
    assert retried.status_code == 201 and "Idempotent-Replayed" not in retried


def test_a_crash_without_a_key_undoes_the_write_too(crashing_urls, test_key):
    client = Client(raise_request_exception=False, HTTP_AUTHORIZATION=f"Bearer {test_key}")

    assert client.post("/v1/crash-after-write", {}, content_type="application/json").status_code == 500
    assert not Message.objects.exists()


@pytest.mark.parametrize("key, problem", [
    ("k" * 256, "256 characters"),
    ("", "empty"),
    ("order\x07bell", "control characters"),
    ("caf\xe9", "printable ASCII"),
    ('"unterminated', "quoted string"),
])
def test_a_malformed_key_is_400_naming_the_header_and_does_nothing(api, key, problem):
    response = post(api, key=key)

    assert response.status_code == 400
    error = error_of(response)
    assert (error["code"], error["field"]) == ("idempotency_key_invalid", "Idempotency-Key")
    assert problem in error["message"]
    assert not Message.objects.exists() and not IdempotencyRecord.objects.exists()


def test_a_key_of_255_characters_and_a_quoted_key_are_accepted(api):
    assert post(api, key="k" * 255).status_code == 201
    first = post(api, key='"order-7"')
    assert post(api, key="order-7")["Idempotent-Replayed"] == "true"
    assert first.status_code == 201 and Message.objects.count() == 2


def test_a_request_refused_before_processing_stores_nothing(anonymous, api):
    anonymous.credentials(HTTP_AUTHORIZATION="Bearer mk_test_" + "x" * 32)

    assert post(anonymous).status_code == 401
    assert not IdempotencyRecord.objects.exists()
    assert post(api).status_code == 201


def test_keys_are_forgotten_after_24_hours(api, settings):
    first = post(api)
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=24, minutes=1))
    fresh = post(api, key="fresh")

    assert purge_expired_idempotency_keys() == 1
    again = post(api)

    assert again.status_code == 201 and again.json()["id"] != first.json()["id"]
    assert "Idempotent-Replayed" not in again
    assert IdempotencyRecord.objects.count() == 2 and fresh.status_code == 201


def test_an_expired_key_not_yet_purged_is_not_replayed(api):
    first = post(api)
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=25))

    again = post(api)

    assert again.json()["id"] != first.json()["id"]


def test_the_purge_runs_on_beat(settings):
    assert any(entry["task"] == "api.purge_expired_idempotency_keys"
               for entry in settings.CELERY_BEAT_SCHEDULE.values())


def test_a_get_ignores_the_header(api):
    post(api)
    response = api.get("/v1/messages", HTTP_IDEMPOTENCY_KEY="order-1042-reminder")

    assert response.status_code == 200 and "Idempotent-Replayed" not in response
