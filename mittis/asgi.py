"""The web application as production and `make run` serve it (`python -m mittis.serve`): Django's WSGI
handler, run in a fixed pool of threads, behind an ASGI front that waits for clients on the event loop.

granian reads a request's line and headers (in Rust, with its header-read timeout); this front then reads
the body within BODY_TIMEOUT and only hands a complete request to a thread. So a client that sends slowly,
or sends nothing, holds a socket and a few kilobytes, never one of the threads that run Django: under
gunicorn's gthread workers a dozen such connections took every thread and `/healthz` stopped answering.

The threads are few and live as long as the process (THREADS, as gunicorn's gthread had): each keeps its
database connection (CONN_MAX_AGE) and the statements prepared on it. Django's own ASGI handler would run
each request's synchronous code in a thread made for that request, and so open a new database connection
for every request.

What this front answers itself, in the API's error shape, without running Django: a body not received
within BODY_TIMEOUT (408 `request_timeout`), a body over the 1 MB the API accepts (413 `request_too_large`),
a request target over MAX_TARGET_BYTES (414 `uri_too_long`) and headers over MAX_HEADER_BYTES (431
`headers_too_large`). Past granian's own limits (mittis/serve.py) granian answers a bare 400, 414 or 431.
"""

import asyncio
from concurrent.futures import ThreadPoolExecutor
import json
import os
import sys
from types import SimpleNamespace
from urllib.parse import unquote_to_bytes

from django.conf import settings

from mittis import versions
from mittis.api.catalogue import ERROR_CODES
from mittis.ids import new_public_id
from mittis.wsgi import application as django_application

# Seconds a client has to send a whole request body, counted from the end of its headers. An SMS request is
# a few hundred bytes; the largest body accepted (1 MB) arrives in 10 s at 100 KB/s.
BODY_TIMEOUT = float(os.environ.get("WEB_BODY_TIMEOUT", "10"))
# Threads running Django per process: a request waiting on PostgreSQL or Redis does not idle the core.
THREADS = int(os.environ.get("WEB_THREADS", "4"))
# Seconds a client has to take each part of a streamed answer (an export's download) while a thread feeds it.
SEND_TIMEOUT = 30
# gunicorn's limits (4,094 bytes of request line, 100 headers of 8,190), answered in the error shape.
MAX_TARGET_BYTES = 8190
MAX_HEADER_BYTES = 32768
# Answers up to this size are built whole in the thread and written by the event loop, so the thread is free
# at once; a larger one (an export's download) is streamed from the thread, part by part.
BUFFERED_ANSWER_BYTES = 256 * 1024
# A body over the limit is read and dropped up to this size before its 413, so the client reads the answer.
DRAIN_LIMIT = 8 * 1024 * 1024


class _ClientGone(Exception):
    pass


class WSGIInThreads:
    """An ASGI application running a WSGI application on a fixed pool of threads, each request read whole
    first, with a deadline, on the event loop."""

    def __init__(self, wsgi_application, *, threads: int, body_timeout: float, max_body: int):
        self.wsgi_application = wsgi_application
        self.threads, self.body_timeout, self.max_body = threads, body_timeout, max_body
        self._executor, self._pid = None, None
        self._base_environ = {
            "SCRIPT_NAME": "", "wsgi.version": (1, 0), "wsgi.errors": sys.stderr, "wsgi.multithread": True,
            "wsgi.multiprocess": True, "wsgi.run_once": False, "wsgi.input_terminated": True,
            "SERVER_SOFTWARE": "granian"}

    def executor(self) -> ThreadPoolExecutor:
        """The process's threads, made in the process that uses them (the app is loaded before the fork)."""
        if self._pid != os.getpid():
            self._executor, self._pid = ThreadPoolExecutor(self.threads, thread_name_prefix="web"), os.getpid()
        return self._executor

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":  # no websockets (mittis/serve.py turns them off) and no lifespan events
            return
        refused = self._refused_head(scope)
        if refused:
            return await _send_error(send, refused, scope=scope)
        length, chunked = _framing(scope)
        if length is not None and length > self.max_body:
            await self._drain(receive, length)
            return await _send_error(send, "request_too_large", scope=scope, close=True)
        body = b""
        if length or chunked:  # HTTP/1.1: a request with neither has no body to wait for
            try:
                async with asyncio.timeout(self.body_timeout):
                    body = await self._read_body(receive)
            except TimeoutError:
                return await _send_error(send, "request_timeout", scope=scope, close=True)
            except _ClientGone:
                return
            if body is None:
                await self._drain(receive, length)
                return await _send_error(send, "request_too_large", scope=scope, close=True)

        loop = asyncio.get_running_loop()
        answer = await loop.run_in_executor(self.executor(), self._run, self._environ(scope, body), loop, send)
        if answer is not None:  # built whole in the thread: written from here
            status, headers, body = answer
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})

    @staticmethod
    def _refused_head(scope) -> str | None:
        """The error code of a request line or headers over our limits, if they are."""
        if len(scope["raw_path"]) + len(scope["query_string"]) > MAX_TARGET_BYTES:
            return "uri_too_long"
        if sum(len(name) + len(value) + 4 for name, value in scope["headers"]) > MAX_HEADER_BYTES:
            return "headers_too_large"
        return None

    async def _read_body(self, receive) -> bytes | None:
        """The whole body (chunked or not), or None once it is larger than max_body."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _drain(self, receive, length: int | None) -> None:
        """Read and drop what is left of a body too large to keep, up to DRAIN_LIMIT and within the body timeout,
        before the 413: a connection closed while the client is still sending is reset, and a reset can
        discard the answer before the client reads it (it saw a broken pipe instead of the 413)."""
        if length is not None and length > DRAIN_LIMIT:
            return  # not worth the bandwidth: such a client may see the reset
        try:
            async with asyncio.timeout(self.body_timeout):
                drained = 0
                while drained <= DRAIN_LIMIT:
                    message = await receive()
                    drained += len(message.get("body", b""))
                    if message["type"] == "http.disconnect" or not message.get("more_body", False):
                        return
        except TimeoutError:
            pass

    def _environ(self, scope, body: bytes) -> dict:
        """PEP 3333's environ for an ASGI HTTP scope and its whole body."""
        server, client = scope.get("server") or ("localhost", 80), scope.get("client") or ("", 0)
        environ = {
            **self._base_environ,
            "REQUEST_METHOD": scope["method"],
            # WSGI's path is the percent-decoded bytes as latin-1 (what gunicorn passes), not ASGI's UTF-8 text
            "PATH_INFO": unquote_to_bytes(scope["raw_path"]).decode("latin-1"),
            "QUERY_STRING": scope["query_string"].decode("latin-1"),
            "SERVER_NAME": str(server[0]), "SERVER_PORT": str(server[1]),
            "REMOTE_ADDR": str(client[0]), "REMOTE_PORT": str(client[1]),
            "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
            "wsgi.url_scheme": scope.get("scheme", "http"),
            "wsgi.input": _Body(body),
            "CONTENT_LENGTH": str(len(body)),  # a chunked body too: it has been read whole
        }
        for raw_name, raw_value in scope["headers"]:
            name = raw_name.decode("latin-1").upper()
            if "_" in name:  # X_Forwarded_For would pass for X-Forwarded-For: dropped, as gunicorn does
                continue
            value = raw_value.decode("latin-1")
            if name == "CONTENT-LENGTH":
                continue
            key = "CONTENT_TYPE" if name == "CONTENT-TYPE" else "HTTP_" + name.replace("-", "_")
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        return environ

    def _run(self, environ, loop, send):
        """In a thread: run the WSGI application. Returns (status, headers, body) when the answer is small
        enough to hold, else streams it through `send` on the loop and returns None."""
        started = []

        def start_response(status, headers, exc_info=None):
            if exc_info and started:
                raise exc_info[1].with_traceback(exc_info[2])
            started[:] = [int(status.split(" ", 1)[0]),
                          [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]]

        result = self.wsgi_application(environ, start_response)
        try:
            held, size, streaming = [], 0, False
            for chunk in result:
                if not chunk:
                    continue
                if not streaming:
                    held.append(chunk)
                    size += len(chunk)
                    if size <= BUFFERED_ANSWER_BYTES:
                        continue
                    streaming = True
                    self._send_from_thread(loop, send, {"type": "http.response.start", "status": started[0],
                                                        "headers": started[1]})
                    chunk, held = b"".join(held), []
                self._send_from_thread(loop, send, {"type": "http.response.body", "body": chunk, "more_body": True})
            if streaming:
                self._send_from_thread(loop, send, {"type": "http.response.body", "body": b""})
                return None
            return started[0], started[1], b"".join(held)
        finally:
            if hasattr(result, "close"):
                result.close()  # Django's request_finished: in this thread, whose database connection it is

    @staticmethod
    def _send_from_thread(loop, send, message) -> None:
        asyncio.run_coroutine_threadsafe(asyncio.wait_for(send(message), SEND_TIMEOUT), loop).result()


class _Body:
    """wsgi.input over the body already read (io.BytesIO, without its copy of the bytes on creation)."""

    __slots__ = ("_at", "_view")

    def __init__(self, body: bytes):
        self._view, self._at = memoryview(body), 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._view) if size is None or size < 0 else min(self._at + size, len(self._view))
        data, self._at = bytes(self._view[self._at:end]), end
        return data

    def readline(self, size: int = -1) -> bytes:
        rest = self._view[self._at:]
        end = bytes(rest).find(b"\n") + 1 or len(rest)
        if size is not None and size >= 0:
            end = min(end, size)
        return self.read(end)

    def readlines(self, hint: int = -1) -> list[bytes]:
        return list(iter(self.readline, b""))

    def __iter__(self):
        return iter(self.readline, b"")


def _framing(scope) -> tuple[int | None, bool]:
    """The request's Content-Length (None without one), and whether its body is chunked."""
    length, chunked = None, False
    for name, value in scope["headers"]:
        if name == b"content-length":
            length = int(value)  # granian refuses a malformed one with a 400 before we see it
        elif name == b"transfer-encoding":
            chunked = True
    return length, chunked


async def _send_error(send, code: str, *, scope, close: bool = False) -> None:
    """An answer in the API's error shape (mittis.api.errors), with its Request-Id, from outside Django; under /v1
    with its Mittis-Version too, as mittis.api.versioning names it before authentication: the header's version
    if it is one, else the current one."""
    from mittis.api.errors import FieldError, error_payload  # DRF's: importable once Django is set up

    request_id = new_public_id("req")
    status, body = error_payload(SimpleNamespace(request_id=request_id), [FieldError(code, ERROR_CODES[code].message)])
    headers = [(b"content-type", b"application/json"), (b"request-id", request_id.encode())]
    if scope["path"].startswith("/v1/"):
        asked = next((value.decode("latin-1") for name, value in scope["headers"] if name == b"mittis-version"), "")
        version = asked if versions.is_known(asked) else versions.current()
        headers.append((b"mittis-version", version.encode()))
    if close:  # the rest of the request was never read: the connection cannot carry another
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})


application = WSGIInThreads(django_application, threads=THREADS, body_timeout=BODY_TIMEOUT,
                            max_body=settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
