"""Reads for accounts and API keys."""

import hmac

from django.core.cache import cache

from mittis.accounts.models import ApiKey
from mittis.accounts.services import LIVE_PREFIX, TEST_PREFIX, hash_secret


# Keys are looked up on every request: a few seconds in the cache spare the database. Any change to a
# key or an account (revocation, deactivation) bumps a generation that makes every cached entry stale
# at once in this process; other processes see it within KEY_CACHE_SECONDS.
KEY_CACHE_SECONDS = 5
_GENERATION = "mittis:auth-generation"


def api_key_get_active(*, secret: str) -> ApiKey | None:
    """The active key for a presented secret, with its account, or None."""
    if not secret.startswith((LIVE_PREFIX, TEST_PREFIX)):
        return None
    hashed = hash_secret(secret)
    generation = cache.get_or_set(_GENERATION, 0, timeout=None)
    cached = cache.get(f"mittis:key:{hashed}")
    if cached is not None and cached[0] == generation:
        return cached[1]
    api_key = (
        ApiKey.objects.select_related("account")
        .filter(hashed_secret=hashed, revoked_at__isnull=True, account__is_active=True)
        .first()
    )
    # Found by its hash, so the secret itself is never compared; this comparison is constant-time too.
    if api_key is not None and not hmac.compare_digest(api_key.hashed_secret, hashed):
        return None
    if api_key is not None:
        cache.set(f"mittis:key:{hashed}", (generation, api_key), timeout=KEY_CACHE_SECONDS)
    return api_key


def api_keys_changed() -> None:
    """Forget every cached key (a key was revoked, an account changed)."""
    try:
        cache.incr(_GENERATION)
    except ValueError:
        cache.set(_GENERATION, 1, timeout=None)
