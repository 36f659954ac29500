"""Stored idempotent answers at rest: encrypted with the secrets' keys, replayed byte for byte (a webhook secret
included), re-encrypted by `reencrypt_secrets`, and reached by redaction."""

from datetime import timedelta
import json

from cryptography.fernet import Fernet, InvalidToken
from django.core.management import call_command
from django.utils import timezone
import pytest

from messaging.models import Message
from messaging.services import message_redact
from mittis.api.idempotency import stored_answer
from mittis.api.models import IdempotencyRecord
from tests.conftest import SEED
from tests.factories import AccountFactory

BODY = "Gate code 2046 for the plumber"
SCHEDULED = "Reminder: the dog is friendly, come in"


def stored_bytes() -> bytes:
    """Every column of every stored answer, as the database holds it."""
    dump = []
    for row in IdempotencyRecord.objects.values_list(*[f.attname for f in IdempotencyRecord._meta.concrete_fields]):
        dump += [bytes(value) if isinstance(value, memoryview) else repr(value).encode() for value in row]
    return b"\n".join(dump)


@pytest.fixture
def keyed_answers(api, settings):
    """Keyed POSTs whose answers hold secrets or bodies, through both writers of a record: the one-statement send
    and the transactional path (everything else). Returns [(path, key, payload, first answer)]."""
    settings.MITTIS_WEBHOOK_ALLOWED_PRIVATE = ["127.0.0.1"]
    endpoint = api.post("/v1/webhook_endpoints", {"url": "http://127.0.0.1:9/hooks"}, format="json",
                        HTTP_IDEMPOTENCY_KEY="endpoint").json()
    send_at = (timezone.now() + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    scheduled = api.post("/v1/messages", {**SEED, "body": SCHEDULED, "send_at": send_at}, format="json").json()
    requests = [
        ("/v1/webhook_endpoints", "endpoint", {"url": "http://127.0.0.1:9/hooks"}),
        (f"/v1/webhook_endpoints/{endpoint['id']}/rotate_secret", "rotate", None),
        ("/v1/callback_secret/rotate", "callback", None),
        ("/v1/messages", "send", {**SEED, "body": BODY}),
        (f"/v1/messages/{scheduled['id']}/cancel", "cancel", None),
    ]
    answers = []
    for path, key, payload in requests:
        response = api.post(path, payload, format="json", HTTP_IDEMPOTENCY_KEY=key)
        assert response.status_code in (200, 201), response.content
        answers.append((path, key, payload, response))
    return answers


def secrets_of(answers) -> list[str]:
    found = [response.json()["secret"] for path, _, _, response in answers if "secret" in response.json()]
    assert len(found) == 3 and all(secret.startswith("whsec_") for secret in found)
    return found


def replay(api, path, key, payload):
    response = api.post(path, payload, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert response["Idempotent-Replayed"] == "true"
    return response


def test_no_secret_and_no_body_is_stored_in_the_clear_and_replays_are_byte_identical(api, keyed_answers):
    stored = stored_bytes()
    for secret in secrets_of(keyed_answers):
        assert secret.encode() not in stored
        assert secret.split("_", 1)[1].encode() not in stored  # not even without its prefix
    assert BODY.encode() not in stored and SCHEDULED.encode() not in stored
    assert b"msg_" in stored  # the dump reads the rows: the object ids are there, in their column

    for path, key, payload, first in keyed_answers:
        again = replay(api, path, key, payload)
        assert (again.status_code, again.content, again["Content-Type"]) == (
            first.status_code, first.content, first["Content-Type"])


def test_reencrypt_secrets_rotates_stored_answers_to_the_newest_key(api, keyed_answers, settings):
    old = settings.MITTIS_ENCRYPTION_KEYS[0]
    new = Fernet.generate_key().decode()
    settings.MITTIS_ENCRYPTION_KEYS = [new, old]

    call_command("reencrypt_secrets", stdout=open("/dev/null", "w"))

    settings.MITTIS_ENCRYPTION_KEYS = [old]
    for record in IdempotencyRecord.objects.all():
        with pytest.raises(InvalidToken):
            stored_answer(record)
    settings.MITTIS_ENCRYPTION_KEYS = [new]  # the old key removed: every answer still replays
    for path, key, payload, first in keyed_answers:
        assert replay(api, path, key, payload).content == first.content


def test_a_stored_answer_copied_into_another_accounts_record_does_not_open(api, keyed_answers):
    secret_answer = IdempotencyRecord.objects.get(key="endpoint")
    other = AccountFactory()
    copy = IdempotencyRecord.objects.create(
        account=other, livemode=False, key="endpoint", fingerprint=secret_answer.fingerprint, method="POST",
        path=secret_answer.path, request_id="req_x", response_status=201, response_content_type="application/json",
        response_body=secret_answer.response_body, object_id="", created_at=timezone.now())

    with pytest.raises(InvalidToken):
        stored_answer(copy)
    assert json.loads(stored_answer(secret_answer))["secret"].startswith("whsec_")


def as_before_the_upgrade(key: str, answer: bytes) -> None:
    """The key's record as written before answers were encrypted: plaintext, and no `object_id` column then."""
    IdempotencyRecord.objects.filter(key=key).update(response_body=answer, object_id=None)


def test_an_answer_stored_in_the_clear_before_the_upgrade_replays_and_reencrypt_encrypts_it(api):
    first = api.post("/v1/messages", {**SEED, "body": BODY}, format="json", HTTP_IDEMPOTENCY_KEY="legacy")
    as_before_the_upgrade("legacy", first.content)
    assert BODY.encode() in stored_bytes()

    assert replay(api, "/v1/messages", "legacy", {**SEED, "body": BODY}).content == first.content

    call_command("reencrypt_secrets", stdout=open("/dev/null", "w"))

    assert BODY.encode() not in stored_bytes()
    assert IdempotencyRecord.objects.get(key="legacy").object_id == first.json()["id"]
    assert replay(api, "/v1/messages", "legacy", {**SEED, "body": BODY}).content == first.content


@pytest.mark.parametrize("legacy", [False, True], ids=["encrypted", "stored in the clear before the upgrade"])
def test_redaction_blanks_the_body_of_a_stored_answer(api, account, legacy):
    sent = api.post("/v1/messages", {**SEED, "body": BODY}, format="json", HTTP_IDEMPOTENCY_KEY="send")
    other = api.post("/v1/messages", {**SEED, "body": BODY + " (other)"}, format="json", HTTP_IDEMPOTENCY_KEY="other")
    if legacy:
        as_before_the_upgrade("send", sent.content)
    message = Message.objects.get(public_id=sent.json()["id"])
    Message.objects.filter(pk=message.pk).update(status="delivered")
    message.refresh_from_db()

    message_redact(message=message)

    answer = json.loads(replay(api, "/v1/messages", "send", {**SEED, "body": BODY}).content)
    assert answer["id"] == sent.json()["id"] and answer["body"] is None and answer["redacted_at"]
    assert BODY.encode() not in stored_bytes()
    assert replay(api, "/v1/messages", "other", {**SEED, "body": BODY + " (other)"}).content == other.content


def test_json_nested_too_deeply_with_a_key_is_a_400_in_the_error_shape(api):
    deep = "[" * 100_000 + "]" * 100_000

    response = api.post("/v1/messages", deep, content_type="application/json", HTTP_IDEMPOTENCY_KEY="deep")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
