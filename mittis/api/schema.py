"""OpenAPI: the error shape, list envelopes, the auth scheme and the catalogue in `/docs`."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

from mittis.api.catalogue import ERROR_CODES, ERROR_TYPES


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "mittis.accounts.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "mk_live_… or mk_test_…",
            "description": "Send your API key as `Authorization: Bearer mk_test_…`. Test keys see only "
                           "test objects and send through the sandbox carrier; live keys see only live ones.",
        }


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    field = serializers.CharField(allow_null=True)


class ErrorBodySerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=ERROR_TYPES)
    code = serializers.ChoiceField(choices=sorted(ERROR_CODES), help_text="Stable; listed in /docs/errors.")
    message = serializers.CharField(help_text="For people; may change.")
    field = serializers.CharField(allow_null=True, help_text="The parameter at fault (`metadata.order_id`), or null.")
    doc_url = serializers.CharField()
    request_id = serializers.CharField(help_text="Equals the `Request-Id` header.")
    errors = ErrorDetailSerializer(many=True, help_text="Every error when there are several; the first leads.")


class ErrorSerializer(serializers.Serializer):
    error = ErrorBodySerializer()


def error_responses(*status_codes: int) -> dict[int, OpenApiResponse]:
    """Error responses for a view's schema, each listing the codes it may carry."""
    responses = {}
    for status in status_codes:
        codes = sorted(c.code for c in ERROR_CODES.values() if c.status == status)
        responses[status] = OpenApiResponse(ErrorSerializer, description="Codes: " + ", ".join(f"`{c}`" for c in codes))
    return responses


def list_response(item_serializer, name: str):
    return inline_serializer(name, fields={
        "object": serializers.CharField(default="list"),
        "url": serializers.CharField(),
        "has_more": serializers.BooleanField(),
        "data": item_serializer(many=True),
    })


def only_public_api(endpoints):
    return [endpoint for endpoint in endpoints if endpoint[0].startswith("/v1/")]


API_DESCRIPTION = """
Send an SMS with one POST and follow it to `delivered`. Every endpoint is under `/v1`; every answer is JSON.

## Authentication
`Authorization: Bearer <key>`. Keys start `mk_live_` (live) or `mk_test_` (test mode: a full sandbox,
never charged, never reaching a real phone). A missing key is `401 missing_api_key`; an unknown or revoked
one `401 invalid_api_key`.

## Objects
Ids are prefixed random strings (`msg_…`, `evt_…`); every object has `"object": "<type>"`. Timestamps are
UTC ISO 8601 with a `Z`, to the second. Money is a decimal string (`"0.008"`) with a `currency`.

## Lists
`{"object": "list", "url": …, "data": [...], "has_more": …}`, newest first; `limit` 1-100 (default 20),
`starting_after` / `ending_before` take an object id.

## Pricing and balance
A message costs its segments times the flat per-segment price of the destination country (see
`GET /v1/pricing`; prices are effective-dated and announced before they change). `POST /v1/messages/preview`
quotes a body without sending it; the `price` of the send equals the quote. Live sends are prepaid: the
price is charged when the message is accepted, refunded if it fails before a carrier accepted it, and a
send the balance does not cover is `402 insufficient_funds` with nothing queued. `GET /v1/ledger` lists
every movement; the balance is their sum. Test mode is never charged.

## Test mode: the sandbox carrier
Any valid number is `delivered` a few seconds after sending. These recipients simulate other outcomes:

| to | outcome |
|---|---|
| `+15005550001` | rejected by the carrier: `failed`, `error_code` `carrier_rejected` |
| `+15005550002` | accepted, then `undelivered`, `error_code` `unknown_subscriber` |
| `+15005550003` | accepted, never reported: stays `sent` |
| `+15005550004` | carrier briefly unavailable: retried, then `delivered` |

## Errors
Every error has one shape, whatever its origin:
```json
{"error": {"type": "invalid_request_error", "code": "invalid_phone_number",
           "message": "'to' must be a phone number in E.164 format, like +18045550199.",
           "field": "to", "doc_url": "/docs/errors#invalid_phone_number", "request_id": "req_…",
           "errors": [{"code": "invalid_phone_number", "message": "…", "field": "to"}]}}
```
Every response carries a `Request-Id` header equal to `request_id`. The codes (also at [/docs/errors](/docs/errors)):

"""


def error_catalogue_markdown() -> str:
    rows = ["| code | type | HTTP | meaning |", "|---|---|---|---|"]
    for entry in ERROR_CODES.values():
        rows.append(f"| <a id=\"{entry.code}\"></a>`{entry.code}` | `{entry.type}` | {entry.status} | {entry.description} |")
    return "\n".join(rows)


def describe_api(result, generator, request, public):
    result["info"]["description"] = API_DESCRIPTION.strip() + "\n\n" + error_catalogue_markdown()
    return result
