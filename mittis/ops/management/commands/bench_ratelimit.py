"""Measure what the rate limiter adds to a request: `manage.py bench_ratelimit [--requests N]`.

Times `ratelimit.hit` on the configured counter (Redis when MITTIS_RATE_LIMIT_REDIS_URL is set, else
the cache) and prints the figures; it asserts nothing. Counters use a throwaway prefix.
"""

import statistics
import time
import uuid

from django.conf import settings
from django.core.management.base import BaseCommand

from mittis.api import ratelimit


class Command(BaseCommand):
    help = "Print the latency of one rate-limit decision (p50, p99, max) on the configured counter."

    def add_arguments(self, parser):
        parser.add_argument("--requests", type=int, default=20000)

    def handle(self, *args, requests, **options):
        settings.MITTIS_RATE_LIMIT_PREFIX = f"mittis-bench:{uuid.uuid4().hex[:8]}"
        backend = f"redis ({settings.MITTIS_RATE_LIMIT_REDIS_URL})" if settings.MITTIS_RATE_LIMIT_REDIS_URL \
            else f"cache ({settings.CACHES['default']['BACKEND']})"
        policy = ratelimit.Policy(limit=10**9, window=60)
        for n in range(200):  # connect and warm up
            ratelimit.hit(f"key:warm{n}", policy)
        timings = []
        for n in range(requests):
            started = time.perf_counter()
            ratelimit.hit(f"key:{n % 50}", policy)
            timings.append((time.perf_counter() - started) * 1e6)
        timings.sort()
        self.stdout.write(
            f"rate limiter on {backend}: {requests} decisions, "
            f"p50 {statistics.median(timings):.0f} µs, p99 {timings[int(len(timings) * 0.99)]:.0f} µs, "
            f"max {timings[-1]:.0f} µs, {requests / (sum(timings) / 1e6):.0f} decisions/s on one connection")
