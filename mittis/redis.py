"""The one Redis client for small coordination (marks, counters), or None on embedded defaults."""

from functools import cache
import logging

from django.conf import settings

logger = logging.getLogger(__name__)


@cache
def redis_client():
    if not settings.MITTIS_RATE_LIMIT_REDIS_URL:
        return None
    import redis

    return redis.Redis.from_url(settings.MITTIS_RATE_LIMIT_REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5)


def mark_clear(key: str) -> None:
    """Delete a coordination mark. Never raises: a mark that stays expires on its own (each has a lease)."""
    client = redis_client()
    if client is not None:
        try:
            client.delete(key)
        except Exception:
            logger.warning("Could not clear the mark %s", key, exc_info=True)
