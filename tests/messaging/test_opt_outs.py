"""Opt-outs that carriers report: a carrier that refuses a message because its recipient unsubscribed (Twilio's
21610) opts the number out, so the next send is refused when accepted, uncharged, and never reaches the carrier."""

from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import json
import threading

import pytest
from rest_framework.test import APIClient

from billing.services import balance_top_up
from messaging.carriers.base import InboundSms
from messaging.models import Carrier, Message, Route, RouteCarrier
from messaging.services import message_receive, message_send
from tests.conftest import SEED
from tests.factories import api_key_for

# Twilio's answer to a create for a recipient who texted STOP to the sender
# (https://www.twilio.com/docs/api/errors/21610).
UNSUBSCRIBED = {"code": 21610, "message": "Attempt to send to unsubscribed recipient", "status": 400,
                "more_info": "https://www.twilio.com/docs/errors/21610"}


@pytest.fixture
def twilio_refusing():
    """The outside world: a Twilio-like server that refuses every message as sent to an unsubscribed recipient."""
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            body = json.dumps(UNSUBSCRIBED).encode()
            self.send_response(400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


@pytest.fixture
def live_api(account, twilio_refusing):
    """Live messages go to that Twilio; the account has a balance."""
    carrier = Carrier(name="twilio-acme", kind="twilio", tps=1000,
                      settings={"account_sid": "AC" + "0" * 32, "base_url": twilio_refusing[0]})
    carrier.credentials = {"auth_token": "token"}
    carrier.save()
    RouteCarrier.objects.create(route=Route.objects.create(livemode=True), carrier=carrier)
    balance_top_up(account_id=account.pk, livemode=True, amount=Decimal("1"))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(account, livemode=True)}")
    return client


def send_through(client) -> dict:
    created = client.post("/v1/messages", SEED, format="json").json()
    message_send(message_id=Message.objects.get(public_id=created["id"]).pk)
    return client.get(f"/v1/messages/{created['id']}").json()


def test_a_recipient_the_carrier_calls_unsubscribed_is_opted_out_and_the_next_send_is_refused_uncharged(
        live_api, api, twilio_refusing):
    balance = live_api.get("/v1/balance").json()["available"]

    message = send_through(live_api)

    assert (message["status"], message["error_code"], message["retryable"]) == ("failed", "recipient_opted_out", False)
    assert [(a["carrier"], a["outcome"], a["raw_code"]) for a in message["attempts"]] == [
        ("twilio-acme", "rejected", "21610")]
    [opt_out] = live_api.get("/v1/opt_outs").json()["data"]
    assert (opt_out["phone_number"], opt_out["sender"], opt_out["keyword"], opt_out["livemode"]) == (
        SEED["to"], SEED["from"], "CARRIER", True)

    again = live_api.post("/v1/messages", SEED, format="json")

    assert again.status_code == 422
    assert (again.json()["error"]["code"], again.json()["error"]["field"]) == ("recipient_opted_out", "to")
    assert len(twilio_refusing[1]) == 1  # the second send never reached the carrier
    assert live_api.get("/v1/balance").json()["available"] == balance  # the first refunded, the second uncharged
    assert api.post("/v1/messages", SEED, format="json").status_code == 201  # test mode has opt-outs of its own


def test_a_start_from_the_phone_opts_it_back_in(live_api):
    send_through(live_api)
    assert live_api.get("/v1/opt_outs").json()["data"]

    message_receive(carrier="twilio-acme", inbound=InboundSms(sender=SEED["to"], to=SEED["from"], body="START"))

    assert live_api.get("/v1/opt_outs").json()["data"] == []
    assert live_api.post("/v1/messages", SEED, format="json").status_code == 201
