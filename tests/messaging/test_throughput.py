"""Throughput: a sender's and a carrier's messages per second are honoured without a worker sleeping."""

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from billing.services import balance_top_up
from messaging import throughput
from messaging.models import Carrier, Message, Route, RouteCarrier, Sender
from messaging.services import message_send, sender_mps, sender_number_type
from tests.conftest import SEED, drain_queued_tasks
from tests.factories import api_key_for


def test_a_rate_gives_slots_at_its_pace_and_says_how_long_to_wait():
    assert throughput.reserve("t:a", per_second=2) == 0
    wait = throughput.reserve("t:a", per_second=2)
    assert 0.4 < wait <= 0.5  # the next slot is half a second after the first
    assert throughput.reserve("t:a", per_second=2) == pytest.approx(wait, abs=0.05)  # nothing was taken
    assert throughput.reserve("t:b", per_second=2) == 0  # keys are independent


def test_a_batch_takes_the_free_slots_in_one_go_and_hears_when_the_next_one_is_free():
    granted, wait = throughput.reserve_many("t:many", per_second=10, wanted=5, burst=3)
    assert granted == 3 and 0.05 < wait <= 0.1  # the burst now, the fourth a tenth of a second later

    granted, wait = throughput.reserve_many("t:many", per_second=10, wanted=2, burst=3)
    assert granted == 0 and 0.05 < wait <= 0.1  # nothing was taken by asking
    assert throughput.reserve_many("t:many", per_second=0, wanted=4) == (4, 0.0)  # no rate: no limit


def test_a_burst_allows_that_many_at_once():
    assert [throughput.reserve("t:burst", per_second=10, burst=3) for _ in range(4)][:3] == [0, 0, 0]


@pytest.mark.parametrize("value, number_type", [
    ("+18045550142", "long_code"), ("+18005550199", "toll_free"), ("Acme", "alphanumeric"), ("24273", "short_code"),
])
def test_a_senders_type_sets_its_default_rate(value, number_type, settings):
    assert sender_number_type(value) == number_type
    assert sender_mps(Sender(value=value)) == settings.MITTIS_SENDER_MPS[number_type]
    assert sender_mps(Sender(value=value, mps=7)) == 7


@pytest.fixture
def live_api(account):
    balance_top_up(account_id=account.pk, livemode=True, amount=Decimal("1"))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(account, livemode=True)}")
    return client


def test_a_sender_past_its_rate_is_not_sent_now_but_told_when(live_api, account):
    Sender.objects.filter(account=account).update(mps=1)
    first, second = (Message.objects.get(public_id=live_api.post("/v1/messages", SEED, format="json").json()["id"])
                     for _ in range(2))

    assert message_send(message_id=first.pk).sent
    outcome = message_send(message_id=second.pk)

    assert not outcome.sent and 0.5 < outcome.throttled <= 1.0
    second.refresh_from_db()
    assert (second.status, second.send_attempts) == ("queued", 0)  # not claimed: the same attempt runs later


def test_a_carrier_past_its_tps_is_not_sent_now_either(live_api, account):
    Sender.objects.filter(account=account).update(mps=1000)
    carrier = Carrier.objects.create(name="slow", kind="sandbox", tps=1)
    RouteCarrier.objects.create(route=Route.objects.create(livemode=True), carrier=carrier)
    ids = [live_api.post("/v1/messages", SEED, format="json").json()["id"] for _ in range(2)]

    outcomes = [message_send(message_id=Message.objects.get(public_id=i).pk) for i in ids]

    assert outcomes[0].sent and outcomes[1].throttled > 0


def test_the_send_task_reschedules_a_throttled_message_instead_of_sleeping(live_api, account):
    from datetime import datetime, timezone

    from messaging import tasks

    Sender.objects.filter(account=account).update(mps=1)
    ids = [live_api.post("/v1/messages", SEED, format="json").json()["id"] for _ in range(2)]
    message_send(message_id=Message.objects.get(public_id=ids[0]).pk)
    drain_queued_tasks()
    started = datetime.now(timezone.utc)

    tasks.send_message.run(Message.objects.get(public_id=ids[1]).pk)

    [again] = drain_queued_tasks()
    assert again["task"] == "messaging.send_message" and "'attempt': 1" in again["kwargsrepr"]
    wait = (datetime.fromisoformat(again["eta"]) - started).total_seconds()
    assert 0.4 < wait <= 1.1
