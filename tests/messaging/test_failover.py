"""Failover: a carrier that refuses connections is passed over for the next one on the route, every try is
on the message, a run of failures opens the carrier's breaker and a later success closes it. A carrier
that may have taken the message is never followed by another. A carrier that may not send to the country
passes the message on too, without a penalty: it answered."""

from datetime import timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import json
import threading
import time

from django.utils import timezone
import pytest
from rest_framework.test import APIClient

from billing.services import balance_top_up
from messaging.carriers import twilio
from messaging.carriers.sandbox import TEMPORARILY_UNAVAILABLE
from messaging.carriers.registry import BREAKER_COOLDOWN, BREAKER_THRESHOLD
from messaging.models import Carrier, Message, Route, RouteCarrier, Sender
from messaging.services import message_send
from tests.conftest import SEED, free_port
from tests.factories import api_key_for

ACCOUNT_SID = "AC" + "0" * 32



# Twilio's answer when the account's geographic permissions leave out the recipient's country
# (https://www.twilio.com/docs/api/errors/21408).
REGION_REFUSED = {"code": 21408, "status": 400, "more_info": "https://www.twilio.com/docs/errors/21408",
                  "message": "Permission to send an SMS has not been enabled for the region indicated by the "
                             "'To' number: +18045550199."}


@pytest.fixture
def twilio_stand_in():
    """The outside world: a Twilio-like server that accepts messages, answers `delay` seconds late, or answers
    with the error `refuse` (Twilio's JSON error body)."""
    state = {"delay": 0.0, "received": 0, "refuse": None}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state["received"] += 1
            time.sleep(state["delay"])
            refused = state["refuse"]
            body = json.dumps(refused or {"sid": "SM" + f"{state['received']:032x}", "status": "queued"}).encode()
            self.send_response(refused["status"] if refused else 201)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def route(account, monkeypatch):
    """Live route: a Twilio carrier refusing connections first, a backup (sandbox) second."""
    monkeypatch.setattr(twilio, "CONNECT_TIMEOUT", 0.5)
    monkeypatch.setattr(twilio, "READ_TIMEOUT", 0.5)
    primary = Carrier(name="primary", kind="twilio", tps=1000,
                      settings={"account_sid": ACCOUNT_SID, "base_url": f"http://127.0.0.1:{free_port()}"})
    primary.credentials = {"auth_token": "token"}
    primary.save()
    backup = Carrier.objects.create(name="backup", kind="sandbox", tps=1000)
    route = Route.objects.create(livemode=True)
    RouteCarrier.objects.create(route=route, carrier=primary, position=1)
    RouteCarrier.objects.create(route=route, carrier=backup, position=2)
    Sender.objects.filter(account=account).update(mps=1000)
    balance_top_up(account_id=account.pk, livemode=True, amount=Decimal("10"))
    return primary


@pytest.fixture
def live_api(account):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(account, livemode=True)}")
    return client


def send_through(live_api) -> dict:
    created = live_api.post("/v1/messages", SEED, format="json").json()
    message_send(message_id=Message.objects.get(public_id=created["id"]).pk)
    return live_api.get(f"/v1/messages/{created['id']}").json()


def tries(message: dict) -> list[tuple[str, str]]:
    return [(a["carrier"], a["outcome"]) for a in message["attempts"]]


def test_a_carrier_refusing_connections_is_passed_over_and_both_attempts_are_recorded(route, live_api):
    message = send_through(live_api)

    assert message["status"] == "sent"
    assert tries(message) == [("primary", "temporary_error"), ("backup", "accepted")]
    refused, accepted = message["attempts"]
    assert refused["error_code"] == "carrier_unavailable" and refused["carrier_message_id"] is None
    assert accepted["carrier_message_id"].startswith("sbx_") and accepted["latency_ms"] >= 0


def test_the_breaker_opens_after_a_run_of_failures_and_closes_after_a_successful_probe(route, live_api,
                                                                                      twilio_stand_in):
    for _ in range(BREAKER_THRESHOLD):
        assert tries(send_through(live_api))[0] == ("primary", "temporary_error")
    assert Carrier.objects.get(name="primary").breaker_state == "open"

    assert tries(send_through(live_api)) == [("backup", "accepted")]  # out of rotation: not even tried

    # The carrier recovers; once the cool-down has passed, one message probes it.
    Carrier.objects.filter(name="primary").update(
        settings={"account_sid": ACCOUNT_SID, "base_url": twilio_stand_in["url"]},
        breaker_opened_at=timezone.now() - BREAKER_COOLDOWN - timedelta(seconds=1))
    probe = send_through(live_api)

    assert tries(probe) == [("primary", "accepted")]
    assert Carrier.objects.get(name="primary").breaker_state == "closed"
    assert tries(send_through(live_api)) == [("primary", "accepted")]


def test_a_carrier_that_may_have_taken_the_message_is_not_followed_by_another(route, live_api, twilio_stand_in):
    twilio_stand_in["delay"] = 1.5  # it takes the message, but answers after our read timeout
    Carrier.objects.filter(name="primary").update(settings={"account_sid": ACCOUNT_SID,
                                                            "base_url": twilio_stand_in["url"]})

    message = send_through(live_api)

    assert tries(message) == [("primary", "unknown")]
    assert message["status"] == "sending"  # its status callback settles it; the backup never sends it
    assert Carrier.objects.get(name="primary").breaker_failures == 0


def test_a_healed_carrier_behind_a_dispatcher_gets_its_probe_and_its_breaker_closes(route, live_api, twilio_stand_in):
    """The batch dispatcher hands a message whose first carrier does not batch (Twilio) to a task of its own.
    Choosing that must not use up the half-open probe: the task must try the healed carrier, or its breaker
    never closes and every probe round only moves its opening time on."""
    from messaging.carriers.registry import breaker_record
    from messaging.services import messages_dispatch

    for _ in range(BREAKER_THRESHOLD):
        breaker_record("primary", ok=False)
    Carrier.objects.filter(name="primary").update(  # healed, and its cool-down over
        settings={"account_sid": ACCOUNT_SID, "base_url": twilio_stand_in["url"]},
        breaker_opened_at=timezone.now() - BREAKER_COOLDOWN - timedelta(seconds=1))
    created = live_api.post("/v1/messages", SEED, format="json").json()

    assert messages_dispatch() == 0  # handed to its own task, not sent in the batch
    message_send(message_id=Message.objects.get(public_id=created["id"]).pk)  # what that task runs

    assert tries(live_api.get(f"/v1/messages/{created['id']}").json()) == [("primary", "accepted")]
    assert twilio_stand_in["received"] == 1
    assert Carrier.objects.get(name="primary").breaker_state == "closed"


def test_a_carrier_that_may_not_send_to_the_country_passes_the_message_on_without_a_penalty(route, live_api,
                                                                                            twilio_stand_in):
    twilio_stand_in["refuse"] = REGION_REFUSED
    Carrier.objects.filter(name="primary").update(settings={"account_sid": ACCOUNT_SID,
                                                            "base_url": twilio_stand_in["url"]})

    message = send_through(live_api)

    assert message["status"] == "sent"
    assert tries(message) == [("primary", "rejected"), ("backup", "accepted")]
    refused = message["attempts"][0]
    assert (refused["error_code"], refused["raw_code"]) == ("carrier_rejected", "21408")
    assert Carrier.objects.get(name="primary").breaker_failures == 0


def test_a_message_no_carrier_may_send_to_its_country_fails_at_once_refunded(route, live_api, twilio_stand_in):
    """Every carrier answered that it never will: the message fails now, not after retries asking them again."""
    twilio_stand_in["refuse"] = REGION_REFUSED
    settings = {"account_sid": ACCOUNT_SID, "base_url": twilio_stand_in["url"]}
    Carrier.objects.filter(name="primary").update(settings=settings)
    Carrier.objects.filter(name="backup").update(kind="twilio", settings=settings,
                                                 credentials_encrypted=route.credentials_encrypted)
    balance = live_api.get("/v1/balance").json()["available"]

    message = send_through(live_api)

    assert tries(message) == [("primary", "rejected"), ("backup", "rejected")]
    assert (message["status"], message["error_code"], message["retryable"]) == ("failed", "carrier_rejected", False)
    assert "geographic permissions" in message["error_message"]
    assert twilio_stand_in["received"] == 2
    assert live_api.get("/v1/balance").json()["available"] == balance  # refunded: no carrier took it


def test_a_refusal_for_the_country_beside_a_temporary_failure_is_retried(route, live_api, twilio_stand_in):
    twilio_stand_in["refuse"] = REGION_REFUSED
    Carrier.objects.filter(name="primary").update(settings={"account_sid": ACCOUNT_SID,
                                                            "base_url": twilio_stand_in["url"]})
    created = live_api.post("/v1/messages", {**SEED, "to": TEMPORARILY_UNAVAILABLE}, format="json").json()

    message_send(message_id=Message.objects.get(public_id=created["id"]).pk)

    message = live_api.get(f"/v1/messages/{created['id']}").json()
    assert tries(message) == [("primary", "rejected"), ("backup", "temporary_error")]
    assert message["status"] == "sending"  # the backup may take it on the retry
