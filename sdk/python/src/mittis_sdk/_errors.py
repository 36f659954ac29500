"""Exceptions, one class per error `type` of the API, each carrying the error's fields.

    try:
        client.messages.create(...)
    except mittis_sdk.InvalidRequestError as error:
        print(error.code, error.field, error.message)
"""

from __future__ import annotations

from typing import Any

import httpx


class MittisError(Exception):
    """Every exception this SDK raises."""


class APIConnectionError(MittisError):
    """No answer came: the connection failed, or was cut, on every try."""

    def __init__(self, message: str = "Could not connect to the Mittis API.", *, request: httpx.Request | None = None):
        super().__init__(message)
        self.message = message
        self.request = request


class APITimeoutError(APIConnectionError):
    """The request timed out on every try."""


class APIError(MittisError):
    """The API answered with an error. Its fields are the contract's error shape, plus the HTTP status."""

    def __init__(self, *, http_status: int, type: str, code: str, message: str, field: str | None = None,
                 doc_url: str | None = None, request_id: str | None = None, errors: list[dict[str, Any]] | None = None,
                 headers: httpx.Headers | None = None, body: Any = None) -> None:
        super().__init__(f"{message} ({code}, HTTP {http_status}" + (f", request {request_id})" if request_id else ")"))
        self.http_status = http_status
        self.type = type
        self.code = code
        self.message = message
        self.field = field
        self.doc_url = doc_url
        self.request_id = request_id
        self.errors = errors or []
        self.headers = headers or httpx.Headers()
        self.body = body

    @property
    def retry_after(self) -> float | None:
        """Seconds the API asked to wait before trying again (`Retry-After`), if it said."""
        return _seconds(self.headers.get("retry-after"))


class InvalidRequestError(APIError):
    """The request was refused as it is (400, 404, 405, 413, 415, 422...): `field` names what to change."""


class NotFoundError(InvalidRequestError):
    """No such object for this key (404 `resource_missing`)."""


class AuthenticationError(APIError):
    """The API key is missing, unknown or revoked (401)."""


class PermissionDeniedError(APIError):
    """This key may not do this (403)."""


class IdempotencyError(APIError):
    """The `Idempotency-Key` was reused for another request, or its first request is still running (409, 422)."""


class RateLimitError(APIError):
    """Too many requests (429); `retry_after` says how long to wait."""


class BillingError(APIError):
    """The balance does not cover the message (402)."""


class ServerError(APIError):
    """Mittis failed or is unavailable (5xx); safe to retry with the same idempotency key."""


_BY_TYPE: dict[str, type[APIError]] = {
    "invalid_request_error": InvalidRequestError,
    "not_found_error": NotFoundError,
    "authentication_error": AuthenticationError,
    "permission_error": PermissionDeniedError,
    "idempotency_error": IdempotencyError,
    "rate_limit_error": RateLimitError,
    "billing_error": BillingError,
    "api_error": ServerError,
}
_BY_STATUS: dict[int, type[APIError]] = {401: AuthenticationError, 402: BillingError, 403: PermissionDeniedError,
                                         404: NotFoundError, 429: RateLimitError}


def error_from_response(response: httpx.Response) -> APIError:
    """The exception for an error answer: by the error's `type`; by the HTTP status when the body is not the
    contract's error shape (a proxy's page, say), or its type is one this release does not know."""
    try:
        body = response.json()
        error = body["error"]
        type_, code, message = str(error["type"]), str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        body, error = response.text, {}
        type_, code = "api_error" if response.status_code >= 500 else "invalid_request_error", f"http_{response.status_code}"
        message = f"HTTP {response.status_code}: {response.reason_phrase or 'error'}"
    cls = _BY_TYPE.get(type_) or _BY_STATUS.get(response.status_code) or (
        ServerError if response.status_code >= 500 else InvalidRequestError)
    return cls(http_status=response.status_code, type=type_, code=code, message=message, field=error.get("field"),
               doc_url=error.get("doc_url"), request_id=error.get("request_id") or response.headers.get("request-id"),
               errors=error.get("errors"), headers=response.headers, body=body)


class SignatureVerificationError(MittisError):
    """A webhook's signature or timestamp did not verify: do not trust its body."""


def _seconds(value: str | None) -> float | None:
    """A `Retry-After` value in seconds: delay-seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime
    import time

    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
