"""Rate limits: one atomic counter per API key (or client address) per window, shared by every process.

The headers follow the IETF RateLimit draft (`RateLimit-Policy`, `RateLimit`) and the older
`X-RateLimit-*` trio that most clients read; see ../shared/API-CONTRACT.md, section Rate limits.
"""

from dataclasses import dataclass
import functools
import logging
import math
import time

from django.conf import settings
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

    @property
    def allowed(self) -> bool:
        return self.count <= self.policy.limit

    @property
    def remaining(self) -> int:
        return max(0, self.policy.limit - self.count)

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Policy": http_sf.ser([(POLICY_NAME, {"q": self.policy.limit, "w": self.policy.window})]),
            "RateLimit": http_sf.ser([(POLICY_NAME, {"r": self.remaining, "t": self.reset_in})]),
            "X-RateLimit-Limit": str(self.policy.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_at),
        }


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
    except Exception:  # the limiter failing must not take the API down with it: admit, and say so
        logger.warning("Rate limiter unavailable; admitting %s", identity, exc_info=True)
        count, reset_in_ms = 0, policy.window * 1000
    reset_in = max(1, math.ceil(reset_in_ms / 1000))
    return Decision(policy=policy, count=count, reset_in=reset_in, reset_at=math.ceil(time.time()) + reset_in)


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
    return request.META.get("REMOTE_ADDR") or "unknown"
