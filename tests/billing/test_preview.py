"""POST /v1/messages/preview: the price before sending, and exactly what the send then charges."""

from decimal import Decimal

import pytest

from billing.models import LedgerEntry
from messaging.models import Message

BODIES = ["Your technician is 15 minutes out.", "a" * 160, "a" * 161, "Price: 5€ {ok}", "See you 😀",
          "It’s here", "ж" * 71, "x" * 1600, "€" * 800]
DESTINATIONS = ["+18045550199", "+447400123456", "+4915112345678", "+33612345678"]


@pytest.mark.parametrize("to", DESTINATIONS)
@pytest.mark.parametrize("body", BODIES, ids=range(len(BODIES)))
def test_preview_and_send_agree_and_the_charge_is_the_quote(prices, live_api, top_up, to, body):
    top_up("10")
    request = {"from": "+18045550142", "to": to, "body": body}

    preview = live_api.post("/v1/messages/preview", request, format="json").json()
    sent = live_api.post("/v1/messages", request, format="json").json()

    assert (preview["encoding"], preview["segments"], preview["price"], preview["currency"]) == (
        sent["encoding"], sent["segments"], sent["price"], sent["currency"])
    assert Decimal(preview["price"]) == Decimal(preview["unit_price"]) * preview["segments"]
    charge = LedgerEntry.objects.get(message_id=sent["id"], type="charge")
    assert charge.amount == -Decimal(sent["price"])


def test_preview_names_the_characters_that_forced_ucs2(api):
    response = api.post("/v1/messages/preview", {"from": "+18045550142", "to": "+447400123456",
                                                 "body": "It’s “here” — ok ’"}, format="json")

    assert response.status_code == 200
    assert response.json() | {"price": None, "unit_price": None} == {
        "object": "message_preview", "encoding": "UCS-2", "segments": 1, "price": None, "unit_price": None,
        "currency": "USD", "country": "GB", "non_gsm_characters": ["’", "“", "”", "—"]}


def test_a_gsm_body_has_no_characters_to_fix(api):
    body = api.post("/v1/messages/preview", {"from": "+18045550142", "to": "+18045550199", "body": "ok {}"},
                    format="json").json()

    assert (body["encoding"], body["non_gsm_characters"]) == ("GSM-7", [])


def test_preview_sends_and_charges_nothing(prices, live_api, top_up):
    top_up("1")

    live_api.post("/v1/messages/preview", {"from": "+18045550142", "to": "+18045550199", "body": "hi"}, format="json")

    assert Message.objects.count() == 0
    assert LedgerEntry.objects.exclude(type="top_up").count() == 0


@pytest.mark.parametrize("overrides, code", [({"to": "12345"}, "invalid_phone_number"),
                                             ({"from": "+18045550100"}, "unknown_sender"),
                                             ({"body": "x" * 1601}, "body_too_long")])
def test_preview_refuses_what_a_send_would_refuse(api, overrides, code):
    request = {"from": "+18045550142", "to": "+18045550199", "body": "hi", **overrides}

    response = api.post("/v1/messages/preview", request, format="json")

    assert (response.status_code, response.json()["error"]["code"]) == (400, code)
