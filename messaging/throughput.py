"""Messages per second, per sender and per carrier, honoured across every worker without sleeping.

A generic cell rate algorithm (GCRA): each key keeps the theoretical arrival time of its next
message. `reserve` either takes a slot now (0.0) or says how long until one is free, without taking
it; the send task then re-schedules itself with that countdown instead of holding a worker.
Atomic in Redis (one Lua call, Redis's clock); while Redis cannot be reached, counted in the process
instead, so that sending goes on at no more than the rate per worker process.
"""

import functools
import math
import threading
import time

from django.conf import settings
from django.core.cache import cache

from mittis.redis import redis_client

# Slot i (0-based) of a request is free when tat + i * interval - interval * (burst - 1) <= now (+ ahead). Times are
# kept as text with microseconds: a Lua number given to SET or returned would be cut to 14 digits or an integer.
_LUA = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + tonumber(now_parts[2]) / 1000
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local ahead = tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local granted = math.min(wanted, math.max(0, math.floor((now + ahead - tat) / interval) + burst))
if granted > 0 then
  local new_tat = tat + granted * interval
  redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + 1000)
end
local wait = 0
if granted < wanted then wait = tat + (granted - burst + 1) * interval - now end
return {granted, string.format('%.3f', wait)}
"""
_local_lock = threading.Lock()


def reserve(key: str, per_second: float, burst: int = 1) -> float:
    """Take one slot of `key`'s rate, or return the seconds to wait for one (nothing taken)."""
    return reserve_many(key, per_second, 1, burst=burst, ahead=0.0)[1]


# A batch is sent one message after another: it may take the slots that fall due while it is being sent.
BATCH_AHEAD = 0.02


def reserve_many(key: str, per_second: float, wanted: int, burst: int = 1,
                 ahead: float = BATCH_AHEAD) -> tuple[int, float]:
    """Take up to `wanted` slots of `key`'s rate at once, those free now or within `ahead` seconds: (how many
    were taken, the seconds until the next one is free, 0.0 when all were taken). A batch pays one round
    trip, not one per message."""
    if per_second <= 0 or wanted <= 0:
        return max(wanted, 0), 0.0
    interval_ms = 1000.0 / per_second
    full_key = f"{settings.MITTIS_RATE_LIMIT_PREFIX}:tps:{key}"
    try:
        granted, wait_ms = _redis(full_key, interval_ms, burst, wanted, ahead * 1000)
        return granted, wait_ms / 1000.0
    except Exception:  # a throughput check must never stop sending: fall through to the local one
        pass
    granted, wait_ms = _local(full_key, interval_ms, burst, wanted, ahead * 1000)
    return granted, wait_ms / 1000.0


@functools.cache
def _script():
    return redis_client().register_script(_LUA)


def _redis(key: str, interval_ms: float, burst: int, wanted: int, ahead_ms: float) -> tuple[int, float]:
    granted, wait = _script()(keys=[key], args=[repr(interval_ms), burst, wanted, repr(ahead_ms)])
    return int(granted), float(wait)


def _local(key: str, interval_ms: float, burst: int, wanted: int, ahead_ms: float) -> tuple[int, float]:
    with _local_lock:
        now = time.time() * 1000
        tat = max(cache.get(key, now), now)
        granted = min(wanted, max(0, math.floor((now + ahead_ms - tat) / interval_ms) + burst))
        if granted:
            new_tat = tat + granted * interval_ms
            cache.set(key, new_tat, timeout=math.ceil((new_tat - now) / 1000) + 1)
        wait = tat + (granted - burst + 1) * interval_ms - now if granted < wanted else 0.0
        return granted, wait
