import random

import pytest

from messaging.encoding import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    GSM7_PART,
    GSM7_SINGLE,
    UCS2_PART,
    UCS2_SINGLE,
    analyze,
    gsm7_decode,
    gsm7_encode,
    split_parts,
)

EMOJI = "\U0001F600"  # 😀, outside the BMP


def test_alphabet_sizes():
    assert len(GSM7_BASIC) == 127
    assert "\x1b" not in GSM7_BASIC
    assert len(GSM7_EXTENSION) == 10
    assert not GSM7_BASIC & GSM7_EXTENSION


@pytest.mark.parametrize(
    "body, encoding, units, segments",
    [
        ("", "GSM-7", 0, 1),
        ("Your technician is 15 minutes out.", "GSM-7", 34, 1),
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 306, "GSM-7", 306, 2),
        ("a" * 307, "GSM-7", 307, 3),
        ("€", "GSM-7", 2, 1),
        ("{", "GSM-7", 2, 1),
        ("€" * 80, "GSM-7", 160, 1),
        ("€" * 81, "GSM-7", 162, 2),
        ("a" * 159 + "{", "GSM-7", 161, 2),
        # 152 + 2 cannot share a 153-septet part, so the 2 padding septets push this to 3.
        (("a" * 152 + "€") * 2, "GSM-7", 308, 3),
        ("line\nbreak\r", "GSM-7", 11, 1),
        ("Ç", "GSM-7", 1, 1),
        (EMOJI, "UCS-2", 2, 1),
        ("ж" * 70, "UCS-2", 70, 1),
        ("ж" * 71, "UCS-2", 71, 2),
        ("ж" * 134, "UCS-2", 134, 2),
        ("ж" * 135, "UCS-2", 135, 3),
        (EMOJI * 35, "UCS-2", 70, 1),
        (EMOJI * 36, "UCS-2", 72, 2),
        ("a" * 69 + EMOJI, "UCS-2", 71, 2),
    ],
)
def test_analyze(body, encoding, units, segments):
    info = analyze(body)
    assert (info.encoding, info.units, info.segments) == (encoding, units, segments)
    assert len(split_parts(body)) == segments


@pytest.mark.parametrize(
    "body, non_gsm",
    [
        ("Your technician is 15 minutes out.", ()),
        ("Ç", ()),
        ("ç", ("ç",)),
        ("Ça va, ça va", ("ç",)),
        ("We’re on our way", ("’",)),
        ("It’s “done” ’", ("’", "“", "”")),
        ("hi " + EMOJI + EMOJI, (EMOJI,)),
        ("ж€", ("ж",)),
    ],
)
def test_non_gsm_characters(body, non_gsm):
    info = analyze(body)
    assert info.non_gsm_characters == non_gsm
    assert info.encoding == ("UCS-2" if non_gsm else "GSM-7")


@pytest.mark.parametrize(
    "body, expected_parts",
    [
        ("", [""]),
        ("a" * 160, ["a" * 160]),
        ("a" * 161, ["a" * 153, "a" * 8]),
        ("€" * 80, ["€" * 80]),
        # Extension char would straddle septets 153/154: it moves whole to part two.
        ("a" * 152 + "€" + "a" * 10, ["a" * 152, "€" + "a" * 10]),
        ("a" * 151 + "€" + "a" * 10, ["a" * 151 + "€", "a" * 10]),
        ("ж" * 70, ["ж" * 70]),
        ("ж" * 71, ["ж" * 67, "ж" * 4]),
        # Surrogate pair would straddle units 67/68: it moves whole to part two.
        ("ж" * 66 + EMOJI + "ж" * 10, ["ж" * 66, EMOJI + "ж" * 10]),
        ("ж" * 65 + EMOJI + "ж" * 10, ["ж" * 65 + EMOJI, "ж" * 10]),
    ],
)
def test_split_parts(body, expected_parts):
    assert split_parts(body) == expected_parts


def _units(part, encoding):
    if encoding == "GSM-7":
        return sum(2 if c in GSM7_EXTENSION else 1 for c in part)
    return len(part.encode("utf-16-le")) // 2


def test_random_bodies_split_consistently():
    rng = random.Random(23038)
    pools = [
        "abcdefghijklmnopqrstuvwxyz ABC0123456789.,!?",
        "".join(sorted(GSM7_EXTENSION)),
        "абвгдежзийклмнопрстуфхцчшщ",
        "\U0001F600\U0001F44D\U0001F527\u2764",
    ]
    for _ in range(500):
        # Weight towards GSM so both encodings get plenty of cases.
        active = pools[:2] if rng.random() < 0.5 else pools
        body = "".join(rng.choice(rng.choice(active)) for _ in range(rng.randint(0, 400)))
        info = analyze(body)
        parts = split_parts(body)
        assert "".join(parts) == body
        assert len(parts) == info.segments
        assert sum(_units(p, info.encoding) for p in parts) == info.units
        if info.segments == 1:
            limit = GSM7_SINGLE if info.encoding == "GSM-7" else UCS2_SINGLE
        else:
            limit = GSM7_PART if info.encoding == "GSM-7" else UCS2_PART
        assert all(_units(p, info.encoding) <= limit for p in parts)


# --- The GSM 03.38 codec: codes from 3GPP TS 23.038 6.2.1 and 6.2.1.1 ---------------------------
@pytest.mark.parametrize(
    "text, codes",
    [
        ("@£$¥", "00010203"),
        ("Hello", "48656c6c6f"),
        ("\nΔ_ÆßÉ", "0a10111c1e1f"),
        ("¤¡§¿äöñüà", "2440 5f60 7b7c7d7e7f".replace(" ", "")),
        ("€", "1b65"),
        ("^{}\\[~]|\f", "1b14 1b28 1b29 1b2f 1b3c 1b3d 1b3e 1b40 1b0a".replace(" ", "")),
        ("€ and {braces}", "1b6520616e64201b286272616365731b29"),
    ],
)
def test_gsm7_codes(text, codes):
    assert gsm7_encode(text).hex() == codes
    assert gsm7_decode(bytes.fromhex(codes)) == text


def test_every_gsm7_character_round_trips_and_costs_what_analyze_counts():
    text = "".join(sorted(GSM7_BASIC | GSM7_EXTENSION))
    encoded = gsm7_encode(text)
    assert gsm7_decode(encoded) == text
    assert len(encoded) == analyze(text).units


@pytest.mark.parametrize("text", ["ç", EMOJI, "Привет", "’"])
def test_gsm7_refuses_what_is_not_in_the_alphabet(text):
    with pytest.raises(ValueError, match="not in the GSM 03.38"):
        gsm7_encode(text)


@pytest.mark.parametrize(
    "codes, text",
    [
        ("1b41", "A"),  # an escape the extension table lacks reads as the basic character
        ("411b", "A "),  # a trailing lone escape
        ("1b1b41", " A"),  # an escape into a further table
        ("c8e5", "He"),  # the top bit of an octet is not part of a septet
    ],
)
def test_gsm7_decode_is_lenient(codes, text):
    assert gsm7_decode(bytes.fromhex(codes)) == text
