"""API-key authentication: `Authorization: Bearer mk_test_…` (or Basic with the key as user name)."""

import base64
import binascii
from dataclasses import dataclass

from rest_framework import authentication

from mittis.accounts.models import Account, ApiKey
from mittis.accounts.selectors import api_key_get_active
from mittis.accounts.services import api_key_touch
from mittis.api.exceptions import ApiError


@dataclass(frozen=True)
class ApiClient:
    """Who is calling: `request.user` for API requests. Every selector scopes by account and livemode."""

    account: Account
    api_key: ApiKey

    is_authenticated = True

    @property
    def livemode(self) -> bool:
        return self.api_key.livemode


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        header = authentication.get_authorization_header(request)
        if not header:
            return None  # DRF answers 401 missing_api_key
        secret = _secret_from_header(header)
        api_key = api_key_get_active(secret=secret) if secret else None
        if api_key is None:
            raise ApiError("invalid_api_key")
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
