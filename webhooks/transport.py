"""Outbound HTTP to customers' URLs, safely: no private addresses, no redirects, a hard timeout.

The host is resolved once per request, every address checked, and the connection made to a checked
address (with the original host for `Host` and TLS), so DNS cannot be rebound between check and use.
"""

from dataclasses import dataclass
from email.utils import parsedate_to_datetime
import ipaddress
import socket
import time
from urllib.parse import urlsplit

from django.conf import settings
import urllib3

USER_AGENT = "Mittis-Webhooks/1"


class UnsafeUrl(ValueError):
    """A URL we will not send to; the message says why, for the customer."""


@dataclass(frozen=True)
class HttpResult:
    status: int | None  # None when no response arrived
    body: str  # the first 2 KB
    latency_ms: int
    error: str = ""
    retry_after: float | None = None


def check_url(url: str, *, livemode: bool) -> None:
    """Refuse what we would never deliver to: wrong scheme, no host, or a private address."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http"):
        raise UnsafeUrl("The URL must start with https://.")
    if parts.scheme == "http" and livemode and not settings.MITTIS_WEBHOOK_ALLOW_HTTP:
        raise UnsafeUrl("Live mode sends only to https:// URLs (http:// is allowed in test mode).")
    if not parts.hostname:
        raise UnsafeUrl("The URL has no host.")
    if parts.username or parts.password:
        raise UnsafeUrl("The URL must not contain a user name or password; authenticate with the signature.")
    resolve(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))


def resolve(host: str, port: int) -> list[str]:
    """The host's addresses, all of them public (or allow-listed), else UnsafeUrl."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise UnsafeUrl(f"The host '{host}' does not resolve.")
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    for address in addresses:
        if not _is_public(address) and not _allow_listed(host, address):
            raise UnsafeUrl(f"The host '{host}' resolves to a private, loopback or link-local address, "
                            "which webhooks are never sent to.")
    return addresses


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _allow_listed(host: str, address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    for entry in settings.MITTIS_WEBHOOK_ALLOWED_PRIVATE:
        if entry == host:
            return True
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def post(url: str, *, body: bytes, headers: dict[str, str], timeout: float) -> HttpResult:
    """POST once; never raises for network trouble, which comes back as `error`."""
    with Connection(url, timeout=timeout) as connection:
        return connection.post(body=body, headers=headers)


class Connection:
    """Several POSTs to one URL over one kept-alive connection (a batch of webhooks to an endpoint).

    The host is resolved and checked once, when the first POST is made; every POST still gets the
    full timeout. Never raises for network trouble: each result carries its own `error`.
    """

    def __init__(self, url: str, *, timeout: float):
        self.url, self.timeout = url, timeout
        self._pool = None
        parts = urlsplit(url)
        self._parts, self._port = parts, parts.port or (443 if parts.scheme == "https" else 80)
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def _open(self):
        parts = self._parts
        address = resolve(parts.hostname or "", self._port)[0]
        deadline = urllib3.Timeout(connect=min(self.timeout, 10.0), read=self.timeout, total=self.timeout)
        if parts.scheme == "https":
            return urllib3.HTTPSConnectionPool(address, self._port, server_hostname=parts.hostname,
                                               assert_hostname=parts.hostname, cert_reqs="CERT_REQUIRED",
                                               timeout=deadline, retries=False, maxsize=1)
        return urllib3.HTTPConnectionPool(address, self._port, timeout=deadline, retries=False, maxsize=1)

    def post(self, *, body: bytes, headers: dict[str, str]) -> HttpResult:
        started = time.monotonic()

        def result(**fields) -> HttpResult:
            return HttpResult(latency_ms=int((time.monotonic() - started) * 1000), **fields)

        parts = self._parts
        if self._pool is None:
            try:
                self._pool = self._open()
            except UnsafeUrl as refused:
                return result(status=None, body="", error=str(refused))
        host_header = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        request_headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, "Host": host_header,
                           **headers}
        try:
            response = self._pool.urlopen("POST", self._path, body=body, headers=request_headers, redirect=False,
                                          retries=False, preload_content=False, assert_same_host=False)
            try:
                content = response.read(2048, decode_content=True)
            finally:
                response.release_conn()
        except urllib3.exceptions.NewConnectionError as failure:  # a ConnectTimeoutError subclass, but refused
            return result(status=None, body="", error=_describe(failure))
        except urllib3.exceptions.TimeoutError:
            return result(status=None, body="", error=f"Timed out after {self.timeout:g} s.")
        except urllib3.exceptions.HTTPError as failure:
            return result(status=None, body="", error=_describe(failure))
        return result(status=response.status, body=content.decode("utf-8", "replace"),
                      retry_after=_retry_after(response.headers.get("Retry-After")))


def _describe(failure: Exception) -> str:
    reason = getattr(failure, "reason", None) or failure
    text = str(reason)
    if "Connection refused" in text:
        return "Connection refused."
    if "CERTIFICATE_VERIFY_FAILED" in text or "SSL" in text:
        return f"TLS failed: {text[:300]}"
    return f"Connection failed: {text[:300]}"


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
