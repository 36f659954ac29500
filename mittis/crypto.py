"""Secrets at rest: Fernet for webhook secrets and carrier credentials, AES-GCM for stored idempotent answers,
under rotatable keys.

`settings.MITTIS_ENCRYPTION_KEYS` lists keys newest first; values are encrypted with the first and
decrypted with whichever matches, so a new key can be introduced before old values are re-encrypted.

Stored answers (`seal`) are sealed with AES-128-GCM under a key derived from each of those keys (HKDF-SHA256,
its own `info`, so no key serves two constructions). Not Fernet, for speed: a keyed send seals its answer, and
Fernet sets up a new cipher context for every token (the set-up, not the encryption, is its cost); that was 5-6%
of a keyed POST /v1/messages' CPU, where an AES-GCM key object, made once per process, costs 1-2%
(docs/operations.md, Idempotency keys). A random 96-bit nonce is safe for 2^32 answers under one key (NIST SP
800-38D); answers live a day, and keys rotate.
"""

import base64
from functools import lru_cache
import os

from cryptography.exceptions import InvalidTag
from cryptography.fernet import MultiFernet, Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

SEALED = b"\x01"  # a sealed value's first byte: its format, and never the first byte of a JSON text
NONCE_BYTES = 12


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


@lru_cache(maxsize=4)
def _sealing(keys: tuple[str, ...]) -> tuple[AESGCM, ...]:
    return tuple(AESGCM(HKDF(algorithm=hashes.SHA256(), length=16, salt=None, info=b"mittis sealed values")
                        .derive(base64.urlsafe_b64decode(key))) for key in keys)


def _sealing_keys() -> tuple[AESGCM, ...]:
    return _sealing(tuple(settings.MITTIS_ENCRYPTION_KEYS))


def seal(plaintext: bytes, *, context: bytes) -> bytes:
    """`plaintext` encrypted and authenticated under the newest key, bound to `context` (what it belongs to): it
    opens only with the same context, so a sealed value copied to another row does not."""
    nonce = os.urandom(NONCE_BYTES)
    return SEALED + nonce + _sealing_keys()[0].encrypt(nonce, plaintext, context)


def unseal(sealed: bytes, *, context: bytes) -> bytes:
    """The plaintext of a `seal`ed value, under whichever key sealed it; `InvalidToken` if none did (or another
    context, or a changed byte)."""
    nonce, ciphertext = sealed[1:1 + NONCE_BYTES], sealed[1 + NONCE_BYTES:]
    for key in _sealing_keys():
        try:
            return key.decrypt(nonce, ciphertext, context)
        except InvalidTag:
            continue
    raise InvalidToken


def is_sealed(value: bytes) -> bool:
    return value[:1] == SEALED
