"""Webhook signatures, by the Standard Webhooks scheme (https://www.standardwebhooks.com/).

    event = client.webhooks.verify(request.body, request.headers, secret="whsec_...")

`verify` checks the signature over the exact bytes received and that the timestamp is recent, then returns the
typed event. Pass the raw body: JSON parsed and dumped again no longer matches its signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any, Mapping, Optional, Union

from mittis_sdk._errors import SignatureVerificationError
from mittis_sdk.models import Event

DEFAULT_TOLERANCE = 300  # seconds either side of now, as the Standard Webhooks libraries allow
SECRET_PREFIX = "whsec_"


def _key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret[len(SECRET_PREFIX):] if secret.startswith(SECRET_PREFIX) else secret,
                                validate=True)
    except ValueError as exc:
        raise ValueError("A webhook secret is 'whsec_' followed by base64.") from exc


def _text(payload: Union[bytes, str]) -> str:
    return payload.decode() if isinstance(payload, (bytes, bytearray)) else payload


def signature(payload: Union[bytes, str], *, id: str, timestamp: int, secret: str) -> str:
    """`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{payload}">`."""
    signed = f"{id}.{timestamp}.{_text(payload)}".encode()
    return "v1," + base64.b64encode(hmac.new(_key(secret), signed, hashlib.sha256).digest()).decode()


def sign(payload: Union[bytes, str], *, id: str, secret: str, timestamp: Optional[int] = None) -> dict[str, str]:
    """The headers that sign `payload` as Mittis signs a delivery: `webhook-id`, `webhook-timestamp`,
    `webhook-signature`."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {"webhook-id": id, "webhook-timestamp": str(timestamp),
            "webhook-signature": signature(payload, id=id, timestamp=timestamp, secret=secret)}


def generate_secret() -> str:
    """A new secret in Mittis's form: `whsec_` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def verify(payload: Union[bytes, str], headers: Mapping[str, Any], secret: str, *,
           tolerance: int = DEFAULT_TOLERANCE) -> Event:
    """The event, if `headers` sign `payload` with `secret` and their timestamp is within `tolerance` seconds of
    now; else `SignatureVerificationError`. During a secret rotation the header carries several signatures;
    one made with `secret` is enough."""
    lowered = {str(name).lower(): value for name, value in headers.items()}
    try:
        id_, timestamp_text, signatures = (lowered["webhook-id"], lowered["webhook-timestamp"],
                                           lowered["webhook-signature"])
    except KeyError as missing:
        raise SignatureVerificationError(f"Missing header {missing.args[0]!r}.") from None
    try:
        timestamp = int(timestamp_text)
    except (TypeError, ValueError):
        raise SignatureVerificationError("The webhook-timestamp header is not a Unix time.") from None
    now = int(time.time())
    if timestamp < now - tolerance:
        raise SignatureVerificationError("The timestamp is too old: a replay, or a clock far off.")
    if timestamp > now + tolerance:
        raise SignatureVerificationError("The timestamp is in the future: a clock far off.")
    expected = signature(payload, id=id_, timestamp=timestamp, secret=secret).encode()
    if not any(hmac.compare_digest(expected, given.encode()) for given in str(signatures).split()):
        raise SignatureVerificationError("No signature matches: wrong secret, or the body was changed.")
    try:
        return Event.model_validate(json.loads(_text(payload)))
    except ValueError as exc:
        raise SignatureVerificationError(f"The signed body is not an event: {exc}") from exc


class Webhooks:
    """`client.webhooks`: the same functions, for code that holds a client."""

    verify = staticmethod(verify)
    sign = staticmethod(sign)
    generate_secret = staticmethod(generate_secret)
