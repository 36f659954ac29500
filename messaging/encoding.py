"""SMS encoding detection and segment counting.

Follows the GSM 7-bit default alphabet and its extension table from
3GPP TS 23.038 (formerly GSM 03.38). A message that uses only those
characters is sent as GSM-7; anything else forces the whole message to
UCS-2, which carriers treat as UTF-16.
"""

from dataclasses import dataclass

# Basic table in code-point order, 0x00-0x7F, minus 0x1B (ESC), which is
# the escape into the extension table rather than a character.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)

# Each of these is sent as ESC + code, so it costs two septets.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM7_SINGLE = 160  # septets in an unsplit message (140 bytes * 8 / 7)
GSM7_PART = 153  # septets per part once the 6-byte concatenation UDH takes its share
UCS2_SINGLE = 70  # UTF-16 code units in an unsplit message (140 bytes / 2)
UCS2_PART = 67  # UTF-16 code units per part once the 6-byte UDH takes its share

GSM7 = "GSM-7"
UCS2 = "UCS-2"


@dataclass(frozen=True)
class EncodingInfo:
    encoding: str  # "GSM-7" or "UCS-2"
    segments: int
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    non_gsm_characters: tuple[str, ...]  # distinct characters (in first-seen order) that forced UCS-2, empty for GSM-7


def is_gsm7(char: str) -> bool:
    return char in GSM7_BASIC or char in GSM7_EXTENSION


def gsm7_septets(char: str) -> int:
    return 2 if char in GSM7_EXTENSION else 1


def utf16_units(char: str) -> int:
    # Characters outside the BMP are encoded as a surrogate pair.
    return 2 if ord(char) > 0xFFFF else 1


def _non_gsm_characters(body: str) -> tuple[str, ...]:
    # dict keeps insertion order, so this dedupes in first-seen order.
    return tuple(dict.fromkeys(c for c in body if not is_gsm7(c)))


def _scheme(body: str):
    """Return (encoding, unit cost function, single limit, part limit)."""
    if all(is_gsm7(c) for c in body):
        return GSM7, gsm7_septets, GSM7_SINGLE, GSM7_PART
    return UCS2, utf16_units, UCS2_SINGLE, UCS2_PART


def split_parts(body: str) -> list[str]:
    """Split body into the parts a handset reassembles.

    Packing is greedy, but a character is never divided between parts: an
    escaped GSM-7 character or a UTF-16 surrogate pair moves whole to the
    next part, as a split one would be garbled on the handset.
    """
    _, cost, single, part_limit = _scheme(body)
    if sum(cost(c) for c in body) <= single:
        return [body]
    parts: list[str] = []
    current: list[str] = []
    used = 0
    for char in body:
        units = cost(char)
        if used + units > part_limit:
            parts.append("".join(current))
            current, used = [], 0
        current.append(char)
        used += units
    parts.append("".join(current))
    return parts


def analyze(body: str) -> EncodingInfo:
    encoding, cost, single, _ = _scheme(body)
    units = sum(cost(c) for c in body)
    # Padding at part boundaries can add a segment beyond units / part size,
    # so count the actual parts rather than dividing.
    segments = 1 if units <= single else len(split_parts(body))
    non_gsm = _non_gsm_characters(body) if encoding == UCS2 else ()
    return EncodingInfo(encoding=encoding, segments=segments, units=units, non_gsm_characters=non_gsm)
