"""The API's description as a whole, for `/docs` and `/openapi.json` (a drf-spectacular postprocessing hook).

It names what the apps document (messaging's failure codes, the export's columns) beside the platform's error
catalogue, so it sits above the apps, as urls.py does: `mittis.api` never imports an app.
"""

from messaging.errors import catalogue_markdown
from messaging.exports import MESSAGE_COLUMNS
from mittis import versions
from mittis.api.schema import error_catalogue_markdown

API_DESCRIPTION = """
Send an SMS with one POST and follow it to `delivered`. Every endpoint is under `/v1`; every answer is JSON.

## Authentication
`Authorization: Bearer <key>`. Keys start `mk_live_` (live) or `mk_test_` (test mode: a full sandbox,
never charged, never reaching a real phone). A missing key is `401 missing_api_key`; an unknown or revoked
one `401 invalid_api_key`.

## Versions
`/v1` is the path; within it, dated versions choose the shapes. Send `Mittis-Version: CURRENT_API_VERSION` to
choose one; without the header a request is answered in your account's version, pinned when the account was
created. Every answer names the version it was rendered in, in its `Mittis-Version` header (an idempotent replay:
the first answer's); an unknown version is `400 api_version_invalid`. A webhook endpoint has an `api_version` of
its own (your account's when it is created; `PATCH` it to move), and its payloads are rendered in it;
`status_callback` requests are rendered in your account's; each webhook request names its version in
`Mittis-Version` too. New fields, enum values, event types and endpoints
come without a new version: ignore what you do not know. The versions and their changes:
[/docs/changelog](/docs/changelog); what is breaking and how long a version lives: [/docs/versioning](/docs/versioning).

## Objects
Ids are prefixed random strings (`msg_…`, `evt_…`); every object has `"object": "<type>"`. Timestamps are
UTC ISO 8601 with a `Z`, to the second. Money is a decimal string (`"0.008"`) with a `currency`.
A message says when it reached each status that has a time: `sent_at`, `delivered_at`, `undelivered_at`,
`failed_at`, `canceled_at`, `expired_at`, each null until it happens (a message sent, then delivered, has both).

## Lists
`{"object": "list", "url": …, "data": [...], "has_more": …}`, newest first; `limit` 1-100 (default 20),
`starting_after` / `ending_before` take an object id.

## Scheduling, cancelling, expiry and redaction
- `send_at` (60 s to 35 days ahead) makes a `scheduled` message (`message.scheduled`), charged now and sent
  at its time (`message.queued`); `POST /v1/messages/{id}/cancel` cancels it (refunded, `message.canceled`);
  anything else is `409 message_not_cancelable`.
- `validity_period` (1-36,000 s, 4 hours by default, counted from `send_at` or now): a message not handed to
  a carrier within it becomes `expired` (refunded, `message.failed`) instead of going out late. Carriers
  whose protocol has a validity period are told what is left of it.
- A message a carrier took but never reported on is closed after 72 hours as `undelivered` with
  `no_delivery_report`: nothing stays open forever.
- Bodies are redacted after your account's retention period (30 days by default) or at once with
  `POST /v1/messages/{id}/redact`: `body` reads `null` with `redacted_at` set, in the API, events, webhook
  payloads and exports. Status, segments and price stay, so usage still adds up.

## Exporting your data
`POST /v1/exports` with `type` (`messages` or `events`), `start`, `end`, `format` (`csv` or `ndjson`) and
optional filters (`status`, `direction` for messages; `event_type` for events) answers `202` with an export
(`exp_…`). Follow `status` (`pending`, `running`, `succeeded`, `failed`) and `progress` at
`GET /v1/exports/{id}`, then download the file at `GET /v1/exports/{id}/download` (gzipped when you send
`Accept-Encoding: gzip`) for 7 days. Everything is included, oldest first; nothing is held back.

- NDJSON: one API object per line, exactly as the API returns it (`jq` and pandas read it as is).
- CSV: a header row, then one row per object. Message columns, in order: MESSAGE_EXPORT_COLUMNS.
  Event columns: `object`, `id`, `type`, `created_at`, `livemode`, `sequence`, `data`. A null is an empty
  cell, booleans are `true`/`false`, and `metadata`, `attempts` and an event's `data` are JSON.

## Why a message failed
A `failed`, `undelivered` or `expired` message carries an `error_code` from this catalogue (whatever the
carrier said, normalised; its raw code is in `attempts`), an `error_message`, and `retryable`: whether
sending the same message again later may succeed.

MESSAGE_ERROR_CATALOGUE

## Carriers, attempts and opt-outs
Live messages go out through one of several carriers, chosen by destination; if a carrier fails
temporarily the message moves to the next, and a carrier that may already have taken it is never followed
by another, so a message is never sent twice. Every try is listed in the message's `attempts` (carrier,
time, latency, the carrier's id and raw code, our error code). Numbers that reply STOP (STOPALL,
UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE, OPTOUT) to your senders are listed at `GET /v1/opt_outs`, and a send
to them is `422 recipient_opted_out`, uncharged, until they reply START; their messages reach you as
inbound `received` messages and `message.inbound` events. A number a carrier refuses as unsubscribed is
opted out the same way (`keyword` `CARRIER`), and that message fails with `recipient_opted_out`.

## Pricing and balance
A message costs its segments times the flat per-segment price of the destination country (see
`GET /v1/pricing`; prices are effective-dated and announced before they change). `POST /v1/messages/preview`
quotes a body without sending it; the `price` of the send equals the quote. Live sends are prepaid: the
price is charged when the message is accepted, refunded if it fails before a carrier accepted it, and a
send the balance does not cover is `402 insufficient_funds` with nothing queued. `GET /v1/ledger` lists
every movement; the balance is their sum. Test mode is never charged.

## Idempotency
Any `POST` may carry an `Idempotency-Key` header: 1-255 printable ASCII characters, a UUID is ideal (a
quoted structured-field string such as `"order-1042"` is accepted too). Send the same key with the same
request again, after a timeout or a dropped connection, and you get the first answer back with
`Idempotent-Replayed: true`; nothing is created, sent or charged twice, even when the copies arrive at
the same moment:
```
curl https://…/v1/messages -H "Authorization: Bearer $MITTIS_API_KEY" \
  -H "Idempotency-Key: 5f8e2a8c-order-1042" -H "Content-Type: application/json" \
  -d '{"from": "+18045550142", "to": "+18045550199", "body": "Your order shipped."}'
```
- Keys belong to your account and mode, and are kept for **24 hours**; after that the key is forgotten and
  may be used again.
- The first answer is stored whatever it was, errors included: a repeat of a request that got `400` gets
  the same `400`. Only a `5xx` stores nothing (and the request changed nothing), so retry those.
- The same key with a different method, path or body is `422 idempotency_key_reused`. A repeat while the
  first is still being processed is `409 idempotency_key_in_use`: retry after `Retry-After`.
- Requests refused before any work (`401`, `429`, a malformed key: `400 idempotency_key_invalid`) store nothing.

## Rate limits
Every response, errors included, carries the limit that applied to it, by the IETF RateLimit draft and
the older `X-RateLimit-*` headers:
```
RateLimit-Policy: "default";q=100;w=1
RateLimit: "default";r=57;t=1
X-RateLimit-Limit: 100
X-RateLimit-Remaining: 57
X-RateLimit-Reset: 1781272999
```
`q` requests per `w` seconds are allowed; `r` are left and the window resets in `t` seconds
(`X-RateLimit-Reset` is the same moment in epoch seconds). Limits are per API key (per client address
without one), 100 requests a second unless your account has its own. Past the limit the answer is
`429 rate_limit_exceeded` with `Retry-After`, and the request did nothing.

## Webhooks
Every change to a message is an event, delivered to your webhook endpoints and kept for at least 30 days
at `GET /v1/events`. Create an endpoint once; its `secret` is shown only in that answer:
```
curl https://…/v1/webhook_endpoints -H "Authorization: Bearer $MITTIS_API_KEY" -H "Content-Type: application/json" \
  -d '{"url": "https://example.com/mittis-webhooks", "enabled_events": ["*"]}'
```

| event | when |
|---|---|
| `message.scheduled` | a message with `send_at` was accepted (`201`); `message.queued` follows at its time |
| `message.queued` | the message was accepted (`201`), or a scheduled one's time came |
| `message.sent` | a carrier accepted it |
| `message.delivered` | the handset received it |
| `message.failed` | it failed, was undelivered or expired: `data.status` says which, `data.error_code` why |
| `message.canceled` | a scheduled message was canceled |
| `message.inbound` | a message arrived for one of your numbers |

Each is POSTed as JSON; `data` is the message exactly as `GET /v1/messages/{id}` returned it at that moment,
and `sequence` orders one message's events (1, 2, 3...), whatever order they arrive in:
```json
{"object": "event", "id": "evt_8GxT2bP4nQw7Lr1sKz9mYc3d", "type": "message.delivered",
 "created_at": "2026-06-12T14:03:25Z", "livemode": false, "sequence": 3,
 "data": {"object": "message", "id": "msg_4Zq8yXbV2nLwR7tKp1sHc9dE", "status": "delivered",
          "sent_at": "2026-06-12T14:03:23Z", "delivered_at": "2026-06-12T14:03:25Z", "…": "…"}}
```

**Verify the signature.** Requests are signed by the [Standard Webhooks](https://www.standardwebhooks.com/)
scheme (`webhook-id` is the event id, the same on every retry; `webhook-timestamp`; `webhook-signature`), so
any Standard Webhooks library verifies them. In Python (`pip install standardwebhooks`):
```python
from standardwebhooks import Webhook

def handle(request):  # your framework's request: the raw body and the headers
    event = Webhook("whsec_…").verify(request.body, request.headers)  # raises if forged or stale
    print(event["type"], event["data"]["id"], event["data"]["status"])
    return 200
```
Verify against the raw body, before any JSON parsing. Answer `2xx` quickly and do the work afterwards;
use `webhook-id` to ignore a repeat.

**Retries.** Anything but a `2xx` (or no answer within 15 s; redirects are not followed) is retried after
about 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h and 24 h, with jitter, never sooner than your
`Retry-After`. `410 Gone` disables the endpoint; so does failing every delivery for 5 days (re-enable it
with `PATCH`, `"status": "enabled"`). Every attempt is listed at `GET /v1/webhook_endpoints/{id}/deliveries`
with its HTTP status, latency and the first 2 KB of your answer.

**Replay.** `POST /v1/events/{id}/redeliver` sends one event again (to every subscribed endpoint, or to
`{"endpoint": "we_…"}`). `POST /v1/webhook_endpoints/{id}/recover` with `since` (and `until`) re-sends, in
the background, every event of that window the endpoint never accepted, and nothing else.

**Secrets.** `POST /v1/webhook_endpoints/{id}/rotate_secret` returns a new secret; for 24 hours the old one
signs too (two signatures, separated by a space), so you can deploy the new one without missing an event.

**Per-message callbacks.** A message sent with `status_callback` also POSTs its events to that URL,
signed the same way with your account's callback secret (`GET /v1/callback_secret`, rotated with
`POST /v1/callback_secret/rotate`).

**Where we send.** Live mode sends only to `https://` URLs (test mode allows `http://`). Hosts that resolve
to private, loopback or link-local addresses are refused when you create the endpoint and again at every
delivery.

## Test mode: the sandbox carrier
Any valid number is `delivered` a few seconds after sending. These recipients simulate other outcomes:

| to | outcome |
|---|---|
| `+15005550001` | rejected by the carrier: `failed`, `error_code` `carrier_rejected` |
| `+15005550002` | accepted, then `undelivered`, `error_code` `unknown_subscriber` |
| `+15005550003` | accepted, never reported: stays `sent` (until you report on it, below) |
| `+15005550004` | carrier briefly unavailable: retried, then `delivered` |

The test helpers make the rest happen when you ask, with a test key only (a live key gets `404 url_not_found`),
each through the same path as a carrier's own, with the same events and webhooks:
- `POST /v1/test_helpers/inbound_messages` with `from` (a phone), `to` (one of your senders) and `body`: the phone
  texts you. The answer is the `received` message; STOP, START and HELP act as from a real phone.
- `POST /v1/test_helpers/messages/{id}/delivery_report` with `status` (`delivered`, `undelivered` or `failed`) and,
  for a failure, an optional `error_code` from the catalogue above: the carrier reports on a `sent` message now. A
  message not sent yet is `409 message_not_sent`, one already final `409 message_already_final`.

## Errors
Every error has one shape, whatever its origin:
```json
{"error": {"type": "invalid_request_error", "code": "invalid_phone_number",
           "message": "'to' must be a phone number in E.164 format, like +18045550199.",
           "field": "to", "doc_url": "http://127.0.0.1:8000/docs/errors#invalid_phone_number", "request_id": "req_…",
           "errors": [{"code": "invalid_phone_number", "message": "…", "field": "to"}]}}
```
Every response carries a `Request-Id` header equal to `request_id`. The codes (also at [/docs/errors](/docs/errors)):

"""


def describe_api(result, generator, request, public):
    """The overview, with messaging's failure codes and export columns, then the error catalogue."""
    description = (API_DESCRIPTION.strip().replace("MESSAGE_ERROR_CATALOGUE", catalogue_markdown())
                   .replace("MESSAGE_EXPORT_COLUMNS", ", ".join(f"`{c}`" for c in MESSAGE_COLUMNS))
                   .replace("CURRENT_API_VERSION", versions.current()))
    result["info"]["description"] = description + "\n\n" + error_catalogue_markdown()
    return result
