"""The sandbox's test helpers (POST /v1/test_helpers/...): an inbound message and a delivery report on demand, in
test mode only, through the very path a carrier's goes through: the same events, webhooks, opt-outs and rules."""

from decimal import Decimal
import json
import time

import pytest
from rest_framework.test import APIClient
from standardwebhooks import Webhook

from billing.services import balance_top_up
from messaging import statuses
from messaging.carriers import sandbox
from messaging.errors import MESSAGE_ERRORS
from messaging.models import CarrierInbound, CarrierReport, Message, OptOut
from messaging.services import message_apply_delivery_report, message_create, message_send
from tests.conftest import SEED
from tests.factories import AccountFactory, SenderFactory, api_key_for
from tests.webhooks.conftest import endpoint, fast_retries, receiver, worker  # noqa: F401 (fixtures)

PHONE = "+18045550199"
SENDER = SEED["from"]
INBOUND = "/v1/test_helpers/inbound_messages"
UNKNOWN_URL = "/v1/test_helpers/nothing_here"


def receive(client, body, *, sender=PHONE, to=SENDER, **extra):
    return client.post(INBOUND, {"from": sender, "to": to, "body": body}, format="json", **extra)


def report_url(message_id: str) -> str:
    return f"/v1/test_helpers/messages/{message_id}/delivery_report"


def report(client, message_id, **body):
    return client.post(report_url(message_id), body, format="json")


def client_for(account, *, livemode=False) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(account, livemode=livemode)}")
    return client


@pytest.fixture
def live_api(account):
    return client_for(account, livemode=True)


def live_message(account) -> Message:
    balance_top_up(account_id=account.pk, livemode=True, amount=Decimal("1"))
    return message_create(account=account, livemode=True, sender=SENDER, to=sandbox.NEVER_REPORTS, body="hi")


def sent_message(account, to=sandbox.NEVER_REPORTS) -> Message:
    """A test-mode message the sandbox accepted, sent as a worker sends it."""
    message = message_create(account=account, livemode=False, sender=SENDER, to=to, body="Your order shipped.")
    message_send(message_id=message.pk)
    message.refresh_from_db()
    assert message.status == statuses.SENT
    return message


def wait_for_status(api, message_id, expected, timeout=20.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = api.get(f"/v1/messages/{message_id}").json()
        if message["status"] == expected:
            return message
        time.sleep(0.05)
    raise AssertionError(f"{message_id} is {message['status']}, not {expected}, after {timeout} s")


def error_of(response) -> tuple:
    error = response.json()["error"]
    return response.status_code, error["code"], error["field"]


# --- Inbound messages ------------------------------------------------------------------------------
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_an_inbound_message_is_received_in_test_mode_with_a_signed_message_inbound_webhook(
        worker, api, account, receiver, endpoint):  # noqa: F811 (fixtures)
    _endpoint_id, secret = endpoint

    created = receive(api, "Running 10 min late, sorry")

    assert created.status_code == 201, created.json()
    shown = created.json()
    assert shown == api.get(f"/v1/messages/{shown['id']}").json()  # the message as GET returns it
    assert (shown["direction"], shown["status"], shown["from"], shown["to"], shown["body"], shown["livemode"]) == (
        "inbound", "received", PHONE, SENDER, "Running 10 min late, sorry", False)
    [request] = receiver.wait_for(1)
    payload = Webhook(secret).verify(request.body, request.headers)
    assert (payload["type"], payload["livemode"], payload["data"]) == ("message.inbound", False, shown)
    message = Message.objects.get(public_id=shown["id"])
    assert (message.account_id, message.livemode, message.carrier) == (account.pk, False, "sandbox")
    kept = CarrierInbound.objects.get()  # kept as it came, as a carrier's is
    assert (kept.carrier, kept.from_number, kept.to, kept.message_id) == ("sandbox", PHONE, SENDER, message.pk)


def test_stop_opts_the_number_out_and_start_opts_it_back_in(api, send):
    assert receive(api, "STOP").status_code == 201

    [opt_out] = api.get("/v1/opt_outs").json()["data"]
    assert (opt_out["phone_number"], opt_out["sender"], opt_out["keyword"], opt_out["livemode"]) == (
        PHONE, SENDER, "STOP", False)
    assert error_of(send(to=PHONE)) == (422, "recipient_opted_out", "to")
    assert not Message.objects.filter(direction="outbound").exists()

    assert receive(api, "start").status_code == 201

    assert api.get("/v1/opt_outs").json()["data"] == []
    assert send(to=PHONE).status_code == 201


def test_an_opt_out_made_in_test_mode_leaves_live_mode_alone(api, live_api):
    receive(api, "UNSUBSCRIBE")

    assert live_api.get("/v1/opt_outs").json()["data"] == []
    assert OptOut.objects.get().livemode is False


def test_help_gets_the_accounts_reply_as_from_a_carrier(api, account):
    account.help_reply = "Acme Plumbing: reminders for your appointments. Reply STOP to opt out."
    account.save()

    help_message = receive(api, "help").json()

    reply = Message.objects.get(direction="outbound")
    assert (reply.to, reply.from_number, reply.body, reply.livemode, reply.account_id) == (
        PHONE, SENDER, account.help_reply, False, account.pk)
    assert [m["id"] for m in api.get("/v1/messages").json()["data"]] == [reply.public_id, help_message["id"]]


def test_help_without_a_reply_sends_nothing(api):
    assert receive(api, "HELP").status_code == 201

    assert not Message.objects.filter(direction="outbound").exists()


def test_a_to_that_is_not_one_of_your_senders_is_refused_and_nothing_is_kept(api):
    other = AccountFactory()
    SenderFactory(account=other, value="+18045550177")

    for to in ("+18045550100", "+18045550177", "Mittis"):  # no one's, another account's, an unknown sender id
        response = receive(api, "STOP", to=to)

        assert error_of(response) == (400, "unknown_sender", "to")
        assert to in response.json()["error"]["message"]
    assert not Message.objects.exists() and not CarrierInbound.objects.exists() and not OptOut.objects.exists()


def test_a_sender_two_accounts_have_takes_the_callers_message_only(account):
    # Routed by the number alone, the first account with the sender (`account`) would get the second's message.
    second = AccountFactory(name="Second")
    SenderFactory(account=second, value=SENDER)

    created = receive(client_for(second), "STOP").json()

    message = Message.objects.get()
    assert (message.public_id, message.account_id, message.livemode) == (created["id"], second.pk, False)
    assert OptOut.objects.get().account_id == second.pk
    assert client_for(account).get(f"/v1/messages/{created['id']}").status_code == 404


@pytest.mark.parametrize("body, code, field", [
    ({"from": "18045550199", "to": SENDER, "body": "Hi"}, "invalid_phone_number", "from"),
    ({"from": "+10000000000", "to": SENDER, "body": "Hi"}, "invalid_phone_number", "from"),
    ({"to": SENDER, "body": "Hi"}, "parameter_missing", "from"),
    ({"from": PHONE, "body": "Hi"}, "parameter_missing", "to"),
    ({"from": PHONE, "to": "+1", "body": "Hi"}, "invalid_phone_number", "to"),
    ({"from": PHONE, "to": SENDER}, "parameter_missing", "body"),
    ({"from": PHONE, "to": SENDER, "body": ""}, "body_empty", "body"),
    ({"from": PHONE, "to": SENDER, "body": "x" * 1601}, "body_too_long", "body"),
    ({"from": PHONE, "to": SENDER, "body": 42}, "parameter_invalid_type", "body"),
    ({"from": PHONE, "to": SENDER, "body": "Hi", "metadata": {}}, "parameter_unknown", "metadata"),
])
def test_inbound_parameters_are_checked_as_a_sends_are(api, body, code, field):
    response = api.post(INBOUND, body, format="json")

    assert error_of(response)[1:] == (code, field)
    assert not Message.objects.exists()


def test_a_keyed_inbound_message_is_received_once(api):
    first = receive(api, "Hi", HTTP_IDEMPOTENCY_KEY="inbound-1")
    again = receive(api, "Hi", HTTP_IDEMPOTENCY_KEY="inbound-1")

    assert (first.status_code, again.status_code, again["Idempotent-Replayed"]) == (201, 201, "true")
    assert again.json() == first.json() and Message.objects.count() == 1


# --- Delivery reports ------------------------------------------------------------------------------
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_message_the_sandbox_never_reports_on_is_delivered_by_the_helper(
        worker, api, send, receiver, endpoint):  # noqa: F811 (fixtures)
    _endpoint_id, secret = endpoint
    created = send(to=sandbox.NEVER_REPORTS).json()
    wait_for_status(api, created["id"], "sent")

    response = report(api, created["id"], status="delivered")

    assert response.status_code == 200, response.json()
    shown = response.json()
    assert shown == api.get(f"/v1/messages/{created['id']}").json()
    assert shown["status"] == "delivered" and shown["sent_at"] <= shown["delivered_at"]
    assert shown["error_code"] is None
    requests = receiver.wait_for(3)  # message.queued, message.sent, message.delivered
    delivered = [r for r in requests if json.loads(r.body)["type"] == "message.delivered"]
    payload = Webhook(secret).verify(delivered[0].body, delivered[0].headers)
    assert payload["data"] == shown
    events = api.get(f"/v1/messages/{created['id']}/events").json()["data"]
    assert [e["type"] for e in events] == ["message.queued", "message.sent", "message.delivered"]
    record = CarrierReport.objects.get()  # recorded as a carrier's report is
    assert (record.carrier, record.carrier_message_id, record.status) == (
        "sandbox", Message.objects.get(public_id=created["id"]).carrier_message_id, "delivered")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_an_undelivered_report_carries_its_error_and_sends_message_failed(
        worker, api, send, receiver, endpoint):  # noqa: F811 (fixtures)
    created = send(to=sandbox.NEVER_REPORTS).json()
    wait_for_status(api, created["id"], "sent")

    shown = report(api, created["id"], status="undelivered", error_code="unreachable").json()

    assert (shown["status"], shown["error_code"], shown["error_message"], shown["retryable"]) == (
        "undelivered", "unreachable", MESSAGE_ERRORS["unreachable"].message, True)
    assert shown["undelivered_at"] is not None and shown["delivered_at"] is None
    receiver.wait_for(3)
    [failed] = receiver.events("message.failed")
    assert json.loads(failed.body)["data"] == shown


@pytest.mark.parametrize("status, error_code, expected_code", [
    ("undelivered", None, "unknown_subscriber"),  # the sandbox's own undelivered report's (+15005550002)
    ("failed", None, "carrier_rejected"),  # the sandbox's own refusal's (+15005550001)
    ("failed", "blocked", "blocked"),
])
def test_a_failure_without_an_error_code_gets_the_sandboxs_own(api, account, status, error_code, expected_code):
    message = sent_message(account)

    body = {"status": status, **({"error_code": error_code} if error_code else {})}
    shown = report(api, message.public_id, **body).json()

    assert (shown["status"], shown["error_code"]) == (status, expected_code)
    assert shown[f"{status}_at"] is not None
    assert shown["error_message"] == MESSAGE_ERRORS[expected_code].message


def test_a_recipient_opted_out_report_opts_the_number_out_as_a_carriers_does(api, account, send):
    message = sent_message(account)

    report(api, message.public_id, status="failed", error_code="recipient_opted_out")

    [opt_out] = api.get("/v1/opt_outs").json()["data"]
    assert (opt_out["phone_number"], opt_out["keyword"]) == (sandbox.NEVER_REPORTS, "CARRIER")
    assert error_of(send(to=sandbox.NEVER_REPORTS)) == (422, "recipient_opted_out", "to")


def test_the_sandboxs_own_report_arriving_later_is_ignored(api, account):
    message = sent_message(account, to=PHONE)  # the sandbox will report it delivered, later
    report(api, message.public_id, status="undelivered")

    own = sandbox.SandboxClient().query_report(carrier_message_id=message.carrier_message_id, to=PHONE)
    message_apply_delivery_report(carrier="sandbox", report=own)

    message.refresh_from_db()
    assert (message.status, message.error_code) == ("undelivered", "unknown_subscriber")


def test_a_report_on_a_message_not_yet_sent_is_a_conflict(api, send, account):
    queued = send().json()
    scheduled = send(send_at=(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600)))).json()
    inbound = receive(api, "Hi").json()

    for message in (queued, scheduled, inbound):
        response = report(api, message["id"], status="delivered")

        assert error_of(response) == (409, "message_not_sent", None)
        assert message["id"] in response.json()["error"]["message"]
        assert api.get(f"/v1/messages/{message['id']}").json()["status"] == message["status"]
    assert not CarrierReport.objects.exists()


def test_a_report_on_a_final_message_is_a_conflict_and_changes_nothing(api, account):
    message = sent_message(account)
    report(api, message.public_id, status="delivered")

    response = report(api, message.public_id, status="undelivered")

    assert error_of(response) == (409, "message_already_final", None)
    assert "delivered" in response.json()["error"]["message"]
    assert api.get(f"/v1/messages/{message.public_id}").json()["status"] == "delivered"
    assert CarrierReport.objects.count() == 1


@pytest.mark.parametrize("body, code, field", [
    ({"status": "sent"}, "parameter_invalid", "status"),
    ({"status": "received"}, "parameter_invalid", "status"),
    ({}, "parameter_missing", "status"),
    ({"status": "delivered", "error_code": "unreachable"}, "parameter_invalid", "error_code"),
    ({"status": "undelivered", "error_code": "no_such_code"}, "parameter_invalid", "error_code"),
    ({"status": "delivered", "at": "now"}, "parameter_unknown", "at"),
])
def test_report_parameters_are_checked(api, account, body, code, field):
    message = sent_message(account)

    response = api.post(report_url(message.public_id), body, format="json")

    assert error_of(response) == (400, code, field)
    assert api.get(f"/v1/messages/{message.public_id}").json()["status"] == "sent"


def test_only_the_callers_own_test_messages_can_be_reported_on(api, account):
    other = AccountFactory()
    SenderFactory(account=other, value=SENDER)
    theirs = sent_message(other)
    live = live_message(account)

    for message_id in (theirs.public_id, live.public_id, "msg_nope"):
        assert error_of(report(api, message_id, status="delivered")) == (404, "resource_missing", "id")
    theirs.refresh_from_db()
    assert theirs.status == "sent"


def test_a_keyed_report_is_applied_once(api, account):
    message = sent_message(account)

    first = api.post(report_url(message.public_id), {"status": "delivered"}, format="json",
                     HTTP_IDEMPOTENCY_KEY="report-1")
    again = api.post(report_url(message.public_id), {"status": "delivered"}, format="json",
                     HTTP_IDEMPOTENCY_KEY="report-1")

    assert (first.status_code, again.status_code, again["Idempotent-Replayed"]) == (200, 200, "true")
    assert again.json() == first.json() and CarrierReport.objects.count() == 1


# --- Test mode only -----------------------------------------------------------------------------------
def test_with_a_live_key_the_helpers_are_a_url_that_does_not_exist(live_api, account):
    live = live_message(account)
    unknown_answer = live_api.post(UNKNOWN_URL, {}, format="json")
    unknown = unknown_answer.json()["error"]

    for path, body in ((INBOUND, {"from": PHONE, "to": SENDER, "body": "STOP"}), (INBOUND, {"body": ""}),
                       (report_url(live.public_id), {"status": "delivered"}), (report_url("msg_nope"), {})):
        response = live_api.post(path, body, format="json")

        assert response.status_code == 404
        as_if_unknown = json.loads(json.dumps(unknown).replace(UNKNOWN_URL, path))
        assert response.json()["error"] == {**as_if_unknown, "request_id": response["Request-Id"]}
        assert set(response.headers) == set(unknown_answer.headers)  # no `Allow` giving it away
        assert {"RateLimit", "X-RateLimit-Remaining", "Mittis-Version"} <= set(response.headers)
    assert not Message.objects.filter(direction="inbound").exists() and not OptOut.objects.exists()
    live.refresh_from_db()
    assert live.status == "queued"


def test_without_a_key_the_helpers_answer_401_as_every_endpoint(db, anonymous):
    response = anonymous.post(INBOUND, {"from": PHONE, "to": SENDER, "body": "STOP"}, format="json")

    assert (response.status_code, response.json()["error"]["code"]) == (401, "missing_api_key")


def test_the_helpers_answers_carry_the_shared_headers(api, account):
    message = sent_message(account)

    for response in (receive(api, "Hi"), report(api, message.public_id, status="delivered")):
        assert {"Request-Id", "RateLimit", "RateLimit-Policy", "X-RateLimit-Limit", "Mittis-Version"} <= set(
            response.headers)
