"""What the sync and async clients share: options, building a request once, when and how long to wait before a
retry, reading an answer. The two clients differ only in how they send and sleep (`_client.py`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timezone
import json
import os
import platform
import random
from typing import Any, Callable, Generic, Mapping, Optional, TypeVar
from urllib.parse import quote
import uuid

import httpx
from pydantic import BaseModel

from mittis_sdk._errors import APIConnectionError, APIError, APITimeoutError, _seconds, error_from_response
from mittis_sdk._operations import OPERATIONS
from mittis_sdk._version import API_VERSION, __version__

T = TypeVar("T", bound=BaseModel)

DEFAULT_BASE_URL = "http://127.0.0.1:8000"  # what `make run` serves; set MITTIS_BASE_URL or base_url elsewhere
DEFAULT_TIMEOUT = 30.0  # seconds per try; a send answers in well under one
DEFAULT_MAX_RETRIES = 2
# Backoff between tries: doubling from INITIAL, capped at MAX, each shortened by up to JITTER of itself so
# that clients refused together do not come back together.
INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0
JITTER = 0.25
# A `Retry-After` longer than this is not waited out inside a call: the error is raised, with `retry_after`.
MAX_RETRY_AFTER = 60.0
RETRYABLE_STATUSES = {429, 500, 502, 503, 504}


@dataclass(frozen=True)
class RateLimit:
    """The limit that applied to a response (its `X-RateLimit-*` headers)."""

    limit: Optional[int]
    remaining: Optional[int]
    reset: Optional[datetime]  # when the window resets

    @classmethod
    def from_headers(cls, headers: httpx.Headers) -> "RateLimit":
        def integer(name: str) -> Optional[int]:
            try:
                return int(headers[name])
            except (KeyError, ValueError):
                return None

        reset = integer("x-ratelimit-reset")
        return cls(limit=integer("x-ratelimit-limit"), remaining=integer("x-ratelimit-remaining"),
                   reset=datetime.fromtimestamp(reset, timezone.utc) if reset is not None else None)


@dataclass(frozen=True)
class ResponseInfo:
    """What a client keeps of the last answer it received (`client.last_response`)."""

    status_code: int
    headers: httpx.Headers
    rate_limit: RateLimit
    request_id: Optional[str]
    api_version: Optional[str]
    idempotency_key: Optional[str]  # the key this call sent (POST only)
    idempotent_replayed: bool  # the answer is a stored one: nothing was done again
    tries: int  # 1, or more after retries

    @classmethod
    def of(cls, response: httpx.Response, *, idempotency_key: Optional[str], tries: int) -> "ResponseInfo":
        headers = response.headers
        return cls(status_code=response.status_code, headers=headers, rate_limit=RateLimit.from_headers(headers),
                   request_id=headers.get("request-id"), api_version=headers.get("mittis-version"),
                   idempotency_key=idempotency_key, idempotent_replayed=headers.get("idempotent-replayed") == "true",
                   tries=tries)


@dataclass
class Options:
    api_key: str
    base_url: str
    api_version: str
    max_retries: int
    timeout: float
    default_headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def resolve(cls, *, api_key: Optional[str], base_url: Optional[str], api_version: Optional[str],
                max_retries: int, timeout: float, default_headers: Optional[Mapping[str, str]]) -> "Options":
        api_key = api_key or os.environ.get("MITTIS_API_KEY")
        if not api_key:
            raise ValueError("No API key: pass api_key=... or set MITTIS_API_KEY (keys start mk_test_ or mk_live_).")
        base_url = (base_url or os.environ.get("MITTIS_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        return cls(api_key=api_key, base_url=base_url, api_version=api_version or API_VERSION,
                   max_retries=max_retries, timeout=timeout, default_headers=dict(default_headers or {}))


@dataclass
class Call:
    """One call, built once: every retry sends these same bytes with the same `Idempotency-Key`. Its methods are
    the retry rule both clients follow; the clients only send and sleep."""

    operation: str
    request: httpx.Request
    idempotency_key: Optional[str]
    max_retries: int
    tries: int = 0

    def info(self, response: httpx.Response) -> ResponseInfo:
        return ResponseInfo.of(response, idempotency_key=self.idempotency_key, tries=self.tries)

    def delay_after_no_answer(self, exc: httpx.TransportError) -> float:
        """Seconds before the next try after the connection failed or was cut; raises when no try is left."""
        delay = retry_delay(tries=self.tries, max_retries=self.max_retries)
        if delay is None:
            kind = APITimeoutError if isinstance(exc, httpx.TimeoutException) else APIConnectionError
            raise kind(f"{self.request.method} {self.request.url.path}: {type(exc).__name__}: {exc or 'no answer'}",
                       request=self.request) from exc
        return delay

    def delay_after_refusal(self, response: httpx.Response) -> float:
        """Seconds before the next try after an error answer; raises it when it is not retried or no try is
        left."""
        error = error_from_response(response)
        delay = retry_delay(tries=self.tries, max_retries=self.max_retries, error=error)
        if delay is None:
            raise error
        return delay


USER_AGENT = f"mittis-python/{__version__} (Python {platform.python_version()}; httpx {httpx.__version__})"


def build_call(options: Options, operation: str, *, id: Optional[str] = None,
               params: Optional[Mapping[str, Any]] = None, body: Optional[Mapping[str, Any]] = None, idempotency_key: Optional[str] = None) -> Call:
    """The request of `operation` (an OpenAPI operationId). POSTs always carry an `Idempotency-Key`: the caller's,
    else a new one for this call alone, reused by its retries, so that a retried send sends once."""
    method, path = OPERATIONS[operation]
    if "{id}" in path:
        if not id:
            raise ValueError(f"{operation} needs an id")
        path = path.replace("{id}", quote(id, safe=""))
    headers = {"Authorization": f"Bearer {options.api_key}", "Mittis-Version": options.api_version,
               "User-Agent": USER_AGENT, "Accept": "application/json", **options.default_headers}
    if method == "POST":
        idempotency_key = idempotency_key or str(uuid.uuid4())
        headers["Idempotency-Key"] = idempotency_key
    else:
        idempotency_key = None
    content = None
    if body is not None or method in ("POST", "PATCH"):
        content = json.dumps(_wire(body or {}), separators=(",", ":"), ensure_ascii=False).encode()
        headers["Content-Type"] = "application/json"
    request = httpx.Request(method, options.base_url + path, params=_wire(params or {}), headers=headers,
                            content=content, extensions={"timeout": httpx.Timeout(options.timeout).as_dict()})
    return Call(operation=operation, request=request, idempotency_key=idempotency_key,
                max_retries=options.max_retries)


def _wire(values: Mapping[str, Any]) -> dict[str, Any]:
    """Arguments as the API reads them: None means "not given" and is left out; `from_` is `from`; times are
    ISO 8601 in UTC."""
    wire = {}
    for name, value in values.items():
        if value is None:
            continue
        wire["from" if name == "from_" else name] = _value(value)
    return wire


def _value(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{value!r} has no time zone: pass an aware datetime (e.g. tzinfo=timezone.utc)")
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {key: _value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_value(item) for item in value]
    return value


def retry_delay(*, tries: int, max_retries: int, response: Optional[httpx.Response] = None,
                error: Optional[APIError] = None) -> Optional[float]:
    """Seconds to wait before the next try, or None to stop. Retried: no answer (the connection failed or was
    cut), 409 `idempotency_key_in_use` (the first try is still running), 429 and 5xx. `Retry-After` is
    honoured up to MAX_RETRY_AFTER."""
    if tries > max_retries:
        return None
    if error is not None:
        retryable = error.http_status in RETRYABLE_STATUSES or error.code == "idempotency_key_in_use"
        if not retryable:
            return None
        asked = _seconds(error.headers.get("retry-after"))
        if asked is not None:
            return asked if asked <= MAX_RETRY_AFTER else None
    delay = min(INITIAL_RETRY_DELAY * 2.0 ** (tries - 1), MAX_RETRY_DELAY)
    return delay * (1 - JITTER * random.random())


R = TypeVar("R")
Cast = Callable[[httpx.Response], R]  # reads a successful answer


def as_model(model: type[T]) -> Cast[T]:
    return lambda response: model.model_validate(response.json())


def content(response: httpx.Response) -> bytes:
    return response.content


def as_list(model: type[T]) -> Cast[tuple[list[T], bool, str]]:
    def read(response: httpx.Response) -> tuple[list[T], bool, str]:
        body = response.json()
        return ([model.model_validate(item) for item in body["data"]], bool(body.get("has_more")),
                str(body.get("url", "")))
    return read


class Page(Generic[T]):
    """One page of a list, and the way to the rest: iterating it walks every page after it (`for m in
    client.messages.list(): ...`). A list started with `ending_before` walks backwards, towards newer objects,
    and yields them oldest first, in the direction it travels."""

    def __init__(self, *, data: list[T], has_more: bool, url: str, params: dict[str, Any],
                 fetch: Callable[[dict[str, Any]], Any]) -> None:
        self.data = data
        self.has_more = has_more
        self.url = url
        self._params = params
        self._fetch = fetch

    @property
    def backwards(self) -> bool:
        return bool(self._params.get("ending_before"))

    def next_params(self) -> Optional[dict[str, Any]]:
        """The parameters of the page after this one in the direction of travel, or None at the end."""
        if not self.has_more or not self.data:
            return None
        if self.backwards:
            return {**self._params, "ending_before": getattr(self.data[0], "id")}  # a page's newest is its first
        return {**self._params, "starting_after": getattr(self.data[-1], "id")}

    def in_travel_order(self) -> list[T]:
        return list(reversed(self.data)) if self.backwards else list(self.data)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url} {len(self.data)} objects, has_more={self.has_more}>"
