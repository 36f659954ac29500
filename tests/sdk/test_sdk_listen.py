"""`mittis listen` (sdk/python/src/mittis_sdk/cli.py) as a developer runs it: the console script in a process of
its own, following the real server's events and forwarding them to a real local receiver, read through its
printed lines."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
import json
import os
from pathlib import Path
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from urllib.parse import parse_qs, urlsplit

from django.db import connection, transaction
import pytest
from standardwebhooks.webhooks import Webhook

from messaging.carriers.base import InboundSms
from messaging.services.inbound import message_receive
from mittis_sdk import webhooks
from tests.conftest import SEED
from webhooks.models import Event

MITTIS = Path(sys.executable).parent / "mittis"  # the console script sdk/python/pyproject.toml declares
INTERVAL = "0.2"
READY = re.compile(r"^Ready\. Forwarding (?P<what>.+) of (?P<key>\S+) \((?P<mode>\w+) mode\) to (?P<url>\S+)\. "
                   r"Signing secret: (?P<secret>whsec_\S+) \(Ctrl-C to stop\)$")
# How long the late event's transaction stays open after the newer event was forwarded: several polls, and past
# the second of its created_at (the API's times are whole seconds), so only a re-read window can still see it.
LATE = 2.0
FORWARDED = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  (?P<type>message\.\w+) +(?P<id>evt_\w+)  -> (?P<outcome>.+)$")


@dataclass
class Cli:
    """A running `mittis listen`, its stdout read line by line as it prints them."""

    process: subprocess.Popen
    lines: "queue.Queue[str]" = field(default_factory=queue.Queue)
    seen: list[str] = field(default_factory=list)

    def line(self, pattern: re.Pattern, timeout: float = 10.0) -> re.Match:
        """The next line matching `pattern` (lines before it are kept in `seen`)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line like {pattern.pattern} in {timeout} s; printed: {self.seen}") from None
            self.seen.append(line)
            if match := pattern.match(line):
                return match

    def forwarded(self, count: int, timeout: float = 10.0) -> list[re.Match]:
        return [self.line(FORWARDED, timeout) for _ in range(count)]

    def stop(self) -> tuple[int, str]:
        """Ctrl-C: its exit status and what it printed since the last line read."""
        self.process.send_signal(signal.SIGINT)
        returncode = self.process.wait(timeout=10)
        rest = []
        while not self.lines.empty():
            rest.append(self.lines.get())
        return returncode, "\n".join(rest)


def _env(sdk_key: str, server_url: str) -> dict[str, str]:
    return {**os.environ, "MITTIS_API_KEY": sdk_key, "MITTIS_BASE_URL": server_url}


@pytest.fixture
def listen(sdk_key, server_url, tmp_path):
    """Starts `mittis listen` with a state file in tmp_path (the same one each time: a restart resumes) and waits
    for its Ready line; returns (the CLI, the Ready line's match). Every one still running is stopped after."""
    running = []

    def start(forward_to: str, *options: str, key: str = sdk_key) -> tuple[Cli, re.Match]:
        process = subprocess.Popen(
            [str(MITTIS), "listen", "--forward-to", forward_to, "--state", str(tmp_path / "listen.json"),
             "--interval", INTERVAL, *options],
            env=_env(key, server_url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        cli = Cli(process)
        running.append(cli)
        threading.Thread(target=lambda: [cli.lines.put(line.rstrip("\n")) for line in process.stdout],
                         daemon=True).start()
        return cli, cli.line(READY)

    yield start
    for cli in running:
        if cli.process.poll() is None:
            cli.process.send_signal(signal.SIGINT)
            try:
                cli.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                cli.process.kill()
                cli.process.wait()


def _schedule(client, body: str = "Later"):
    """A message for an hour from now: its `message.scheduled` event, with no worker needed."""
    return client.messages.create(from_=SEED["from"], to=SEED["to"], body=body,
                                  send_at=datetime.now(timezone.utc) + timedelta(hours=1))


def _event_ids(receiver) -> list[str]:
    return [json.loads(request.body)["id"] for request in receiver.requests]


def _quiet(receiver, count: int, polls: int = 5) -> None:
    """Several polls pass and the receiver still has `count` requests: nothing more (a repeat) is coming."""
    time.sleep(polls * float(INTERVAL))
    assert len(receiver.requests) == count, _event_ids(receiver)


# --- forwarding -----------------------------------------------------------------------------------------------
def test_listen_forwards_each_kind_of_event_signed_with_the_printed_secret(listen, client, sdk_key, worker, receiver):
    cli, ready = listen(receiver.url)
    secret = ready["secret"]

    scheduled = _schedule(client)
    sent = client.messages.create(from_=SEED["from"], to=SEED["to"], body=SEED["body"])
    inbound = client.test_helpers.inbound_messages.create(from_="+18045550100", to=SEED["from"], body="Hi")
    # scheduled; queued, sent, delivered; inbound: in the order the account's events were created
    lines = cli.forwarded(5)
    expected = list(Event.objects.filter(public_id__in=[line["id"] for line in lines]).order_by("id"))

    assert [line["id"] for line in lines] == [event.public_id for event in expected] == _event_ids(receiver)
    assert {(event.type, event.object_id) for event in expected} >= {
        ("message.scheduled", scheduled.id), ("message.sent", sent.id), ("message.delivered", sent.id),
        ("message.inbound", inbound.id)}
    for request, event in zip(receiver.requests, expected):
        assert request.body == event.payload  # the event's JSON exactly as the API gives it and webhooks send it
        assert request.headers["content-type"] == "application/json"
        assert request.headers["webhook-id"] == event.public_id
        assert Webhook(secret).verify(request.body, request.headers)["id"] == event.public_id
        assert webhooks.verify(request.body, request.headers, secret).id == event.public_id
    assert ready["key"] == f"mk_test_…{sdk_key[-4:]}" and ready["mode"] == "test" and ready["url"] == receiver.url
    assert sdk_key not in "\n".join(cli.seen)


def test_each_event_is_printed_with_the_status_the_receiver_answered_and_never_retried(listen, client, receiver):
    receiver.script = [(204, {}), (500, {}), (410, {})]
    receiver.reply = b""  # a 204 has no body
    cli, _ = listen(receiver.url)

    messages = [_schedule(client, body=f"Later {n}") for n in range(3)]
    lines = cli.forwarded(3)

    assert [(line["type"], line["outcome"]) for line in lines] == [
        ("message.scheduled", "204"), ("message.scheduled", "500"), ("message.scheduled", "410")]
    assert [Event.objects.get(public_id=line["id"]).object_id for line in lines] == [m.id for m in messages]
    _quiet(receiver, 3)


def test_a_receiver_that_is_down_is_printed_as_an_error_and_listening_goes_on(listen, client):
    with socket.create_server(("127.0.0.1", 0)) as reserved:
        closed = f"http://127.0.0.1:{reserved.getsockname()[1]}/hooks"  # nobody listens once it is closed
    cli, _ = listen(closed)

    _schedule(client)
    _schedule(client)

    assert [line["outcome"] for line in cli.forwarded(2)] == ["error: connection refused"] * 2
    assert cli.process.poll() is None


def test_the_events_option_forwards_only_those_types(listen, client, receiver):
    cli, ready = listen(receiver.url, "--events", "message.inbound")

    _schedule(client)
    inbound = client.test_helpers.inbound_messages.create(from_="+18045550100", to=SEED["from"], body="Hi")
    [line] = cli.forwarded(1)

    assert ready["what"] == "message.inbound events"
    assert line["type"] == "message.inbound"
    assert json.loads(receiver.requests[0].body)["data"]["id"] == inbound.id
    _quiet(receiver, 1)


def test_an_idle_poll_is_one_request(listen, client, receiver, cutter):
    cli, _ = listen(receiver.url, "--base-url", cutter.url)  # cutter: a relay that keeps each request's head
    _schedule(client)
    cli.forwarded(1)
    time.sleep(3 * float(INTERVAL))  # the poll after the first event knows where the server's clock is

    start = len(cutter.heads)
    time.sleep(10 * float(INTERVAL))
    idle = cutter.heads[start:]

    requests = [urlsplit(head.split(" ")[1]) for head in idle if head.startswith("GET ")]
    assert len(requests) == len(idle)
    assert 5 <= len(idle) <= 10  # one a poll, each poll an interval plus its request apart
    assert {(request.path, tuple(sorted(parse_qs(request.query)))) for request in requests} == {
        ("/v1/events", ("created_gte", "limit"))}
    # the window's start follows the server's clock while nothing happens, so it never re-reads a growing past
    starts = [parse_qs(request.query)["created_gte"][0] for request in requests]
    assert starts == sorted(starts) and starts[0] < starts[-1]


# --- where it starts and resumes ------------------------------------------------------------------------------
def test_the_first_start_forwards_only_what_happens_after_it(listen, client, receiver):
    _schedule(client, body="Before")
    _schedule(client, body="Before too")
    cli, _ = listen(receiver.url)

    after = _schedule(client, body="After")
    [line] = cli.forwarded(1)

    assert Event.objects.get(public_id=line["id"]).object_id == after.id
    _quiet(receiver, 1)


def test_a_restart_resumes_with_the_same_secret_without_gaps_or_repeats(listen, client, receiver):
    cli, ready = listen(receiver.url)
    _schedule(client, body="While listening")
    cli.forwarded(1)
    returncode, rest = cli.stop()
    assert (returncode, rest) == (0, "Stopped.")

    missed = [_schedule(client, body=f"While stopped {n}") for n in range(3)]
    again, ready_again = listen(receiver.url)
    lines = again.forwarded(3)
    after = _schedule(client, body="After the restart")
    lines += again.forwarded(1)

    assert ready_again["secret"] == ready["secret"]
    assert [Event.objects.get(public_id=line["id"]).object_id for line in lines] == [m.id for m in [*missed, after]]
    assert len(set(_event_ids(receiver))) == len(receiver.requests) == 5
    _quiet(receiver, 5)


def test_print_secret_prints_the_secret_listen_signs_with(listen, sdk_key, server_url, receiver, tmp_path):
    def print_secret() -> str:
        done = subprocess.run([str(MITTIS), "listen", "--print-secret", "--state", str(tmp_path / "listen.json")],
                              env=_env(sdk_key, server_url), capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    secret = print_secret()
    _, ready = listen(receiver.url)

    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]+=*", secret)
    assert ready["secret"] == secret == print_secret()


def test_an_invalid_key_exits_non_zero_with_the_apis_message_and_no_traceback(sdk_key, server_url, receiver,
                                                                              tmp_path):
    wrong = "mk_test_" + "x" * 32
    done = subprocess.run([str(MITTIS), "listen", "--forward-to", receiver.url, "--state", str(tmp_path / "s.json")],
                          env=_env(wrong, server_url), capture_output=True, text=True, timeout=30)

    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith("mittis: ") and "Traceback" not in done.stderr
    assert "invalid" in done.stderr.lower() and wrong not in done.stderr


def test_mittis_alone_prints_its_help_and_version_names_the_sdk(tmp_path):
    alone = subprocess.run([str(MITTIS)], capture_output=True, text=True, timeout=30)
    version = subprocess.run([str(MITTIS), "--version"], capture_output=True, text=True, timeout=30)

    assert alone.returncode == 0 and "listen" in alone.stdout and alone.stdout.startswith("usage: mittis")
    assert re.fullmatch(r"mittis \d+\.\d+\.\d+ \(API version \d{4}-\d\d-\d\d\)\n", version.stdout)


# --- the gap: an event that commits after a newer one was forwarded ---------------------------------------------
def test_an_event_committed_after_a_newer_one_was_forwarded_is_forwarded_once(listen, client, receiver):
    """An event's id is taken from a sequence when its row is inserted; the row shows once its transaction commits.
    Here an inbound message's transaction holds its event uncommitted while a newer event commits and is forwarded;
    then it commits. A cursor past the newest event forwarded ("after evt_…") would never see it."""
    cli, _ = listen(receiver.url)
    inserted, commit = threading.Event(), threading.Event()
    late: list = []

    def slow_transaction():
        try:
            with transaction.atomic():
                late.append(message_receive(carrier="sandbox", inbound=InboundSms(
                    sender="+18045550100", to=SEED["from"], body="Late")))
                inserted.set()
                commit.wait(timeout=15)
        finally:
            connection.close()  # this thread's own

    thread = threading.Thread(target=slow_transaction)
    thread.start()
    try:
        assert inserted.wait(timeout=10)
        newer = _schedule(client)
        [first] = cli.forwarded(1)
        time.sleep(LATE)
    finally:
        commit.set()
        thread.join()
    [second] = cli.forwarded(1)

    newer_event, late_event = (Event.objects.get(public_id=line["id"]) for line in (first, second))
    assert (newer_event.object_id, late_event.object_id) == (newer.id, late[0].public_id)
    assert late_event.pk < newer_event.pk  # the late one came first in the sequence, and was read second
    assert late_event.type == "message.inbound" and second["outcome"] == "200"
    _quiet(receiver, 2)
