"""Public ids: a type prefix and a random base62 tail (`msg_3kTq...`).

Sequential database ids never leave the server; these are what clients see and send back.

A public id is unique by a `UniqueConstraint` in its model's Meta (`<model>_public_id_unique`), never by the field's
`unique=True`: on PostgreSQL that also builds a second, `varchar_pattern_ops` index (`…_like`) for LIKE 'prefix%'
queries. Ids are looked up whole, never by prefix (the admin's `=public_id` search is `UPPER(…) = UPPER(…)`, which
that index cannot serve either), and the index cost every insert a write and 703 MiB of 5 M delivery attempts.
The same holds for every other unique text column (a key's hash, a carrier's name).
"""

import secrets
import string

_ALPHABET = string.ascii_letters + string.digits
# 24 base62 characters carry ~143 bits: unguessable, so an id alone reveals nothing.
_TAIL_LENGTH = 24


def random_token(length: int) -> str:
    """`length` uniform base62 characters from one draw of the OS's randomness (a draw per character
    was a system call each, 2% of accepting a message)."""
    number = secrets.randbelow(len(_ALPHABET) ** length)
    characters = []
    for _ in range(length):
        number, digit = divmod(number, len(_ALPHABET))
        characters.append(_ALPHABET[digit])
    return "".join(characters)


def new_public_id(prefix: str) -> str:
    return f"{prefix}_{random_token(_TAIL_LENGTH)}"


def public_id_default(prefix: str):
    """A callable for a model field default; named so migrations can serialise it."""
    return _DEFAULTS[prefix]


def _acct() -> str:
    return new_public_id("acct")


def _key() -> str:
    return new_public_id("key")


def _msg() -> str:
    return new_public_id("msg")


def _evt() -> str:
    return new_public_id("evt")


def _txn() -> str:
    return new_public_id("txn")


def _we() -> str:
    return new_public_id("we")


def _whd() -> str:
    return new_public_id("whd")


def _exp() -> str:
    return new_public_id("exp")


def _opt() -> str:
    return new_public_id("opt")


_DEFAULTS = {"acct": _acct, "key": _key, "msg": _msg, "evt": _evt, "txn": _txn, "we": _we, "whd": _whd,
             "exp": _exp, "opt": _opt}
