"""Production web serving: `gunicorn -c mittis/gunicorn_conf.py mittis.wsgi`.

gthread workers: one process per core (WEB_CONCURRENCY, default the core count) so Python's GIL never
caps a machine, and a few threads each (GUNICORN_THREADS, default 4) so a request waiting on PostgreSQL
or Redis does not idle its core. Measured with `make bench` on 2 cores: 2 x 4 served POST /v1/messages
best; more threads only added latency. Database connections persist (CONN_MAX_AGE), one per thread.
"""

import multiprocessing
import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
keepalive = 5
backlog = 2048
# Recycle workers now and then, staggered, so a slow leak never grows unbounded: every few minutes at full
# load, not every 40 s (20,000 was), since a new worker starts cold (its connections, prepared statements and
# caches) and serves its first seconds at half speed.
max_requests = 200000
max_requests_jitter = 20000
preload_app = True
accesslog = os.environ.get("GUNICORN_ACCESS_LOG")  # off unless asked: a line per request costs throughput
