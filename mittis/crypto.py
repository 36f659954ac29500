"""Secrets at rest (webhook secrets, carrier credentials, stored idempotent answers): Fernet with rotatable keys.

`settings.MITTIS_ENCRYPTION_KEYS` lists keys newest first; values are encrypted with the first and
decrypted with whichever matches, so a new key can be introduced before old values are re-encrypted.
"""

from functools import lru_cache

from cryptography.fernet import MultiFernet, Fernet
from django.conf import settings


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in keys])


def _current() -> MultiFernet:
    return _fernet(tuple(settings.MITTIS_ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    return _current().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    return _current().decrypt(token.encode()).decode()


def reencrypt(token: str) -> str:
    """The same secret under the newest key (for key rotation)."""
    return _current().rotate(token.encode()).decode()


def encrypt_bytes(plaintext: bytes) -> bytes:
    return _current().encrypt(plaintext)


def decrypt_bytes(token: bytes) -> bytes:
    return _current().decrypt(token)


def reencrypt_bytes(token: bytes) -> bytes:
    return _current().rotate(token)


def is_token(value: bytes) -> bool:
    """Whether `value` is a Fernet token rather than plaintext JSON. A token is URL-safe base64 of a version byte,
    0x80 (the Fernet specification), so it begins with `g`; a JSON text never does (nor an empty body)."""
    return value[:1] == b"g"
