"""Phone numbers, parsed once per process. phonenumbers' parse and validation take about 20 µs a number; a
send validates its sender and recipient, then prices the recipient by its country, and an account's few
senders recur on every one of its sends. The functions are pure, so their answers are kept (bounded)."""

import functools

import phonenumbers


@functools.lru_cache(maxsize=16384)
def parsed(value: str, region: str | None = None) -> phonenumbers.PhoneNumber | None:
    """The number `value` spells (with its `+`, or as dialled in `region`, an ISO 3166 code), or None. Shared
    between callers: never modify it."""
    try:
        return phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None


@functools.lru_cache(maxsize=16384)
def valid_e164(value: str, region: str | None = None) -> str | None:
    """`value` (with its `+`, or as dialled in `region`) formatted as E.164 if it is a valid number, else None."""
    number = parsed(value, region)
    if number is None or not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
