"""SMS encoding detection and segment counting.

Follows the GSM 7-bit default alphabet and its extension table from
3GPP TS 23.038 (formerly GSM 03.38). A message that uses only those
characters is sent as GSM-7; anything else forces the whole message to
UCS-2, which carriers treat as UTF-16.

`gsm7_encode` / `gsm7_decode` turn text into the default alphabet's codes, one septet per octet
(unpacked, as SMPP carries it), with ESC (0x1B) before each extension character.
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

GSM7_ESCAPE = 0x1B
# The basic table by code (3GPP TS 23.038 6.2.1); ESC's place holds a stand-in never looked up.
_GSM7_CODES = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
# The extension table (6.2.1.1): the code that follows ESC.
_GSM7_EXTENSION_CODES = {"\f": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F, "[": 0x3C, "~": 0x3D,
                         "]": 0x3E, "|": 0x40, "€": 0x65}
_GSM7_ENCODE = {char: code for code, char in enumerate(_GSM7_CODES) if code != GSM7_ESCAPE}
_GSM7_DECODE_EXTENSION = {code: char for char, code in _GSM7_EXTENSION_CODES.items()}

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


def gsm7_encode(text: str) -> bytes:
    """The GSM 03.38 codes of `text`, one per octet, extension characters as ESC + code.

    Raises ValueError for a character outside the alphabet: callers encode only what `analyze`
    classed as GSM-7.
    """
    out = bytearray()
    for char in text:
        code = _GSM7_ENCODE.get(char)
        if code is not None:
            out.append(code)
        elif char in _GSM7_EXTENSION_CODES:
            out += bytes((GSM7_ESCAPE, _GSM7_EXTENSION_CODES[char]))
        else:
            raise ValueError(f"{char!r} is not in the GSM 03.38 default alphabet")
    return bytes(out)


def gsm7_decode(data: bytes) -> str:
    """Text from GSM 03.38 codes, one per octet (the top bit is ignored).

    An escape followed by a code the extension table lacks reads as that code's basic character,
    as 3GPP TS 23.038 tells a handset to show it; an escape into a further table (ESC ESC) or a
    trailing lone escape reads as a space.
    """
    chars = []
    escaped = False
    for octet in data:
        code = octet & 0x7F
        if escaped:
            fallback = " " if code == GSM7_ESCAPE else _GSM7_CODES[code]
            chars.append(_GSM7_DECODE_EXTENSION.get(code, fallback))
            escaped = False
        elif code == GSM7_ESCAPE:
            escaped = True
        else:
            chars.append(_GSM7_CODES[code])
    if escaped:
        chars.append(" ")
    return "".join(chars)
