"""Messages per second, per sender and per carrier, honoured across every worker without sleeping.

A generic cell rate algorithm (GCRA): each key keeps the theoretical arrival time of its next
message. `reserve` either takes a slot now (0.0) or says how long until one is free, without taking
it; the send task then re-schedules itself with that countdown instead of holding a worker.
Atomic in Redis (one Lua call, Redis's clock) when there is one; otherwise in-process (embedded
defaults: a single worker process).
"""

import math
import threading
import time

from django.conf import settings
from django.core.cache import cache

_LUA = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allowed_at = tat - interval * (burst - 1)
if now < allowed_at then
  return allowed_at - now
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(new_tat - now) + 1000)
return 0
"""
_script = None
_local_lock = threading.Lock()


def reserve(key: str, per_second: float, burst: int = 1) -> float:
    """Take one slot of `key`'s rate, or return the seconds to wait for one (nothing taken)."""
    if per_second <= 0:
        return 0.0
    interval_ms = 1000.0 / per_second
    full_key = f"{settings.MITTIS_RATE_LIMIT_PREFIX}:tps:{key}"
    if settings.MITTIS_RATE_LIMIT_REDIS_URL:
        try:
            return _redis(full_key, interval_ms, burst) / 1000.0
        except Exception:  # a throughput check must never stop sending: fall through to the local one
            pass
    return _local(full_key, interval_ms, burst) / 1000.0


def _redis(key: str, interval_ms: float, burst: int) -> float:
    global _script
    if _script is None:
        import redis

        client = redis.Redis.from_url(settings.MITTIS_RATE_LIMIT_REDIS_URL, socket_timeout=0.5,
                                      socket_connect_timeout=0.5)
        _script = client.register_script(_LUA)
    return float(_script(keys=[key], args=[interval_ms, burst]))


def _local(key: str, interval_ms: float, burst: int) -> float:
    with _local_lock:
        now = time.time() * 1000
        tat = max(cache.get(key, now), now)
        allowed_at = tat - interval_ms * (burst - 1)
        if now < allowed_at:
            return allowed_at - now
        new_tat = tat + interval_ms
        cache.set(key, new_tat, timeout=math.ceil((new_tat - now) / 1000) + 1)
        return 0.0
