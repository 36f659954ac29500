"""OpenAPI: the error shape, list envelopes, the auth scheme, the error catalogue and what every operation
shares. The API's description as a whole, which names the apps' parts, is composed above the apps
(`mittis/openapi.py`)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

from mittis import versions
from mittis.api.catalogue import ERROR_CODES, ERROR_TYPES
from mittis.api.versioning import HEADER as VERSION_HEADER


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
    doc_url = serializers.CharField(help_text="The code's entry in the error catalogue (/docs/errors), absolute.")
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


def error_catalogue_markdown() -> str:
    rows = ["| code | type | HTTP | meaning |", "|---|---|---|---|"]
    for entry in ERROR_CODES.values():
        rows.append(f"| <a id=\"{entry.code}\"></a>`{entry.code}` | `{entry.type}` | {entry.status} | {entry.description} |")
    return "\n".join(rows)


_INTEGER = {"type": "integer"}
RESPONSE_HEADERS = {
    "Request-Id": {"description": "This request's id (`req_…`), also in error bodies.", "schema": {"type": "string"}},
    "RateLimit-Policy": {"description": "The limit that applied: `\"default\";q=<requests>;w=<seconds>`.",
                         "schema": {"type": "string"}},
    "RateLimit": {"description": "What is left: `\"default\";r=<remaining>;t=<seconds to reset>`.",
                  "schema": {"type": "string"}},
    "X-RateLimit-Limit": {"description": "Requests allowed per window.", "schema": _INTEGER},
    "X-RateLimit-Remaining": {"description": "Requests left in this window.", "schema": _INTEGER},
    "X-RateLimit-Reset": {"description": "When the window resets, in epoch seconds.", "schema": _INTEGER},
    VERSION_HEADER: {"description": "The API version this answer is rendered in (see /docs/changelog).",
                     "schema": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}},
}
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string", "maxLength": 255},
    "description": "Makes retries safe: a repeat with the same key and request gets the first answer back "
                   "(`Idempotent-Replayed: true`) and does nothing again. Kept 24 hours.",
    "example": "5f8e2a8c-order-1042",
}


def version_parameter() -> dict:
    """`Mittis-Version`, listing the versions there are when the schema is built."""
    return {
        "name": VERSION_HEADER, "in": "header", "required": False,
        "schema": {"type": "string", "enum": list(reversed(versions.known()))},
        "description": "The API version to answer in (and to read the request body in). Without it, your "
                       "account's version. Every answer names its version in the `Mittis-Version` header.",
        "example": versions.current(),
    }


def describe_every_operation(result, generator, request, public):
    """The version, the limit headers, 429 and 503 on every operation, and on every POST the idempotency key and
    its errors."""
    components = result.setdefault("components", {})
    components["headers"] = RESPONSE_HEADERS
    components.setdefault("parameters", {})["IdempotencyKey"] = IDEMPOTENCY_KEY
    components["parameters"]["MittisVersion"] = version_parameter()
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    header_refs = {name: {"$ref": f"#/components/headers/{name}"} for name in RESPONSE_HEADERS}
    for operations in result["paths"].values():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            operation.setdefault("parameters", []).append({"$ref": "#/components/parameters/MittisVersion"})
            responses.setdefault("429", {**error, "description": "Codes: `rate_limit_exceeded`. See `Retry-After`."})
            responses.setdefault("503", {**error, "description": "Codes: `service_unavailable`: retry after "
                                                                 "`Retry-After` (with the same `Idempotency-Key`)."})
            if "400" not in responses:  # a view's own 400 lists every 400 code of the catalogue already
                codes = ["api_version_invalid"] + (["idempotency_key_invalid"] if method == "post" else [])
                responses["400"] = {**error, "description": "Codes: " + ", ".join(f"`{c}`" for c in codes) + "."}
            if method == "post":
                operation["parameters"].append({"$ref": "#/components/parameters/IdempotencyKey"})
                responses.setdefault("409", {**error, "description": "Codes: `idempotency_key_in_use`."})
                responses.setdefault("422", {**error, "description": "Codes: `idempotency_key_reused`."})
            for status, response in responses.items():
                headers = {**header_refs, **response.get("headers", {})}
                if method == "post" and status.startswith(("2", "4")):
                    headers["Idempotent-Replayed"] = {
                        "description": "`true` when this is the stored answer to an earlier request with the "
                                       "same Idempotency-Key.", "schema": {"type": "string", "enum": ["true"]}}
                if status in ("429", "503"):
                    headers["Retry-After"] = {"description": "Seconds to wait.", "schema": _INTEGER}
                response["headers"] = headers
    return result
