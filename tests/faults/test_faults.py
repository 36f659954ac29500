"""Faults survived, each on the real services: the broker gone while a message is accepted, a worker
killed in the middle of a carrier send, the database dropping every connection under traffic, a carrier
failing or not answering, a webhook receiver that hangs."""

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import json
import signal
import socket
import sys
import threading
import time

from django.db import connection
import pytest
from rest_framework.test import APIClient
import urllib3

from billing.models import LedgerEntry
from billing.services import balance_top_up
from messaging import tasks
from messaging.carriers import twilio
from messaging.models import Carrier, Message, Route, RouteCarrier, Sender
from messaging.services import message_send, messages_recover_interrupted, messages_requeue_stale
from mittis.celery import queues
from mittis.ops.localhost import web_command
from tests.conftest import SEED, broker_down, free_port
from tests.factories import api_key_for
from tests.faults.conftest import disconnect_others, process_env, running, wait_for_http, wait_until
from webhooks.models import Delivery, DeliveryAttempt
from webhooks.services import deliveries_sweep

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
ACCOUNT_SID = "AC" + "0" * 32


@pytest.fixture
def live_api(account):
    Sender.objects.filter(account=account).update(mps=1000)
    balance_top_up(account_id=account.pk, livemode=True, amount=Decimal("10"))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(account, livemode=True)}")
    return client


@pytest.fixture
def carrier_stand_in():
    """The outside world: a Twilio-like API answering `status` (201 with a sid), or never answering."""
    state = {"status": 201, "hang": False, "received": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state["received"] += 1
            if state["hang"]:
                time.sleep(60)
                return
            body = json.dumps({"sid": f"SM{state['received']:032x}", "status": "queued"}
                              if state["status"] < 300 else {"code": 20500, "message": "Internal error"}).encode()
            self.send_response(state["status"])
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


def live_route(base_url: str, *, backup: bool = True) -> None:
    primary = Carrier(name="primary", kind="twilio", tps=1000, settings={"account_sid": ACCOUNT_SID,
                                                                         "base_url": base_url})
    primary.credentials = {"auth_token": "token"}
    primary.save()
    route = Route.objects.create(livemode=True)
    RouteCarrier.objects.create(route=route, carrier=primary, position=1)
    if backup:
        RouteCarrier.objects.create(route=route, carrier=Carrier.objects.create(name="backup", kind="sandbox",
                                                                                tps=1000), position=2)


# --- A carrier fails -----------------------------------------------------------------------------
@pytest.mark.parametrize("fault", ["500", "503", "connect_timeout"])
def test_a_carrier_answering_5xx_or_not_connecting_in_time_is_passed_over_with_every_attempt_recorded(
        live_api, carrier_stand_in, monkeypatch, fault):
    monkeypatch.setattr(twilio, "CONNECT_TIMEOUT", 0.3)
    if fault == "connect_timeout":
        live_route("http://10.255.255.1:81")  # unroutable: the connection never completes
    else:
        carrier_stand_in["status"] = int(fault)
        live_route(carrier_stand_in["url"])

    created = live_api.post("/v1/messages", SEED, format="json").json()
    message_send(message_id=Message.objects.get(public_id=created["id"]).pk)
    message = live_api.get(f"/v1/messages/{created['id']}").json()

    assert message["status"] == "sent"
    assert [(a["carrier"], a["outcome"]) for a in message["attempts"]] == [("primary", "temporary_error"),
                                                                          ("backup", "accepted")]
    assert message["attempts"][0]["error_code"] == "carrier_unavailable"
    assert carrier_stand_in["received"] == (0 if fault == "connect_timeout" else 1)


# --- The broker is unreachable while a message is accepted ---------------------------------------
def test_a_message_accepted_while_the_broker_is_down_is_sent_with_its_webhooks_once_it_returns(
        api, send, receiver, endpoint, worker):
    endpoint_id, _ = endpoint
    with broker_down():
        created = send()

    assert created.status_code == 201  # the message, its charge and its event are safe in the database
    assert Message.objects.get(public_id=created.json()["id"]).status == "queued"
    # The broker is back: beat's sweeps find the queued message and the pending delivery.
    assert messages_requeue_stale(older_than=timedelta(0)) == [Message.objects.get().pk]
    deliveries_sweep(overdue_by=timedelta(0))

    requests = receiver.wait_for(3)
    events = [json.loads(r.body) for r in requests]
    assert sorted(e["type"] for e in events) == ["message.delivered", "message.queued", "message.sent"]
    assert {e["data"]["id"] for e in events} == {created.json()["id"]}
    time.sleep(0.5)
    assert len(receiver.requests) == 3  # each event once
    assert api.get(f"/v1/messages/{created.json()['id']}").json()["status"] == "delivered"


# --- A worker is killed in the middle of a carrier send ------------------------------------------
def test_a_worker_killed_mid_send_sends_at_most_once_and_the_message_ends_failed_and_retryable(
        live_api, carrier_stand_in):
    carrier_stand_in["hang"] = True  # the carrier takes the request and has not answered when the worker dies
    live_route(carrier_stand_in["url"], backup=True)
    worker_args = [sys.executable, "-m", "celery", "-A", "mittis", "worker", "--pool", "solo", "-Q",
                   ",".join(queues()), "--without-gossip", "--without-mingle",
                   "--loglevel", "WARNING"]

    with running(worker_args + ["-n", "doomed@%h"], process_env()) as doomed:
        created = live_api.post("/v1/messages", SEED, format="json").json()
        wait_until(lambda: carrier_stand_in["received"] == 1, what="the carrier receiving the message")
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=10)
    disconnect_others()  # its database session dies with it, as PostgreSQL notices soon enough
    message = Message.objects.get(public_id=created["id"])
    assert message.status == "sending"

    tasks.send_message.run(message.pk)  # the broker redelivers the unacknowledged task: the claim refuses it
    with running(worker_args + ["-n", "next@%h"], process_env()):
        time.sleep(3)  # a new worker and the backup carrier, with every chance to send it again
        recovered = messages_recover_interrupted(older_than=timedelta(0))  # beat, after SEND_INTERRUPTED_AFTER

    shown = live_api.get(f"/v1/messages/{created['id']}").json()
    assert recovered == [message.pk]
    assert carrier_stand_in["received"] == 1  # at most once, never to the backup
    assert (shown["status"], shown["error_code"], shown["retryable"]) == ("failed", "carrier_no_answer", True)
    assert [a["outcome"] for a in shown["attempts"]] == ["unknown"]
    assert messages_recover_interrupted(older_than=timedelta(0)) == []  # settled for good


def test_a_send_waiting_for_its_retry_or_report_is_not_taken_for_interrupted(live_api, carrier_stand_in,
                                                                          monkeypatch):
    monkeypatch.setattr(twilio, "READ_TIMEOUT", 0.3)
    carrier_stand_in["hang"] = True
    live_route(carrier_stand_in["url"], backup=False)
    created = live_api.post("/v1/messages", SEED, format="json").json()
    message_send(message_id=Message.objects.get(public_id=created["id"]).pk)  # no answer: maybe sent

    assert messages_recover_interrupted(older_than=timedelta(0)) == []
    assert Message.objects.get(public_id=created["id"]).status == "sending"  # its report settles it


# --- The database restarts under traffic --------------------------------------------------------
class TcpProxy:
    """Between Mittis and PostgreSQL: `cut()` drops every connection and refuses new ones, as a database
    restart does; `restore()` lets them through again."""

    def __init__(self, target: tuple[str, int]):
        self.target, self.open, self.sockets = target, True, []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.close()
                except OSError:
                    pass

    def cut(self):
        self.open = False
        with self.lock:
            for sock in self.sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.sockets = []

    def restore(self):
        self.open = True

    def close(self):
        self.cut()
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        except OSError:
            pass
        self.listener.close()


def test_the_database_going_away_under_traffic_is_a_clean_503_and_mittis_recovers_by_itself(
        live_api, account):
    db = connection.settings_dict
    proxy = TcpProxy((db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)))
    port = free_port()
    env = process_env(DATABASE_URL=f"postgres://{db['USER']}@127.0.0.1:{proxy.port}/{db['NAME']}",
                      WEB_CONCURRENCY="1", GUNICORN_THREADS="4")
    account.rate_limit = 100_000  # the database, not the rate limit, is under test
    account.save()
    balance_top_up(account_id=account.pk, livemode=True, amount=Decimal("1000"))  # nor the balance
    secret = api_key_for(account, livemode=True)
    http = urllib3.PoolManager(maxsize=8, retries=False)
    server = f"http://127.0.0.1:{port}"

    def post(key):
        response = http.request("POST", f"{server}/v1/messages", body=json.dumps(SEED).encode(), timeout=15,
                                headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json",
                                         "Idempotency-Key": key})
        return key, response.status, response.headers, response.data

    def retry(key):
        """As a client does: the same key again while the answer is 409 idempotency_key_in_use, after its
        Retry-After. The first request's transaction may still be ending; or, where the proxy lost the FIN
        of a closed connection (as a partition does), the database ends it after
        MITTIS_ABANDONED_REQUEST_SECONDS."""
        for _ in range(30):
            answer = post(key)
            if answer[1] != 409:
                return answer
            time.sleep(float(answer[2].get("Retry-After", "1")))
        return answer

    web = web_command("--bind", f"127.0.0.1:{port}")
    try:
        with running(web, env):
            wait_for_http(f"{server}/healthz")
            answers, stop = [], threading.Event()

            def traffic(worker_number):
                n = 0
                while not stop.is_set():
                    answers.append(post(f"w{worker_number}-{n}"))
                    n += 1

            with ThreadPoolExecutor(max_workers=4) as pool:
                for number in range(4):
                    pool.submit(traffic, number)
                time.sleep(1.5)
                proxy.cut()  # the database restarts: every connection drops, new ones are refused
                time.sleep(2.0)
                proxy.restore()
                time.sleep(2.5)
                stop.set()
            after = [post(f"after-{n}") for n in range(5)]
            failed = [(key, status) for key, status, _, _ in answers if status != 201]
            retried = [retry(key) for key, _ in failed]  # the client retries with the same keys
    finally:
        proxy.close()
        disconnect_others()

    statuses = [status for _, status, _, _ in answers]
    assert set(statuses) <= {201, 503}, statuses
    assert 503 in statuses and statuses.count(201) > 10
    for _, status, headers, body in answers:
        if status == 503:
            error = json.loads(body)["error"]
            assert (error["type"], error["code"]) == ("api_error", "service_unavailable")
            assert headers["Retry-After"] == "1" and headers["Request-Id"] == error["request_id"]
    assert [status for _, status, _, _ in after] == [201] * 5  # recovered, without a restart
    assert all(status == 201 for _, status, _, _ in retried), [(k, s, b[:200]) for k, s, _, b in retried if s != 201]
    keys = {key for key, _, _, _ in answers} | {key for key, _, _, _ in after}
    messages = Message.objects.filter(account=account, livemode=True)
    assert messages.count() == len(keys)  # every request once: none lost, none doubled
    assert LedgerEntry.objects.filter(account=account, type="charge").count() == len(keys)


# --- A webhook receiver hangs --------------------------------------------------------------------
def test_a_hanging_receiver_blocks_a_worker_no_longer_than_the_timeout_and_other_endpoints_get_their_events(
        api, send, receiver, endpoint, worker, settings):
    settings.MITTIS_WEBHOOK_TIMEOUT = 1.0
    hanging = socket.create_server(("127.0.0.1", 0))  # accepts connections (backlog) and never answers
    try:
        stuck = api.post("/v1/webhook_endpoints", {"url": f"http://127.0.0.1:{hanging.getsockname()[1]}/hooks"},
                         format="json").json()
        created = [send().json()["id"] for _ in range(2)]

        requests = receiver.wait_for(6, timeout=20)
        timed_out = wait_until(lambda: list(DeliveryAttempt.objects.filter(endpoint__public_id=stuck["id"])),
                               what="an attempt to the hanging endpoint")
    finally:
        hanging.close()

    assert {json.loads(r.body)["data"]["id"] for r in requests} == set(created)
    assert all(not attempt.succeeded and "Timed out" in attempt.error for attempt in timed_out)
    assert all(attempt.latency_ms < 2500 for attempt in timed_out)  # the worker was held ~1 s, not longer
    assert Delivery.objects.filter(endpoint__public_id=stuck["id"], status="succeeded").count() == 0


def test_beat_settles_interrupted_sends_every_minute_after_the_send_tasks_hard_limit(settings):
    entry = next(e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == "messaging.recover_interrupted_sends")

    assert entry["schedule"] <= 60
    assert tasks.SEND_INTERRUPTED_AFTER.total_seconds() > settings.CELERY_TASK_TIME_LIMIT  # a live send is never taken
