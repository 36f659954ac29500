"""`/v1/webhook_endpoints`: create, read, change and delete endpoints; the secret is shown once and kept encrypted."""

import pytest
from rest_framework.test import APIClient

from mittis import versions
from webhooks.models import WebhookEndpoint
from tests.conftest import NEXT_VERSION
from tests.factories import AccountFactory, api_key_for
from tests.webhooks.conftest import IPV6_AROUND_PRIVATE_IPV4, IPV6_AROUND_PUBLIC_IPV4

URL = "https://hooks.example.com/mittis"


@pytest.fixture
def live_api(account):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(account, livemode=True)}")
    return client


def create(client, **fields):
    return client.post("/v1/webhook_endpoints", {"url": URL, **fields}, format="json")


def test_creating_an_endpoint_shows_its_secret_once(api, public_dns):
    response = create(api, description="Orders service", enabled_events=["message.delivered", "message.failed"])

    assert response.status_code == 201
    body = response.json()
    assert body["object"] == "webhook_endpoint" and body["id"].startswith("we_")
    assert body["secret"].startswith("whsec_")
    assert (body["url"], body["description"], body["status"], body["livemode"]) == (
        URL, "Orders service", "enabled", False)
    assert body["enabled_events"] == ["message.delivered", "message.failed"]
    again = api.get(f"/v1/webhook_endpoints/{body['id']}").json()
    assert "secret" not in again and again == {k: v for k, v in body.items() if k != "secret"}
    listed = api.get("/v1/webhook_endpoints").json()
    assert [e["id"] for e in listed["data"]] == [body["id"]] and "secret" not in listed["data"][0]


def test_the_secret_is_encrypted_at_rest(api, public_dns):
    secret = create(api).json()["secret"]

    stored = WebhookEndpoint.objects.values().get()
    assert all(secret not in str(value) and secret[6:] not in str(value) for value in stored.values())


def test_all_events_is_the_default(api, public_dns):
    assert create(api).json()["enabled_events"] == ["*"]
    assert create(api, enabled_events=["message.sent", "*"]).json()["enabled_events"] == ["*"]


@pytest.mark.parametrize("fields, code, field", [
    ({"url": "ftp://hooks.example.com/x"}, "url_invalid", "url"),
    ({"url": "not a url"}, "parameter_invalid", "url"),
    ({"enabled_events": ["message.exploded"]}, "parameter_invalid", "enabled_events[0]"),
    ({"enabled_events": []}, "parameter_out_of_range", "enabled_events"),
    ({"secret": "whsec_mine"}, "parameter_unknown", "secret"),
    ({"url": "https://user:pw@hooks.example.com/x"}, "url_invalid", "url"),
    ({"url": "https://no-such-host.invalid/x"}, "url_invalid", "url"),
])
def test_a_bad_endpoint_is_400_naming_the_field(api, public_dns, fields, code, field):
    response = create(api, **fields)

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["field"]) == (code, field)
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8000/hooks", "http://localhost/hooks", "http://10.0.0.7/hooks", "http://192.168.1.20/x",
    "http://169.254.169.254/latest/meta-data", "http://[::1]/hooks", "http://[::ffff:127.0.0.1]/x",
    "http://0.0.0.0/x", "http://rebound.example.net/x",
])
def test_private_loopback_and_link_local_addresses_are_refused(api, public_dns, url):
    response = create(api, url=url)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "url_invalid"
    assert "private, loopback or link-local" in response.json()["error"]["message"]


@pytest.mark.parametrize("livemode", [False, True], ids=["test", "live"])
@pytest.mark.parametrize("address", IPV6_AROUND_PRIVATE_IPV4)
def test_an_ipv6_form_of_a_private_ipv4_address_is_refused(api, live_api, livemode, address):
    response = create(live_api if livemode else api, url=f"https://[{address}]/")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "url_invalid"
    assert "private, loopback or link-local" in response.json()["error"]["message"]


@pytest.mark.parametrize("address", IPV6_AROUND_PUBLIC_IPV4)
def test_an_ipv6_form_of_a_public_ipv4_address_is_judged_as_that_address(live_api, address):
    assert create(live_api, url=f"https://[{address}]/hooks").status_code == 201


def test_a_private_address_is_accepted_when_a_setting_allows_it(api, settings):
    settings.MITTIS_WEBHOOK_ALLOWED_PRIVATE = ["127.0.0.1"]

    assert create(api, url="http://127.0.0.1:8000/hooks").status_code == 201


def test_live_mode_sends_only_to_https_unless_a_setting_allows_http(live_api, api, public_dns, settings):
    refused = create(live_api, url="http://hooks.example.com/x")
    assert refused.status_code == 400 and "https" in refused.json()["error"]["message"]
    assert create(api, url="http://hooks.example.com/x").status_code == 201  # test mode
    settings.MITTIS_WEBHOOK_ALLOW_HTTP = True
    assert create(live_api, url="http://hooks.example.com/x").status_code == 201


def test_update_and_reenable(api, public_dns):
    endpoint = create(api).json()
    url = f"/v1/webhook_endpoints/{endpoint['id']}"

    changed = api.patch(url, {"url": "https://other.example.com/h", "enabled_events": ["message.sent"],
                              "description": "v2"}, format="json").json()
    disabled = api.patch(url, {"status": "disabled"}, format="json").json()
    WebhookEndpoint.objects.update(failing_since="2026-01-01T00:00:00Z")
    enabled = api.patch(url, {"status": "enabled"}, format="json").json()

    assert (changed["url"], changed["enabled_events"], changed["description"]) == (
        "https://other.example.com/h", ["message.sent"], "v2")
    assert (disabled["status"], disabled["disabled_reason"]) == ("disabled", "Disabled through the API.")
    assert (enabled["status"], enabled["disabled_reason"]) == ("enabled", None)
    assert WebhookEndpoint.objects.get().failing_since is None
    bad = api.patch(url, {"url": "http://10.0.0.1/x"}, format="json")
    assert bad.status_code == 400 and api.get(url).json()["url"] == "https://other.example.com/h"


def test_delete(api, public_dns):
    endpoint = create(api).json()

    response = api.delete(f"/v1/webhook_endpoints/{endpoint['id']}")

    assert response.json() == {"object": "webhook_endpoint", "id": endpoint["id"], "deleted": True}
    assert api.get(f"/v1/webhook_endpoints/{endpoint['id']}").status_code == 404


def test_rotation_returns_a_new_secret_and_keeps_the_old_one_signing_for_24_hours(api, public_dns):
    from datetime import timedelta

    from django.utils import timezone

    from webhooks.services import signing_secrets

    created = create(api).json()
    rotated = api.post(f"/v1/webhook_endpoints/{created['id']}/rotate_secret")

    assert rotated.status_code == 200
    new = rotated.json()["secret"]
    endpoint = WebhookEndpoint.objects.get()
    assert signing_secrets(endpoint) == [new, created["secret"]]
    assert timedelta(hours=23, minutes=59) < endpoint.previous_secret_expires_at - timezone.now() <= timedelta(hours=24)
    WebhookEndpoint.objects.update(previous_secret_expires_at=timezone.now())
    assert signing_secrets(WebhookEndpoint.objects.get()) == [new]


def test_another_accounts_endpoints_are_invisible(api, public_dns):
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(AccountFactory())}")
    theirs = create(other).json()["id"]

    assert api.get("/v1/webhook_endpoints").json()["data"] == []
    for call in (lambda: api.get(f"/v1/webhook_endpoints/{theirs}"),
                 lambda: api.patch(f"/v1/webhook_endpoints/{theirs}", {"description": "x"}, format="json"),
                 lambda: api.delete(f"/v1/webhook_endpoints/{theirs}"),
                 lambda: api.post(f"/v1/webhook_endpoints/{theirs}/rotate_secret"),
                 lambda: api.get(f"/v1/webhook_endpoints/{theirs}/deliveries"),
                 lambda: api.post(f"/v1/webhook_endpoints/{theirs}/recover", {"since": "2026-01-01T00:00:00Z"},
                                  format="json")):
        assert call().status_code == 404
    assert WebhookEndpoint.objects.get().description == ""


def test_test_and_live_endpoints_never_mix(api, live_api, public_dns):
    create(api)

    assert live_api.get("/v1/webhook_endpoints").json()["data"] == []


def test_an_endpoint_takes_its_accounts_version_unless_it_names_one(api, account, public_dns, body_renamed):
    account.api_version = versions.FIRST_VERSION
    account.save()

    default, named = create(api).json(), create(api, api_version=NEXT_VERSION).json()
    moved = api.patch(f"/v1/webhook_endpoints/{default['id']}", {"api_version": NEXT_VERSION}, format="json")
    account.api_version = NEXT_VERSION
    account.save()
    kept = create(api, api_version=versions.FIRST_VERSION).json()

    assert (default["api_version"], named["api_version"]) == (versions.FIRST_VERSION, NEXT_VERSION)
    assert moved.json()["api_version"] == NEXT_VERSION
    assert api.get(f"/v1/webhook_endpoints/{kept['id']}").json()["api_version"] == versions.FIRST_VERSION


@pytest.mark.parametrize("value, code", [("2026-12-08", "api_version_invalid"), ("latest", "api_version_invalid"),
                                         ("", "api_version_invalid"), (20261207, "parameter_invalid_type")])
def test_an_endpoint_version_that_does_not_exist_is_refused(api, public_dns, value, code):
    created = create(api, api_version=value)
    endpoint = create(api).json()
    changed = api.patch(f"/v1/webhook_endpoints/{endpoint['id']}", {"api_version": value}, format="json")

    for response in (created, changed):
        assert response.status_code == 400
        assert (response.json()["error"]["code"], response.json()["error"]["field"]) == (code, "api_version")
    assert WebhookEndpoint.objects.get().api_version == versions.FIRST_VERSION
