"""Reads for accounts and API keys."""

import hmac
import time

from mittis.accounts.keys import LIVE_PREFIX, TEST_PREFIX, hash_secret
from mittis.accounts.models import ApiKey


# Keys are looked up on every request: a few seconds in the process spare the database. Any change to a
# key or an account (revocation, deactivation) bumps a generation that makes every cached entry stale
# at once in this process; other processes see it within KEY_CACHE_SECONDS. The process keeps the rows
# themselves (Django's local-memory cache unpickled a key and its account on every request), so a
# request's key and account are shared with the process's other requests: read them, never change them.
KEY_CACHE_SECONDS = 5
KEY_CACHE_SIZE = 10_000
_keys: dict[str, tuple[float, int, ApiKey]] = {}  # hashed secret: (good until, generation, key)
_generation = 0


def api_key_get_active(*, secret: str) -> ApiKey | None:
    """The active key for a presented secret, with its account, or None."""
    if not secret.startswith((LIVE_PREFIX, TEST_PREFIX)):
        return None
    hashed = hash_secret(secret)
    generation = _generation
    cached = _keys.get(hashed)
    if cached is not None and cached[1] == generation and cached[0] > time.monotonic():
        return cached[2]
    api_key = (
        ApiKey.objects.select_related("account")
        .filter(hashed_secret=hashed, revoked_at__isnull=True, account__is_active=True)
        .first()
    )
    # Found by its hash, so the secret itself is never compared; this comparison is constant-time too.
    if api_key is not None and not hmac.compare_digest(api_key.hashed_secret, hashed):
        return None
    if api_key is not None:
        if len(_keys) >= KEY_CACHE_SIZE:
            _keys.clear()  # a bound, not an eviction policy: refilled from the database in a few requests
        _keys[hashed] = (time.monotonic() + KEY_CACHE_SECONDS, generation, api_key)
    return api_key


def api_keys_changed() -> None:
    """Forget every cached key (a key was revoked, an account changed)."""
    global _generation
    _generation += 1
