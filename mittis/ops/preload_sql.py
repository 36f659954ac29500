"""`make bench --preload`'s SQL for what the API writes in Python: public ids, and the message object's JSON text
as `messaging.representation.message_json` builds it (tests/test_bench_preload.py holds them equal)."""

from messaging import statuses
from messaging.errors import MESSAGE_ERRORS, retryable


def sql_id(prefix: str, seed_sql: str) -> str:
    """A public id in SQL, unique per seed: 18 bytes of sha256(salt, seed) in base64 are 24 characters, `+` and
    `/` mapped into base62 (a new_public_id's shape; collisions as unlikely as between random ids)."""
    return (f"'{prefix}_' || translate(encode(substr(sha256(convert_to(%(salt)s || {seed_sql}, 'UTF8')), 1, 18), "
            "'base64'), '+/', 'Xz')")


def sql_when(sql: str) -> str:
    """`representation._when` in SQL: the JSON text of a time, or null."""
    return f"coalesce(to_json(to_char({sql} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'))::text, 'null')"


def sql_text(sql: str) -> str:
    return f"coalesce(to_json({sql})::text, 'null')"


def sql_status_case(column: str, mapping: dict[str, str], default: str = "NULL") -> str:
    whens = " ".join(f"WHEN '{status}' THEN {value}" for status, value in mapping.items())
    return f"CASE {column} {whens} ELSE {default} END"


def sql_message_json(m: str, *, status: str, at: str, attempts: str, stamped) -> str:
    """The message object's JSON text (`message_json`'s keys in its order) of message row `m` as it was at one
    step of its timeline: `status` then, the time `at` (its updated_at), its `attempts` (JSON text), and
    `stamped(name)`, an SQL condition for each `<status>_at` field shown by then."""
    retryable_codes = [code for code in MESSAGE_ERRORS if retryable(code)]
    times = {name: f"CASE WHEN {stamped(name)} THEN {m}.{name} END" for name in statuses.TIME_FIELDS}
    failed = f"{status} IN ('failed', 'undelivered', 'expired')"
    error = f"CASE WHEN {failed} THEN nullif({m}.error_code, '') END"
    error_message = f"CASE WHEN {failed} THEN nullif({m}.error_message, '') END"
    parts = [
        ('"object":"message","id":', sql_text(f"{m}.public_id")), ('"status":', sql_text(status)),
        ('"direction":', sql_text(f"{m}.direction")), ('"from":', sql_text(f"{m}.from_number")),
        ('"to":', sql_text(f"{m}.to")),
        ('"body":', f"CASE WHEN {m}.redacted_at IS NULL THEN to_json({m}.body)::text ELSE 'null' END"),
        ('"encoding":', sql_text(f"{m}.encoding")), ('"segments":', f"{m}.segments::text"),
        ('"price":', f"to_json(trim_scale({m}.price)::text)::text"), ('"currency":', sql_text(f"{m}.currency")),
        ('"metadata":', f"{m}.metadata_text"), ('"status_callback":', "'null'"),
        ('"error_code":', sql_text(error)), ('"error_message":', sql_text(error_message)),
        ('"retryable":', f"CASE WHEN {failed} THEN CASE WHEN {m}.error_code = ANY(ARRAY{retryable_codes}::text[]) "
                         "THEN 'true' ELSE 'false' END ELSE 'null' END"),
        ('"attempts":', attempts),
        ('"send_at":', sql_when(f"{m}.send_at")), ('"expires_at":', sql_when(f"{m}.expires_at")),
        ('"redacted_at":', sql_when(f"{m}.redacted_at")), ('"created_at":', sql_when(f"{m}.created_at")),
        ('"updated_at":', sql_when(at)), ('"livemode":', f"{m}.livemode::text"),
        *((f'"{name}":', sql_when(times[name])) for name in statuses.TIME_FIELDS),
    ]
    return "'{' || " + " || ',' || ".join(f"'{key}' || {value}" for key, value in parts) + " || '}'"
