"""Inbound messages and opt-outs: what a phone texts to an account's sender, and what STOP means."""

from decimal import Decimal

from django.contrib.auth.models import Group, User
from django.urls import reverse
import pytest
from rest_framework.test import APIClient

from billing.models import LedgerEntry
from billing.services import balance_top_up
from messaging.carriers.base import InboundSms
from messaging.carriers.twilio import expected_signature
from messaging.models import Carrier, CarrierInbound, Message, OptOut
from messaging.services import message_receive
from mittis.accounts import roles
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


def test_a_message_to_a_number_no_account_has_is_kept_and_shown_to_staff(account, client):
    assert receive("STOP", to="+18045550000") is None

    assert not Message.objects.exists() and not OptOut.objects.exists()
    kept = CarrierInbound.objects.get()
    assert (kept.carrier, kept.from_number, kept.to, kept.body, kept.message) == (
        "twilio-main", PHONE, "+18045550000", "STOP", None)
    support = User.objects.create_user("support-person", is_staff=True)
    support.groups.add(Group.objects.get(name=roles.SUPPORT))
    client.force_login(support)
    listed = client.get(reverse("admin:messaging_carrierinbound_changelist") + "?routed=no")
    assert listed.status_code == 200 and list(listed.context["cl"].result_list) == [kept]
    assert client.get(reverse("admin:messaging_carrierinbound_changelist") + "?routed=yes").context[
        "cl"].result_list.count() == 0


def test_every_inbound_message_is_kept_as_it_came_beside_the_message(account):
    message = message_receive(carrier="twilio-main", inbound=InboundSms(sender=PHONE, to=SEED["from"], body="Hi"),
                              raw={"Body": "Hi", "MessageSid": "SM123"})

    assert message.carrier_inbound.raw == {"Body": "Hi", "MessageSid": "SM123"}


@pytest.mark.parametrize("body", ["Hi\x00A", "Hi\ud800A"], ids=["nul", "lone-surrogate"])
def test_a_body_postgresql_cannot_store_is_received_with_the_replacement_character(account, body):
    message = message_receive(carrier="twilio-main", inbound=InboundSms(sender=PHONE, to=SEED["from"], body=body),
                              raw={"Body": body})

    message.refresh_from_db()
    assert message.body == "Hi\ufffdA" and message.carrier_inbound.raw == {"Body": "Hi\ufffdA"}


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


@pytest.fixture
def twilio_post(client, settings, db):
    """POST form fields to a Twilio carrier's callback URL, signed as Twilio signs them."""
    settings.MITTIS_PUBLIC_URL = "https://mittis.example.com"
    carrier = Carrier(name="twilio-acme", kind=Carrier.TWILIO, settings={"account_sid": "AC" + "0" * 32})
    carrier.credentials = {"auth_token": "twilio-test-token"}
    carrier.save()

    def post(path, fields):
        signature = expected_signature(secret="twilio-test-token", url=settings.MITTIS_PUBLIC_URL + path,
                                       params={name: [value] for name, value in fields.items()})
        return client.post(path, fields, HTTP_X_TWILIO_SIGNATURE=signature)
    return post


def test_a_twilio_inbound_body_holding_a_nul_is_received(account, twilio_post):
    answer = twilio_post("/carriers/twilio-acme/twilio/inbound", {
        "MessageSid": "SM" + "1" * 32, "From": PHONE, "To": SEED["from"], "Body": "Hi\x00A"})

    assert answer.status_code == 200
    message = Message.objects.get(direction="inbound")
    assert message.body == "Hi\ufffdA" and message.carrier_inbound.raw["Body"] == "Hi\ufffdA"
