"""Event payloads compressed at rest.

A payload is about 1 KB of JSON: under the 2 KB at which PostgreSQL compresses a row (TOAST_TUPLE_THRESHOLD, which
no table setting lowers), so it was kept as written, three times a message, half the bytes the database held per
message. Deflate with a preset dictionary (zlib's `zdict`) writes one in about 150 bytes: two events of one shape
differ only in ids, numbers, times and the body, and the dictionary holds the shapes
(`payload_dictionary_1.jsonl`: one event of each type, ids and times emptied, no customer's text).

The stored form is one format byte, then the data:
- `{`: the JSON as it is (rows written before compression, kept as they were when the column became `bytea`);
- 0x01: raw deflate of the UTF-8 JSON with dictionary 1.

The dictionary is never edited: a row compressed with it is read with it for as long as it is kept. A better one is a
new file and a new format byte.
"""

from pathlib import Path
import zlib

from django.db import models

_PLAIN = ord("{")
_DEFLATE_1 = 0x01
_DICTIONARY_1 = (Path(__file__).with_name("payload_dictionary_1.jsonl")).read_bytes()
_WINDOW = -15  # raw deflate: the format byte says what it is; zlib's header and checksum would add 6 bytes
# Primed once: copying a primed (de)compressor is a tenth of the cost of loading the dictionary into a new one.
_compressor_1 = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, _WINDOW, zdict=_DICTIONARY_1)
_decompressor_1 = zlib.decompressobj(_WINDOW, zdict=_DICTIONARY_1)


def compress(text: str) -> bytes:
    compressor = _compressor_1.copy()
    return bytes((_DEFLATE_1,)) + compressor.compress(text.encode()) + compressor.flush()


def decompress(stored: bytes | memoryview) -> str:
    stored = bytes(stored)
    if stored[:1] == b"{":
        return stored.decode()
    if stored[0] == _DEFLATE_1:
        decompressor = _decompressor_1.copy()
        return (decompressor.decompress(stored[1:]) + decompressor.flush()).decode()
    raise ValueError(f"unknown payload format {stored[0]:#04x}")


class CompressedTextField(models.BinaryField):
    """Text kept as `bytea` in the stored form above; it reads and writes as `str`, through the ORM, `values()`
    and `bulk_update` alike. A raw SQL read gets the stored bytes: pass them to `decompress`."""

    def get_db_prep_value(self, value, connection, prepared=False):
        if isinstance(value, str):
            value = compress(value)
        return super().get_db_prep_value(value, connection, prepared)

    def from_db_value(self, value, expression, connection):
        return None if value is None else decompress(value)

    def to_python(self, value):
        return value  # text already (BinaryField's would read a str as base64)

    def value_to_string(self, obj):
        return self.value_from_object(obj)
