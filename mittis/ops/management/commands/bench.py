"""`make bench`: Mittis under load, on PostgreSQL and Redis, as production serves it; prints one table.

Starts the production web server (Procfile's web line: mittis/serve.py) with the reference endpoints
(R1-R4), drives it with wrk, then runs Celery workers for the end-to-end and no-op rates. Every API
figure is also given as a ratio to a reference measured in the same run, so it holds on a noisy machine.
Prints figures; asserts nothing.
"""

from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from decimal import Decimal
import fcntl
import json
import os
from pathlib import Path
import re
import shutil
import subprocess
import sys
import tempfile
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.db.models import Count
from django.utils import timezone
import urllib3

from billing.services import balance_top_up
from messaging.models import Message
from messaging.services import sender_create
from mittis.accounts.models import Account
from mittis.accounts.services import api_key_create
from mittis.celery import app as celery_app, queue_of, queues
from mittis.ops.localhost import free_port, stop_group, wait_for_http, web_command
from mittis.ops.bench_growth import (claim_rolled_back, database_sizes, growth_table, hours_or_minutes, median_ms,
                                     month_freed)
from mittis.ops.bench_receiver import BenchReceiver
from mittis.ops.preload import history_preload
from mittis.redis import redis_client
from webhooks.models import Delivery
from webhooks.services import endpoint_create

ROOT = Path(settings.BASE_DIR)
SEED = {"from": "+18045550142", "to": "+18045550199", "body": "Your technician is 15 minutes out."}
POST_LUA = """
wrk.method = "POST"
wrk.body = '%(body)s'
wrk.headers["Content-Type"] = "application/json"
%(extra)s
"""
WARM_UP_SECONDS = 2
NOOP_WARM_UP = 500
PIPELINE_ROUNDS = 3  # no-op and pipeline pairs on one worker; the median pair's figures are printed
SEND_ROUNDS = 7  # R4 and POST /v1/messages pairs; the median pair's figures are printed
RETENTION_TASK = "messaging.redact_past_retention"
# A night of retention runs this long at most, then its rate projects the month: at 5 M it was hours.
RETENTION_MINUTES = 3
IDEMPOTENT_LUA = """
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end
local counter = 0
request = function()
  counter = counter + 1
  wrk.headers["Idempotency-Key"] = "bench-" .. os.time() .. "-" .. id .. "-" .. counter
  -- A new recipient each time (of 7 million, +1 804 200-0000 to 899-9999), as notifications have: a number
  -- parsed once is remembered (mittis.numbers), and the same recipient every time would measure only that.
  local n = id * 1000003 + counter
  local to = string.format("+1804%03d%04d", 200 + math.floor(n / 10000) % 700, n % 10000)
  local body = string.gsub(wrk.body, "%+18045550199", to)
  return wrk.format(nil, nil, nil, body)
end
"""


class Command(BaseCommand):
    help = "Benchmark Mittis against reference endpoints in one run and print a table."

    def add_arguments(self, parser):
        parser.add_argument("--duration", type=int, default=10, help="Seconds per HTTP measurement.")
        parser.add_argument("--connections", type=int, default=64)
        parser.add_argument("--messages", type=int, default=1500, help="Messages for the end-to-end run.")
        parser.add_argument("--export-rows", type=int, default=200_000)
        parser.add_argument("--only", choices=["http", "pipeline", "export", "growth"],
                            help="Run one part of the table (growth: --preload's alone).")
        parser.add_argument("--preload", type=int, default=0, metavar="N",
                            help="Then write a history of N messages by SQL and measure again, beside the empty figures.")
        parser.add_argument("--retention-minutes", type=float, default=RETENTION_MINUTES,
                            help="With --preload: how long the night of retention runs before it is projected.")

    def handle(self, *args, duration, connections, messages, export_rows, only, preload, retention_minutes,
               **options):
        self.progress = options["verbosity"] >= 2  # -v 2: the pipeline's progress every half second
        if not shutil.which("wrk"):
            raise CommandError("wrk is needed (apt-get install wrk; `make bench` installs it).")
        self._lock = _one_at_a_time()
        self.rows, self.reference = [], {}
        receiver = BenchReceiver()
        self._purge()  # what an interrupted run may have left
        account, secret = self._setup(receiver.url)
        env = {**os.environ, "MITTIS_BENCH_REFERENCES": "true", "MITTIS_SANDBOX_REPORT_DELAY": "0",
               "MITTIS_WEBHOOK_ALLOWED_PRIVATE": "127.0.0.1", "MITTIS_WEBHOOK_ALLOW_HTTP": "true",
               "LOG_LEVEL": "WARNING"}
        port = free_port()
        web = subprocess.Popen(web_command("--bind", f"127.0.0.1:{port}"), cwd=ROOT, env=env, start_new_session=True)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for_http(f"{base}/healthz", error=CommandError)
            if only in (None, "http"):
                self._http_phase(base, secret, duration, connections)
                self._purge()
            if only in (None, "pipeline"):
                self._worker_phase(base, env, account, secret, messages, receiver)
            if only in (None, "export"):
                self._export_phase(export_rows)
            if preload and only in (None, "growth"):
                self._growth_phase(base, account, secret, duration, connections, preload, retention_minutes)
        finally:
            stop_group(web)
            receiver.stop()
        if self.rows:
            self._print()
        if preload and only in (None, "growth"):
            self._print_growth()

    # --- setup ----------------------------------------------------------------------------------
    def _setup(self, receiver_url):
        account = Account.objects.create(name="bench", rate_limit=10**9, rate_limit_window=1)
        sender = sender_create(account=account, value=SEED["from"])
        sender.mps = 10**6
        sender.save()
        balance_top_up(account_id=account.pk, livemode=True, amount=Decimal("1000000"))
        settings.MITTIS_WEBHOOK_ALLOWED_PRIVATE, settings.MITTIS_WEBHOOK_ALLOW_HTTP = ["127.0.0.1"], True
        endpoint_create(account=account, livemode=True, url=receiver_url, enabled_events=["*"])
        secret = api_key_create(account=account, livemode=True, name="bench").secret
        return account, secret

    # --- HTTP -----------------------------------------------------------------------------------
    def _http_phase(self, base, secret, duration, connections):
        body = json.dumps({"name": "bench", "count": 3, "note": "three fields"})
        reference = self.reference
        for name, path, script in [
            ("R1 bare Django JSON view", "/bench/r1", ""),
            ("R2 DRF POST, 3-field serializer", "/bench/r2", POST_LUA % {"body": body, "extra": ""}),
            ("R3 R2 + one INSERT", "/bench/r3", POST_LUA % {"body": body, "extra": ""}),
        ]:
            result = _wrk(base + path, script, duration, connections)
            reference[path[-2:]] = result["rps"]
            self.rows.append((name, f"{result['rps']:,.0f} req/s", f"{result['p50']} / {result['p99']}", ""))
        # R4 and the send in alternating rounds, each ratio taken from a pair measured seconds apart: this
        # machine's speed drifts by a third over a minute, which a single R4 then a single send measured as drift.
        auth = f'wrk.headers["Authorization"] = "Bearer {secret}"'
        rounds, pair_duration = [], max(3, duration // 2)  # more, shorter pairs: drift within a pair is smaller
        for _ in range(SEND_ROUNDS):
            r4 = _wrk(base + "/bench/r4", POST_LUA % {"body": body, "extra": ""}, pair_duration, connections)
            send = _wrk(base + "/v1/messages", POST_LUA % {"body": json.dumps(SEED), "extra": auth} + IDEMPOTENT_LUA,
                        pair_duration, connections)
            rounds.append((send["rps"] / r4["rps"], r4, send))
        ratio, r4, send = sorted(rounds, key=lambda round_: round_[0])[len(rounds) // 2]  # the median round
        self.rows.append(("R4 R3 + Celery publish on commit", f"{r4['rps']:,.0f} req/s", f"{r4['p50']} / {r4['p99']}",
                          ""))
        self.rows.append(("POST /v1/messages (auth, rate limit, idempotency, price, charge, event, publish)",
                          f"{send['rps']:,.0f} req/s", f"{send['p50']} / {send['p99']}",
                          f"{ratio:.2f} x R4 (rounds: {', '.join(f'{r:.2f}' for r, _, _ in rounds)}); "
                          f"p99 {_ms(send['p99']) / _ms(r4['p99']):.2f} x R4's"))
        # Little's law: `connections` requests always in flight, so the mean latency is connections / rate
        # whatever the server does; a p99 under a bound needs at least connections / bound requests per second.
        self.rows.append((f"  (mean latency at {connections} connections = {connections} / rate)", "",
                          f"{connections / send['rps'] * 1000:.0f}ms mean", ""))
        _vacuum()
        listing = _wrk(base + "/v1/messages?limit=100", f'wrk.headers["Authorization"] = "Bearer {secret}"',
                       duration, connections)
        self.rows.append(("GET /v1/messages?limit=100", f"{listing['rps']:,.0f} req/s",
                          f"{listing['p50']} / {listing['p99']}", f"{listing['rps'] / reference['r1']:.3f} x R1"))
        newest = Message.objects.order_by("-id").values_list("public_id", flat=True)[0]
        retrieve = _wrk(f"{base}/v1/messages/{newest}", f'wrk.headers["Authorization"] = "Bearer {secret}"',
                        duration, connections)
        self.rows.append(("GET /v1/messages/{id}", f"{retrieve['rps']:,.0f} req/s",
                          f"{retrieve['p50']} / {retrieve['p99']}", f"{retrieve['rps'] / reference['r1']:.3f} x R1"))

    # --- workers ----------------------------------------------------------------------------------
    def _purge(self):
        with celery_app.connection_for_write() as conn:
            for queue in queues():
                conn.default_channel.queue_purge(queue)
        Message.objects.filter(status__in=["queued", "sending"]).update(status="failed")
        client = redis_client()  # and the marks of dispatchers and flushes whose tasks were just purged
        for pattern in ("messaging:dispatch:*", "webhooks:flush:*"):
            for key in client.scan_iter(f"{settings.MITTIS_RATE_LIMIT_PREFIX}:{pattern}"):
                client.delete(key)
        Delivery.objects.filter(status="pending").update(status="failed")

    def _worker_phase(self, base, env, account, secret, count, receiver):
        """The no-op rate and the pipeline in alternating rounds on one warm worker, each ratio taken from a
        pair measured seconds apart (as R4 and the send are). In each round `count` messages are accepted
        through the API while the worker consumes nothing, then it resumes and the clock runs from the first
        message leaving `queued` to the last one `delivered` with all its webhooks received (so the figure is
        the pipeline's, not the API's)."""
        rounds = []
        with self._worker(env):
            self._noop_rate(NOOP_WARM_UP)  # the worker is up, its processes forked and their imports done
            for _ in range(PIPELINE_ROUNDS):
                noop_rate = self._noop_rate(count)
                _vacuum()
                _pause()
                self._accept(base, secret, count)
                rate, elapsed, hooks = self._pipeline(account, count, receiver, start=_resume)
                rounds.append((rate / noop_rate, noop_rate, rate, elapsed, hooks))
        ratio, noop_rate, rate, elapsed, hooks = sorted(rounds)[len(rounds) // 2]  # the median round
        self.rows.append(("Celery no-op task (2 worker processes)", f"{noop_rate:,.0f} tasks/s", "", ""))
        self.rows.append((f"End to end: {count} queued -> delivered, {hooks} webhooks received",
                          f"{rate:,.0f} msg/s", f"all done in {elapsed:.1f} s",
                          f"{ratio:.2f} x no-op (rounds: {', '.join(f'{r[0]:.2f}' for r in rounds)})"))

    def _accept(self, base, secret, count):
        pool = urllib3.PoolManager(maxsize=16)

        def post(n):
            return pool.request("POST", base + "/v1/messages", body=json.dumps(SEED).encode(), headers={
                "Authorization": f"Bearer {secret}", "Content-Type": "application/json"}).status

        with ThreadPoolExecutor(max_workers=16) as threads:
            refused = [status for status in threads.map(post, range(count)) if status != 201]
        if refused:
            raise CommandError(f"{len(refused)} of {count} messages were refused (statuses {sorted(set(refused))}).")

    def _pipeline(self, account, count, receiver, start):
        """(messages/s, seconds, webhooks delivered) for the `count` messages waiting in `queued`, which
        `start()` sets moving (a warm worker takes them all out of `queued` in a fraction of a second)."""
        start_messages = Message.objects.filter(account=account, status="delivered").count()
        queued = Message.objects.filter(account=account, status="queued")
        waiting = queued.count()
        received, delivered_hooks = receiver.received, receiver.delivered
        start()
        # The clock runs from the first message leaving `queued` to the receiver holding every webhook, the
        # last `message.delivered` among them. Only the start is read from the database: counting its
        # growing tables every few milliseconds cost PostgreSQL a core (parallel workers) and slowed
        # what it measured.
        started = deadline = None
        ticks = -1
        while True:
            if started is None and queued.count() < waiting:
                started, deadline = time.monotonic(), time.monotonic() + 600
            if started is not None and (
                    (receiver.delivered - delivered_hooks >= count and receiver.received - received >= 3 * count)
                    or time.monotonic() > deadline):
                elapsed = time.monotonic() - started
                break
            time.sleep(0.05 if started is None else 0.005)
            if self.progress and started is not None and (time.monotonic() - started) // 0.5 > ticks:
                ticks = (time.monotonic() - started) // 0.5
                self.stderr.write(f"{time.monotonic() - started:5.1f} s: {queued.count()} queued, "
                                  f"{receiver.received - received} webhooks received, "
                                  f"{receiver.delivered - delivered_hooks} message.delivered")
        if receiver.delivered - delivered_hooks < count or receiver.received - received < 3 * count:
            raise CommandError(
                f"The pipeline did not finish in 600 s: {receiver.received - received} of {3 * count} webhooks "
                f"received, {receiver.delivered - delivered_hooks} of {count} message.delivered.")
        delivered = Message.objects.filter(account=account, status="delivered").count() - start_messages
        # As the receiver counts them: a flush records a batch's successes after its last POST, just after.
        return delivered / elapsed, elapsed, receiver.received - received

    @contextmanager
    def _worker(self, env):
        """A Celery worker of BENCH_WORKER_CONCURRENCY (2) processes consuming every queue, as `make run`'s does:
        the pipeline's figure is one machine's, every concern sharing its cores."""
        worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "mittis", "worker", "-Q", ",".join(queues()),
                                   "--concurrency", os.environ.get("BENCH_WORKER_CONCURRENCY", "2"), "--loglevel",
                                   "WARNING", "--without-gossip", "--without-mingle"], cwd=ROOT, env=env)
        try:
            yield
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:  # a warm shutdown waits for running tasks: not forever
                worker.kill()
                worker.wait()

    def _noop_rate(self, count):
        """Celery's own rate for a task that does nothing, on a worker already up."""
        from mittis.api.tasks import noop

        started = time.monotonic()  # the worker consumes while these are published
        with celery_app.producer_or_acquire() as producer:
            for n in range(count):
                noop.apply_async((n,), producer=producer)
        with celery_app.connection_for_read() as conn:
            while _queue_length(conn.default_channel):
                time.sleep(0.02)
        return count / (time.monotonic() - started)

    # --- export -----------------------------------------------------------------------------------
    def _export_phase(self, rows):
        _vacuum()
        out = subprocess.run([sys.executable, "manage.py", "bench_export", "--messages", str(rows), "--format", "csv"],
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout
        match = re.search(r"([\d,]+) rows/s, worker peak memory (\d+) MB", out)
        rate = float(match.group(1).replace(",", ""))
        # rows/s is absolute, and this machine's speed halves on some days: R1 of the same run says how fast it was
        ratio = f"{rate / self.reference['r1']:.1f} x R1's req/s" if "r1" in self.reference else ""
        self.rows.append((f"Export of {rows:,} messages (CSV)", f"{match.group(1)} rows/s",
                          f"peak memory {match.group(2)} MB", ratio))

    # --- growth (--preload) ----------------------------------------------------------------------------
    def _growth_phase(self, base, account, secret, duration, connections, count, retention_minutes):
        """The same figures on the bench's own database, then after writing a history of `count` messages
        (mittis/ops/preload.py), then a night of retention over the month that falls due."""
        self._purge()
        _vacuum()
        empty = self._growth_figures(base, account, secret, duration, connections)
        empty_messages = Message.objects.count()
        self.stdout.write(f"Preloading {count:,} messages ({shutil.disk_usage('/').free / 2**30:.0f} GiB free)")
        started = time.monotonic()
        result = history_preload(account=account, messages=count, say=self.stdout.write)
        written = time.monotonic() - started
        _vacuum()
        self.preload_notes = [f"preload of {count:,} messages: {written / 60:.1f} min of SQL, "
                              f"then VACUUM ANALYZE: {(time.monotonic() - started - written) / 60:.1f} min "
                              f"(the empty column: the bench's own {empty_messages:,} messages)", *database_sizes()]
        grown = self._growth_figures(base, account, secret, duration, connections)
        self.growth = [(name, value, grown[name]) for name, value in empty.items()]
        during = {}

        def send_meanwhile():  # the API's figures while the night runs, against the grown ones before it
            r1 = _wrk(base + "/bench/r1", "", duration, connections)["rps"]
            during["send"] = self._send_rps(base, secret, duration, connections) / r1
            self._purge()

        self.growth.append(("Retention: a night over the month due", None, self._retention_night(
            result.due, retention_minutes, meanwhile=send_meanwhile)))
        before = grown["POST /v1/messages"][2]
        self.growth.append(("POST /v1/messages while retention runs", None, (
            during["send"], "x R1", f"{during['send'] / before:.2f} of its figure before the night")))
        self.growth.append(("History: the oldest month freed (its partitions dropped)", None, month_freed()))

    def _growth_figures(self, base, account, secret, duration, connections) -> dict:
        """name: (figure, unit, the figure relative to R1 of the same moment or None)."""
        auth = f'wrk.headers["Authorization"] = "Bearer {secret}"'
        r1 = _wrk(base + "/bench/r1", "", duration, connections)["rps"]
        figures = {"R1 bare Django JSON view": (r1, "req/s", None)}
        send = self._send_rps(base, secret, duration, connections)
        self._purge()  # what it accepted would otherwise be claimed and swept below
        _vacuum()
        figures["POST /v1/messages"] = (send, "req/s", send / r1)
        live = Message.objects.filter(account=account, livemode=True)  # the send's messages, at least
        old = live.order_by("id").values_list("public_id", flat=True)[0]
        recent = live.order_by("-id").values_list("public_id", flat=True)[0]
        # The status most of the account's messages have now, so that both columns read full pages: `queued` in the
        # bench's own database (what the send accepted), `delivered` in a grown one.
        majority = live.values("status").annotate(n=Count("id")).order_by("-n")[0]["status"]
        for name, path, unit in [
                ("GET /v1/messages?limit=100", "/v1/messages?limit=100", "req/s"),
                ("GET /v1/messages?status={the majority}&limit=100", f"/v1/messages?status={majority}&limit=100",
                 f"req/s ({majority})"),
                ("GET /v1/messages/{id}, the oldest", f"/v1/messages/{old}", "req/s"),
                ("GET /v1/messages/{id}, the newest", f"/v1/messages/{recent}", "req/s")]:
            rps = _wrk(base + path, auth, duration, connections)["rps"]
            figures[name] = (rps, unit, rps / r1)
        figures["Dispatcher's claim (nothing due)"] = (median_ms(claim_rolled_back), "ms", None)
        celery_app.loader.import_default_modules()  # every app's tasks, registered by name
        for entry, task in sorted((entry, spec["task"]) for entry, spec in settings.CELERY_BEAT_SCHEDULE.items()):
            if task != RETENTION_TASK:  # the night of retention is measured on its own, with work to do
                figures[f"Sweep {entry} (nothing to do)"] = (median_ms(celery_app.tasks[task].run), "ms", None)
        return figures

    def _send_rps(self, base, secret, duration, connections) -> float:
        auth = f'wrk.headers["Authorization"] = "Bearer {secret}"'
        return _wrk(base + "/v1/messages", POST_LUA % {"body": json.dumps(SEED), "extra": auth} + IDEMPOTENT_LUA,
                    duration, connections)["rps"]

    def _retention_night(self, due: int, minutes: float, meanwhile=None):
        """The nightly retention job (its task, in a process of its own) over the `due` messages, for at most
        `minutes`, with `meanwhile()` run once it is under way: (messages/s, "msg/s", the projected hours for them
        all)."""
        started_at = timezone.now()
        started = time.monotonic()
        job = subprocess.Popen([sys.executable, "manage.py", "shell", "--no-imports", "-c",
                                f"from mittis.celery import app; app.loader.import_default_modules(); "
                                f"app.tasks[{RETENTION_TASK!r}].run()"], cwd=ROOT,
                               start_new_session=True)
        if meanwhile is not None:
            time.sleep(5)  # the job has started and is redacting
            meanwhile()
        try:
            job.wait(timeout=max(0.0, minutes * 60 - (time.monotonic() - started)))
        except subprocess.TimeoutExpired:
            stop_group(job)
        elapsed = time.monotonic() - started
        redacted = Message.objects.filter(redacted_at__gte=started_at).count()
        rate = redacted / elapsed
        return rate, "msg/s", (f"{redacted:,} of {due:,} in {elapsed / 60:.1f} min; the month: "
                               + (hours_or_minutes(due / rate) if rate else "never"))

    def _print_growth(self):
        self.stdout.write("")
        for line in growth_table(self.growth):
            self.stdout.write(line)
        for note in self.preload_notes:
            self.stdout.write(note)

    def _print(self):
        widths = [max(len(str(row[i])) for row in self.rows) for i in range(4)]
        header = ("measurement", "throughput", "p50 / p99 latency", "ratio")
        widths = [max(w, len(h)) for w, h in zip(widths, header)]
        line = " | ".join(h.ljust(w) for h, w in zip(header, widths))
        self.stdout.write(line)
        self.stdout.write("-" * len(line))
        for row in self.rows:
            self.stdout.write(" | ".join(str(c).ljust(w) for c, w in zip(row, widths)))


def _one_at_a_time():
    """An exclusive lock held for the run: two benches on one machine share its database and Redis, purge
    each other's tasks and spoil each other's figures."""
    lock = open(Path(tempfile.gettempdir()) / "mittis-bench.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise CommandError("Another bench is running on this machine; wait for it to finish.")
    return lock


def _vacuum() -> None:
    """Between phases, what autovacuum does in production: dead rows reclaimed, statistics refreshed. (The
    machine's PostgreSQL may run without it, and every phase leaves thousands of updated rows behind.)"""
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE)")


def _wrk(url, script, duration, connections, warm_up=WARM_UP_SECONDS) -> dict:
    """wrk's figures for `duration` seconds of `connections` connections, after `warm_up` seconds unmeasured
    (each server thread's connection to PostgreSQL prepares its statements and plans on its first requests)."""
    if warm_up:
        _wrk(url, script, warm_up, connections, warm_up=0)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(script)
    out = subprocess.run(["wrk", "-t", "2", "-c", str(connections), "-d", f"{duration}s", "--latency", "-s", lua.name,
                          url], capture_output=True, text=True, check=True).stdout
    os.unlink(lua.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)  # the Latency Distribution lines
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise CommandError(f"{url}: {errors.group(1)} error responses under load:\n{out}")
    return {"rps": rps, "p50": p50, "p99": p99}


def _ms(latency: str) -> float:
    """wrk's latency (`812.00us`, `95.31ms`, `1.02s`) in milliseconds."""
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", latency).groups()
    return float(number) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60_000}[unit]


def _pause():
    """The worker stays up, warm, and consumes nothing until `_resume` (remote control): no queue, so that the
    events of the accepted messages wait for the pipeline's clock as their sends do."""
    # `limit`: the one worker's answer ends the wait, which otherwise lasts the whole `timeout`.
    for queue in queues():
        if not celery_app.control.cancel_consumer(queue, reply=True, limit=1, timeout=10):
            raise CommandError("The worker did not answer a request to pause.")


def _resume():
    """Every queue again, the sends' last: the clock starts when the first message leaves `queued`, and
    the other queues must be consumed by then, as they were before the pause."""
    sends = queue_of("sends")
    for queue in [*(queue for queue in queues() if queue != sends), sends]:
        if not celery_app.control.add_consumer(queue, reply=True, limit=1, timeout=10):
            raise CommandError("The worker did not answer a request to resume.")


def _queue_length(channel) -> int:
    """Tasks waiting on every queue."""
    waiting = 0
    for queue in queues():
        try:
            waiting += channel.queue_declare(queue=queue, passive=True).message_count
        except Exception:  # Redis drops an empty list: the queue is gone, so empty
            pass
    return waiting
