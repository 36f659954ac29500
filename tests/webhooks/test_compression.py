"""Event payloads at rest (webhooks/compression.py): a sent message's events are stored in a fraction of their JSON's
bytes, read back byte-equal, and a row written before compression (plain JSON) still reads."""

import hashlib
from pathlib import Path

from django.db import connection
import pytest

from webhooks import compression
from webhooks.models import Event

pytestmark = pytest.mark.django_db


def _stored(event_id: int) -> bytes:
    with connection.cursor() as cursor:
        cursor.execute("SELECT payload FROM webhooks_event WHERE id = %s", [event_id])
        return bytes(cursor.fetchone()[0])


def test_a_sent_messages_event_is_stored_compressed_and_read_back_exactly(api, send):
    created = send(metadata={"order": "A-1042"}).json()
    event = Event.objects.get(object_id=created["id"], type="message.queued")

    stored = _stored(event.pk)
    assert stored[0] == 0x01 and len(stored) < len(event.payload.encode()) / 3, (len(stored), len(event.payload))
    # What the API gives is what was frozen, to the byte.
    listed = api.get("/v1/events", {"type": "message.queued"}).json()["data"]
    assert [e for e in listed if e["id"] == event.public_id][0]["data"]["metadata"] == {"order": "A-1042"}
    assert compression.decompress(stored) == event.payload


def test_a_payload_written_before_compression_still_reads(api, send):
    created = send().json()
    event = Event.objects.get(object_id=created["id"], type="message.queued")
    plain = event.payload
    with connection.cursor() as cursor:  # as the migration left the rows it found: their JSON's UTF-8 bytes
        cursor.execute("UPDATE webhooks_event SET payload = convert_to(%s, 'UTF8') WHERE id = %s", [plain, event.pk])

    assert _stored(event.pk)[:1] == b"{"
    assert Event.objects.get(pk=event.pk).payload == plain
    assert api.get(f"/v1/events/{event.public_id}").json()["id"] == event.public_id


@pytest.mark.parametrize("text", ['{"body":"caf\\u00e9 \\"quoted\\" \\\\ back"}', '{"body":"日本語 🙂"}', "{}"])
def test_any_json_text_survives_the_round_trip(text):
    assert compression.decompress(compression.compress(text)) == text


def test_an_unknown_format_is_refused_not_misread():
    with pytest.raises(ValueError, match="unknown payload format 0x02"):
        compression.decompress(b"\x02abc")


def test_dictionary_1_is_unchanged():
    """Rows compressed with it are read with it for as long as they are kept: a better dictionary is a new file and a
    new format byte, never an edit."""
    dictionary = Path(compression.__file__).with_name("payload_dictionary_1.jsonl").read_bytes()
    assert hashlib.sha256(dictionary).hexdigest() == "d8f1645ddf672ff72aa185e79b834c2dabe4ee2a7a5f7ed63bc86716d406729d"
