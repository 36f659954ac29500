"""Secrets never in the clear (database or logs), admin pages only for staff, and the security settings
of a production deployment."""

import logging
import os
import secrets
import subprocess
import sys

from django.apps import apps
from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import TextField, CharField, JSONField
from django.urls import reverse
import pytest
from rest_framework.test import APIClient

from messaging.models import Carrier
from tests.conftest import SEED
from tests.factories import api_key_for

PRODUCTION = {"DEBUG": "false", "MITTIS_HTTPS": "true", "SECRET_KEY": secrets.token_urlsafe(60),
              "ALLOWED_HOSTS": "api.example.com"}


def everything_stored() -> str:
    """Every text, char and JSON value of every row of every table, as one string."""
    dump = []
    for model in apps.get_models():
        fields = [f.attname for f in model._meta.concrete_fields if isinstance(f, (TextField, CharField, JSONField))]
        if fields:
            dump += [repr(row) for row in model.objects.values_list(*fields)]
    return "\n".join(dump)


def test_api_keys_webhook_secrets_and_carrier_credentials_never_appear_in_the_database_or_logs(
        account, caplog, settings):
    caplog.set_level(logging.DEBUG)  # everything any logger says, SQL included
    settings.MITTIS_WEBHOOK_ALLOWED_PRIVATE = ["127.0.0.1"]
    live_key, test_key = api_key_for(account, livemode=True), api_key_for(account, livemode=False)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {test_key}")
    created = api.post("/v1/webhook_endpoints", {"url": "http://127.0.0.1:9/hooks"}, format="json").json()
    rotated = api.post(f"/v1/webhook_endpoints/{created['id']}/rotate_secret").json()["secret"]
    callback_secret = api.get("/v1/callback_secret").json()["secret"]
    carrier = Carrier(name="twilio-main", kind="twilio", settings={"account_sid": "AC123"})
    carrier.credentials = {"auth_token": "tw-" + secrets.token_hex(16)}
    carrier.save()
    api.post("/v1/messages", SEED, format="json")
    APIClient().get("/v1/balance", HTTP_AUTHORIZATION=f"Bearer {live_key}")
    APIClient().get("/v1/balance", HTTP_AUTHORIZATION=f"Bearer {live_key}x")  # a wrong key is logged as refused

    clear = [live_key, test_key, created["secret"], rotated, callback_secret, carrier.credentials["auth_token"]]
    stored = everything_stored()
    for secret in clear:
        assert secret not in stored
        assert secret.split("_", 1)[-1] not in stored  # not even without its prefix
        assert secret not in caplog.text
    assert "AC123" in stored  # the dump does read what is stored in the clear


ADMIN_PAGES = ["admin:index", "admin:messaging_message_changelist", "admin:accounts_apikey_changelist",
               "admin:accounts_apikey_add", "admin:webhooks_webhookendpoint_changelist",
               "admin:messaging_carrier_changelist", "admin:billing_ledgerentry_add"]


@pytest.mark.parametrize("page", ADMIN_PAGES)
def test_admin_pages_need_a_staff_login(client, db, page):
    url = reverse(page)
    assert client.get(url).status_code == 302  # anonymous: to the login page
    User.objects.create_user("customer", password="pw-123456789", is_staff=False)
    client.login(username="customer", password="pw-123456789")

    response = client.get(url)

    assert response.status_code == 302 and reverse("admin:login") in response["Location"]


def test_every_api_answer_carries_the_security_headers(api):
    response = api.get("/v1/messages")

    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"


def run_in_production(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **PRODUCTION}
    return subprocess.run([sys.executable, "-c", "import django; django.setup()\n" + code], env=env,
                          cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=60)


def test_manage_py_check_deploy_is_clean_in_production_settings():
    env = {**os.environ, **PRODUCTION}
    checked = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], env=env,
                             cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=60)

    assert checked.returncode == 0, checked.stderr + checked.stdout


def test_production_redirects_plain_http_sets_hsts_and_secure_cookies_but_lets_health_checks_through():
    result = run_in_production(
        "from django.test import Client\n"
        "from django.conf import settings\n"
        "c = Client(HTTP_HOST='api.example.com')\n"
        "plain = c.get('/docs')\n"
        "tls = c.get('/docs', HTTP_X_FORWARDED_PROTO='https')\n"
        "health = c.get('/healthz')\n"
        "print(plain.status_code, plain['Location'])\n"
        "print(tls.status_code, tls['Strict-Transport-Security'])\n"
        "print(health.status_code)\n"
        "print(settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE)\n")

    assert result.returncode == 0, result.stderr
    plain, tls, health, cookies = result.stdout.splitlines()
    assert plain == "301 https://api.example.com/docs"
    assert tls == "200 max-age=31536000; includeSubDomains; preload"
    assert health in ("200", "503")  # answered, not redirected
    assert cookies == "True True"
