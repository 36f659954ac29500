"""Scale-out in the small: two web processes and two Celery workers on the same PostgreSQL and Redis.
Every message is sent twice, with one idempotency key, to both web servers at once; whatever the
interleaving, each is accepted, charged, sent and delivered exactly once."""

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
import json
import os
from pathlib import Path
import subprocess
import sys
import time

from django.conf import settings
from django.db import connection
from django.db.models import Count, Sum
import pytest
import urllib3

from billing.models import Balance, LedgerEntry
from billing.services import balance_top_up
from messaging.models import Message, SendAttempt
from mittis.celery import queues
from mittis.ops.localhost import web_command
from tests.conftest import free_port
from tests.factories import AccountFactory, SenderFactory, api_key_for
from webhooks.models import Event

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[1]
MESSAGES = 40



@pytest.fixture
def cluster():
    db = connection.settings_dict
    env = {**os.environ, "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
           "MITTIS_QUEUE_PREFIX": settings.MITTIS_QUEUE_PREFIX, "MITTIS_SANDBOX_REPORT_DELAY": "0.1",
           "MITTIS_RATE_LIMIT_PREFIX": settings.MITTIS_RATE_LIMIT_PREFIX, "LOG_LEVEL": "WARNING"}
    ports = [free_port(), free_port()]
    processes = [subprocess.Popen(web_command("--bind", f"127.0.0.1:{port}"), cwd=ROOT, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for port in ports]
    processes += [subprocess.Popen([sys.executable, "-m", "celery", "-A", "mittis", "worker", "-Q", ",".join(queues()), "-c", "1",
                                    "-n", f"scale{n}@%h", "--without-gossip", "--without-mingle", "--loglevel",
                                    "WARNING"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL) for n in range(2)]
    http = urllib3.PoolManager(maxsize=32, retries=False)
    try:
        deadline = time.monotonic() + 30
        for port in ports:
            while True:
                try:
                    http.request("GET", f"http://127.0.0.1:{port}/healthz", timeout=1)
                    break
                except urllib3.exceptions.HTTPError:
                    assert time.monotonic() < deadline, "the web server did not start"
                    time.sleep(0.2)
        yield [f"http://127.0.0.1:{port}" for port in ports], http
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


def test_two_web_processes_and_two_workers_send_nothing_twice(cluster):
    servers, http = cluster
    account = AccountFactory(rate_limit=10_000)
    SenderFactory(account=account, value="+18045550142", mps=1000)  # a long code's 1/s would pace this test
    balance_top_up(account_id=account.pk, livemode=True, amount=Decimal("10"))
    secret = api_key_for(account, livemode=True)

    def post(n):
        order = n // 2  # requests 2k and 2k+1 are the same request, with the same key
        body = json.dumps({"from": "+18045550142", "to": f"+1804555{order:04d}", "body": f"Order {order} is on its way"})
        return http.request("POST", f"{servers[n % 2]}/v1/messages", body=body.encode(), timeout=30, headers={
            "Authorization": f"Bearer {secret}", "Content-Type": "application/json",
            "Idempotency-Key": f"order-{order}"}).status

    with ThreadPoolExecutor(max_workers=16) as pool:  # each key twice, once to each server, at once
        statuses = list(pool.map(post, [n for pair in range(MESSAGES) for n in (2 * pair, 2 * pair + 1)]))
    assert set(statuses) <= {201, 409}

    deadline = time.monotonic() + 60
    while Message.objects.filter(account=account, status="delivered").count() < MESSAGES:
        assert time.monotonic() < deadline, Message.objects.filter(account=account).values("status").annotate(
            n=Count("id"))
        time.sleep(0.2)

    messages = Message.objects.filter(account=account)
    assert messages.count() == MESSAGES
    accepted = SendAttempt.objects.filter(message__account=account, outcome="accepted")
    assert accepted.count() == MESSAGES and accepted.values("message").distinct().count() == MESSAGES
    assert LedgerEntry.objects.filter(account=account, type="charge").count() == MESSAGES
    events = Event.objects.filter(account=account).values("type").annotate(n=Count("id"))
    assert {e["type"]: e["n"] for e in events} == {"message.queued": MESSAGES, "message.sent": MESSAGES,
                                                  "message.delivered": MESSAGES}
    ledger = LedgerEntry.objects.filter(account=account, livemode=True).aggregate(s=Sum("amount"))["s"]
    assert ledger == Balance.objects.get(account=account, livemode=True).amount
