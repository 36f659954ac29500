"""Golden snapshots: what the current API version answers, kept under tests/api/golden/ and held to additions only.

A scenario drives the real API (the test client through every middleware, and the services a worker runs) and
records a representative answer of every operation in `/openapi.json` (`responses/<operationId>.json`; a
second shape of one operation as `<operationId>-<variant>.json`), one answer of each error status
(`errors/<status>-<code>.json`), and the body and headers of every webhook payload type as a real receiver got it
(`webhooks/<type>.json`). Volatile values (ids, timestamps, secrets, ports, latencies, `doc_url`) are normalised
so that a rewrite changes only what changed.

The live answers are compared with the snapshots by shape, as a client meets them:
- a field (a key, at any depth; a list's items are merged) may be added, never removed or renamed;
- a value's JSON type may not change (a snapshot value of null says nothing of its type, so anything may follow
  it), nor may an object's `"object"` name;
- a list the snapshot has items in may not come back empty;
- the status code stays; headers may be added, never removed; CSV columns may be appended, never moved.
Additions pass (with a warning that the snapshots lag behind); anything else fails.

Rewriting (`UPDATE_GOLDEN=1 make test PYTEST_ARGS=tests/api/test_golden.py`) is allowed only for additive changes,
and then only those are written: the test refuses to write over a breaking one. A breaking change belongs in a
new dated version, whose change in the version registry renders the old shape for clients pinned to the old
one; only when that version is added may the snapshots of the newest be rewritten whole
(`UPDATE_GOLDEN=breaking`), in the same change, its description saying so.
"""

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
import json
import os
from pathlib import Path
import re
import warnings

from django.utils import timezone
import pytest
from rest_framework.test import APIClient

from billing.models import Price
from billing.services import balance_top_up
from messaging.carriers import sandbox
from messaging.carriers.base import DeliveryReport
from messaging.exports import export_run, exports_delete_expired
from messaging.models import Export, Message
from messaging.services import message_apply_delivery_report, message_send
from mittis.api.schema_compat import METHODS, generated_schema
from tests.conftest import SEED, drain_queued_tasks
from tests.factories import api_key_for
from tests.webhooks.conftest import receiver  # noqa: F401 (a fixture: the webhooks' real receiver)
from webhooks.models import Delivery
from webhooks.serializers import EVENT_TYPES
from webhooks.services import delivery_attempt

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN", "")

# Normalised values, so that snapshots do not change from run to run.
ID = re.compile(r"\b(acct|key|msg|evt|we|whd|exp|txn|opt|req|sbx)_[A-Za-z0-9]{6,}|\b(whsec)_[A-Za-z0-9+/]+=*")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
DATE = re.compile(r"^\d{4}-\d\d-\d\d$")
LOCAL_URL = re.compile(r"^http://127\.0\.0\.1:\d+")
VOLATILE_NUMBERS = {"latency_ms", "size"}
# Headers of the server in front, or of the answer's size, rather than the API's: not compared.
IGNORED_HEADERS = {"content-length", "date", "server"}


# --- Normalising ----------------------------------------------------------------------------------
def normalised(value, key: str = ""):
    if isinstance(value, dict):
        return {k: normalised(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [normalised(item, key) for item in value]
    if key == "doc_url" and isinstance(value, str):
        return "<doc_url>"  # relative or absolute (MITTIS_PUBLIC_URL): a link either way
    if key in VOLATILE_NUMBERS and isinstance(value, int) and not isinstance(value, bool):
        return 0
    if isinstance(value, str):
        if TIMESTAMP.match(value):
            return "<timestamp>"
        if DATE.match(value):
            return "<date>"
        return LOCAL_URL.sub("http://127.0.0.1:<port>", ID.sub(lambda m: f"{m.group(1) or m.group(2)}_…", value))
    return value


# --- Shapes ---------------------------------------------------------------------------------------
@dataclass
class Shape:
    """What a client can rely on in a JSON value: its types, its fields, its items (merged over a list)."""

    types: set[str] = field(default_factory=set)
    fields: dict[str, "Shape"] = field(default_factory=dict)
    items: "Shape | None" = None


def shape_of(value, into: Shape | None = None, *, key: str = "") -> Shape:
    into = into or Shape()
    if isinstance(value, dict):
        into.types.add("object")
        for name, item in value.items():
            into.fields[name] = shape_of(item, into.fields.get(name), key=name)
    elif isinstance(value, list):
        into.types.add("array")
        for item in value:
            into.items = shape_of(item, into.items)
    elif key == "object" and isinstance(value, str):
        into.types.add(f'"{value}"')  # the object's name is part of its type
    else:
        into.types.add({bool: "boolean", int: "number", float: "number", str: "string", type(None): "null"}[type(value)])
    return into


def shape_breaks(old: Shape, new: Shape, where: str) -> list[str]:
    """How `new` breaks a client of `old`, one line each."""
    found = []
    known = old.types - {"null"}
    if known and new.types - old.types:
        found.append(f"{where}: {'/'.join(sorted(old.types))} became {'/'.join(sorted(new.types))}")
    for name, old_field in old.fields.items():
        if name not in new.fields:
            found.append(f"{where}.{name}: removed")
        else:
            found += shape_breaks(old_field, new.fields[name], f"{where}.{name}")
    if old.items is not None:
        if new.items is None:
            found.append(f"{where}[]: no items any more (the snapshot has some)")
        else:
            found += shape_breaks(old.items, new.items, f"{where}[]")
    return found


def answer_breaks(old: dict, new: dict) -> list[str]:
    """How the answer `new` breaks a client of the snapshot `old` ({status, headers, body}), one line each."""
    found = []
    if old.get("status") != new.get("status"):
        found.append(f"status: {old.get('status')} became {new.get('status')}")
    missing = set(old.get("headers", [])) - set(new.get("headers", []))
    found += [f"header {name}: removed" for name in sorted(missing)]
    if "csv_columns" in old:
        if new.get("csv_columns", [])[:len(old["csv_columns"])] != old["csv_columns"]:
            found.append(f"CSV columns: {old['csv_columns']} are no longer the first of {new.get('csv_columns')}")
    return found + shape_breaks(shape_of(old.get("body")), shape_of(new.get("body")), "body")


def answer_additions(old: dict, new: dict) -> bool:
    return normalised(old) != normalised(new) and not answer_breaks(old, new)


# --- Recording ------------------------------------------------------------------------------------
def headers_of(response) -> list[str]:
    return sorted(name.lower() for name in response.headers if name.lower() not in IGNORED_HEADERS)


class Recorder:
    """Calls the API and keeps the first answer of each operation (or variant), as a snapshot would hold it."""

    def __init__(self, api: APIClient):
        self.api = api
        self.answers: dict[str, dict] = {}
        self.operations = [(re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"), method, path,
                            op["operationId"]) for path, item in generated_schema()["paths"].items()
                           for method, op in item.items() if method in METHODS]

    def operation(self, method: str, path: str) -> tuple[str, str]:
        """The operation's id and its path as the schema spells it."""
        [found] = [(op, template) for pattern, m, template, op in self.operations
                   if m == method and pattern.match(path.split("?")[0])]
        return found

    def call(self, method: str, path: str, body=None, *, client: APIClient | None = None, variant: str = "",
             record: bool = True, **extra):
        request = getattr(client or self.api, method)
        response = request(path, body, format="json", **extra) if body is not None else request(path, **extra)
        if record:
            operation, template = self.operation(method, path)
            self.answers.setdefault(operation + (f"-{variant}" if variant else ""),
                                    {"request": f"{method.upper()} {template}", **answer(response)})
        return response

    def error(self, response) -> None:
        error = response.json()["error"]
        self.answers.setdefault(f"errors/{response.status_code}-{error['code']}", {
            "request": f"{response.request['REQUEST_METHOD']} {response.request['PATH_INFO']}", **answer(response)})


def answer(response) -> dict:
    content_type = response.headers.get("Content-Type", "")
    recorded = {"status": response.status_code, "headers": headers_of(response)}
    if getattr(response, "streaming", False):
        content = b"".join(response.streaming_content).decode()
        if "ndjson" in content_type:
            return {**recorded, "body": [json.loads(line) for line in content.splitlines()]}
        return {**recorded, "csv_columns": content.splitlines()[0].split(","), "body": None}
    return {**recorded, "body": response.json() if response.content else None}


# --- The scenario ---------------------------------------------------------------------------------
def later(**delta) -> str:
    return (timezone.now() + timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def deliver(message_id: str, status: str) -> None:
    """What the sandbox carrier's report does, now."""
    message = Message.objects.get(public_id=message_id)
    message_apply_delivery_report(carrier=message.carrier, report=DeliveryReport(
        message.carrier_message_id, status, carrier_status=status.upper(), error_code="unknown_subscriber"))


def scenario(api: APIClient, account, receiver, settings) -> tuple[dict, dict]:  # noqa: F811 (receiver)
    """Every operation and webhook payload type, driven for real. Returns (answers by snapshot name, webhook
    payloads by type)."""
    rec = Recorder(api)
    live = APIClient()
    live.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(account, livemode=True)}")
    anonymous = APIClient()

    # Webhooks first, so that every event below is delivered to the receiver.
    endpoint = rec.call("post", "/v1/webhook_endpoints", {"url": receiver.url, "description": "golden"}).json()
    rec.call("get", "/v1/webhook_endpoints")
    rec.call("get", f"/v1/webhook_endpoints/{endpoint['id']}")
    rec.call("patch", f"/v1/webhook_endpoints/{endpoint['id']}", {"enabled_events": ["*"]})
    rec.call("post", f"/v1/webhook_endpoints/{endpoint['id']}/rotate_secret")
    spare = rec.call("post", "/v1/webhook_endpoints", {"url": receiver.url}, record=False).json()
    rec.call("delete", f"/v1/webhook_endpoints/{spare['id']}")
    rec.call("get", "/v1/callback_secret")
    rec.call("post", "/v1/callback_secret/rotate")

    # Messages through every status with an event.
    rec.call("post", "/v1/messages/preview", {**SEED, "body": "It’s 15 minutes out."})  # a UCS-2 one names why
    delivered = rec.call("post", "/v1/messages", {**SEED, "metadata": {"order_id": "A-1001"}}).json()
    undelivered = rec.call("post", "/v1/messages", {**SEED, "to": sandbox.UNDELIVERED}, record=False).json()
    failed = rec.call("post", "/v1/messages", {**SEED, "to": sandbox.FAILS}, record=False).json()
    scheduled = rec.call("post", "/v1/messages", {**SEED, "send_at": later(hours=1)}, record=False).json()
    for sent in (delivered, undelivered, failed):
        message_send(message_id=Message.objects.get(public_id=sent["id"]).pk)
    rec.call("post", f"/v1/test_helpers/messages/{delivered['id']}/delivery_report", {"status": "delivered"})
    deliver(undelivered["id"], "undelivered")
    rec.call("post", f"/v1/messages/{scheduled['id']}/cancel")
    rec.call("post", "/v1/test_helpers/inbound_messages", {"from": "+18045550188", "to": SEED["from"], "body": "STOP"})
    rec.call("get", f"/v1/messages/{delivered['id']}")
    rec.call("get", "/v1/messages")
    rec.call("get", f"/v1/messages/{delivered['id']}/events")
    rec.call("post", f"/v1/messages/{undelivered['id']}/redact")
    rec.call("get", "/v1/opt_outs")
    rec.call("get", f"/v1/usage?start={later(hours=-1)}&end={later(hours=1)}&group_by=day")
    Price.objects.create(country="GB", unit_price=Decimal("0.04"), effective_from=timezone.now() - timedelta(days=1))
    Price.objects.create(country="GB", unit_price=Decimal("0.05"), effective_from=timezone.now() + timedelta(days=30))
    rec.call("get", "/v1/pricing", client=anonymous)

    # Events and their deliveries.
    events = rec.call("get", "/v1/events").json()["data"]
    rec.call("get", f"/v1/events/{events[0]['id']}")
    for delivery in Delivery.objects.filter(status=Delivery.PENDING).order_by("pk"):
        delivery_attempt(delivery_id=delivery.pk)
    rec.call("get", f"/v1/webhook_endpoints/{endpoint['id']}/deliveries")
    rec.call("post", f"/v1/events/{events[0]['id']}/redeliver", {})
    rec.call("post", f"/v1/webhook_endpoints/{endpoint['id']}/recover", {"since": later(hours=-1)})

    # Exports, in both formats.
    window = {"start": later(hours=-1), "end": later(hours=1)}
    for export_format in ("csv", "ndjson"):
        started = rec.call("post", "/v1/exports", {"type": "messages", "format": export_format, **window}).json()
        export_run(export_id=Export.objects.get(public_id=started["id"]).pk)
        rec.call("get", f"/v1/exports/{started['id']}")
        rec.call("get", f"/v1/exports/{started['id']}/download", variant="" if export_format == "ndjson" else "csv")
    rec.call("get", "/v1/exports")

    # Money, in live mode (test mode is never charged).
    rec.error(live.post("/v1/messages", SEED, format="json"))  # 402: nothing to pay with yet
    balance_top_up(account_id=account.pk, livemode=True, amount=Decimal("1"))
    rec.call("post", "/v1/messages", SEED, client=live, record=False)
    rec.call("get", "/v1/balance", client=live)
    rec.call("get", "/v1/ledger", client=live)

    # One error of each status the API answers with.
    rec.error(api.post("/v1/messages", {"to": "nope", "body": ""}, format="json"))
    rec.error(anonymous.get("/v1/messages"))
    rec.error(api.get("/v1/messages/msg_nope"))
    rec.error(api.post(f"/v1/messages/{delivered['id']}/cancel"))
    Export.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    exports_delete_expired()
    rec.error(api.get(f"/v1/exports/{started['id']}/download"))
    rec.error(api.post("/v1/messages", data='{"body": "' + "x" * 1_100_000 + '"}', content_type="application/json"))
    rec.error(api.post("/v1/messages", data="body=hi", content_type="text/plain"))
    api.post("/v1/messages", SEED, format="json", HTTP_IDEMPOTENCY_KEY="golden-1")
    rec.error(api.post("/v1/messages", {**SEED, "body": "Another"}, format="json", HTTP_IDEMPOTENCY_KEY="golden-1"))
    settings.MITTIS_ANONYMOUS_RATE_LIMIT = 1
    rec.error(next(response for response in (anonymous.get("/v1/pricing") for _ in range(5))
                   if response.status_code == 429))

    payloads = {}
    for request in receiver.requests:
        payload = json.loads(request.body)
        payloads.setdefault(f"webhooks/{payload['type']}", {
            "request": "POST <endpoint url>", "body": payload,
            # What the contract names (the transport's own, such as user-agent, are not the API's).
            "headers": sorted(k for k in request.headers if k == "content-type" or k.startswith("webhook-"))})
    return {f"responses/{name}" if "/" not in name else name: value for name, value in rec.answers.items()}, payloads


# --- The tests ------------------------------------------------------------------------------------
def snapshot_path(name: str) -> Path:
    return GOLDEN / f"{name}.json"


def written(value: dict) -> str:
    return json.dumps(normalised(value), indent=2, ensure_ascii=False) + "\n"


def test_every_answer_and_webhook_payload_is_its_golden_snapshot_or_adds_to_it(api, account, receiver,  # noqa: F811
                                                                              settings):
    answers, payloads = scenario(api, account, receiver, settings)
    live = {**answers, **payloads}
    drain_queued_tasks()  # the flushes the deliveries asked for: sent here already, and not the next test's

    operations = {op for *_, op in Recorder(api).operations}
    assert operations <= {name.split("/")[1].split("-")[0] for name in answers if name.startswith("responses/")}, \
        "every operation of /openapi.json needs a representative answer: drive it in `scenario`"
    assert {f"webhooks/{t}" for t in EVENT_TYPES} <= set(payloads), "every webhook payload type is snapshotted"

    stored = {str(path.relative_to(GOLDEN).with_suffix("")): json.loads(path.read_text())
              for path in GOLDEN.rglob("*.json")}
    breaks = [f"{name}: no longer answered" for name in sorted(set(stored) - set(live))]
    for name in sorted(set(stored) & set(live)):
        breaks += [f"{name}: {line}" for line in answer_breaks(stored[name], live[name])]
    new = sorted(set(live) - set(stored))
    added = [name for name in sorted(set(stored) & set(live)) if answer_additions(stored[name], live[name])]

    if UPDATE == "breaking":
        for path in GOLDEN.rglob("*.json"):
            path.unlink()
    if UPDATE == "breaking" or (UPDATE and not breaks):
        for name in live:
            snapshot_path(name).parent.mkdir(parents=True, exist_ok=True)
            snapshot_path(name).write_text(written(live[name]))
        return
    assert not breaks, ("The API's answers break the golden snapshots (tests/api/golden/); a breaking change needs "
                        "a new dated version:\n  " + "\n  ".join(breaks))
    assert not new, f"No snapshot yet for {new}: write them with UPDATE_GOLDEN=1 (see this module's docstring)"
    if added:
        warnings.warn(f"Additions not yet in the golden snapshots: {added}; UPDATE_GOLDEN=1 writes them")


def test_the_readmes_example_answer_has_the_fields_of_the_real_one():
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    example = json.loads(re.search(r"```json\n(\{\"object\": \"message\".*?)```", readme, re.S).group(1))

    assert list(example) == list(json.loads(snapshot_path("responses/messages_create").read_text())["body"])


SNAPSHOT = {"status": 200, "headers": ["content-type", "request-id"],
            "body": {"object": "message", "id": "msg_…", "sent_at": None, "metadata": {"order_id": "A-1"},
                     "attempts": [{"carrier": "sandbox", "latency_ms": 12}], "price": "0.008"}}


@pytest.mark.parametrize("change, broken", [
    ({}, []),
    ({"headers": ["content-type", "mittis-version", "request-id"]}, []),  # a header added
    ({"body": {**SNAPSHOT["body"], "delivered_at": None}}, []),  # a field added
    ({"body": {**SNAPSHOT["body"], "sent_at": "2026-06-12T14:03:22Z"}}, []),  # null said nothing of its type
    ({"body": {**SNAPSHOT["body"], "attempts": [{"carrier": "sandbox", "latency_ms": 12, "raw_code": None}]}}, []),
    ({"headers": ["content-type"]}, ["header request-id: removed"]),
    ({"status": 201}, ["status: 200 became 201"]),
    ({"body": {k: v for k, v in SNAPSHOT["body"].items() if k != "price"}}, ["body.price: removed"]),
    ({"body": {**{k: v for k, v in SNAPSHOT["body"].items() if k != "price"}, "amount": "0.008"}},
     ["body.price: removed"]),  # renamed
    ({"body": {**SNAPSHOT["body"], "price": 0.008}}, ["body.price: string became number"]),
    ({"body": {**SNAPSHOT["body"], "object": "sms"}}, ['body.object: "message" became "sms"']),
    ({"body": {**SNAPSHOT["body"], "attempts": [{"carrier": "sandbox"}]}}, ["body.attempts[].latency_ms: removed"]),
    ({"body": {**SNAPSHOT["body"], "attempts": []}}, ["body.attempts[]: no items any more (the snapshot has some)"]),
    ({"body": {**SNAPSHOT["body"], "metadata": "order_id=A-1"}}, ["body.metadata: object became string",
                                                                  "body.metadata.order_id: removed"]),
])
def test_the_comparer_allows_additions_only(change, broken):
    assert answer_breaks(SNAPSHOT, {**SNAPSHOT, **change}) == broken


@pytest.mark.parametrize("old, new, broken", [
    (["object", "id"], ["object", "id", "sent_at"], False),
    (["object", "id"], ["object", "sent_at", "id"], True),
    (["object", "id"], ["object"], True),
])
def test_csv_columns_may_only_be_appended(old, new, broken):
    assert bool(answer_breaks({"csv_columns": old}, {"csv_columns": new})) == broken


def test_doc_urls_relative_or_absolute_and_ids_and_times_are_normalised():
    error = {"error": {"doc_url": "https://api.mittis.example/docs/errors#x", "request_id": "req_4f9XkQ2m9TbP8sLw1yZc",
                       "at": "2026-06-12T14:03:22Z", "url": "http://127.0.0.1:53211/hooks/x"}}

    assert normalised(error) == normalised({"error": {**error["error"], "doc_url": "/docs/errors#x"}}) == {
        "error": {"doc_url": "<doc_url>", "request_id": "req_…", "at": "<timestamp>",
                  "url": "http://127.0.0.1:<port>/hooks/x"}}
