"""Outbound HTTP to customers' URLs, safely: no private addresses, no redirects, a hard timeout.

The host is resolved once per request, every address checked, and the connection made to a checked
address (with the original host for `Host` and TLS), so DNS cannot be rebound between check and use.
"""

from dataclasses import dataclass
from email.utils import parsedate_to_datetime
import functools
import http.client as http_client
import io
import ipaddress
import select
import socket
import ssl
import time
from urllib.parse import urlsplit

from django.conf import settings

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
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _LOCAL_USE_NAT64:
            return False
        embedded = _embedded_ipv4(ip)
        if embedded:  # what the packets reach: the IPv6 wrapper says nothing about it
            return all(each.is_global and not each.is_multicast for each in embedded)
    return ip.is_global and not ip.is_multicast


# IPv6 ranges whose addresses carry an IPv4 address in their last 32 bits, which the host's own stack, a
# NAT64 gateway or an SIIT translator delivers to: `[64:ff9b::a9fe:a9fe]` is 169.254.169.254. Python's
# `is_global` calls most of them global.
_IPV4_IN_LAST_32_BITS = (
    ipaddress.IPv6Network("::ffff:0:0/96"),  # IPv4-mapped (RFC 4291)
    ipaddress.IPv6Network("::ffff:0:0:0/96"),  # SIIT, IPv4-translated (RFC 2765)
    ipaddress.IPv6Network("64:ff9b::/96"),  # NAT64, the well-known prefix (RFC 6052)
    ipaddress.IPv6Network("::/96"),  # IPv4-compatible (RFC 4291, deprecated; `::1` reads as 0.0.0.1)
)
# NAT64's local-use prefix (RFC 8215) is, like 10.0.0.0/8, never reachable from outside its own network; and
# its operator chooses where in it the IPv4 address sits (RFC 6052 2.2), so no one reading of it is the truth.
_LOCAL_USE_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses `ip` leads to, or [] for a plain IPv6 address."""
    if any(ip in network for network in _IPV4_IN_LAST_32_BITS):
        return [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    if ip.sixtofour:  # 2002::/16: the site's IPv4 in bits 16-47
        return [ip.sixtofour]
    if ip.teredo:  # 2001::/32: the server (bits 32-63) and the client (the last 32 bits, inverted)
        return list(ip.teredo)
    return []


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

    The host is resolved and checked when the connection is opened; every POST still gets the full
    timeout. Never raises for network trouble: each result carries its own `error`. Plain http.client,
    not urllib3: a flush makes thousands of POSTs a second and needs no pool, retries or redirects.
    """

    def __init__(self, url: str, *, timeout: float):
        self.url, self.timeout = url, timeout
        parts = urlsplit(url)
        self._hostname, self._tls = parts.hostname or "", parts.scheme == "https"
        self._port = parts.port or (443 if self._tls else 80)
        self._host_header = self._hostname if parts.port is None else f"{self._hostname}:{parts.port}"
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._http: _PinnedConnection | None = None
        self._idle, self._fd = select.poll(), None

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        if self._fd is not None:
            self._idle.unregister(self._fd)
            self._fd = None
        if self._http is not None:
            self._http.close()
            self._http = None

    def _reusable(self) -> bool:
        """Open, and not closed by the receiver since: a closed (or unasked-for talking) socket reads as ready."""
        return self._http is not None and self._http.sock is not None and not self._idle.poll(0)

    def post(self, *, body: bytes, headers: dict[str, str]) -> HttpResult:
        started = time.monotonic()

        def result(**fields) -> HttpResult:
            return HttpResult(latency_ms=int((time.monotonic() - started) * 1000), **fields)

        def remaining() -> float:  # one deadline for the whole POST, not a fresh timeout per socket read
            left = self.timeout - (time.monotonic() - started)
            if left <= 0:
                raise TimeoutError
            return left

        try:
            if not self._reusable():
                self.close()
                address = resolve(self._hostname, self._port)[0]  # checked now, and connected to as checked
                self._http = _PinnedConnection(address, self._port, self._hostname, tls=self._tls)
                self._http.open(min(self.timeout, CONNECT_TIMEOUT))
                self._fd = self._http.sock.fileno()
                self._idle.register(self._fd, select.POLLIN)
            http = self._http
            http.deadline = started + self.timeout
            http.sock.settimeout(remaining())
            http.request("POST", self._path, body=body,
                         headers={"Content-Type": "application/json", "User-Agent": USER_AGENT,
                                  "Host": self._host_header, **headers})
            response = http.getresponse()
            content = response.read(BODY_KEPT)
            # The rest of a short answer is read so the connection can carry the next POST; a long one
            # costs less as a new connection than as megabytes read and thrown away.
            drained = 0
            while not response.isclosed() and drained <= DRAIN_LIMIT:
                drained += len(response.read(DRAIN_LIMIT))
            if not response.isclosed():
                self.close()
        except UnsafeUrl as refused:
            return result(status=None, body="", error=str(refused))
        except TimeoutError:
            self.close()
            return result(status=None, body="", error=f"Timed out after {self.timeout:g} s.")
        except (OSError, http_client.HTTPException) as failure:
            self.close()
            return result(status=None, body="", error=_describe(failure))
        return result(status=response.status, body=content.decode("utf-8", "replace"),
                      retry_after=_retry_after(response.getheader("Retry-After")))


CONNECT_TIMEOUT = 10.0
BODY_KEPT = 2048
DRAIN_LIMIT = 64 * 1024


class _PinnedConnection(http_client.HTTPConnection):
    """An HTTP(S) connection to one checked address, with the URL's host for SNI and the certificate, whose
    answers must arrive by `deadline`."""

    def __init__(self, address: str, port: int, hostname: str, *, tls: bool):
        super().__init__(address, port)
        self.hostname, self.tls, self.deadline = hostname, tls, float("inf")
        self.response_class = functools.partial(_DeadlineResponse, connection=self)

    def open(self, timeout: float) -> None:
        sock = socket.create_connection((self.host, self.port), timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls:
            try:
                sock = _tls_context(settings.MITTIS_WEBHOOK_CA_FILE).wrap_socket(sock, server_hostname=self.hostname)
            except BaseException:
                sock.close()
                raise
        self.sock = sock

    def connect(self) -> None:  # http.client reconnects on its own after a closed answer; Connection does, checked
        raise http_client.NotConnected("The connection is closed; Connection opens a new one.")


class _DeadlineResponse(http_client.HTTPResponse):
    """A response read against its connection's deadline: a receiver sending a byte at a time, each in time,
    still runs out of time (a socket timeout alone bounds only each read)."""

    def __init__(self, sock, *args, connection: _PinnedConnection, **kwargs):
        super().__init__(sock, *args, **kwargs)
        self.fp = io.BufferedReader(_DeadlineReader(self.fp.detach(), sock, connection.deadline))


class _DeadlineReader(io.RawIOBase):
    def __init__(self, raw, sock: socket.socket, deadline: float):
        self.raw, self.sock, self.deadline = raw, sock, deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        self.sock.settimeout(left)
        return self.raw.readinto(buffer)

    def close(self) -> None:
        self.raw.close()  # the socket's file, which keeps the socket open until the answer is read
        super().close()


@functools.lru_cache(maxsize=4)
def _tls_context(ca_file: str) -> ssl.SSLContext:
    """Verified TLS (certificate and host name), against the system's CAs or `ca_file`."""
    return ssl.create_default_context(cafile=ca_file or None)


def _describe(failure: Exception) -> str:
    if isinstance(failure, ConnectionRefusedError):
        return "Connection refused."
    if isinstance(failure, ssl.SSLError):
        return f"TLS failed: {str(failure)[:300]}"
    return f"Connection failed: {str(failure)[:300] or type(failure).__name__}"


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
