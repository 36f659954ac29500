"""`make load`: 50,000 messages through the API under faults; then every promise is checked and a table printed.

Starts what production runs (the web server of Procfile, two Celery workers, beat) on
PostgreSQL and Redis, and a webhook receiver. Clients POST messages with Idempotency-Keys; some requests are
repeated (the same key again), some time out on the client and are retried, one in a hundred webhooks is
refused on its first attempt. On the way a Celery worker is killed with SIGKILL (and replaced) and a web
server process is killed (the server replaces it). Afterwards:

- every accepted message is in a final state, and there is no message that was not accepted;
- the ledger holds exactly one charge per accepted message, and the balance is the ledger's sum;
- every event reached the receiver as a success, exactly once per webhook-id (a repeat is only ever a
  retry of the same webhook-id).

Prints the table; exits non-zero when a promise is broken.
"""

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
import hashlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import json
import os
from pathlib import Path
import random
import signal
import subprocess
import sys
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Sum
import urllib3

from billing.models import Balance, LedgerEntry
from billing.services import balance_top_up
from messaging import statuses
from messaging.carriers import sandbox
from messaging.models import Message
from messaging.services import sender_create
from mittis.accounts.models import Account
from mittis.accounts.services import api_key_create
from mittis.celery import queues
from mittis.ops.localhost import child_pids, free_port, stop_group, wait_for_http, web_command
from webhooks.models import Delivery, Event
from webhooks.services import endpoint_create

ROOT = Path(settings.BASE_DIR)
SENDER = "+18045550142"
# Recipients and what becomes of them: most delivered, some refused at send, some undelivered.
RECIPIENTS = [("+18045550199", 0.9), (sandbox.FAILS, 0.05), (sandbox.UNDELIVERED, 0.05)]
REFUSE_FIRST_ATTEMPT = 0.01  # of webhooks, answered 500 the first time: their retry must arrive


class Command(BaseCommand):
    help = "Send many messages through the API under faults; check nothing was lost or doubled; print a table."

    def add_arguments(self, parser):
        parser.add_argument("--messages", type=int, default=50_000)
        parser.add_argument("--clients", type=int, default=24, help="Concurrent API clients.")
        parser.add_argument("--no-faults", action="store_true", help="Skip the worker kills.")
        # Five minutes: the broker gives a killed worker's tasks back after its visibility timeout (5 min), and
        # the sweeps find what a lost task left within minutes; a run that needs longer has lost something.
        parser.add_argument("--settle-timeout", type=int, default=300,
                            help="Seconds to wait after the traffic for every message and event to settle.")

    def handle(self, *args, messages, clients, no_faults, settle_timeout, **options):
        receiver = _Receiver()
        account, secret = self._setup(receiver.url)
        env = {**os.environ, "MITTIS_WEBHOOK_ALLOWED_PRIVATE": "127.0.0.1", "MITTIS_WEBHOOK_ALLOW_HTTP": "true",
               "MITTIS_SANDBOX_REPORT_DELAY": "0", "LOG_LEVEL": "WARNING", "WEB_CONCURRENCY": "2"}
        port = free_port()
        self.processes = {}
        self._start("web", web_command("--bind", f"127.0.0.1:{port}"), env)
        for name in ("worker1", "worker2"):
            self._start_worker(name, env)
        self._start("beat", [sys.executable, "-m", "celery", "-A", "mittis", "beat", "--loglevel", "WARNING"], env)
        client = _Clients(f"http://127.0.0.1:{port}", secret)
        try:
            wait_for_http(f"http://127.0.0.1:{port}/healthz", error=CommandError)
            started = time.monotonic()
            faults = [] if no_faults else [
                (0.25, "SIGKILL to a Celery worker (replaced)", lambda: self._kill_worker("worker1", env)),
                (0.5, "SIGKILL to a web server process (the server replaces it)", self._kill_web_worker),
            ]
            client.run(messages, clients, faults, self.stdout)
            traffic = time.monotonic() - started
            self.stdout.write(f"traffic done in {traffic:.0f} s; waiting for every message and event to settle")
            settled = self._settle(account, client, receiver, settle_timeout)
            elapsed = time.monotonic() - started
        finally:
            for process in self.processes.values():
                stop_group(process)
            receiver.stop()
        broken = self._report(account, client, receiver, traffic, elapsed, settled, faults)
        if broken:
            raise CommandError("Broken: " + "; ".join(broken))

    # --- processes --------------------------------------------------------------------------------
    def _start(self, name, args, env):
        self.processes[name] = subprocess.Popen(args, cwd=ROOT, env=env, start_new_session=True)

    def _start_worker(self, name, env):
        self._start(name, [sys.executable, "-m", "celery", "-A", "mittis", "worker", "--pool", "solo", "-Q",
                           ",".join(queues()), "-n", f"{name}-{time.monotonic_ns()}@%h", "--without-gossip",
                           "--without-mingle", "--loglevel", "WARNING"], env)

    def _kill_worker(self, name, env):
        os.killpg(self.processes[name].pid, signal.SIGKILL)
        self.processes[name].wait()
        self._start_worker(name, env)

    def _kill_web_worker(self):
        if children := child_pids(self.processes["web"].pid):
            os.kill(children[0], signal.SIGKILL)

    # --- setup and settling ---------------------------------------------------------------------------
    def _setup(self, receiver_url):
        account = Account.objects.create(name=f"load {time.strftime('%H:%M:%S')}", rate_limit=10**6,
                                         rate_limit_window=1)
        sender = sender_create(account=account, value=SENDER)
        sender.mps = 10**6
        sender.save()
        balance_top_up(account_id=account.pk, livemode=True, amount=Decimal("100000"))
        settings.MITTIS_WEBHOOK_ALLOWED_PRIVATE, settings.MITTIS_WEBHOOK_ALLOW_HTTP = ["127.0.0.1"], True
        endpoint_create(account=account, livemode=True, url=receiver_url, enabled_events=["*"])
        return account, api_key_create(account=account, livemode=True, name="load").secret

    def _settle(self, account, client, receiver, timeout) -> bool:
        deadline = time.monotonic() + timeout
        open_statuses = [s for s in statuses.ALL if s not in statuses.FINAL]
        while time.monotonic() < deadline:
            still_open = Message.objects.filter(account=account, status__in=open_statuses).count()
            pending = Delivery.objects.filter(event__account=account).exclude(status=Delivery.SUCCEEDED).count()
            if not still_open and not pending:
                return True
            time.sleep(2)
        return False

    # --- the verdict ----------------------------------------------------------------------------------
    def _report(self, account, client, receiver, traffic, elapsed, settled, faults) -> list[str]:
        broken = list(client.broken[:5])
        stored = dict(Message.objects.filter(account=account).values_list("public_id", "status"))
        accepted = set(client.accepted.values())
        final = Counter(stored.values())
        not_final = sum(n for status, n in final.items() if status not in statuses.FINAL)
        if set(stored) != accepted:
            broken.append(f"{len(set(stored) - accepted)} stored but never accepted, "
                          f"{len(accepted - set(stored))} accepted but not stored")
        if not_final:
            broken.append(f"{not_final} messages not final")
        charges = LedgerEntry.objects.filter(account=account, livemode=True, type="charge")
        charged = Counter(charges.values_list("message_id", flat=True))
        if set(charged) != accepted or any(n != 1 for n in charged.values()):
            broken.append("charges are not exactly one per accepted message")
        refunds = LedgerEntry.objects.filter(account=account, livemode=True, type="refund").count()
        ledger_sum = LedgerEntry.objects.filter(account=account, livemode=True).aggregate(s=Sum("amount"))["s"]
        balance = Balance.objects.get(account=account, livemode=True).amount
        if ledger_sum != balance:
            broken.append(f"balance {balance} is not the ledger's sum {ledger_sum}")
        events = set(Event.objects.filter(account=account).values_list("public_id", flat=True))
        successes = receiver.successes()
        missing = events - set(successes)
        strangers = set(receiver.seen) - events
        repeated_successes = sum(1 for n in successes.values() if n > 1)
        if missing:
            broken.append(f"{len(missing)} events never reached the receiver as a success")
        if strangers:
            broken.append(f"{len(strangers)} webhook-ids the receiver got that are not events")
        retries = sum(len(answers) - 1 for answers in receiver.seen.values())
        per_type = Counter(Event.objects.filter(account=account).values_list("type", flat=True))
        rows = [
            ("messages requested", f"{client.requested:,}"),
            ("accepted (201, one message each)", f"{len(accepted):,}"),
            ("requests sent in all", f"{client.requests:,}"),
            ("  idempotent repeats answered with the same message", f"{client.replays:,}"),
            ("  client timeouts retried with the same key", f"{client.timeouts:,}"),
            ("  409 idempotency_key_in_use (then retried)", f"{client.statuses[409]:,}"),
            ("  503 / connection errors (then retried)", f"{client.statuses[503]:,} / {client.connection_errors:,}"),
            ("  other answers", ", ".join(f"{s}: {n}" for s, n in sorted(client.statuses.items())
                                         if s not in (201, 409, 503)) or "none"),
            ("faults", "; ".join(name for _, name, _ in faults) or "none"),
            ("final states", ", ".join(f"{s} {n:,}" for s, n in final.most_common())),
            ("messages not final", f"{not_final:,}"),
            ("charges (one per accepted message)", f"{sum(charged.values()):,}"),
            ("refunds (failed before a carrier took it)", f"{refunds:,}"),
            ("balance = sum of the ledger", f"{balance} = {ledger_sum}"),
            ("events", ", ".join(f"{t} {n:,}" for t, n in sorted(per_type.items()))),
            ("webhooks received / successes", f"{sum(len(a) for a in receiver.seen.values()):,} / "
                                             f"{sum(successes.values()):,}"),
            ("  retries of a webhook-id (after a refusal or a lost answer)", f"{retries:,}"),
            ("  events succeeded twice (same webhook-id, answer lost)", f"{repeated_successes:,}"),
            ("  events never received as a success", f"{len(missing):,}"),
            ("accept rate (traffic phase)", f"{client.requested / traffic:,.0f} msg/s in {traffic:,.0f} s"),
            ("everything settled", f"{'yes' if settled else 'NO'}, {elapsed:,.0f} s after the first request"),
            ("verdict", "every promise kept" if not broken else "BROKEN: " + "; ".join(broken)),
        ]
        width = max(len(label) for label, _ in rows)
        self.stdout.write("")
        for label, value in rows:
            self.stdout.write(f"{label.ljust(width)} | {value}")
        return broken


class _Clients:
    """API clients: each message once by key, some repeated, some timed out on purpose and retried."""

    def __init__(self, base, secret):
        self.base, self.secret = base, secret
        self.http = urllib3.PoolManager(maxsize=64, retries=False)
        self.accepted: dict[str, str] = {}  # key -> message id
        self.statuses: Counter = Counter()
        self.requests = self.replays = self.timeouts = self.connection_errors = self.requested = 0
        self.lock = threading.Lock()
        self.broken: list[str] = []

    def run(self, count, clients, faults, out):
        self.requested = count
        done = [0]
        faults = sorted(faults, key=lambda fault: fault[0])

        def one(n):
            try:
                self._send(n)
            except Exception as failure:  # a client bug must not end the run unreported
                with self.lock:
                    self.broken.append(f"client {n}: {failure!r}")
            with self.lock:
                done[0] += 1
                while faults and done[0] >= faults[0][0] * count:
                    _, name, act = faults.pop(0)
                    out.write(f"fault at {done[0]:,} messages: {name}")
                    threading.Thread(target=act, daemon=True).start()
                if done[0] % 5000 == 0:
                    out.write(f"{done[0]:,} messages accepted")

        with ThreadPoolExecutor(max_workers=clients) as pool:
            list(pool.map(one, range(count)))

    def _send(self, n):
        rng = random.Random(n)
        to = rng.choices([r for r, _ in RECIPIENTS], weights=[w for _, w in RECIPIENTS])[0]
        key = f"load-{n}-{rng.getrandbits(64):x}"
        body = json.dumps({"from": SENDER, "to": to, "body": f"Load message {n}"}).encode()
        give_up_early = rng.random() < 0.02  # a client whose read times out at once: the server goes on
        for attempt in range(60):
            timeout = urllib3.Timeout(connect=5, read=0.001 if give_up_early and attempt == 0 else 30)
            try:
                response = self._post(body, key, timeout)
            except urllib3.exceptions.ReadTimeoutError:
                with self.lock:
                    self.timeouts += 1
                continue
            except urllib3.exceptions.HTTPError:
                with self.lock:
                    self.connection_errors += 1
                time.sleep(0.2)
                continue
            with self.lock:
                self.statuses[response.status] += 1
            if response.status == 201:
                message_id = json.loads(response.data)["id"]
                with self.lock:
                    self.accepted[key] = message_id
                if rng.random() < 0.05:  # the client repeats itself: the same message comes back
                    self._repeat(body, key, message_id)
                return
            if response.status in (409, 429, 503):
                time.sleep(float(response.headers.get("Retry-After", "0.2")) / 5)
                continue
            return  # refused for good (it would be counted under "other answers")

    def _repeat(self, body, key, message_id):
        for _ in range(20):
            try:
                again = self._post(body, key, urllib3.Timeout(connect=5, read=30))
            except urllib3.exceptions.HTTPError:
                with self.lock:
                    self.connection_errors += 1
                time.sleep(0.2)
                continue
            with self.lock:
                self.statuses[again.status] += 1
            if again.status == 201:
                with self.lock:
                    if json.loads(again.data)["id"] == message_id:
                        self.replays += 1
                    else:
                        self.broken.append(f"{key} answered with a second message")
                return
            time.sleep(0.2)

    def _post(self, body, key, timeout):
        with self.lock:
            self.requests += 1
        return self.http.request("POST", f"{self.base}/v1/messages", body=body, timeout=timeout, headers={
            "Authorization": f"Bearer {self.secret}", "Content-Type": "application/json", "Idempotency-Key": key})


class _Receiver:
    """The customer's endpoint: records every webhook-id and answer; refuses 1% on their first attempt."""

    def __init__(self):
        self.seen: dict[str, list[int]] = {}
        lock = threading.Lock()
        seen = self.seen

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                webhook_id = self.headers.get("webhook-id", "")
                digest = int(hashlib.sha256(webhook_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
                with lock:
                    answers = seen.setdefault(webhook_id, [])
                    status = 500 if not answers and digest < REFUSE_FIRST_ATTEMPT else 204
                    answers.append(status)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def successes(self) -> dict[str, int]:
        return {webhook_id: sum(1 for s in answers if s < 300) for webhook_id, answers in self.seen.items()
                if any(s < 300 for s in answers)}

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
