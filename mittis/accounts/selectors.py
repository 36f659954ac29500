"""Reads for accounts and API keys."""

from mittis.accounts.models import ApiKey
from mittis.accounts.services import LIVE_PREFIX, TEST_PREFIX, hash_secret


def api_key_get_active(*, secret: str) -> ApiKey | None:
    """The active key for a presented secret, with its account, or None."""
    if not secret.startswith((LIVE_PREFIX, TEST_PREFIX)):
        return None
    return (
        ApiKey.objects.select_related("account")
        .filter(hashed_secret=hash_secret(secret), revoked_at__isnull=True, account__is_active=True)
        .first()
    )
