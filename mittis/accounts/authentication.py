"""API-key authentication: `Authorization: Bearer mk_test_…` (or Basic with the key as user name)."""

import base64
import binascii
from dataclasses import dataclass

from django.http import HttpRequest
from rest_framework import authentication, exceptions

from mittis.accounts.models import Account, ApiKey
from mittis.accounts.selectors import api_key_get_active
from mittis.accounts.services import api_key_touch


@dataclass(frozen=True)
class ApiClient:
    """Who is calling: `request.user` for API requests. Every selector scopes by account and livemode."""

    account: Account
    api_key: ApiKey

    is_authenticated = True

    @property
    def livemode(self) -> bool:
        return self.api_key.livemode


def api_key_for_request(request: HttpRequest) -> tuple[bool, ApiKey | None]:
    """(whether a key was presented, the active key it names or None), looked up once per request:
    the rate limiter and idempotency run before DRF authenticates, and share this lookup with it."""
    found = getattr(request, "_mittis_api_key", None)
    if found is None:
        try:
            header = authentication.get_authorization_header(request)
        except UnicodeEncodeError:  # beyond Latin-1, which no HTTP server hands over: a key no one has
            header = b"?"
        secret = _secret_from_header(header) if header else None
        found = (bool(header), api_key_get_active(secret=secret) if secret else None)
        request._mittis_api_key = found
    return found


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        presented, api_key = api_key_for_request(request._request)
        if not presented:
            return None  # DRF answers 401 missing_api_key
        if api_key is None:
            raise exceptions.AuthenticationFailed()  # rendered as 401 invalid_api_key
        api_key_touch(api_key=api_key)
        return ApiClient(account=api_key.account, api_key=api_key), api_key

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


def _secret_from_header(header: bytes) -> str | None:
    scheme, _, credentials = header.partition(b" ")
    credentials = credentials.strip()
    try:
        if scheme.lower() == b"bearer":
            return credentials.decode("ascii")
        if scheme.lower() == b"basic":  # curl -u mk_test_…: as with Stripe
            return base64.b64decode(credentials, validate=True).decode("ascii").partition(":")[0]
    except (UnicodeDecodeError, binascii.Error):
        return None
    return None
