"""The SMPP carrier end to end: a real bind (BindRunner, in a thread) to a real SMSC simulator
(tests/peers/smsc.js, on node-smpp), messages sent through `message_send`, receipts and inbound
messages coming back over the same session."""

from dataclasses import dataclass
from decimal import Decimal
import json
from pathlib import Path
import select
import shutil
import subprocess
import threading
import time
import urllib.request

from django.core.management import CommandError, call_command
from django.utils import timezone
import pytest
from rest_framework.test import APIClient

from billing.models import LedgerEntry
from billing.services import balance_top_up
from messaging.carriers import smpp_bind
from messaging.carriers.base import CarrierTemporaryError, OutboundSms
from messaging.carriers.smpp import CONNECTION_LOST, SmppClient
from messaging.carriers.smpp_bind import BindRunner
from messaging.carriers.smpp_supervisor import BindSupervisor
from messaging.encoding import gsm7_encode, split_parts
from messaging.models import Carrier, Message, OptOut, Route, RouteCarrier, Sender, SendAttempt, SmppBind, SmppSubmission
from messaging.services import CARRIER_INBOX, message_send
from tests.conftest import SEED, drain_queued_tasks
from tests.factories import api_key_for

pytestmark = pytest.mark.django_db(transaction=True)

PEERS = Path(__file__).resolve().parents[2] / "peers"
SYSTEM_ID, PASSWORD = "mittis", "s3cret"
PHONE = "+18045550199"
# The simulator's magic destinations (tests/peers/smsc.js).
UNDELIVERED, REJECTED, THROTTLED_ONCE, NO_RESPONSE = "+15005550102", "+15005550103", "+15005550104", "+15005550105"
TEXT_ONLY_RECEIPT, EXPIRED = "+15005550107", "+15005550108"


def wait_until(predicate, timeout=10.0, what="the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"{what} did not happen within {timeout} s")


@dataclass
class Smsc:
    port: int
    control_port: int

    def get(self, path: str):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.control_port}{path}", timeout=5) as response:
            return json.load(response)

    def post(self, path: str, body: dict | None = None):
        request = urllib.request.Request(f"http://127.0.0.1:{self.control_port}{path}", method="POST",
                                         data=json.dumps(body or {}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.load(response)

    def submits_to(self, to: str) -> list[dict]:
        return [s for s in self.get("/submits") if s["destination_addr"] == to.lstrip("+")]


@pytest.fixture(scope="module")
def smsc_process():
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the SMPP tests run an SMSC simulator on Node")
    if not (PEERS / "node_modules" / "smpp").is_dir():
        pytest.skip("tests/peers/node_modules/smpp is missing: run `npm ci` in tests/peers")
    process = subprocess.Popen(["node", str(PEERS / "smsc.js"), "--system-id", SYSTEM_ID, "--password", PASSWORD,
                                "--receipt-delay-ms", "50"], stdout=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([process.stdout], [], [], 15)
        line = process.stdout.readline() if ready else ""
        assert line.startswith("listening "), f"the SMSC simulator did not start: {line!r}"
        _, port, control_port = line.split()
        yield Smsc(int(port), int(control_port))
    finally:
        process.terminate()
        process.wait(5)


@pytest.fixture
def smsc(smsc_process):
    smsc_process.post("/reset")
    return smsc_process


def make_carrier(smsc: Smsc, name="smsc-test", password=PASSWORD, tps=50, **settings) -> Carrier:
    carrier = Carrier(name=name, kind=Carrier.SMPP, tps=tps, settings={
        "host": "127.0.0.1", "port": smsc.port, "system_id": SYSTEM_ID, "window": 5, "submit_timeout": 5,
        "reconnect_min": 0.1, "reconnect_max": 0.5, **settings})
    carrier.credentials = {"password": password}
    carrier.save()
    return carrier


@pytest.fixture
def carrier(smsc):
    return make_carrier(smsc)


@pytest.fixture
def start_bind():
    """Runs a BindRunner in a thread, as `manage.py smpp_bind` does; stops and joins it at teardown."""
    started = []

    def _start(carrier, state="bound"):
        stop = threading.Event()
        thread = threading.Thread(target=BindRunner(carrier, CARRIER_INBOX).run, args=(stop,), daemon=True)
        thread.start()
        started.append((stop, thread))
        wait_until(lambda: SmppBind.objects.filter(carrier=carrier, state=state).exists(), what=f"bind {state}")
        return stop, thread

    yield _start
    for stop, _ in started:
        stop.set()
    for _, thread in started:
        thread.join(10)
        assert not thread.is_alive(), "the bind did not stop"


@pytest.fixture
def bound(carrier, start_bind):
    start_bind(carrier)
    return carrier


@pytest.fixture
def live(account, carrier):
    """A live key whose messages the default live route sends through the SMPP carrier."""
    balance_top_up(account_id=account.pk, livemode=True, amount=Decimal("10"))
    Sender.objects.filter(account=account).update(mps=100)  # several messages a second in some tests
    route = Route.objects.create(livemode=True)
    RouteCarrier.objects.create(route=route, carrier=carrier, position=1)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(account, livemode=True)}")
    yield client
    drain_queued_tasks()  # the API enqueued send tasks that these tests ran themselves


def send(live, to=PHONE, body=SEED["body"]) -> Message:
    """POST /v1/messages, then the send task's work, here."""
    response = live.post("/v1/messages", {"from": SEED["from"], "to": to, "body": body}, format="json")
    assert response.status_code == 201, response.json()
    message = Message.objects.get(public_id=response.json()["id"])
    message_send(message_id=message.pk, attempt=1)
    message.refresh_from_db()
    return message


def final(message: Message, timeout=10.0) -> Message:
    return wait_until(lambda: Message.objects.filter(pk=message.pk, status__in=[
        "delivered", "undelivered", "failed"]).first(), timeout, f"{message.public_id} final")


def events(message: Message) -> list[str]:
    return list(message.events.order_by("sequence").values_list("type", flat=True))


def ucs2(text: str) -> str:
    return text.encode("utf-16-be").hex()


# --- Sending: encodings, parts, receipts -------------------------------------------------------
@pytest.mark.parametrize("body, data_coding, octets", [
    ("Your technician is 15 minutes out.", 0x00, gsm7_encode("Your technician is 15 minutes out.").hex()),
    ("€ and {braces}", 0x00, "1b6520616e64201b286272616365731b29"),  # each extension character is ESC + code
    ("Привет 😀", 0x08, ucs2("Привет 😀")),  # the emoji as a surrogate pair
], ids=["gsm7", "gsm7-extension", "ucs2"])
def test_a_single_part_message_is_submitted_in_its_encoding_and_delivered(smsc, bound, live, body, data_coding,
                                                                          octets):
    message = send(live, body=body)

    assert message.status == "sent"
    [submit] = smsc.submits_to(PHONE)
    assert (submit["data_coding"], submit["esm_class"], submit["udh"]) == (data_coding, 0x00, None)
    assert submit["short_message"] == octets
    assert submit["text"] == body  # as node-smpp's own decoder reads it
    assert (submit["source_addr_ton"], submit["source_addr_npi"], submit["source_addr"]) == (1, 1, "18045550142")
    assert (submit["dest_addr_ton"], submit["dest_addr_npi"], submit["registered_delivery"]) == (1, 1, 1)
    assert message.carrier == "smsc-test" and message.carrier_message_id == submit["message_id"]
    assert final(message).status == "delivered"
    assert events(message) == ["message.queued", "message.sent", "message.delivered"]
    assert message.reports.get().raw["received"]["receipted_message_id"] == submit["message_id"]


@pytest.mark.parametrize("body", [
    "Your appointment is confirmed. " * 5 + "Bring {your} €20 deposit. " + "See you soon! " * 3,
    "Привет! Ваш мастер будет через 15 минут. " * 3 + "😀" + " До встречи! 🔧",
], ids=["gsm7", "ucs2"])
def test_a_long_message_goes_in_concatenated_parts_with_one_udh_reference(smsc, bound, live, body):
    expected = split_parts(body)
    assert len(expected) > 1

    message = send(live, body=body)

    submits = smsc.submits_to(PHONE)
    assert len(submits) == len(expected) == message.segments
    udhs = [bytes.fromhex(s["udh"]) for s in submits]
    reference = udhs[0][3]
    assert udhs == [bytes((0x05, 0x00, 0x03, reference, len(expected), n)) for n in range(1, len(expected) + 1)]
    assert all(s["esm_class"] == 0x40 for s in submits)
    assert [s["text"] for s in submits] == expected  # no escape or surrogate pair cut in two
    assert "".join(s["text"] for s in submits) == body
    assert max(len(bytes.fromhex(s["short_message"])) for s in submits) <= 140 + 19  # 6-octet UDH + 153 septets
    # Every part is receipted; the message is delivered once, when the last part is.
    assert message.carrier_message_id == submits[0]["message_id"]
    assert final(message).status == "delivered"
    wait_until(lambda: len([d for d in smsc.get("/delivers") if d["resp_status"] == 0]) == len(expected))
    assert events(message) == ["message.queued", "message.sent", "message.delivered"]


@pytest.mark.parametrize("to, status, error_code, event_types", [
    (UNDELIVERED, "undelivered", "unknown_error", ["message.queued", "message.sent", "message.failed"]),
    (EXPIRED, "undelivered", "unreachable", ["message.queued", "message.sent", "message.failed"]),
    (TEXT_ONLY_RECEIPT, "delivered", "", ["message.queued", "message.sent", "message.delivered"]),
    (REJECTED, "failed", "invalid_phone_number", ["message.queued", "message.failed"]),
], ids=["undelivered", "expired", "receipt-text-only", "rejected-at-submit"])
def test_receipts_and_refusals_end_in_the_right_status(smsc, bound, live, to, status, error_code, event_types):
    message = final(send(live, to=to))

    assert (message.status, message.error_code) == (status, error_code)
    assert events(message) == event_types


def test_a_refused_submit_fails_the_message_with_the_smpp_status_and_refunds_it(smsc, bound, live):
    message = final(send(live, to=REJECTED))

    attempt = message.attempts.get()
    assert (attempt.outcome, attempt.raw_code, attempt.error_code) == (
        SendAttempt.REJECTED, "ESME_RINVDSTADR", "invalid_phone_number")
    assert "Invalid Destination Address" in message.error_message
    assert SmppSubmission.objects.get(reference=message.public_id).status == SmppSubmission.REJECTED
    assert LedgerEntry.objects.filter(message_id=message.public_id, type=LedgerEntry.REFUND).exists()


def test_a_throttled_submit_is_sent_again_after_a_pause(smsc, bound, live, monkeypatch):
    monkeypatch.setattr(smpp_bind, "THROTTLE_PAUSE", 0.2)

    message = final(send(live, to=THROTTLED_ONCE))

    assert message.status == "delivered"
    first, second = smsc.submits_to(THROTTLED_ONCE)
    assert (first["command_status"], second["command_status"]) == (0x58, 0)  # ESME_RTHROTTLED, then accepted
    assert second["at"] - first["at"] >= 180


def test_the_bind_never_exceeds_the_carriers_tps(smsc, start_bind, live):
    carrier = Carrier.objects.get(name="smsc-test")
    Carrier.objects.filter(pk=carrier.pk).update(tps=4)
    carrier.refresh_from_db()
    start_bind(carrier)

    send(live, body="x" * 153 * 6)  # six parts

    times = [s["at"] for s in smsc.submits_to(PHONE)]
    assert len(times) == 6
    assert all(later - earlier >= 950 for earlier, later in zip(times, times[4:]))  # 4 in any one second


# --- Inbound messages -------------------------------------------------------------------------
def test_an_inbound_stop_is_received_and_opts_the_phone_out(smsc, bound, live, account):
    smsc.post("/deliver", {"from": PHONE, "to": SEED["from"], "text": "STOP"})

    inbound = wait_until(lambda: Message.objects.filter(direction="inbound").first(), what="the inbound message")
    assert (inbound.status, inbound.from_number, inbound.to, inbound.body, inbound.carrier) == (
        "received", PHONE, SEED["from"], "STOP", "smsc-test")
    assert events(inbound) == ["message.inbound"]
    assert OptOut.objects.filter(account=account, livemode=True, phone_number=PHONE, keyword="STOP").exists()
    wait_until(lambda: [d["resp_status"] for d in smsc.get("/delivers")] == [0], what="deliver_sm_resp")
    refused = live.post("/v1/messages", {"from": SEED["from"], "to": PHONE, "body": "Hello"}, format="json")
    assert refused.json()["error"]["code"] == "recipient_opted_out"


def test_an_inbound_ucs2_message_is_decoded(smsc, bound, live):
    smsc.post("/deliver", {"from": PHONE, "to": SEED["from"], "text": "Привет 😀"})

    inbound = wait_until(lambda: Message.objects.filter(direction="inbound").first(), what="the inbound message")
    assert inbound.body == "Привет 😀"


def test_an_inbound_concatenated_message_is_joined_whatever_the_order_of_its_parts(smsc, bound, live):
    parts = ["Running late, ", "be there at 10 €"]
    for sequence in (2, 1):
        udh = bytes((0x05, 0x00, 0x03, 0x2A, 2, sequence))
        smsc.post("/deliver", {"from": PHONE, "to": SEED["from"], "esm_class": 0x40, "data_coding": 0,
                               "hex": (udh + gsm7_encode(parts[sequence - 1])).hex()})

    inbound = wait_until(lambda: Message.objects.filter(direction="inbound").first(), what="the inbound message")
    assert inbound.body == "".join(parts)
    assert Message.objects.filter(direction="inbound").count() == 1


# --- The bind -----------------------------------------------------------------------------------
@pytest.mark.parametrize("system_id, password, status", [
    (SYSTEM_ID, "wrong", "ESME_RINVPASWD"),
    ("someone", PASSWORD, "ESME_RBINDFAIL"),
])
def test_a_bind_refused_is_failed_with_the_reason_and_retried(smsc, start_bind, system_id, password, status):
    carrier = make_carrier(smsc, password=password, system_id=system_id)

    start_bind(carrier, state="failed")

    bind = SmppBind.objects.get(carrier=carrier)
    assert status in bind.last_error and bind.pid
    wait_until(lambda: len(smsc.get("/binds")) >= 2, what="a second bind attempt")  # after the backoff
    with pytest.raises(CarrierTemporaryError) as refused:
        SmppClient(carrier).try_send_sms(OutboundSms("msg_1", SEED["from"], PHONE, "Hi", True, 1))
    assert not refused.value.maybe_sent and status in refused.value.message


def test_a_send_while_unbound_fails_at_once_and_routing_fails_over(smsc, account, live):
    carrier = Carrier.objects.get(name="smsc-test")  # never bound
    started = time.monotonic()
    with pytest.raises(CarrierTemporaryError) as unavailable:
        SmppClient(carrier).try_send_sms(OutboundSms("msg_1", SEED["from"], PHONE, "Hi", True, 1))
    assert time.monotonic() - started < 0.5
    assert (unavailable.value.code, unavailable.value.maybe_sent) == ("carrier_unavailable", False)
    assert not SmppSubmission.objects.exists()

    backup = Carrier.objects.create(name="backup", kind=Carrier.SANDBOX)
    RouteCarrier.objects.create(route=Route.objects.get(), carrier=backup, position=2)
    message = send(live)
    assert (message.status, message.carrier) == ("sent", "backup")
    assert list(message.attempts.values_list("carrier", "outcome")) == [
        ("smsc-test", "temporary_error"), ("backup", "accepted")]


def test_a_stale_heartbeat_counts_as_unbound(carrier):
    SmppBind.objects.create(carrier=carrier, state="bound", heartbeat_at=timezone.now() - timezone.timedelta(seconds=60))

    with pytest.raises(CarrierTemporaryError, match="not up"):
        SmppClient(carrier).try_send_sms(OutboundSms("msg_1", SEED["from"], PHONE, "Hi", True, 1))


def test_a_submission_the_bind_never_takes_is_withdrawn_unsent(smsc):
    carrier = make_carrier(smsc, submit_timeout=0.3)
    SmppBind.objects.create(carrier=carrier, state="bound", heartbeat_at=timezone.now())  # beating, not claiming

    with pytest.raises(CarrierTemporaryError) as timeout:
        SmppClient(carrier).try_send_sms(OutboundSms("msg_1", SEED["from"], PHONE, "Hi", True, 1))

    assert (timeout.value.code, timeout.value.maybe_sent) == ("carrier_unavailable", False)
    assert SmppSubmission.objects.get().status == SmppSubmission.CANCELED


def test_an_unanswered_submit_may_have_been_sent_so_it_is_not_retried_and_the_bind_reconnects(smsc, start_bind,
                                                                                             live):
    carrier = Carrier.objects.get(name="smsc-test")
    carrier.settings["response_timeout"] = 0.5
    carrier.save()
    start_bind(carrier)

    message = send(live, to=NO_RESPONSE)

    assert message.status == "sending"  # its report, or the staff, will settle it; never a second carrier
    attempt = message.attempts.get()
    assert (attempt.outcome, attempt.raw_code) == (SendAttempt.UNKNOWN, CONNECTION_LOST)
    wait_until(lambda: len(smsc.get("/binds")) == 2 and SmppBind.objects.filter(state="bound").exists(),
               what="the bind to come back")
    assert final(send(live)).status == "delivered"


def test_no_more_submits_are_in_flight_than_the_window(smsc, start_bind, live):
    carrier = Carrier.objects.get(name="smsc-test")
    carrier.settings.update(window=2, response_timeout=0.5)
    carrier.save()
    start_bind(carrier)

    message = send(live, to=NO_RESPONSE, body="x" * 153 * 5)  # five parts, none of them ever answered

    assert len(smsc.submits_to(NO_RESPONSE)) == 2
    assert message.status == "sending"


def test_a_dropped_connection_is_bound_again(smsc, bound, live):
    smsc.post("/drop")

    wait_until(lambda: len(smsc.get("/binds")) == 2, what="a new bind")
    wait_until(lambda: SmppBind.objects.filter(state="bound").exists(), what="bound again")
    assert final(send(live)).status == "delivered"


def test_the_link_is_kept_alive_with_enquire_link(smsc, start_bind):
    start_bind(make_carrier(smsc, enquire_link_interval=0.1))

    wait_until(lambda: smsc.get("/state")["enquire_links"] >= 3, what="three enquire_links")


def test_stopping_unbinds(smsc, carrier, start_bind):
    stop, thread = start_bind(carrier)

    stop.set()
    thread.join(5)

    assert smsc.get("/state")["bound"] == 0
    bind = SmppBind.objects.get(carrier=carrier)
    assert bind.state == "failed" and "Stopped" in bind.last_error


def test_the_supervisor_binds_every_enabled_smpp_carrier_and_lets_go_of_a_disabled_one(smsc, carrier):
    stop = threading.Event()
    thread = threading.Thread(target=BindSupervisor(CARRIER_INBOX, rescan_interval=0.1).run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_until(lambda: SmppBind.objects.filter(carrier=carrier, state="bound").exists(), what="bound")
        Carrier.objects.filter(pk=carrier.pk).update(enabled=False)
        wait_until(lambda: smsc.get("/state")["bound"] == 0, what="the disabled carrier unbound")
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_the_command_wants_carriers_it_knows(db):
    with pytest.raises(CommandError, match="--all"):
        call_command("smpp_bind")
    with pytest.raises(CommandError, match="No SMPP carrier named nowhere"):
        call_command("smpp_bind", "nowhere")
