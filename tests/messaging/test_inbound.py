"""Inbound messages and opt-outs: what a phone texts to an account's sender, and what STOP means."""

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from billing.models import LedgerEntry
from billing.services import balance_top_up
from messaging.carriers.base import InboundSms
from messaging.models import Message, OptOut
from messaging.services import message_receive
from tests.conftest import SEED
from tests.factories import api_key_for
from webhooks.models import Event

PHONE = "+18045550199"


@pytest.fixture
def live_api(account):
    balance_top_up(account_id=account.pk, livemode=True, amount=Decimal("1"))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(account, livemode=True)}")
    return client


def receive(body, sender=PHONE, to=SEED["from"], carrier="twilio-main"):
    return message_receive(carrier=carrier, inbound=InboundSms(sender=sender, to=to, body=body,
                                                               carrier_message_id="SM123"))


def test_an_inbound_message_is_received_with_its_event(live_api, account):
    message = receive("Running 10 min late, sorry")

    assert (message.direction, message.status, message.from_number, message.to) == (
        "inbound", "received", PHONE, SEED["from"])
    shown = live_api.get(f"/v1/messages/{message.public_id}").json()
    assert (shown["direction"], shown["status"], shown["body"]) == ("inbound", "received", "Running 10 min late, sorry")
    assert live_api.get("/v1/messages?direction=inbound").json()["data"][0]["id"] == message.public_id
    event = Event.objects.get(type="message.inbound")
    assert event.object_id == message.public_id and event.account_id == account.pk and event.livemode


def test_a_message_to_a_number_no_account_has_is_dropped(account):
    assert receive("hello", to="+18045550000") is None
    assert not Message.objects.exists()


@pytest.mark.parametrize("keyword", ["STOP", "stop", " Stop ", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT",
                                     "REVOKE", "OPTOUT", "stop."])
def test_a_stop_word_opts_the_number_out_and_a_send_to_it_is_refused_uncharged(live_api, account, keyword):
    receive(keyword)

    response = live_api.post("/v1/messages", SEED, format="json")

    assert response.status_code == 422
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("recipient_opted_out", "to")
    assert not Message.objects.filter(direction="outbound").exists()
    assert not LedgerEntry.objects.filter(type="charge").exists()
    [opt_out] = live_api.get("/v1/opt_outs").json()["data"]
    assert (opt_out["object"], opt_out["phone_number"], opt_out["sender"]) == ("opt_out", PHONE, SEED["from"])
    assert opt_out["keyword"] == keyword.strip().upper().rstrip(".")


@pytest.mark.parametrize("keyword", ["START", "UNSTOP", "yes"])
def test_a_start_word_opts_back_in(live_api, keyword):
    receive("STOP")
    receive(keyword)

    assert live_api.post("/v1/messages", SEED, format="json").status_code == 201
    assert live_api.get("/v1/opt_outs").json()["data"] == []


def test_a_stop_inside_a_sentence_is_just_a_message(live_api):
    receive("Please don't stop the reminders")

    assert not OptOut.objects.exists()


def test_an_opt_out_belongs_to_one_account_and_mode(live_api, api, account):
    receive("STOP")

    assert api.post("/v1/messages", SEED, format="json").status_code == 201  # test mode is apart
    assert api.get("/v1/opt_outs").json()["data"] == []


@pytest.mark.parametrize("keyword", ["HELP", "info"])
def test_help_gets_the_accounts_reply(live_api, account, keyword):
    account.help_reply = "Acme Plumbing: reminders for your appointments. Reply STOP to opt out."
    account.save()

    receive(keyword)

    reply = Message.objects.get(direction="outbound")
    assert (reply.to, reply.from_number, reply.body) == (PHONE, SEED["from"], account.help_reply)


def test_help_without_a_configured_reply_sends_nothing(live_api):
    receive("HELP")

    assert not Message.objects.filter(direction="outbound").exists()
