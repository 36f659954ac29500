"""The admin as staff use it: a key's secret shown once, revocation, finding a message, reading its events."""

from decimal import Decimal
import re

from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group, User
from django.test import Client
from django.contrib.sessions.models import Session
from django.urls import reverse
import pytest

from billing.services import balance_top_up
from messaging import statuses
from messaging.carriers.base import DeliveryReport
from messaging.models import Message
from messaging.services import message_apply_delivery_report, message_create, message_send
from mittis import versions
from mittis.accounts import roles
from mittis.accounts.keys import hash_secret
from mittis.accounts.models import ApiKey
from mittis.accounts.services import api_key_create
from tests.conftest import NEXT_VERSION

SECRET = re.compile(r"mk_(?:test|live)_[A-Za-z0-9]{32}")


def _create(account, to="+18045550199"):
    return message_create(account=account, livemode=False, sender="+18045550142", to=to, body="hi")


@pytest.fixture
def delivered(account):
    message = _create(account)
    message_send(message_id=message.pk)
    message.refresh_from_db()
    message_apply_delivery_report(carrier=message.carrier, report=DeliveryReport(
        message.carrier_message_id, statuses.DELIVERED, carrier_status="DELIVRD"))
    message.refresh_from_db()
    assert message.status == statuses.DELIVERED
    return message


def add_key(client, account, **fields):
    return client.post("/admin/accounts/apikey/add/",
                       {"account": account.pk, "name": "billing job", **fields}, follow=True)


def test_the_admin_loads(admin_client):
    assert admin_client.get("/admin/").status_code == 200


@pytest.mark.parametrize("livemode, prefix", [("", "mk_test_"), ("on", "mk_live_")])
def test_a_key_added_in_the_admin_shows_its_secret_once_and_only_then(admin_client, account, livemode, prefix):
    response = add_key(admin_client, account, livemode=livemode)

    assert response.status_code == 200
    page = response.content.decode()
    secrets = SECRET.findall(page)
    key = ApiKey.objects.get()
    assert len(secrets) == 1 and secrets[0].startswith(prefix)
    assert (key.hashed_secret, key.livemode, key.name) == (hash_secret(secrets[0]), bool(livemode), "billing job")
    # Shown once: neither the next page, nor the key's own page, nor the admin's history shows it again.
    assert secrets[0] not in admin_client.get("/admin/accounts/apikey/").content.decode()
    change_page = admin_client.get(f"/admin/accounts/apikey/{key.pk}/change/").content.decode()
    assert secrets[0] not in change_page and key.prefix in change_page
    assert (LogEntry.objects.get().object_id, LogEntry.objects.get().object_repr) == (str(key.pk), str(key))
    stored = [str(v) for v in LogEntry.objects.values_list("object_repr", "change_message").get()]
    stored += [s.session_data for s in Session.objects.all()]
    assert not [value for value in stored if secrets[0] in value]


def test_a_key_added_in_the_admin_authenticates(admin_client, account, anonymous):
    secret = SECRET.findall(add_key(admin_client, account, livemode="").content.decode())[0]

    anonymous.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert anonymous.get("/v1/messages").status_code == 200


def test_an_add_form_without_an_account_is_shown_again_and_creates_nothing(admin_client, db):
    response = admin_client.post("/admin/accounts/apikey/add/", {"account": "", "name": "x"})

    assert response.status_code == 200 and "This field is required" in response.content.decode()
    assert not ApiKey.objects.exists()


def test_editing_a_key_changes_only_its_name(admin_client, account):
    created = api_key_create(account=account, livemode=False, name="old")

    response = admin_client.post(f"/admin/accounts/apikey/{created.api_key.pk}/change/",
                                 {"name": "new", "livemode": "on"}, follow=True)

    key = ApiKey.objects.get()
    assert response.status_code == 200
    assert (key.name, key.livemode, key.hashed_secret) == ("new", False, created.api_key.hashed_secret)


def test_revoke_keys_revokes_the_selected_keys_only(admin_client, account, anonymous):
    revoked, kept = api_key_create(account=account, livemode=False), api_key_create(account=account, livemode=False)

    response = admin_client.post("/admin/accounts/apikey/", {"action": "revoke_keys",
                                                             "_selected_action": [revoked.api_key.pk]}, follow=True)

    assert response.status_code == 200 and "Revoked" in response.content.decode()
    assert ApiKey.objects.get(pk=revoked.api_key.pk).revoked_at is not None
    assert ApiKey.objects.get(pk=kept.api_key.pk).revoked_at is None
    anonymous.credentials(HTTP_AUTHORIZATION=f"Bearer {revoked.secret}")
    assert anonymous.get("/v1/messages").json()["error"]["code"] == "invalid_api_key"


def test_the_account_autocomplete_finds_an_account_by_name(admin_client, account):
    response = admin_client.get("/admin/autocomplete/", {"app_label": "accounts", "model_name": "apikey",
                                                         "field_name": "account", "term": "Acme"})

    assert [r["id"] for r in response.json()["results"]] == [str(account.pk)]


@pytest.mark.parametrize("query, found", [
    ({"q": "{public_id}"}, True),
    ({"q": "+18045550199"}, True),
    ({"q": "{carrier_message_id}"}, True),
    ({"status__exact": "delivered"}, True),
    ({"status__exact": "failed"}, False),
    ({"q": "msg_doesnotexist"}, False),
])
def test_staff_find_a_message(admin_client, delivered, query, found):
    other = _create(delivered.account, to="+18045550111")  # queued, to someone else
    params = {k: v.format(public_id=delivered.public_id, carrier_message_id=delivered.carrier_message_id)
              for k, v in query.items()}

    response = admin_client.get("/admin/messaging/message/", params)

    page = response.content.decode()
    assert response.status_code == 200
    assert (delivered.public_id in page) is found
    assert other.public_id not in page


def test_a_messages_page_shows_its_events(admin_client, delivered):
    page = admin_client.get(f"/admin/messaging/message/{delivered.pk}/change/").content.decode()

    assert all(t in page for t in ["message.queued", "message.sent", "message.delivered", "DELIVRD"])


def test_no_admin_page_fails(admin_client, delivered, admin_user):
    """Every registered model's list, add and change pages, with data in them: never a 500."""
    api_key_create(account=delivered.account, livemode=False)
    balance_top_up(account_id=delivered.account.pk, livemode=True, amount=Decimal("10"), reason="test",
                   staff_user=admin_user)
    failures = []
    for model, model_admin in admin.site._registry.items():
        info = model._meta.app_label, model._meta.model_name
        urls = [reverse("admin:%s_%s_changelist" % info), reverse("admin:%s_%s_add" % info)]
        urls += [reverse("admin:%s_%s_change" % info, args=[obj.pk]) for obj in model.objects.all()[:3]]
        failures += [(url, status) for url in urls
                     if (status := admin_client.get(url).status_code) not in (200, 403)]

    assert failures == []


def test_staff_cannot_add_or_delete_messages(admin_client, delivered):
    assert admin_client.get("/admin/messaging/message/add/").status_code == 403
    admin_client.post(f"/admin/messaging/message/{delivered.pk}/delete/", {"post": "yes"})
    assert Message.objects.filter(pk=delivered.pk).exists()


def test_staff_set_an_accounts_rate_limit_and_its_keys_get_it(admin_client, account, api):
    keys = list(account.api_keys.all())  # the read-only inline still posts its management form
    form = {"name": account.name, "is_active": "on", "rate_limit": "2", "rate_limit_window": "30", "retention_days": "30",
            "api_version": account.api_version, "api_keys-TOTAL_FORMS": len(keys), "api_keys-INITIAL_FORMS": len(keys),
            **{f"api_keys-{n}-id": key.pk for n, key in enumerate(keys)},
            **{f"api_keys-{n}-account": account.pk for n in range(len(keys))}}

    response = admin_client.post(f"/admin/accounts/account/{account.pk}/change/", form)

    assert response.status_code == 302
    answers = [api.get("/v1/messages") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[0]["RateLimit-Policy"] == '"default";q=2;w=30'


def account_form(account, **changes) -> dict:
    keys = list(account.api_keys.all())  # the read-only inline still posts its management form
    return {"name": account.name, "is_active": "on", "retention_days": account.retention_days,
            "api_version": account.api_version, "api_keys-TOTAL_FORMS": len(keys), "api_keys-INITIAL_FORMS": len(keys),
            **{f"api_keys-{n}-id": key.pk for n, key in enumerate(keys)},
            **{f"api_keys-{n}-account": account.pk for n in range(len(keys))}, **changes}


def role_client(role: str) -> Client:
    user = User.objects.create_user(f"{role}-person", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client = Client()
    client.force_login(user)
    return client


def test_operations_move_an_accounts_version_to_a_known_one_and_its_requests_follow(body_renamed, account, api):
    operations = role_client(roles.OPERATIONS)
    account.api_version = versions.FIRST_VERSION
    account.save()
    page = operations.get(f"/admin/accounts/account/{account.pk}/change/").content.decode()

    unknown = operations.post(f"/admin/accounts/account/{account.pk}/change/", account_form(account, api_version="2026-12-08"))
    moved = operations.post(f"/admin/accounts/account/{account.pk}/change/", account_form(account, api_version=NEXT_VERSION))

    assert f'<option value="{NEXT_VERSION}">{NEXT_VERSION} (current)</option>' in page
    assert f'<option value="{versions.FIRST_VERSION}" selected>' in page
    assert unknown.status_code == 200 and "Select a valid choice" in unknown.content.decode()
    assert moved.status_code == 302
    account.refresh_from_db()
    assert account.api_version == NEXT_VERSION and api.get("/v1/messages")["Mittis-Version"] == NEXT_VERSION
    assert LogEntry.objects.filter(object_id=str(account.pk), change_message__contains="API version").exists()


def test_support_read_an_accounts_version_and_cannot_move_it(body_renamed, account):
    support = role_client(roles.SUPPORT)

    page = support.get(f"/admin/accounts/account/{account.pk}/change/")
    refused = support.post(f"/admin/accounts/account/{account.pk}/change/", account_form(account, api_version=NEXT_VERSION))

    assert page.status_code == 200 and account.api_version in page.content.decode()
    assert refused.status_code == 403
    assert type(account).objects.get(pk=account.pk).api_version == account.api_version
