"""Production web serving: `gunicorn -c mittis/gunicorn_conf.py mittis.wsgi`.

gthread workers: one process per core (WEB_CONCURRENCY, default the core count) so Python's GIL never
caps a machine, and a few threads each (GUNICORN_THREADS, default 4) so a request waiting on PostgreSQL
or Redis does not idle its core. Measured with `make bench` on 2 cores: 2 x 4 served POST /v1/messages
best; more threads only added latency. Measured again with connections spread evenly (reuse_port, below):
2 x 4 leaves the machine 8-22% idle under POST; 3 x 4 and 4 x 4 fill it (2-4% idle) but spend that and more
on switching (3.5-3.6 -> 4.0-4.4 ms of CPU per request), and 2 x 8 served no more requests per second.
Database connections persist (CONN_MAX_AGE), one per thread.
"""

import gc
import multiprocessing
import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
keepalive = 5
backlog = 2048
# A listening socket per worker (SO_REUSEPORT), so the kernel spreads connections over the workers by hash.
# With the one socket they share, whichever worker woke first took them: a load balancer's (or wrk's) 64
# kept-alive connections were seen split 61/3, one worker's threads queueing nearly all of them on one core
# while the other idled. A recycled worker's not-yet-accepted connections are reset when its socket closes,
# unless the kernel migrates them (sysctl net.ipv4.tcp_migrate_req=1, Linux 5.14+). Off for a unix socket or
# sockets handed over by systemd or a re-exec (on_starting).
reuse_port = True
# Recycle workers now and then, staggered, so a slow leak never grows unbounded: every few minutes at full
# load, not every 40 s (20,000 was), since a new worker starts cold (its connections, prepared statements and
# caches) and serves its first seconds at half speed.
max_requests = 200000
max_requests_jitter = 20000
preload_app = True
accesslog = os.environ.get("GUNICORN_ACCESS_LOG")  # off unless asked: a line per request costs throughput


def on_starting(server):
    """reuse_port only where it spreads connections: TCP addresses that each worker binds itself. Each worker
    would unlink a unix socket's path and bind its own there, leaving the others' unreachable; and sockets
    inherited from systemd or a re-exec (USR2) would be left unused."""
    tcp_only = all(isinstance(address, tuple) for address in server.cfg.address)
    inherited = "LISTEN_FDS" in os.environ or "GUNICORN_FD" in os.environ
    if server.cfg.reuse_port and (not tcp_only or inherited):
        server.cfg.set("reuse_port", False)


def when_ready(server):
    """The app is loaded (preload_app): warm it, then freeze its objects before the first fork.

    The loaded Django project is some 100,000 objects that live as long as the process. Left to the
    collector, each full collection in a worker walks them all, holding the GIL for ~60 ms while every
    request in flight in that worker waits (a few times a minute at full load). Frozen, a full collection
    walks only what the worker made itself, and the collector never writes to the pages the workers share.
    """
    from mittis.wsgi import warm_up

    warm_up()
    gc.collect()
    gc.freeze()
