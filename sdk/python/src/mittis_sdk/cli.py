"""`mittis`, the SDK's command line. One command so far:

    mittis listen --forward-to http://localhost:3000/hooks

follows the account's events through `GET /v1/events` and POSTs each one, signed as Mittis signs its webhooks, to
a local URL: webhook development without a public URL or an inbound connection (like `stripe listen`).
"""

from __future__ import annotations

import argparse
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
import hashlib
import json
import os
from pathlib import Path
import signal
import sys
import tempfile
import time
from typing import Any, Iterator, Optional, TextIO, get_args

import httpx

from mittis_sdk import models
from mittis_sdk._client import Mittis
from mittis_sdk._core import DEFAULT_BASE_URL
from mittis_sdk._errors import APIConnectionError, APIError, RateLimitError, ServerError
from mittis_sdk._version import API_VERSION, __version__
from mittis_sdk.webhooks import generate_secret, sign

# How long after its `created_at` an event may still become visible: the time from stamping an event to committing
# its transaction, plus the clock skew between Mittis's servers. Each poll re-reads this much before what it has
# already covered (see `Cursor`); more costs a longer re-read when busy, less risks missing a late event.
OVERLAP = timedelta(seconds=10)
PAGE_LIMIT = 100  # the API's most per page: an idle poll is one request
FORWARD_TIMEOUT = 10.0  # seconds for the local receiver to answer; then the event is printed as an error
USER_AGENT = f"Mittis-Webhooks/1 (mittis listen {__version__})"  # what real deliveries send, and who this is
STATE_VERSION = 1
EVENT_TYPES: tuple[str, ...] = get_args(models.EventType)

LISTEN_HELP = """\
Follows your account's events (GET /v1/events) and POSTs each one to --forward-to, oldest first, with the
Standard Webhooks headers Mittis's deliveries carry (webhook-id, webhook-timestamp, webhook-signature), signed
with the secret printed at start. The body is the event's JSON as the API returned it. Nothing needs to reach
your machine: it polls.

Each event is forwarded once. An answer other than 2xx, a timeout or a refused connection is printed with the
event and NOT retried (as `stripe listen`): send the event again with `POST /v1/events/{id}/redeliver` to a
webhook endpoint, or trigger a new one.

The first start forwards only events that happen after it. The signing secret and the position are kept in a
state file (by default under $XDG_STATE_HOME or ~/.local/state/mittis/, one per API key and base URL): a restart
keeps the same secret and resumes where it stopped, without gaps or repeats. Ctrl-C stops it.
"""


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="mittis", description="The Mittis command line.")
    parser.add_argument("--version", action="version", version=f"mittis {__version__} (API version {API_VERSION})")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    listen = commands.add_parser(
        "listen", help="Forward your account's events to a local URL, signed, for webhook development.",
        description=LISTEN_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    listen.add_argument("--forward-to", metavar="URL", help="where to POST each event, e.g. "
                        "http://localhost:3000/hooks (required unless --print-secret)")
    listen.add_argument("--api-key", metavar="KEY", help="the API key (default: $MITTIS_API_KEY)")
    listen.add_argument("--base-url", metavar="URL",
                        help=f"the API's address (default: $MITTIS_BASE_URL, else {DEFAULT_BASE_URL})")
    listen.add_argument("--events", metavar="TYPES",
                        help="forward only these event types, comma-separated (default: every type), e.g. "
                             "message.delivered,message.inbound")
    listen.add_argument("--state", metavar="PATH", type=Path, help="the state file (default: one per API key and "
                        "base URL under $XDG_STATE_HOME/mittis or ~/.local/state/mittis)")
    listen.add_argument("--interval", metavar="SECONDS", type=_positive, default=1.0,
                        help="seconds between polls (default: 1)")
    listen.add_argument("--print-secret", action="store_true",
                        help="print the signing secret and exit (for scripts: the same secret listen signs with)")
    listen.set_defaults(run=_listen)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return int(args.run(args, listen))


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def _listen(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    api_key = args.api_key or os.environ.get("MITTIS_API_KEY")
    if not api_key:
        parser.error("no API key: pass --api-key or set MITTIS_API_KEY (keys start mk_test_ or mk_live_)")
    base_url = (args.base_url or os.environ.get("MITTIS_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
    types = _event_types(args.events, parser)
    if not args.print_secret:
        if not args.forward_to:
            parser.error("the following arguments are required: --forward-to")
        url = httpx.URL(args.forward_to)
        if url.scheme not in ("http", "https") or not url.host:
            parser.error(f"--forward-to: {args.forward_to!r} is not an http:// or https:// URL")
    state_path = args.state or default_state_path(api_key=api_key, base_url=base_url)
    try:
        state = State.load(state_path)
        if state is None:
            state = State(secret=generate_secret(), cursor=None, base_url=base_url, api_key=key_hint(api_key))
            state.save(state_path)
    except (OSError, ValueError) as exc:
        return _fail(f"the state file {state_path}: {exc}")
    if args.print_secret:
        print(state.secret, flush=True)
        return 0
    with Mittis(api_key, base_url=base_url) as client, httpx.Client(timeout=FORWARD_TIMEOUT, trust_env=False) as http:
        # trust_env=False: the local URL is reached directly, never through an HTTP(S)_PROXY of the environment.
        listener = Listener(client=client, http=http, forward_to=args.forward_to, types=types, state=state,
                            state_path=state_path)
        try:
            listener.start(api_key=api_key)
        except KeyboardInterrupt:
            print("Stopped.", flush=True)
            return 0
        except APIError as exc:
            return _fail(exc.message)
        except APIConnectionError as exc:
            return _fail(f"could not reach the Mittis API at {base_url}: {exc}")
        return listener.run(interval=args.interval)


def _event_types(text: Optional[str], parser: argparse.ArgumentParser) -> Optional[frozenset[str]]:
    if text is None:
        return None
    types = frozenset(name.strip() for name in text.split(",") if name.strip())
    unknown = sorted(types - set(EVENT_TYPES))
    if not types or unknown:
        parser.error(f"--events: unknown event type {', '.join(unknown) or '(none given)'}; "
                     f"the types are {', '.join(EVENT_TYPES)}")
    return types


def _fail(message: str) -> int:
    print(f"mittis: {message}", file=sys.stderr, flush=True)
    return 1


def key_hint(api_key: str) -> str:
    """`mk_test_…abcd`: enough to tell keys apart, never the key."""
    prefix = next((p for p in ("mk_test_", "mk_live_") if api_key.startswith(p)), "")
    return f"{prefix}…{api_key[-4:]}" if len(api_key) > len(prefix) + 8 else f"{prefix}…"


def default_state_path(*, api_key: str, base_url: str) -> Path:
    """One file per key and API (a test key and a live one, or two servers, never share a position)."""
    root = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "mittis"
    digest = hashlib.sha256(f"{base_url}\n{api_key}".encode()).hexdigest()[:12]
    return root / f"listen-{digest}.json"


# --- where listening is --------------------------------------------------------------------------------------
def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _text(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Cursor:
    """Which events have been handled: every event with `created_at` before `window_start`, and those in `seen`
    (id: created_at), which holds every event read at or after `window_start`.

    Why not "the events after the last one read": an event's id comes from a PostgreSQL sequence when its row is
    inserted, but the row is visible only once its transaction commits, so an event with a lower id can appear
    after one with a higher id was read. A cursor past the higher id would skip it for good. So each poll reads
    the whole window, `created_gte=window_start`, newest first, every page (one request when fewer than
    PAGE_LIMIT events are in it), and forwards the events not in `seen`; new events and late ones alike.

    How far the window may start: an event becomes visible within OVERLAP of its `created_at`. The newest
    `created_at` read (`server_time`), plus the time elapsed since on this machine's monotonic clock (which never
    runs ahead of the server's), is a lower bound of the server's clock. When a poll that started at a moment when
    that bound was B has read its window, every event created before B - OVERLAP had committed before that poll
    began, so it was read by that poll or an earlier one: the next window may start at B - OVERLAP. The window
    thus trails the server's clock by about OVERLAP (and never moves back); when nothing happens, a poll is one
    request with an empty answer. `seen` keeps only the ids the window still covers, so restarts neither repeat
    nor skip: the window and `seen` are saved together.
    """

    window_start: Optional[datetime]  # None: every event (there were none when listening began)
    server_time: Optional[datetime]  # the newest `created_at` read; None: none read yet
    seen: dict[str, str] = field(default_factory=dict)
    # The monotonic moment at which `server_time` was a lower bound of the server's clock (not saved: a restart
    # starts it again, which only lowers the bound).
    _clock_at: float = field(default_factory=time.monotonic, repr=False)

    def server_clock(self) -> Optional[datetime]:
        """A moment the server's clock has certainly reached."""
        if self.server_time is None:
            return None
        return self.server_time + timedelta(seconds=time.monotonic() - self._clock_at)

    def params(self) -> dict[str, Any]:
        return {"created_gte": _text(self.window_start)} if self.window_start is not None else {}

    def handled(self, event: dict[str, Any]) -> bool:
        return event["id"] in self.seen

    def mark(self, event: dict[str, Any]) -> None:
        created_at = _time(event["created_at"])
        self.seen[event["id"]] = event["created_at"]
        bound = self.server_clock()
        if bound is None or created_at > bound:
            self.server_time, self._clock_at = created_at, time.monotonic()

    def advance(self, bound: Optional[datetime]) -> bool:
        """After a whole poll that began when the server's clock was at least `bound`. True if `seen` shrank."""
        if bound is None:
            return False
        start = (bound - OVERLAP).replace(microsecond=0)
        if self.window_start is not None and start <= self.window_start:
            return False
        self.window_start = start
        before = len(self.seen)
        self.seen = {id: created for id, created in self.seen.items() if _time(created) >= start}
        return len(self.seen) != before

    def to_json(self) -> dict[str, Any]:
        return {"window_start": _text(self.window_start) if self.window_start else None,
                "server_time": _text(self.server_time) if self.server_time else None, "seen": self.seen}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Cursor":
        return cls(window_start=_time(data["window_start"]) if data["window_start"] else None,
                   server_time=_time(data["server_time"]) if data["server_time"] else None,
                   seen={str(id): str(created) for id, created in data["seen"].items()})


@dataclass
class State:
    """What a restart needs: the signing secret (so the receiver's configured secret stays valid) and the cursor
    (None until the first start has read where the account's history ends)."""

    secret: str
    cursor: Optional[Cursor]
    base_url: str = ""  # these two for a person reading the file only
    api_key: str = ""

    @classmethod
    def load(cls, path: Path) -> Optional["State"]:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"written by another version of mittis (state version {data.get('version')!r})")
        try:
            return cls(secret=data["secret"], cursor=Cursor.from_json(data["cursor"]) if data["cursor"] else None,
                       base_url=data.get("base_url", ""), api_key=data.get("api_key", ""))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a mittis listen state file ({exc!r}); delete it to start afresh") from None

    def save(self, path: Path) -> None:
        """Atomically (a temporary file, then `os.replace`): a stop at any moment leaves the old state or the new.
        Readable by its owner only: it holds the signing secret."""
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        data = {"version": STATE_VERSION, "base_url": self.base_url, "api_key": self.api_key, "secret": self.secret,
                "cursor": self.cursor.to_json() if self.cursor else None}
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                json.dump(data, file, indent=1, ensure_ascii=False)
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise


# --- listening -----------------------------------------------------------------------------------------------
class Listener:
    def __init__(self, *, client: Mittis, http: httpx.Client, forward_to: str, types: Optional[frozenset[str]],
                 state: State, state_path: Path, out: TextIO = sys.stdout) -> None:
        self.client, self.http, self.forward_to, self.types = client, http, forward_to, types
        self.state, self.state_path, self.out = state, state_path, out
        self._outage: Optional[str] = None
        self._critical = False  # forwarding an event and saving that it was: a stop waits for the end of it
        self._stop_requested = False

    def start(self, *, api_key: str) -> None:
        """Check the key, and on the first start take the account's history as handled; then say so."""
        newest = self._page({"limit": 1})[0]
        if self.state.cursor is None:
            self.state.cursor = self._baseline(newest[0] if newest else None)
            self.state.save(self.state_path)
        mode = {"mk_test_": " (test mode)", "mk_live_": " (live mode)"}.get(api_key[:8], "")
        what = "events" if self.types is None else f"{', '.join(sorted(self.types))} events"
        self._print(f"Ready. Forwarding {what} of {key_hint(api_key)}{mode} to {self.forward_to}. "
                    f"Signing secret: {self.state.secret} (Ctrl-C to stop)")

    def _baseline(self, newest: Optional[dict[str, Any]]) -> Cursor:
        """Everything visible now, as handled: the window that ends at the newest event, read whole."""
        if newest is None:
            return Cursor(window_start=None, server_time=None)
        created_at = _time(newest["created_at"])
        cursor = Cursor(window_start=created_at - OVERLAP, server_time=created_at)
        for event in self._window(cursor):
            cursor.mark(event)
        return cursor

    def run(self, *, interval: float) -> int:
        handlers = self._trap_stops()
        try:
            while True:
                wait = interval
                try:
                    self.poll()
                    if self._outage:
                        self._print("Connected again.", file=sys.stderr)
                        self._outage = None
                except (APIConnectionError, RateLimitError, ServerError) as exc:
                    # Mittis restarting, or the network gone for a while: the next poll resumes where this stopped.
                    message = exc.message if isinstance(exc, APIError) else str(exc)
                    if self._outage is None:
                        self._print(f"mittis: {message} (trying again every {interval:g} s)", file=sys.stderr)
                    self._outage = message
                    wait = max(interval, getattr(exc, "retry_after", None) or 0)
                time.sleep(wait)
        except KeyboardInterrupt:
            # Between two steps the cursor is whole (an event is marked once forwarded; the window moves before
            # `seen` is pruned), so its latest form can be kept; the file's last one would do as well, read again.
            self.state.save(self.state_path)
            self._print("Stopped.")
            return 0
        except APIError as exc:  # the key revoked, or a request the API refuses: polling again will not help
            return _fail(exc.message)
        finally:
            for signum, handler in handlers.items():
                signal.signal(signum, handler)

    def poll(self) -> None:
        cursor = self.state.cursor
        assert cursor is not None
        bound = cursor.server_clock()  # taken before the first request: see Cursor
        fresh = list({event["id"]: event for event in self._window(cursor) if not cursor.handled(event)}.values())
        for event in reversed(fresh):  # oldest first
            if self.types is None or event["type"] in self.types:
                with self._uninterrupted():
                    self.forward(event)
                    cursor.mark(event)
                    self.state.save(self.state_path)
            else:
                cursor.mark(event)
        shrank = cursor.advance(bound)
        if shrank or fresh:
            with self._uninterrupted():
                self.state.save(self.state_path)

    def _window(self, cursor: Cursor) -> Iterator[dict[str, Any]]:
        """The window's events, newest first, every page."""
        params = {"limit": PAGE_LIMIT, **cursor.params()}
        while True:
            events, has_more = self._page(params)
            yield from events
            if not has_more or not events:
                return
            params = {**params, "starting_after": events[-1]["id"]}

    def _page(self, params: dict[str, Any]) -> tuple[list[dict[str, Any]], bool]:
        """One page of `GET /v1/events` as the API wrote it: the events' JSON objects whole, unknown fields
        included, so each is forwarded as it was given."""
        body = self.client._call("events_list", lambda response: response.json(), params=params)
        return body["data"], bool(body.get("has_more"))

    def forward(self, event: dict[str, Any]) -> None:
        """POST the event, signed now; print what came back. Never retried: see LISTEN_HELP."""
        body = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
                   "Mittis-Version": self.client.api_version, **sign(body, id=event["id"], secret=self.state.secret)}
        try:
            outcome = str(self.http.post(self.forward_to, content=body.encode(), headers=headers).status_code)
        except httpx.TimeoutException:
            outcome = f"error: no answer within {FORWARD_TIMEOUT:g} s"
        except httpx.HTTPError as exc:
            outcome = f"error: {_reason(exc)}"
        self._print(f"{datetime.now():%Y-%m-%d %H:%M:%S}  {event['type']:<17}  {event['id']}  -> {outcome}")

    def _print(self, line: str, file: Optional[TextIO] = None) -> None:
        print(line, file=file or self.out, flush=True)  # flushed: a pipe (a test, `| tee`) reads each line now

    # A stop (Ctrl-C, SIGTERM) between events, or while waiting for the API, ends at once; one during an event's
    # forwarding waits until that event is saved as done, so it is neither lost nor sent again. A second one ends at
    # once anyway.
    def _trap_stops(self) -> dict[int, Any]:
        def stop(signum: int, frame: Any) -> None:
            if self._critical and not self._stop_requested:
                self._stop_requested = True
                return
            raise KeyboardInterrupt

        signums = [signal.SIGINT] + ([signal.SIGTERM] if hasattr(signal, "SIGTERM") else [])
        return {signum: signal.signal(signum, stop) for signum in signums}

    @contextmanager
    def _uninterrupted(self) -> Iterator[None]:
        self._critical = True
        try:
            yield
        finally:
            self._critical = False
        if self._stop_requested:
            raise KeyboardInterrupt


def _reason(exc: httpx.HTTPError) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectError) and "refused" in text.lower():
        return "connection refused"
    return text


if __name__ == "__main__":
    sys.exit(main())
