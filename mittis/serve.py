"""Web serving, in production and for `make run`: `python -m mittis.serve [--bind HOST:PORT | --uds PATH]`.

granian (HTTP/1.1 in Rust) serves mittis.asgi, which runs Django's WSGI handler on a few threads per process
once a request has arrived whole. Slow or idle clients cost a socket, not a thread: granian drops a
connection whose request line and headers take longer than HEADER_TIMEOUT (an idle kept-alive one too),
and mittis.asgi answers 408 to a body not received within its BODY_TIMEOUT (WEB_BODY_TIMEOUT, 10 s).

What gunicorn's gthread configuration gave production, kept:
- a process per core (WEB_CONCURRENCY, default the core count) so the GIL never caps a machine, each with
  WEB_THREADS (4) threads running Django: on 2 cores 2 x 4 served POST /v1/messages best under gunicorn
  (3 x 4 and 4 x 4 spent more on switching, 2 x 8 served no more);
- a listening socket per process (SO_REUSEPORT, granian's own on Linux), so the kernel spreads connections
  over the processes by hash: with one shared socket, whichever process woke first took them (a load
  balancer's 64 kept-alive connections were seen split 61/3);
- the app loaded, warmed and frozen out of the garbage collector in the parent before the processes fork
  (below);
- processes replaced now and then, so a slow leak never grows unbounded (WEB_WORKER_LIFETIME, an hour;
  granian counts time, not requests), one at a time, each new one started before the old one stops; and a
  process that dies is replaced.
"""

import argparse
import gc
import os
from pathlib import Path

# A request's line and headers must arrive within this many seconds (granian's HTTP/1 header-read timeout),
# which also closes a kept-alive connection idle that long (gunicorn's keepalive was 5 s).
HEADER_TIMEOUT = float(os.environ.get("WEB_HEADER_TIMEOUT", "10"))
# granian's buffer for a request's head: a head past it gets granian's bare 431 (checked between reads, so one
# of up to twice this may pass), a path over 64 KiB its bare 414; below them, mittis.asgi answers those over
# its own limits (8,190 bytes and 32 KiB) in the error shape.
HEAD_BUFFER_BYTES = 64 * 1024
# Connections a process holds open at once (granian's backpressure: taken at accept, held to the close).
# Past it, new connections wait in the listen backlog until one closes; a silent one is closed within
# HEADER_TIMEOUT.
MAX_CONNECTIONS = 1024
# Processes are replaced after this many seconds (at least 60), one at a time.
WORKER_LIFETIME = int(os.environ.get("WEB_WORKER_LIFETIME", "3600"))
# Seconds a process has to finish its requests when it is replaced or the server stops.
GRACEFUL_SECONDS = 30
# No user name (a Basic-auth user is an API key), no query string, no header: nothing secret in a log line.
ACCESS_LOG_FORMAT = '[%(time)s] %(addr)s "%(method)s %(path)s %(protocol)s" %(status)d %(dt_ms).1fms'


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bind", default=f"0.0.0.0:{os.environ.get('PORT', '8000')}", help="HOST:PORT")
    parser.add_argument("--uds", help="a unix socket path to serve instead (behind a proxy on the same host)")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", os.cpu_count())),
                        help="processes (WEB_CONCURRENCY, default the core count)")
    parser.add_argument("--threads", type=int, help="threads running Django per process (WEB_THREADS, 4)")
    parser.add_argument("--access-log", action="store_true", default=os.environ.get("WEB_ACCESS_LOG", "") == "true",
                        help="a line per request on stdout (WEB_ACCESS_LOG=true; off by default: it costs throughput)")
    args = parser.parse_args(argv)
    if args.threads:
        os.environ["WEB_THREADS"] = str(args.threads)  # read by mittis.asgi, imported below

    from granian import Granian
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings

    _preload()
    host, _, port = args.bind.rpartition(":")
    server = Granian(
        "mittis.asgi:application", address=host or "0.0.0.0", port=int(port), uds=args.uds and Path(args.uds),
        interface=Interfaces.ASGINL, http=HTTPModes.http1, websockets=False, workers=args.workers,
        backlog=2048, backpressure=MAX_CONNECTIONS,
        http1_settings=HTTP1Settings(header_read_timeout=int(HEADER_TIMEOUT * 1000), max_buffer_size=HEAD_BUFFER_BYTES),
        log_access=args.access_log, log_access_format=ACCESS_LOG_FORMAT,
        respawn_failed_workers=True, workers_lifetime=WORKER_LIFETIME, workers_kill_timeout=GRACEFUL_SECONDS,
    )
    server.serve()


def _preload() -> None:
    """Load, warm and freeze the app before granian forks its processes (as gunicorn's preload_app did): they
    share its pages and serve their first request warm.

    The loaded Django project is some 100,000 objects that live as long as the process. Left to the
    collector, each full collection in a process walks them all, holding the GIL for ~60 ms while every
    request in flight in that process waits. Frozen, a full collection walks only what the process made
    itself, and the collector never writes to the pages the processes share. Nothing here opens a
    connection or starts a thread: those would be shared by every process.
    """
    from mittis.asgi import application  # noqa: F401 (loads Django)
    from mittis.wsgi import warm_up

    warm_up()
    gc.collect()
    gc.freeze()


if __name__ == "__main__":
    main()
