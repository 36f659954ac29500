"""The one Redis client for small coordination (marks, counters), or None on embedded defaults."""

from functools import cache

from django.conf import settings


@cache
def redis_client():
    if not settings.MITTIS_RATE_LIMIT_REDIS_URL:
        return None
    import redis

    return redis.Redis.from_url(settings.MITTIS_RATE_LIMIT_REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5)
