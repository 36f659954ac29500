"""One error shape for every failure, from our code, from DRF and from Django itself.

    {"error": {"type", "code", "message", "field", "doc_url", "request_id", "errors": [...]}}
"""

from dataclasses import dataclass
import logging
import re
import sys

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions
from rest_framework.views import set_rollback

from mittis.api.catalogue import ERROR_CODES
from mittis.errors import DomainError

logger = logging.getLogger(__name__)

# DRF's generic validation codes, in our vocabulary.
_VALIDATION_CODES = {
    "required": "parameter_missing",
    "null": "parameter_missing",
    "blank": "parameter_invalid",
    "invalid": "parameter_invalid",
    "invalid_choice": "parameter_invalid",
    "not_a_dict": "parameter_invalid_type",
    "not_a_list": "parameter_invalid_type",
    "null_characters_not_allowed": "parameter_invalid",
    "surrogate_characters_not_allowed": "parameter_invalid",
    "max_length": "parameter_out_of_range",
    "min_length": "parameter_out_of_range",
    "max_value": "parameter_out_of_range",
    "min_value": "parameter_out_of_range",
    "max_string_length": "parameter_out_of_range",
    "max_digits": "parameter_out_of_range",
    "date": "parameter_invalid",
    "datetime": "parameter_invalid",
}

# The database refused or dropped the connection (a restart, a failover): Django reconnects on the next
# request, so the client is told to retry, in the error shape.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)
RETRY_AFTER_UNAVAILABLE = 1

_EXCEPTION_CODES = [
    (exceptions.ParseError, "invalid_json"),
    (exceptions.NotAuthenticated, "missing_api_key"),
    (exceptions.AuthenticationFailed, "invalid_api_key"),
    (exceptions.PermissionDenied, "permission_denied"),
    (exceptions.NotFound, "resource_missing"),
    (exceptions.MethodNotAllowed, "method_not_allowed"),
    (exceptions.UnsupportedMediaType, "unsupported_media_type"),
    (exceptions.NotAcceptable, "not_acceptable"),
]


@dataclass(frozen=True)
class FieldError:
    code: str
    message: str
    field: str | None = None


def error_payload(request: HttpRequest | None, errors: list[FieldError]) -> tuple[int, dict]:
    """The status and body for one or more errors; the first one leads."""
    first = errors[0]
    entry = ERROR_CODES[first.code]
    body = {
        "type": entry.type,
        "code": first.code,
        "message": first.message,
        "field": first.field,
        "doc_url": doc_url(first.code),
        "request_id": getattr(request, "request_id", None),
        "errors": [{"code": e.code, "message": e.message, "field": e.field} for e in errors],
    }
    return entry.status, {"error": body}


def doc_url(code: str) -> str:
    """The code's entry in the catalogue at /docs/errors: absolute (as Stripe's), so that it works wherever
    the error is read, a log or a support ticket."""
    return f"{settings.MITTIS_PUBLIC_URL}/docs/errors#{code}"


def error_response(request: HttpRequest | None, code: str, message: str | None = None,
                   field: str | None = None) -> JsonResponse:
    """A plain Django response in the error shape, for errors raised outside DRF."""
    status, body = error_payload(request, [FieldError(code, message or ERROR_CODES[code].message, field)])
    return JsonResponse(body, status=status)


def exception_handler(exc, context):
    """DRF's EXCEPTION_HANDLER: every exception a view raises leaves in the error shape."""
    from rest_framework.response import Response

    request = context.get("request")
    attempt = getattr(request, "idempotency", None)  # a one-statement attempt (`idempotency.KeyInStatement`)
    if attempt is not None and attempt.retries(exc):
        return None  # it wrote nothing: the idempotency middleware runs the request again
    headers = {}
    if isinstance(exc, exceptions.ValidationError):
        errors = list(_flatten_validation(exc.detail))
    elif isinstance(exc, DomainError):
        errors = [FieldError(exc.code, exc.message or ERROR_CODES[exc.code].message, exc.field)]
    elif isinstance(exc, RequestDataTooBig):
        errors = [FieldError("request_too_large", ERROR_CODES["request_too_large"].message)]
    elif isinstance(exc, (Http404, PermissionDenied)):
        code = "resource_missing" if isinstance(exc, Http404) else "permission_denied"
        errors = [FieldError(code, ERROR_CODES[code].message)]
    elif isinstance(exc, exceptions.APIException):
        code = next((c for cls, c in _EXCEPTION_CODES if isinstance(exc, cls)), "internal_error")
        message = ERROR_CODES[code].message
        if code == "method_not_allowed":
            message = f"{request.method} is not allowed on {request.path}."
        elif code == "invalid_json":
            message = f"The request body is not valid JSON: {exc.detail}"
        elif code == "unsupported_media_type":
            message = f"Content type '{request.content_type}' is not supported; send application/json."
        errors = [FieldError(code, message)]
    elif isinstance(exc, DATABASE_UNAVAILABLE):
        logger.warning("Database unavailable in %s %s: %s", *_printable_request(request), exc)
        errors = [FieldError("service_unavailable", ERROR_CODES["service_unavailable"].message)]
        headers["Retry-After"] = str(RETRY_AFTER_UNAVAILABLE)
    else:
        logger.exception("Unhandled error in %s %s", *_printable_request(request))
        errors = [FieldError("internal_error", ERROR_CODES["internal_error"].message)]

    if isinstance(exc, exceptions.APIException):
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
    set_rollback()
    status, body = error_payload(request, errors)
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="api"'  # RFC 9110: a 401 names its scheme
    if isinstance(exc, exceptions.MethodNotAllowed) and context.get("view") is not None:
        headers["Allow"] = ", ".join(context["view"].allowed_methods)
    return Response(body, status=status, headers=headers)


def _printable_request(request) -> tuple[str, str]:
    """The method and path for a log line, control characters escaped (`\\x00`): a client's path can neither
    end a line early nor forge the next one."""
    return tuple(_CONTROL_CHARACTERS.sub(lambda found: ascii(found[0])[1:-1], str(getattr(request, name, "?")))
                 for name in ("method", "path"))


_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _flatten_validation(detail, path: str | None = None):
    """DRF's nested error detail, as a flat list with dotted field paths (`metadata.order_id`)."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            if key in ("non_field_errors", "__all__"):
                yield from _flatten_validation(value, path)
            else:
                if isinstance(key, int):  # ListField reports items by index: `enabled_events[0]`
                    yield from _flatten_validation(value, f"{path}[{key}]" if path else f"[{key}]")
                    continue
                key = str(key) or "''"  # an empty metadata key still gets a visible path
                yield from _flatten_validation(value, f"{path}.{key}" if path else key)
    elif isinstance(detail, list):
        for index, item in enumerate(detail):
            if isinstance(item, (dict, list)):
                yield from _flatten_validation(item, f"{path}[{index}]" if path else f"[{index}]")
            else:
                yield from _flatten_validation(item, path)
    else:
        code = getattr(detail, "code", None) or "invalid"
        if code in ERROR_CODES:
            yield FieldError(code, str(detail), path)
        elif path is None and code == "invalid":
            yield FieldError("invalid_request_body", ERROR_CODES["invalid_request_body"].message)
        else:
            ours = _VALIDATION_CODES.get(code, "parameter_invalid")
            yield FieldError(ours, _field_message(ours, path, str(detail)), path)


def _field_message(code: str, field: str | None, detail: str) -> str:
    if field is None:
        return detail
    if code == "parameter_missing":
        return f"'{field}' is required."
    return f"'{field}': {detail[0].lower()}{detail[1:]}" if detail else f"'{field}' is invalid."


# --- Django's own error views (urls.py handler404/handler500/...) ---------------------------------
def url_not_found(request) -> DomainError:
    """The refusal of a URL no endpoint has: Django's 404 below, and an endpoint that is not there for this
    caller (the test helpers, to a live key), which must read the same."""
    return DomainError("url_not_found", f"Unrecognised request URL ({request.method}: {request.path}).")


def not_found_view(request, exception=None):
    refusal = url_not_found(request)
    return error_response(request, refusal.code, refusal.message)


def server_error_view(request):
    """Django's handler500, for errors outside DRF's views (middleware included): a database that does not
    answer is a 503 to retry, not a 500."""
    if isinstance(sys.exc_info()[1], DATABASE_UNAVAILABLE):
        response = error_response(request, "service_unavailable")
        response["Retry-After"] = str(RETRY_AFTER_UNAVAILABLE)
        return response
    return error_response(request, "internal_error")


def bad_request_view(request, exception=None):
    if isinstance(exception, RequestDataTooBig):
        return error_response(request, "request_too_large")
    return error_response(request, "parameter_invalid", "The request could not be understood.")


def permission_denied_view(request, exception=None):
    return error_response(request, "permission_denied")
