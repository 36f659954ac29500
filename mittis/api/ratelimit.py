"""Rate limits: one atomic counter per API key (or client address) per window, shared by every process.

The headers follow the IETF RateLimit draft (`RateLimit-Policy`, `RateLimit`) and the older
`X-RateLimit-*` trio that most clients read; see ../shared/API-CONTRACT.md, section Rate limits.
"""

from dataclasses import dataclass
import functools
import ipaddress
import logging
import math
import threading
import time

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
import http_sf

from mittis.redis import redis_client

logger = logging.getLogger(__name__)

POLICY_NAME = "default"


@dataclass(frozen=True)
class Policy:
    limit: int
    window: int  # seconds


@dataclass(frozen=True)
class Decision:
    policy: Policy
    count: int  # requests in this window, this one included
    reset_in: int  # whole seconds until the window resets
    reset_at: int  # epoch seconds
    unavailable: bool = False  # Redis could not count: MITTIS_RATE_LIMIT_FAIL_OPEN says what follows

    @property
    def allowed(self) -> bool:
        return self.count <= self.policy.limit

    @property
    def remaining(self) -> int:
        return max(0, self.policy.limit - self.count)

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Policy": _policy_header(self.policy.limit, self.policy.window),
            "RateLimit": http_sf.ser([(POLICY_NAME, {"r": self.remaining, "t": self.reset_in})]),
            "X-RateLimit-Limit": str(self.policy.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_at),
        }


@functools.lru_cache(maxsize=1024)  # a few policies, the same header on every answer
def _policy_header(limit: int, window: int) -> str:
    return http_sf.ser([(POLICY_NAME, {"q": limit, "w": window})])


def policy_for(account) -> Policy:
    if account is None:
        return Policy(settings.MITTIS_ANONYMOUS_RATE_LIMIT, settings.MITTIS_RATE_LIMIT_WINDOW)
    return Policy(account.rate_limit or settings.MITTIS_RATE_LIMIT,
                  account.rate_limit_window or settings.MITTIS_RATE_LIMIT_WINDOW)


def hit(identity: str, policy: Policy) -> Decision:
    """Count one request against `identity` and say whether it is within `policy`."""
    key = f"{settings.MITTIS_RATE_LIMIT_PREFIX}:{identity}:{policy.limit}:{policy.window}"
    try:
        count, reset_in_ms = _count(key, policy.window)
    except Exception as error:  # never a 500: the caller admits or refuses, as the setting says
        _outage.failed(error)
        count, reset_in_ms, unavailable = 0, policy.window * 1000, True
    else:
        _outage.counted()
        unavailable = False
    reset_in = max(1, math.ceil(reset_in_ms / 1000))
    return Decision(policy=policy, count=count, reset_in=reset_in, reset_at=math.ceil(time.time()) + reset_in,
                    unavailable=unavailable)


# While Redis is down every request fails to count: one warning this often says so, not a traceback each.
OUTAGE_LOG_INTERVAL = 60.0  # seconds


class _Outage:
    """This process's view of the limiter's Redis: down since when, and how many requests went uncounted."""

    def __init__(self):
        self._lock = threading.Lock()
        self.since: float | None = None  # monotonic; None while Redis answers
        self._logged_at, self._uncounted = 0.0, 0

    def failed(self, error: Exception) -> None:
        now = time.monotonic()
        with self._lock:
            self._uncounted += 1
            if self.since is not None and now - self._logged_at < OUTAGE_LOG_INTERVAL:
                return
            self.since = self.since if self.since is not None else now
            self._logged_at, uncounted, self._uncounted = now, self._uncounted, 0
            down_for = now - self.since
        what = "admitted" if settings.MITTIS_RATE_LIMIT_FAIL_OPEN else "refused with 503"
        logger.warning("Rate limiter unavailable for %.0f s (%s: %s): %s requests %s uncounted since the last "
                       "warning (MITTIS_RATE_LIMIT_FAIL_OPEN)", down_for, type(error).__name__, error, uncounted,
                       what)

    def counted(self) -> None:
        if self.since is None:  # the usual case, read without the lock
            return
        with self._lock:
            if self.since is None:
                return
            down_for, uncounted, self.since, self._uncounted = time.monotonic() - self.since, self._uncounted, None, 0
        logger.warning("Rate limiter available again after %.0f s (%s more requests uncounted)", down_for, uncounted)


_outage = _Outage()


# One round trip: the window starts at the first request and its key expires with it.
_HIT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""
@functools.cache
def _hit_script():
    return redis_client().register_script(_HIT_SCRIPT)


def _count(key: str, window: int) -> tuple[int, int]:
    current, ttl_ms = _hit_script()(keys=[key], args=[window * 1000])
    return int(current), int(ttl_ms)


def client_address(request) -> str:
    """Whom an unauthenticated request is counted against: the peer, or, when the peer is a trusted proxy
    (MITTIS_TRUSTED_PROXIES), the right-most address of its forwarded-for header that is not one. Each proxy
    appends the address it was reached from, so everything left of that address came from the client and may
    be forged; everything right of it was written by our proxies."""
    peer = request.META.get("REMOTE_ADDR") or "unknown"
    proxies = trusted_proxies(tuple(settings.MITTIS_TRUSTED_PROXIES))
    if not proxies or not _within(_address(peer), proxies):
        return peer
    header = request.META.get(_meta_name(settings.MITTIS_FORWARDED_FOR_HEADER), "")
    client = peer
    for entry in reversed(header.split(",")):
        address = _address(entry)
        if address is None:  # not an address: the hop that handed it over is all we know
            return client
        client = str(address)
        if not _within(address, proxies):
            return client
    return client  # every hop a proxy of ours: the left-most one is where the request began


@functools.lru_cache(maxsize=4)
def trusted_proxies(entries: tuple[str, ...]) -> tuple:
    try:
        return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry.strip())
    except ValueError as error:
        raise ImproperlyConfigured(f"MITTIS_TRUSTED_PROXIES: {error}") from error


@functools.lru_cache(maxsize=4)
def _meta_name(header: str) -> str:
    return "HTTP_" + header.strip().upper().replace("-", "_")


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address as proxies write it: `203.0.113.7`, `2001:db8::1`, with a port (`203.0.113.7:4711`,
    `[2001:db8::1]:4711`) as some add, or None."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _within(address, networks) -> bool:
    return address is not None and any(address in network for network in networks)
