"""`Mittis` and `AsyncMittis`: the same calls, the same retries, one blocking and one awaitable."""

from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator, Awaitable, Callable, Generator, Iterator, Mapping, Optional, TypeVar

import httpx
from pydantic import BaseModel

from mittis_sdk import _core
from mittis_sdk._core import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT, Cast, Options, Page, R, ResponseInfo
from mittis_sdk import resources
from mittis_sdk._errors import APIError
from mittis_sdk.webhooks import Webhooks

T = TypeVar("T", bound=BaseModel)


class SyncPage(Page[T]):
    def __iter__(self) -> Iterator[T]:
        """Every object of this page and of the pages after it, fetched as the loop reaches them."""
        page: Optional[SyncPage[T]] = self
        while page is not None:
            yield from page.in_travel_order()
            page = page.next_page()

    auto_paging_iter = __iter__

    def next_page(self) -> Optional["SyncPage[T]"]:
        params = self.next_params()
        return self._fetch(params) if params is not None else None


class AsyncPage(Page[T]):
    def __aiter__(self) -> AsyncIterator[T]:
        return self._walk()

    async def _walk(self) -> AsyncIterator[T]:
        page: Optional[AsyncPage[T]] = self
        while page is not None:
            for item in page.in_travel_order():
                yield item
            page = await page.next_page()

    async def next_page(self) -> Optional["AsyncPage[T]"]:
        params = self.next_params()
        return await self._fetch(params) if params is not None else None


class AsyncPager(AsyncIterator[T]):
    """What an async `list()` returns: `await` it for the first page, or `async for` over every object."""

    def __init__(self, first_page: Callable[[], Awaitable[AsyncPage[T]]]) -> None:
        self._first_page = first_page
        self._walk: Optional[AsyncIterator[T]] = None

    def __await__(self) -> Generator[Any, None, AsyncPage[T]]:
        return self._first_page().__await__()

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        if self._walk is None:
            self._walk = (await self._first_page()).__aiter__()
        return await self._walk.__anext__()


class _Client:
    """Options and resources; `Mittis` and `AsyncMittis` add the sending."""

    _options: Options
    last_response: Optional[ResponseInfo]

    def _init(self, **options: Any) -> None:
        self._options = Options.resolve(**options)
        self.last_response = None
        self.webhooks = Webhooks()

    @property
    def api_version(self) -> str:
        """The `Mittis-Version` this client sends."""
        return self._options.api_version

    @property
    def base_url(self) -> str:
        return self._options.base_url

    def _copy_options(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        options = self._options
        current = {"api_key": options.api_key, "base_url": options.base_url, "api_version": options.api_version,
                   "max_retries": options.max_retries, "timeout": options.timeout,
                   "default_headers": options.default_headers}
        unknown = set(changes) - set(current)
        if unknown:
            raise TypeError(f"unknown options: {', '.join(sorted(unknown))}")
        return {**current, **changes}


class Mittis(_Client):
    """A client of the Mittis API.

        client = Mittis()  # MITTIS_API_KEY, and MITTIS_BASE_URL if set
        message = client.messages.create(from_="+18045550142", to="+18045550199", body="Hello")

    `api_version` pins the `Mittis-Version` sent (this release's by default). Calls are retried `max_retries`
    times on connection errors, 409 `idempotency_key_in_use`, 429 and 5xx, with backoff and jitter, honouring
    `Retry-After`; a POST's retries reuse its `Idempotency-Key`, so a retried send sends once.
    """

    def __init__(self, api_key: Optional[str] = None, *, base_url: Optional[str] = None,
                 api_version: Optional[str] = None, max_retries: int = DEFAULT_MAX_RETRIES,
                 timeout: float = DEFAULT_TIMEOUT, default_headers: Optional[Mapping[str, str]] = None,
                 http_client: Optional[httpx.Client] = None) -> None:
        self._init(api_key=api_key, base_url=base_url, api_version=api_version, max_retries=max_retries,
                   timeout=timeout, default_headers=default_headers)
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(timeout=timeout)
        self.messages = resources.Messages(self)
        self.events = resources.Events(self)
        self.webhook_endpoints = resources.WebhookEndpoints(self)
        self.callback_secret = resources.CallbackSecrets(self)
        self.exports = resources.Exports(self)
        self.opt_outs = resources.OptOuts(self)
        self.balance = resources.Balances(self)
        self.ledger = resources.Ledger(self)
        self.pricing = resources.Pricing(self)
        self.usage = resources.UsageReports(self)
        self.test_helpers = resources.TestHelpers(self)

    def with_options(self, **changes: Any) -> "Mittis":
        """A client like this one with some options changed (`max_retries`, `timeout`, `api_version`...),
        sharing its connections."""
        clone = Mittis(**self._copy_options(changes), http_client=self._http)
        clone._owns_http = False
        return clone

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> "Mittis":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _call(self, operation: str, cast: Cast[R], *, id: Optional[str] = None,
              params: Optional[Mapping[str, Any]] = None, body: Optional[Mapping[str, Any]] = None,
              idempotency_key: Optional[str] = None) -> R:
        call = _core.build_call(self._options, operation, id=id, params=params, body=body,
                                idempotency_key=idempotency_key)
        while True:
            call.tries += 1
            try:
                response = self._http.send(call.request)
            except httpx.TransportError as exc:
                time.sleep(call.delay_after_no_answer(exc))
                continue
            self.last_response = call.info(response)
            if response.is_success:
                return cast(response)
            time.sleep(call.delay_after_refusal(response))

    def _list(self, operation: str, model: type[T], *, id: Optional[str] = None,
              params: Mapping[str, Any]) -> SyncPage[T]:
        params = {name: value for name, value in params.items() if value is not None}

        def fetch(page_params: dict[str, Any]) -> SyncPage[T]:
            data, has_more, url = self._call(operation, _core.as_list(model), id=id,
                                             params=page_params)
            return SyncPage(data=data, has_more=has_more, url=url, params=page_params, fetch=fetch)

        return fetch(params)


class AsyncMittis(_Client):
    """The asyncio client: the same resources and options as `Mittis`, each call awaited.

        async with AsyncMittis() as client:
            message = await client.messages.create(from_="+18045550142", to="+18045550199", body="Hello")
            async for message in client.messages.list(status="delivered"):
                ...
    """

    def __init__(self, api_key: Optional[str] = None, *, base_url: Optional[str] = None,
                 api_version: Optional[str] = None, max_retries: int = DEFAULT_MAX_RETRIES,
                 timeout: float = DEFAULT_TIMEOUT, default_headers: Optional[Mapping[str, str]] = None,
                 http_client: Optional[httpx.AsyncClient] = None) -> None:
        self._init(api_key=api_key, base_url=base_url, api_version=api_version, max_retries=max_retries,
                   timeout=timeout, default_headers=default_headers)
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=timeout)
        self.messages = resources.AsyncMessages(self)
        self.events = resources.AsyncEvents(self)
        self.webhook_endpoints = resources.AsyncWebhookEndpoints(self)
        self.callback_secret = resources.AsyncCallbackSecrets(self)
        self.exports = resources.AsyncExports(self)
        self.opt_outs = resources.AsyncOptOuts(self)
        self.balance = resources.AsyncBalances(self)
        self.ledger = resources.AsyncLedger(self)
        self.pricing = resources.AsyncPricing(self)
        self.usage = resources.AsyncUsageReports(self)
        self.test_helpers = resources.AsyncTestHelpers(self)

    def with_options(self, **changes: Any) -> "AsyncMittis":
        clone = AsyncMittis(**self._copy_options(changes), http_client=self._http)
        clone._owns_http = False
        return clone

    async def close(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> "AsyncMittis":
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    async def _call(self, operation: str, cast: Cast[R], *, id: Optional[str] = None,
                    params: Optional[Mapping[str, Any]] = None, body: Optional[Mapping[str, Any]] = None,
                    idempotency_key: Optional[str] = None) -> R:
        call = _core.build_call(self._options, operation, id=id, params=params, body=body,
                                idempotency_key=idempotency_key)
        while True:
            call.tries += 1
            try:
                response = await self._http.send(call.request)
            except httpx.TransportError as exc:
                await asyncio.sleep(call.delay_after_no_answer(exc))
                continue
            self.last_response = call.info(response)
            if response.is_success:
                return cast(response)
            await asyncio.sleep(call.delay_after_refusal(response))

    def _list(self, operation: str, model: type[T], *, id: Optional[str] = None,
              params: Mapping[str, Any]) -> AsyncPager[T]:
        params = {name: value for name, value in params.items() if value is not None}

        async def fetch(page_params: dict[str, Any]) -> AsyncPage[T]:
            data, has_more, url = await self._call(operation, _core.as_list(model), id=id,
                                                   params=page_params)
            return AsyncPage(data=data, has_more=has_more, url=url, params=page_params, fetch=fetch)

        return AsyncPager(lambda: fetch(params))


__all__ = ["Mittis", "AsyncMittis", "SyncPage", "AsyncPage", "AsyncPager", "APIError"]
