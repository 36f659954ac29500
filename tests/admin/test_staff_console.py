"""The admin as staff use it: keys shown once, revocation, finding a message and reading its events."""

import re

import pytest

from messaging.models import Message
from messaging.services import message_create, message_send
from mittis.accounts.models import ApiKey
from mittis.accounts.services import api_key_create, hash_secret


@pytest.fixture
def message(account):
    message = message_create(account=account, livemode=False, sender="+18045550142", to="+18045550199", body="hi")
    message_send(message_id=message.pk)
    return message


def test_the_console_loads(admin_client):
    assert admin_client.get("/admin/").status_code == 200


def test_a_key_created_in_the_admin_shows_its_secret_once(admin_client, account):
    response = admin_client.post("/admin/accounts/apikey/add/",
                                 {"account": account.pk, "livemode": "", "name": "billing job"}, follow=True)

    assert response.status_code == 200
    secrets = re.findall(r"mk_test_[A-Za-z0-9]{32}", response.content.decode())
    key = ApiKey.objects.get()
    assert len(set(secrets)) == 1 and key.hashed_secret == hash_secret(secrets[0])
    change_page = admin_client.get(f"/admin/accounts/apikey/{key.pk}/change/").content.decode()
    assert secrets[0] not in change_page and key.prefix in change_page


def test_staff_revoke_keys_with_the_action(admin_client, account):
    created = api_key_create(account=account, livemode=False)

    admin_client.post("/admin/accounts/apikey/", {"action": "revoke_keys", "_selected_action": [created.api_key.pk]})

    assert ApiKey.objects.get(pk=created.api_key.pk).revoked_at is not None


@pytest.mark.parametrize("query", ["q={id}", "q=%2B18045550199", "status__exact=sent", "q={account}"])
def test_staff_find_a_message(admin_client, message, query):
    other = message_create(account=message.account, livemode=False, sender="+18045550142", to="+18045550111",
                           body="other")
    url = "/admin/messaging/message/?" + query.format(id=message.public_id, account=message.account.public_id)

    page = admin_client.get(url).content.decode()

    assert message.public_id in page
    if "account" not in query:
        assert other.public_id not in page


def test_a_message_page_shows_its_events(admin_client, message):
    page = admin_client.get(f"/admin/messaging/message/{message.pk}/change/").content.decode()

    assert "message.queued" in page and "message.sent" in page
    assert message.carrier_message_id in page


@pytest.mark.parametrize("url", ["/admin/accounts/account/", "/admin/accounts/account/add/",
                                 "/admin/messaging/sender/", "/admin/messaging/sender/add/",
                                 "/admin/accounts/apikey/add/"])
def test_console_pages_load(admin_client, account, message, url):
    assert admin_client.get(url).status_code == 200


def test_staff_cannot_add_or_delete_messages(admin_client, message):
    assert admin_client.get("/admin/messaging/message/add/").status_code == 403
    admin_client.post(f"/admin/messaging/message/{message.pk}/delete/", {"post": "yes"})
    assert Message.objects.filter(pk=message.pk).exists()
