"""The Python SDK for the Mittis SMS API.

    from mittis_sdk import Mittis

    client = Mittis()  # reads MITTIS_API_KEY (and MITTIS_BASE_URL)
    message = client.messages.create(from_="+18045550142", to="+18045550199", body="Hello")
"""

from mittis_sdk._client import AsyncMittis, AsyncPage, AsyncPager, Mittis, SyncPage
from mittis_sdk._core import RateLimit, ResponseInfo
from mittis_sdk._errors import (
    APIConnectionError, APIError, APITimeoutError, AuthenticationError, BillingError, IdempotencyError,
    InvalidRequestError, MittisError, NotFoundError, PermissionDeniedError, RateLimitError, ServerError,
    SignatureVerificationError,
)
from mittis_sdk._version import API_VERSION, __version__
from mittis_sdk import models, webhooks

__all__ = [
    "Mittis", "AsyncMittis", "SyncPage", "AsyncPage", "AsyncPager", "RateLimit", "ResponseInfo", "models", "webhooks",
    "MittisError", "APIError", "APIConnectionError", "APITimeoutError", "AuthenticationError", "BillingError",
    "IdempotencyError", "InvalidRequestError", "NotFoundError", "PermissionDeniedError", "RateLimitError",
    "ServerError", "SignatureVerificationError", "API_VERSION", "__version__",
]
