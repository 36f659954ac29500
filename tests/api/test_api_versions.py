"""Dated versions through the API: which version answers a request, the header that names it on every answer,
400 api_version_invalid, and, with a change of the tests' own registered (`body_renamed`: older versions call a
message's `body` `text`), the old shape rendered by header and by account pin, and read from a request."""

from django.db import connection
import pytest
from rest_framework.test import APIClient

from messaging.models import Message
from mittis import versions
from mittis.accounts.models import Account
from mittis.accounts.services import account_create
from tests.conftest import NEXT_VERSION, SEED

FIRST = versions.FIRST_VERSION
HEADER = "Mittis-Version"


def pin(account, version: str) -> None:
    account.api_version = version
    account.save()


def ask(client, method: str, path: str, version: str | None = None, **kwargs):
    headers = {HEADER: version} if version is not None else {}
    return getattr(client, method)(path, headers=headers, format="json", **kwargs)


# (with the account's key, a bad key or none; the header; the account's pin) -> (status, the version answered in)
@pytest.mark.parametrize("key, header, pinned, status, answered", [
    ("key", None, FIRST, 200, FIRST),
    ("key", None, NEXT_VERSION, 200, NEXT_VERSION),
    ("key", NEXT_VERSION, FIRST, 200, NEXT_VERSION),
    ("key", FIRST, NEXT_VERSION, 200, FIRST),
    (None, None, FIRST, 401, NEXT_VERSION),  # before authentication: the current version
    (None, FIRST, NEXT_VERSION, 401, FIRST),  # ... or the header's
    ("bad", None, FIRST, 401, NEXT_VERSION),
    ("key", "2026-12-08", FIRST, 400, NEXT_VERSION),  # unknown: refused, in the current version
    ("key", "12/07/2026", FIRST, 400, NEXT_VERSION),  # malformed
    (None, "2026-12-08", FIRST, 400, NEXT_VERSION),
])
def test_every_answer_names_the_version_it_was_rendered_in(body_renamed, account, test_key, key, header, pinned,
                                                           status, answered):
    pin(account, pinned)
    client = APIClient()
    if key is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {test_key if key == 'key' else 'mk_test_' + 'x' * 32}")

    response = ask(client, "get", "/v1/messages", header)

    assert (response.status_code, response[HEADER]) == (status, answered)


def test_errors_and_refusals_name_their_version_too(body_renamed, account, api, settings):
    pin(account, FIRST)

    assert ask(api, "get", "/v1/nowhere", NEXT_VERSION)[HEADER] == NEXT_VERSION  # 404 url_not_found
    assert ask(api, "delete", "/v1/messages")[HEADER] == FIRST  # 405
    assert ask(api, "get", "/v1/messages/msg_none")[HEADER] == FIRST  # 404 resource_missing
    account.rate_limit = 1
    account.save()
    assert ask(api, "get", "/v1/messages").status_code == 200
    limited = ask(api, "get", "/v1/messages")
    assert (limited.status_code, limited[HEADER]) == (429, FIRST)


def test_an_unknown_version_is_400_in_the_error_shape_and_does_nothing(body_renamed, api):
    response = ask(api, "post", "/v1/messages", "2026-12-08", data=SEED)

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["code"], error["field"]) == ("invalid_request_error", "api_version_invalid", HEADER)
    assert error["message"] == (f"Mittis-Version 2026-12-08 is not a version of the Mittis API. The versions are "
                                f"{NEXT_VERSION}, {FIRST}; see /docs/changelog.")
    assert error["doc_url"].endswith("/docs/errors#api_version_invalid")
    assert error["request_id"] == response["Request-Id"]
    assert response["RateLimit"]  # counted by the rate limiter before it was refused
    assert not Message.objects.exists()


def test_a_known_version_is_accepted_today_and_named_back(api):
    response = ask(api, "get", "/v1/messages", "2026-12-07")

    assert (response.status_code, response[HEADER]) == (200, "2026-12-07")
    assert ask(api, "get", "/v1/messages", "2026-12-06").json()["error"]["code"] == "api_version_invalid"


def test_a_new_account_is_pinned_to_the_current_version(db, body_renamed):
    assert account_create(name="Newcomer").api_version == NEXT_VERSION


@pytest.mark.parametrize("table", ["accounts_account", "webhooks_webhookendpoint", "api_idempotencyrecord"])
def test_rows_from_before_versions_are_pinned_to_the_first_version(db, table):
    """Existing rows when the migration ran, and rows a process not yet upgraded writes during a rolling deploy:
    the column's database default."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT column_default FROM information_schema.columns WHERE table_name = %s "
                       "AND column_name = 'api_version'", [table])
        assert cursor.fetchone()[0].startswith("'2026-12-07'")


def test_an_account_written_without_a_version_reads_the_first_one(db, body_renamed):
    with connection.cursor() as cursor:  # what code from before versions writes
        cursor.execute("INSERT INTO accounts_account (public_id, name, is_active, retention_days, help_reply, "
                       "created_at) VALUES ('acct_old', 'Old', true, 30, '', now())")

    assert Account.objects.get(public_id="acct_old").api_version == FIRST


# --- The old shape, by header and by account pin --------------------------------------------------
@pytest.fixture
def message(api, account):
    pin(account, NEXT_VERSION)
    return ask(api, "post", "/v1/messages", data=SEED).json()


def test_the_header_renders_an_answer_in_an_older_version(body_renamed, api, message):
    path = f"/v1/messages/{message['id']}"

    old, new = ask(api, "get", path, FIRST).json(), ask(api, "get", path).json()

    assert "body" not in old and old["text"] == SEED["body"]
    assert "text" not in new and new["body"] == SEED["body"]
    assert {k: v for k, v in old.items() if k != "text"} == {k: v for k, v in new.items() if k != "body"}


def test_the_account_pin_renders_every_answer_in_its_version_and_the_header_wins(body_renamed, api, account, message):
    pin(account, FIRST)

    one = ask(api, "get", f"/v1/messages/{message['id']}")
    listed = ask(api, "get", "/v1/messages").json()["data"][0]
    timeline = ask(api, "get", f"/v1/messages/{message['id']}/events").json()["data"]
    event = ask(api, "get", f"/v1/events/{timeline[0]['id']}").json()

    assert one[HEADER] == FIRST and one.json()["text"] == SEED["body"] and "body" not in one.json()
    assert listed["text"] == SEED["body"] and "body" not in listed
    assert [e["data"]["text"] for e in timeline] == [SEED["body"]] * len(timeline)
    assert event["data"]["text"] == SEED["body"] and "body" not in event["data"]
    assert ask(api, "get", f"/v1/messages/{message['id']}", NEXT_VERSION).json()["body"] == SEED["body"]


def test_a_request_in_an_older_version_is_read_in_its_shape(body_renamed, api, account):
    pin(account, NEXT_VERSION)
    old_request = {"from": SEED["from"], "to": SEED["to"], "text": SEED["body"]}

    sent = ask(api, "post", "/v1/messages", FIRST, data=old_request)
    quoted = ask(api, "post", "/v1/messages/preview", FIRST, data=old_request)
    refused = ask(api, "post", "/v1/messages", data=old_request)  # the current version has no `text`

    assert sent.status_code == 201 and sent.json()["text"] == SEED["body"]
    assert Message.objects.get(public_id=sent.json()["id"]).body == SEED["body"]
    assert quoted.status_code == 200 and quoted.json()["segments"] == 1
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "parameter_missing"  # `body`


def test_a_keyed_send_is_answered_and_replayed_in_the_version_it_was_first_rendered_in(body_renamed, api, account):
    pin(account, NEXT_VERSION)
    old_request = {"from": SEED["from"], "to": SEED["to"], "text": SEED["body"]}
    key = {"HTTP_IDEMPOTENCY_KEY": "order-1042"}

    first = api.post("/v1/messages", old_request, format="json", headers={HEADER: FIRST}, **key)
    again = api.post("/v1/messages", old_request, format="json", **key)  # asks for the account's version

    assert first.status_code == 201 and first.json()["text"] == SEED["body"] and first[HEADER] == FIRST
    assert (again.content, again[HEADER], again["Idempotent-Replayed"]) == (first.content, FIRST, "true")
    assert Message.objects.count() == 1
