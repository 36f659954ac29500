"""The Python SDK (sdk/python) against the real server: every operation, typed answers, errors by type,
retries that never send twice, pagination both ways, the version it pins and the rate limit it read."""

import asyncio
from datetime import datetime, timedelta, timezone
from decimal import Decimal
import inspect
import json
from pathlib import Path
import re
import time
import urllib.request

import httpx
import pytest

import mittis_sdk
from mittis_sdk import AsyncMittis, Mittis, models, resources
from mittis_sdk._core import INITIAL_RETRY_DELAY, MAX_RETRY_AFTER, retry_delay
from mittis_sdk._errors import error_from_response
from mittis_sdk._operations import OPERATIONS
from messaging.models import Message
from tests.conftest import SEED
from tests.factories import api_key_for

ROOT = Path(__file__).resolve().parents[2]
SEND = {"from_": SEED["from"], "to": SEED["to"], "body": SEED["body"]}


# --- the surface ------------------------------------------------------------------------------------------
def test_the_sdk_has_every_operation_of_the_servers_schema(server_url):
    schema = json.loads(urllib.request.urlopen(f"{server_url}/openapi.json", timeout=10).read())
    served = {operation["operationId"]: (method.upper(), path) for path, item in schema["paths"].items()
              for method, operation in item.items() if method in {"get", "post", "patch", "delete", "put"}}

    assert OPERATIONS == served


def _public_methods(cls) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(member) for name, member in vars(cls).items()
            if callable(member) and not name.startswith("_")}


@pytest.mark.parametrize("sync_cls, async_cls", [
    (getattr(resources, name), getattr(resources, f"Async{name}"))
    for name in dir(resources) if f"Async{name}" in dir(resources)], ids=lambda cls: cls.__name__)
def test_the_async_client_has_the_sync_clients_methods_and_signatures(sync_cls, async_cls):
    synced, awaited = _public_methods(sync_cls), _public_methods(async_cls)

    assert set(synced) == set(awaited)
    for name, signature in synced.items():
        assert [(p.name, p.kind, p.default) for p in signature.parameters.values()] == \
            [(p.name, p.kind, p.default) for p in awaited[name].parameters.values()], name


def test_every_resource_is_on_both_clients(sdk_key):
    sync, awaited = Mittis(sdk_key), AsyncMittis(sdk_key)
    names = ["messages", "events", "webhook_endpoints", "callback_secret", "exports", "opt_outs", "balance",
             "ledger", "pricing", "usage", "test_helpers", "webhooks"]

    for name in names:
        assert type(getattr(awaited, name)).__name__ in {f"Async{type(getattr(sync, name)).__name__}", "Webhooks"}


# Each model against the schema's object of the same shape: the fields the API sends are the fields declared.
MODEL_SCHEMAS = {
    "Message": models.Message, "Event": models.Event, "SendAttempt": models.SendAttempt,
    "MessagePreview": models.MessagePreview, "EndpointWithSecret": models.WebhookEndpoint,
    "EndpointDeleted": models.DeletedWebhookEndpoint, "DeliveryAttempt": models.WebhookDeliveryAttempt,
    "EventRedelivery": models.EventRedelivery, "WebhookRecovery": models.WebhookRecovery, "Export": models.Export,
    "OptOut": models.OptOut, "Balance": models.Balance, "LedgerEntry": models.LedgerEntry, "Price": models.Price,
    "PriceTable": models.PriceTable, "Usage": models.Usage, "UsageRow": models.UsageRow,
    "CallbackSecret": models.CallbackSecret,
}


@pytest.mark.parametrize("schema_name", MODEL_SCHEMAS)
def test_each_model_declares_exactly_the_fields_of_its_schema_object(schema_name):
    schema = json.loads((ROOT / "mittis/api/openapi-v1.json").read_text())["components"]["schemas"][schema_name]
    model = MODEL_SCHEMAS[schema_name]

    assert {f.alias or name for name, f in model.model_fields.items()} == set(schema["properties"])


GOLDEN_MODELS = {"messages_create": models.Message, "messages_retrieve": models.Message,
                 "messages_cancel": models.Message, "messages_redact": models.Message,
                 "messages_preview": models.MessagePreview, "events_retrieve": models.Event,
                 "events_redeliver": models.EventRedelivery, "exports_create": models.Export,
                 "exports_retrieve": models.Export, "webhook_endpoints_create": models.WebhookEndpoint,
                 "webhook_endpoints_retrieve": models.WebhookEndpoint, "webhook_endpoints_delete": models.DeletedWebhookEndpoint,
                 "webhook_endpoints_recover": models.WebhookRecovery, "balance_retrieve": models.Balance,
                 "pricing_retrieve": models.PriceTable, "usage_retrieve": models.Usage,
                 "callback_secret_retrieve": models.CallbackSecret, "messages_list": models.Message,
                 "events_list": models.Event, "messages_events": models.Event, "ledger_list": models.LedgerEntry,
                 "opt_outs_list": models.OptOut, "webhook_endpoints_deliveries": models.WebhookDeliveryAttempt,
                 "exports_list": models.Export, "webhook_endpoints_list": models.WebhookEndpoint}


@pytest.mark.parametrize("operation", GOLDEN_MODELS)
def test_the_golden_answers_parse_into_their_models_with_nothing_left_over(operation):
    text = (ROOT / f"tests/api/golden/responses/{operation}.json").read_text()
    body = json.loads(text.replace('"<timestamp>"', '"2026-12-07T12:00:00Z"').replace('"<date>"', '"2026-12-07"'))["body"]
    objects = body["data"] if body.get("object") == "list" else [body]

    assert objects
    for item in objects:
        parsed = GOLDEN_MODELS[operation].model_validate(item)
        assert not parsed.model_extra, parsed.model_extra
        assert parsed.to_dict() | item == parsed.to_dict() or set(item) <= set(parsed.to_dict())


def test_unknown_fields_and_unknown_enum_values_are_kept_not_refused():
    wire = {"object": "message", "id": "msg_x", "status": "teleported", "direction": "sideways", "from": "+18045550142",
            "to": "+18045550199", "body": "hi", "encoding": "UTF-9", "segments": 1, "price": "0.008",
            "currency": "USD", "created_at": "2026-12-07T12:00:00Z", "updated_at": "2026-12-07T12:00:00Z",
            "livemode": False, "carbon_grams": "0.2", "attempts": [{"attempted_at": "2026-12-07T12:00:00Z",
            "carrier": "x", "outcome": "beamed", "latency_ms": 3, "hops": 2}]}

    message = models.Message.model_validate(wire)
    event = models.Event.model_validate({"object": "event", "id": "evt_x", "type": "message.teleported",
                                         "sequence": 1, "created_at": "2026-12-07T12:00:00Z", "livemode": False,
                                         "data": {"object": "teleport", "id": "tp_1"}})

    assert (message.status, message.direction, message.encoding) == ("teleported", "sideways", "UTF-9")
    assert message.carbon_grams == "0.2" and message.attempts[0].hops == 2
    assert message.to_dict()["from"] == "+18045550142" and message.to_dict()["carbon_grams"] == "0.2"
    assert event.type == "message.teleported" and event.data == {"object": "teleport", "id": "tp_1"}


# --- sending, reading, listing --------------------------------------------------------------------------------
def test_a_send_is_typed_and_reads_back(client):
    message = client.messages.create(**SEND, metadata={"order": "42"})
    read = client.messages.retrieve(message.id)

    assert isinstance(message, models.Message) and message.id.startswith("msg_")
    assert (message.from_, message.to, message.status, message.metadata) == (SEED["from"], SEED["to"], "queued",
                                                                             {"order": "42"})
    assert message.price == Decimal("0.008") and isinstance(message.created_at, datetime)
    assert message.created_at.tzinfo is not None and read.id == message.id
    assert client.last_response.status_code == 200 and client.last_response.request_id.startswith("req_")


def test_the_rate_limit_of_the_last_response_is_readable(client, sdk_account):
    client.balance.retrieve()
    first = client.last_response.rate_limit
    client.balance.retrieve()
    second = client.last_response.rate_limit

    assert first.limit == sdk_account.rate_limit
    assert second.remaining == first.remaining - 1 or second.reset != first.reset  # or a new window began
    assert first.reset > datetime.now(timezone.utc) - timedelta(seconds=1)


def test_the_pinned_version_is_sent_and_another_can_be_chosen_per_client(client, sdk_key, server_url):
    client.balance.retrieve()
    assert client.api_version == mittis_sdk.API_VERSION == client.last_response.api_version

    with pytest.raises(mittis_sdk.InvalidRequestError) as refused:
        client.with_options(api_version="1999-01-01").balance.retrieve()
    assert refused.value.code == "api_version_invalid"
    assert Mittis(sdk_key, base_url=server_url, api_version="1999-01-01").api_version == "1999-01-01"


def test_errors_are_exceptions_by_type_with_the_error_fields(client, sdk_key, server_url):
    with pytest.raises(mittis_sdk.InvalidRequestError) as invalid:
        client.messages.create(from_=SEED["from"], to="12345", body="hi")
    with pytest.raises(mittis_sdk.NotFoundError) as missing:
        client.messages.retrieve("msg_doesnotexist0000000000")
    with pytest.raises(mittis_sdk.AuthenticationError) as unauthenticated:
        Mittis("mk_test_unknown", base_url=server_url).balance.retrieve()

    error = invalid.value
    assert (error.http_status, error.type, error.code, error.field) == (400, "invalid_request_error",
                                                                        "invalid_phone_number", "to")
    assert error.doc_url.endswith("/docs/errors#invalid_phone_number") and error.request_id.startswith("req_")
    assert "E.164" in error.message and error.errors[0]["field"] == "to"
    assert (missing.value.http_status, missing.value.code) == (404, "resource_missing")
    assert (unauthenticated.value.http_status, unauthenticated.value.code) == (401, "invalid_api_key")


def test_an_opted_out_recipient_is_an_invalid_request_naming_to(client):
    client.test_helpers.inbound_messages.create(from_=SEED["to"], to=SEED["from"], body="STOP")

    with pytest.raises(mittis_sdk.InvalidRequestError) as refused:
        client.messages.create(**SEND)

    assert (refused.value.http_status, refused.value.code, refused.value.field) == (422, "recipient_opted_out", "to")
    assert [o.phone_number for o in client.opt_outs.list()] == [SEED["to"]]


@pytest.mark.parametrize("walk", ["sync", "async"])
def test_auto_pagination_walks_every_page_forwards_and_backwards(client, sdk_key, server_url, walk):
    sent = [client.messages.create(**SEND, metadata={"n": str(n)}).id for n in range(7)]
    newest_first = list(reversed(sent))

    if walk == "sync":
        forwards = [m.id for m in client.messages.list(limit=2)]
        backwards = [m.id for m in client.messages.list(limit=2, ending_before=sent[0])]
        first_page = client.messages.list(limit=3)
        filtered = [m.id for m in client.messages.list(limit=2, status="queued", to=SEED["to"])]
    else:
        async def run():
            async with AsyncMittis(sdk_key, base_url=server_url) as aclient:
                forwards = [m.id async for m in aclient.messages.list(limit=2)]
                backwards = [m.id async for m in aclient.messages.list(limit=2, ending_before=sent[0])]
                first_page = await aclient.messages.list(limit=3)
                filtered = [m.id async for m in aclient.messages.list(limit=2, status="queued", to=SEED["to"])]
                return forwards, backwards, first_page, filtered

        forwards, backwards, first_page, filtered = asyncio.run(run())

    assert forwards == newest_first and filtered == newest_first
    assert backwards == sent[1:]  # towards newer objects, in the order it travels
    assert [m.id for m in first_page.data] == newest_first[:3] and first_page.has_more


def test_the_async_client_sends_reads_and_raises_as_the_sync_one(sdk_key, server_url):
    async def run():
        async with AsyncMittis(sdk_key, base_url=server_url) as aclient:
            message = await aclient.messages.create(**SEND)
            read = await aclient.messages.retrieve(message.id)
            timeline = [event.type async for event in aclient.messages.list_events(message.id)]
            try:
                await aclient.messages.retrieve("msg_doesnotexist0000000000")
            except mittis_sdk.NotFoundError as error:
                return message, read, timeline, error, aclient.last_response

    message, read, timeline, error, last = asyncio.run(run())

    assert read.id == message.id and read.status in {"queued", "sending", "sent", "delivered"}
    assert timeline[0] == "message.queued" and error.code == "resource_missing" and last.status_code == 404


# --- retries: never twice ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_send_retried_across_a_dropped_connection_creates_one_message(sdk_key, sdk_account, cutter, flavour):
    cutter.cuts = 1  # the server commits the first try; its answer never reaches the client

    if flavour == "sync":
        with Mittis(sdk_key, base_url=cutter.url) as retrying:
            message = retrying.messages.create(**SEND)
            last = retrying.last_response
    else:
        async def run():
            async with AsyncMittis(sdk_key, base_url=cutter.url) as retrying:
                return await retrying.messages.create(**SEND), retrying.last_response

        message, last = asyncio.run(run())

    assert Message.objects.filter(account=sdk_account).count() == 1
    assert Message.objects.get(account=sdk_account).public_id == message.id
    assert len(cutter.heads) == 2 and last.tries == 2 and last.idempotent_replayed
    key = cutter.header(0, "Idempotency-Key")
    assert key and cutter.header(1, "Idempotency-Key") == key == last.idempotency_key


def test_each_call_has_its_own_key_and_a_given_key_is_used_as_given(client, sdk_account):
    first = client.messages.create(**SEND)
    first_key = client.last_response.idempotency_key
    second = client.messages.create(**SEND)
    mine = client.messages.create(**SEND, idempotency_key="order-42-reminder")
    again = client.messages.create(**SEND, idempotency_key="order-42-reminder")

    assert first.id != second.id and first_key != client.last_response.idempotency_key
    assert mine.id == again.id and client.last_response.idempotent_replayed
    assert Message.objects.filter(account=sdk_account).count() == 3


def test_without_retries_a_dropped_connection_is_a_connection_error(sdk_key, cutter):
    cutter.cuts = 1

    with pytest.raises(mittis_sdk.APIConnectionError):
        Mittis(sdk_key, base_url=cutter.url, max_retries=0).balance.retrieve()


def test_a_429_is_retried_after_its_retry_after(sdk_key, sdk_account, server_url):
    sdk_account.rate_limit = 1
    sdk_account.save(update_fields=["rate_limit"])
    client = Mittis(sdk_key, base_url=server_url, max_retries=3)

    client.balance.retrieve()
    client.balance.retrieve()  # the window's one request is spent: 429, Retry-After, then this

    assert client.last_response.status_code == 200 and client.last_response.tries >= 2
    impatient = Mittis(sdk_key, base_url=server_url, max_retries=0)
    with pytest.raises(mittis_sdk.RateLimitError) as limited:
        for _ in range(5):  # two in one window: a window may end between two of them, never between three
            impatient.balance.retrieve()
    assert limited.value.http_status == 429 and 0 < limited.value.retry_after <= 1


def _error(status: int, code: str = "x", type_: str = "api_error", **headers) -> mittis_sdk.APIError:
    body = {"error": {"type": type_, "code": code, "message": "m", "field": None}}
    return error_from_response(httpx.Response(status, json=body, headers=headers))


@pytest.mark.parametrize("error, retried", [
    (_error(500), True), (_error(503), True), (_error(502), True), (_error(429, "rate_limit_exceeded", "rate_limit_error"), True),
    (_error(409, "idempotency_key_in_use", "idempotency_error"), True),
    (_error(422, "idempotency_key_reused", "idempotency_error"), False),
    (_error(400, "parameter_invalid", "invalid_request_error"), False),
    (_error(402, "insufficient_funds", "billing_error"), False), (_error(404, "resource_missing", "not_found_error"), False),
], ids=["500", "503", "502", "429", "409-in-use", "422-reused", "400", "402", "404"])
def test_what_is_retried(error, retried):
    assert (retry_delay(tries=1, max_retries=2, error=error) is not None) == retried
    assert retry_delay(tries=3, max_retries=2, error=error) is None  # never past max_retries


def test_backoff_doubles_with_jitter_and_retry_after_is_honoured():
    delays = [retry_delay(tries=tries, max_retries=9) for tries in (1, 2, 3)]

    for tries, delay in enumerate(delays, start=1):
        assert 0.75 * INITIAL_RETRY_DELAY * 2 ** (tries - 1) <= delay <= INITIAL_RETRY_DELAY * 2 ** (tries - 1)
    assert retry_delay(tries=1, max_retries=2, error=_error(503, **{"Retry-After": "3"})) == 3
    assert retry_delay(tries=1, max_retries=2, error=_error(503, **{"Retry-After": str(MAX_RETRY_AFTER + 1)})) is None


def test_errors_map_by_type_and_by_status_when_the_body_is_not_the_error_shape():
    assert type(_error(402, "insufficient_funds", "billing_error")) is mittis_sdk.BillingError
    assert type(_error(409, "idempotency_key_in_use", "idempotency_error")) is mittis_sdk.IdempotencyError
    assert type(_error(403, "permission_denied", "permission_error")) is mittis_sdk.PermissionDeniedError
    proxy_page = error_from_response(httpx.Response(502, text="<html>Bad gateway</html>"))
    assert type(proxy_page) is mittis_sdk.ServerError and proxy_page.code == "http_502"


# --- every operation, through the SDK -------------------------------------------------------------------------
def test_every_operation_answers_through_the_sdk(sdk_key, server_url, receiver, worker):
    called = []
    hooks = {"response": [lambda response: called.append(response.request)]}
    with Mittis(sdk_key, base_url=server_url, http_client=httpx.Client(event_hooks=hooks)) as client:
        endpoint = client.webhook_endpoints.create(url=receiver.url, description="tour")
        preview = client.messages.preview(**SEND)
        message = client.messages.create(**SEND)
        scheduled = client.messages.create(**SEND, send_at=datetime.now(timezone.utc) + timedelta(hours=1))
        canceled = client.messages.cancel(scheduled.id)
        never = client.messages.create(from_=SEED["from"], to="+15005550003", body="never reported")
        _wait(lambda: client.messages.retrieve(never.id).status == "sent")
        settled = client.test_helpers.messages.delivery_report(never.id, status="delivered")
        redacted = client.messages.redact(settled.id)
        inbound = client.test_helpers.inbound_messages.create(from_="+18045550100", to=SEED["from"], body="Hi!")
        receiver.wait_for(1)
        _wait(lambda: len(client.webhook_endpoints.list_deliveries(endpoint.id).data) >= 1)
        updated = client.webhook_endpoints.update(endpoint.id, description="tour, renamed")
        rotated = client.webhook_endpoints.rotate_secret(endpoint.id)
        recovery = client.webhook_endpoints.recover(endpoint.id, since=datetime.now(timezone.utc) - timedelta(hours=1))
        event = client.events.list(limit=1).data[0]
        redelivery = client.events.redeliver(event.id)
        export = client.exports.create(type="messages", start=datetime.now(timezone.utc) - timedelta(days=1),
                                       end=datetime.now(timezone.utc) + timedelta(minutes=1), format="ndjson")
        export = _wait(lambda: (e := client.exports.retrieve(export.id)).status == "succeeded" and e)
        rows = client.exports.download(export.id).decode().splitlines()
        results = {
            "preview": preview, "timeline": [e.type for e in client.messages.list_events(message.id)],
            "event": client.events.retrieve(event.id), "endpoints": list(client.webhook_endpoints.list()),
            "endpoint": client.webhook_endpoints.retrieve(endpoint.id), "exports": list(client.exports.list()),
            "callback_secret": client.callback_secret.retrieve(), "rotated_callback": client.callback_secret.rotate(),
            "opt_outs": list(client.opt_outs.list()), "balance": client.balance.retrieve(),
            "ledger": list(client.ledger.list()), "pricing": client.pricing.retrieve(),
            "usage": client.usage.retrieve(start=datetime.now(timezone.utc) - timedelta(days=1),
                                           end=datetime.now(timezone.utc) + timedelta(minutes=1), group_by="status"),
                "messages": client.messages.list(limit=1).data,
            "deleted": client.webhook_endpoints.delete(endpoint.id),
        }

    assert preview.segments == 1 and canceled.status == "canceled" and settled.status == "delivered"
    assert redacted.body is None and redacted.redacted_at and inbound.direction == "inbound"
    assert endpoint.secret.startswith("whsec_") and rotated.secret != endpoint.secret
    assert updated.description == "tour, renamed" and recovery.status == "queued"
    assert redelivery.endpoints == [endpoint.id] and results["event"].id == event.id
    assert results["timeline"][0] == "message.queued" and len(rows) == 4
    assert results["endpoint"].id == endpoint.id and [e.id for e in results["endpoints"]] == [endpoint.id]
    assert results["rotated_callback"].secret != results["callback_secret"].secret
    assert results["deleted"].deleted and results["pricing"].default.price > 0
    assert isinstance(results["balance"].available, Decimal) and results["exports"][0].id == export.id
    assert {row.status for row in results["usage"].data} >= {"delivered", "canceled"}
    assert {_operation(request) for request in called} == set(OPERATIONS)


def _operation(request: httpx.Request) -> str:
    path = request.url.path
    for name, (method, template) in OPERATIONS.items():
        if method == request.method and re.fullmatch(template.replace("{id}", "[^/]+"), path):
            return name
    raise AssertionError(f"no operation for {request.method} {path}")


def _wait(condition, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "did not happen in time"
        time.sleep(0.1)
    return value


def test_a_live_key_cannot_reach_the_test_helpers(server_url, sdk_account):
    live = Mittis(api_key_for(sdk_account, livemode=True), base_url=server_url)

    with pytest.raises(mittis_sdk.NotFoundError):
        live.test_helpers.inbound_messages.create(from_="+18045550100", to=SEED["from"], body="Hi")
