"""`python manage.py bench_internals`: what each kept reach into a library's internals saves, measured in this
process. Such a reach stays only while a measurement shows its saving, and a test fails when an upgrade breaks
its assumption (tests/test_db.py, tests/api/test_serializers.py).

- psycopg's conversion cache (mittis.db.cache_statement_conversion): the accept statement's `%s` -> `$n`
  conversion done anew against a hit in the cache; a keyed POST /v1/messages with psycopg's own bounds.
- Serializer fields copied shallowly (StrictSerializer.get_fields): the copy against DRF's deep copy; a POST
  with DRF's.

The POSTs go through Django's test client to the configured PostgreSQL and Redis (their tasks to a queue of
their own, deleted after), the variants in alternating blocks so that the machine's drift falls on each alike:
CPU per POST is the median over blocks, its ratio the median of the rounds' ratios, with their range. It writes
rows: run it on a scratch database (`make bench`'s). Prints figures; asserts nothing.
"""

from decimal import Decimal
import gc
import json
import statistics
import time
import timeit
import uuid

from django.core.management.base import BaseCommand
from django.db import connection
from django.test import Client
from django.test.utils import override_settings
from psycopg import _queries
from rest_framework import serializers as drf

from billing.services import balance_top_up
from messaging.serializers import MessageCreateSerializer
from messaging.services import sender_create
from mittis.accounts.models import Account
from mittis.accounts.services import api_key_create
from mittis.api.serializers import StrictSerializer
from mittis.celery import app as celery_app, queues

SEED = {"from": "+18045550142", "to": "+18045550199", "body": "Your technician is 15 minutes out."}
WARM_UP = 100  # POSTs before measuring: the key's first use, prepared statements, caches


class Command(BaseCommand):
    help = "Measure, in-process, what each kept reach into a library's internals saves."

    def add_arguments(self, parser):
        parser.add_argument("--rounds", type=int, default=80)
        parser.add_argument("--block", type=int, default=20, help="POSTs per variant per round")

    def handle(self, *args, rounds, block, **options):
        # Queues of its own, which no worker consumes, for the tasks its sends publish.
        prefix = f"bench-internals-{uuid.uuid4().hex[:8]}-"
        with override_settings(ALLOWED_HOSTS=["testserver"], MITTIS_QUEUE_PREFIX=prefix):
            try:
                self._measure(rounds, block)
            finally:
                with celery_app.connection_for_write() as broker:
                    for queue in queues():
                        broker.default_channel.queue_delete(queue)

    def _measure(self, rounds, block):
        account = Account.objects.create(name="bench internals", rate_limit=10**9, rate_limit_window=1)
        sender_create(account=account, value=SEED["from"])
        balance_top_up(account_id=account.pk, livemode=False, amount=Decimal("1000000"))
        client = Client(HTTP_AUTHORIZATION=f"Bearer {api_key_create(account=account, livemode=False).secret}")
        posts = iter(range(10**9))

        def post():
            n = next(posts)
            to = "+1804%03d%04d" % (200 + n // 10000 % 700, n % 10000)  # a new recipient each time, as bench's
            response = client.post("/v1/messages", json.dumps({**SEED, "to": to}), content_type="application/json",
                                   HTTP_IDEMPOTENCY_KEY=f"{account.public_id}-{n}")
            assert response.status_code == 201, response.content

        bounds = (_queries.MAX_CACHED_STATEMENT_PARAMS, _queries.MAX_CACHED_STATEMENT_LENGTH)
        as_is = StrictSerializer.get_fields
        variants = {
            "as is": lambda: None,
            "psycopg's own cache bounds": lambda: _set_bounds(50, 4096),
            "DRF's deep copy of fields": lambda: setattr(StrictSerializer, "get_fields", drf.Serializer.get_fields),
        }

        def apply(variant):
            _set_bounds(*bounds)
            StrictSerializer.get_fields = as_is
            variants[variant]()

        try:
            for _ in range(WARM_UP):
                post()
            statements = []
            with connection.execute_wrapper(lambda execute, sql, *rest: statements.append(sql) or execute(sql, *rest)):
                post()
            gc.collect()
            gc.freeze()  # as the web server's processes are after warming up
            cpu = {variant: [] for variant in variants}
            for round_ in range(rounds):
                for variant in list(variants)[:: 1 if round_ % 2 else -1]:
                    apply(variant)
                    start = time.process_time()
                    for _ in range(block):
                        post()
                    cpu[variant].append((time.process_time() - start) / block * 1e6)
        finally:
            apply("as is")

        self.stdout.write(f"CPU per keyed POST /v1/messages ({rounds} rounds of {block} per variant):")
        for variant, figures in cpu.items():
            ratios = sorted(a / b for a, b in zip(figures, cpu["as is"]))
            self.stdout.write(f"  {variant:28s} {statistics.median(figures):6.0f} us   x{statistics.median(ratios):.3f} "
                              f"of as is (rounds {ratios[0]:.2f} to {ratios[-1]:.2f})")
        accept = max(statements, key=len).encode()
        anew = _best(lambda: _queries._query2pg_nocache(accept, "utf-8"), 300)
        _queries._query2pg(accept, "utf-8")
        hit = _best(lambda: _queries._query2pg(accept, "utf-8"), 3000)
        self.stdout.write(f"The accept statement ({accept.count(b'%s')} parameters, {len(accept):,} bytes) converted: "
                          f"{anew:.1f} us anew, {hit:.2f} us from psycopg's cache")
        serializer = MessageCreateSerializer()
        shallow = _best(lambda: StrictSerializer.get_fields(serializer), 2000)
        deep = _best(lambda: drf.Serializer.get_fields(serializer), 2000)
        self.stdout.write(f"MessageCreateSerializer's {len(serializer._declared_fields)} fields copied: "
                          f"{shallow:.1f} us shallow, {deep:.1f} us by DRF's deep copy")


def _set_bounds(params: int, length: int) -> None:
    _queries.MAX_CACHED_STATEMENT_PARAMS, _queries.MAX_CACHED_STATEMENT_LENGTH = params, length


def _best(call, number: int) -> float:
    """Microseconds a call, the best of 7 runs of `number`: the least disturbed by the rest of the machine."""
    return min(timeit.repeat(call, number=number, repeat=7)) / number * 1e6
