"""Writes for accounts and API keys."""

from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from mittis.accounts.keys import LIVE_PREFIX, TEST_PREFIX, hash_secret
from mittis.accounts.models import Account, ApiKey
from mittis.accounts.selectors import api_keys_changed
from mittis.ids import random_token

# 32 base62 characters: ~190 bits, so a fast hash is safe to store (nothing to brute-force).
_SECRET_LENGTH = 32
_DISPLAY_PREFIX_LENGTH = 12
# last_used_at is for people ("used today?"); writing it on every request would cost a write per call.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class CreatedApiKey:
    api_key: ApiKey
    secret: str  # shown once, never stored


def account_create(*, name: str) -> Account:
    return Account.objects.create(name=name)


def api_key_create(*, account: Account, livemode: bool, name: str = "") -> CreatedApiKey:
    secret = (LIVE_PREFIX if livemode else TEST_PREFIX) + random_token(_SECRET_LENGTH)
    api_key = ApiKey.objects.create(
        account=account,
        livemode=livemode,
        name=name,
        prefix=secret[:_DISPLAY_PREFIX_LENGTH],
        hashed_secret=hash_secret(secret),
    )
    return CreatedApiKey(api_key=api_key, secret=secret)


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    with transaction.atomic():
        ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        # An UPDATE sends no post_save. Forgotten now, for what runs in this transaction, and again at
        # commit, for a request that read the key before then.
        api_keys_changed()
        transaction.on_commit(api_keys_changed)
    api_key.refresh_from_db()
    return api_key


def api_key_touch(*, api_key: ApiKey) -> None:
    """Record use, at most once per LAST_USED_RESOLUTION, with a write that never blocks a request on a lock."""
    now = timezone.now()
    if api_key.last_used_at and now - api_key.last_used_at < LAST_USED_RESOLUTION:
        return
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    api_key.last_used_at = now  # the process's cached key is this very instance (`api_key_get_active`)
