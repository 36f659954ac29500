"""The one Redis client for small coordination (marks, counters)."""

from dataclasses import dataclass
from functools import cache
import logging
from typing import Callable

from django.conf import settings

logger = logging.getLogger(__name__)


@cache
def redis_client():
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # One retry at once, for a pooled connection Redis closed (a restart); redis-py's default, three with
    # backoff, held every request 4 s while Redis was down, though each caller carries on without it.
    return redis.Redis.from_url(settings.MITTIS_RATE_LIMIT_REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5,
                                retry=Retry(NoBackoff(), 1))


def mark_clear(key: str) -> None:
    """Delete a coordination mark. Never raises: a mark that stays expires on its own (each has a lease)."""
    try:
        redis_client().delete(key)
    except Exception:
        logger.warning("Could not clear the mark %s", key, exc_info=True)


@dataclass(frozen=True)
class MarkRequest:
    """Take the marks among `keys` that are free (`SET NX EX lease`): every free one, or with `first_only`
    the first. Then `then(indexes of the keys taken)`, or `then(None)` when Redis could not be asked, in
    which case the caller acts as if it took them all: without marks, work may overlap, never go missing."""

    keys: list[str]
    lease: int
    then: Callable[[list[int] | None], None]
    first_only: bool = False


# Every request's marks in one round trip. ARGV: per request its mode (1: the first free key), key count and
# lease; KEYS: every request's keys, in order. Answers, per request, the 0-based indexes of the keys taken.
_TAKE_MARKS = """
local taken, k = {}, 1
for r = 0, #ARGV / 3 - 1 do
  local first, count, lease, got = ARGV[3 * r + 1] == '1', tonumber(ARGV[3 * r + 2]), ARGV[3 * r + 3], {}
  for i = 0, count - 1 do
    if not (first and #got > 0) and redis.call('SET', KEYS[k + i], 1, 'NX', 'EX', lease) then got[#got + 1] = i end
  end
  k = k + count
  taken[r + 1] = got
end
return taken
"""


@cache
def _take_marks_script(client):
    return client.register_script(_TAKE_MARKS)


def marks_take(requests: list[MarkRequest]) -> None:
    """Take the marks of several requests in one Redis round trip, then run each request's `then`."""
    taken = None
    if requests:
        try:
            taken = _take_marks_script(redis_client())(
                keys=[key for request in requests for key in request.keys],
                args=[value for request in requests
                      for value in (int(request.first_only), len(request.keys), request.lease)])
        except Exception:
            logger.warning("Could not take coordination marks", exc_info=True)
    for number, request in enumerate(requests):
        request.then(None if taken is None else [int(index) for index in taken[number]])
