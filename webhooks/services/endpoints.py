"""Webhook endpoints and the secrets that sign what they are sent: an endpoint's, or the account's callback
secret for messages' `status_callback` URLs."""

from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from mittis import crypto, versions
from mittis.accounts.models import Account
from mittis.errors import DomainError
from webhooks import signing, transport
from webhooks.models import CallbackSecret, WebhookEndpoint


# After a rotation the old secret signs beside the new one this long, so receivers can switch over.
ROTATION_OVERLAP = timedelta(hours=24)


@dataclass(frozen=True)
class EndpointWithSecret:
    endpoint: WebhookEndpoint
    secret: str  # shown to the customer once, now


def endpoint_create(*, account: Account, livemode: bool, url: str, description: str = "",
                    enabled_events: list[str], api_version: str | None = None) -> EndpointWithSecret:
    """`api_version`: the version its payloads are rendered in; the account's when None."""
    _check_url(url, livemode=livemode, field="url")
    if api_version is not None:
        _check_version(api_version)
    secret = signing.secret_generate()
    endpoint = WebhookEndpoint.objects.create(
        account=account, livemode=livemode, url=url, description=description, enabled_events=enabled_events,
        api_version=api_version or account.api_version, secret_encrypted=crypto.encrypt(secret))
    return EndpointWithSecret(endpoint, secret)


def endpoint_update(*, endpoint: WebhookEndpoint, **changes) -> WebhookEndpoint:
    """Change url, description, enabled_events, api_version or status. Re-enabling forgets past failures."""
    if "url" in changes:
        _check_url(changes["url"], livemode=endpoint.livemode, field="url")
    if "api_version" in changes:
        _check_version(changes["api_version"])
    if changes.get("status") == WebhookEndpoint.ENABLED and endpoint.status != WebhookEndpoint.ENABLED:
        endpoint.failing_since, endpoint.disabled_reason = None, ""
    if changes.get("status") == WebhookEndpoint.DISABLED and endpoint.status != WebhookEndpoint.DISABLED:
        endpoint.disabled_reason = "Disabled through the API."
    for name, value in changes.items():
        setattr(endpoint, name, value)
    endpoint.save()
    return endpoint


def endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    endpoint.delete()


def endpoint_rotate_secret(*, endpoint: WebhookEndpoint) -> EndpointWithSecret:
    secret = signing.secret_generate()
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        _rotate(endpoint, secret)
        endpoint.save(update_fields=["secret_encrypted", "previous_secret_encrypted",
                                     "previous_secret_expires_at", "updated_at"])
    return EndpointWithSecret(endpoint, secret)


def _rotate(holder, secret: str) -> None:
    holder.previous_secret_encrypted = holder.secret_encrypted
    holder.previous_secret_expires_at = timezone.now() + ROTATION_OVERLAP
    holder.secret_encrypted = crypto.encrypt(secret)


def signing_secrets(holder: WebhookEndpoint | CallbackSecret) -> list[str]:
    """The current secret, and the previous one while its overlap lasts."""
    found = [crypto.decrypt(holder.secret_encrypted)]
    if holder.previous_secret_encrypted and holder.previous_secret_expires_at and \
            holder.previous_secret_expires_at > timezone.now():
        found.append(crypto.decrypt(holder.previous_secret_encrypted))
    return found


def _check_url(url: str, *, livemode: bool, field: str) -> None:
    try:
        transport.check_url(url, livemode=livemode)
    except transport.UnsafeUrl as refused:
        raise DomainError("url_invalid", str(refused), field=field)


def _check_version(api_version: str) -> None:
    if (problem := versions.problem(api_version, name="api_version")) is not None:
        raise DomainError("api_version_invalid", problem, field="api_version")


def callback_url_check(*, url: str, livemode: bool) -> None:
    """For a message's `status_callback`: the same rules as an endpoint's URL."""
    _check_url(url, livemode=livemode, field="status_callback")


def callback_secret_get(*, account_id: int, livemode: bool) -> CallbackSecret:
    secret, _ = CallbackSecret.objects.get_or_create(
        account_id=account_id, livemode=livemode,
        defaults={"secret_encrypted": crypto.encrypt(signing.secret_generate())})
    return secret


def callback_secret_rotate(*, account_id: int, livemode: bool) -> str:
    secret = signing.secret_generate()
    with transaction.atomic():
        holder = callback_secret_get(account_id=account_id, livemode=livemode)
        holder = CallbackSecret.objects.select_for_update().get(pk=holder.pk)
        _rotate(holder, secret)
        holder.rotated_at = timezone.now()
        holder.save()
    return secret
