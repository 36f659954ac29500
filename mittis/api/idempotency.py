"""`Idempotency-Key` on every POST: the same request sent twice acts once and gets the same answer.

The record of a key and everything its request creates (the message, its charge, its event, the
send task queued on commit) commit in one transaction. The key's lock is the guard: on PostgreSQL an
advisory lock tells a concurrent duplicate at once that the first is still in flight (409); SQLite's
single writer makes it wait. Afterwards it gets the stored answer; the unique constraint on the record
backs the lock up. See ../shared/API-CONTRACT.md, Idempotency.
"""

from datetime import timedelta
import functools
import hashlib
import json

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import IntegrityError, connection, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
import http_sf

from mittis.accounts.authentication import api_key_for_request
from mittis.api.errors import error_response
from mittis.api.models import IdempotencyRecord
from mittis.db import insert

HEADER = "Idempotency-Key"
MAX_LENGTH = 255


class InvalidKey(ValueError):
    pass


def parse_key(raw: str) -> str:
    """1-255 printable ASCII characters; a quoted structured-field string (RFC 8941) is unquoted."""
    value = raw
    if value.startswith('"'):
        try:
            value, _params = http_sf.parse(value.encode("latin-1"), tltype="item")
        except Exception:
            raise InvalidKey(f"The {HEADER} header is not a valid quoted string.")
        if not isinstance(value, str):
            raise InvalidKey(f"The {HEADER} header must be a string.")
    if not value:
        raise InvalidKey(f"The {HEADER} header is empty; send 1 to {MAX_LENGTH} characters, such as a UUID.")
    if len(value) > MAX_LENGTH:
        raise InvalidKey(f"The {HEADER} header is {len(value)} characters long; the most is {MAX_LENGTH}.")
    if any(not " " <= character <= "~" for character in value):
        raise InvalidKey(f"The {HEADER} header may hold only printable ASCII characters, "
                         "without control characters.")
    return value


def fingerprint(request: HttpRequest, body: bytes) -> str:
    """The request a key was first used for. JSON bodies are compared as JSON, not as bytes."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"),
                               ensure_ascii=False).encode()
    except ValueError:
        canonical = body
    digest = hashlib.sha256(f"{request.method} {request.get_full_path()}\n".encode())
    digest.update(canonical)
    return digest.hexdigest()


def expiry_cutoff():
    return timezone.now() - timedelta(hours=settings.MITTIS_IDEMPOTENCY_KEY_HOURS)


class IdempotencyMiddleware:
    """Innermost middleware, so that its transaction spans the view and nothing else."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method in ("GET", "HEAD", "OPTIONS") or not request.path.startswith("/v1/"):
            return self.get_response(request)
        raw_key = request.META.get("HTTP_IDEMPOTENCY_KEY")
        if raw_key is None or request.method != "POST":
            return self._atomically(request)
        _presented, api_key = api_key_for_request(request)
        if api_key is None:
            return self._atomically(request)  # 401 from the view; a rejected request stores nothing
        try:
            key = parse_key(raw_key)
        except InvalidKey as error:
            return error_response(request, "idempotency_key_invalid", str(error), field=HEADER)
        try:
            body = request.body
        except RequestDataTooBig:
            return self.get_response(request)  # 413 from the view, stored nowhere
        scope = {"account_id": api_key.account_id, "livemode": api_key.livemode, "key": key}
        return self._once(request, scope, fingerprint(request, body))

    def _atomically(self, request):
        """Without a key a write is still all or nothing: a 5xx leaves no half-done request behind."""
        with transaction.atomic():
            response = self.get_response(request)
            if response.status_code >= 500:
                transaction.set_rollback(True)
            return response

    def _once(self, request, scope: dict, request_fingerprint: str):
        try:
            with transaction.atomic():
                locked, existing = _lock_and_find(scope)
                if not locked:
                    return _in_use(request)
                if existing is not None:
                    if existing.created_at >= expiry_cutoff():
                        return _replay(request, existing, request_fingerprint)
                    existing.delete()  # expired, not yet purged: forgotten, so this request is new (rare)
                response = self.get_response(request)
                if response.status_code >= 500 or response.streaming:
                    # A crash stores nothing and undoes whatever the request did: the client retries.
                    transaction.set_rollback(True)
                    return response
                _record(request, scope, request_fingerprint, response)
                return response
        except IntegrityError:
            # Another request stored this key meanwhile, which the lock rules out on PostgreSQL: whatever
            # this one did is undone, and a retry gets the stored answer.
            return _in_use(request)


def _record(request, scope: dict, request_fingerprint: str, response: HttpResponse) -> None:
    """The key's record with its answer, written last: the lock (or SQLite's one writer) keeps its twin out
    until commit, and the unique constraint would refuse it anyway."""
    insert(IdempotencyRecord(
        **scope, fingerprint=request_fingerprint, method=request.method, path=request.get_full_path()[:2000],
        request_id=getattr(request, "request_id", ""), response_status=response.status_code,
        response_content_type=response.get("Content-Type", "application/json"), response_body=response.content,
        created_at=timezone.now()))


def _lock_and_find(scope: dict) -> tuple[bool, IdempotencyRecord | None]:
    """(whether this request holds the key, the key's record). On PostgreSQL a transaction-scoped advisory
    lock tells a duplicate at once that the first request is in flight, and the record comes in the same
    statement. That statement's snapshot predates its lock: a duplicate taking the lock the moment the first
    request commits does not see the first one's record, runs, and meets the unique constraint with its own
    (409, and its retry is replayed), which a second round trip on every request would save only it.
    Elsewhere (SQLite) writes are serialized already: the lock is always held.

    A request whose connection vanished without a FIN (a network partition, a killed host) would
    leave its backend idle in transaction, holding the key, until TCP keepalive notices hours later;
    the same statement bounds that idle time so the database ends it and the key is free again."""
    if connection.vendor != "postgresql":
        return True, IdempotencyRecord.objects.filter(**scope).first()
    material = f"{scope['account_id']}:{scope['livemode']}:{scope['key']}".encode()
    lock_id = int.from_bytes(hashlib.sha256(material).digest()[:8], "big", signed=True)
    idle_limit = f"{int(settings.MITTIS_ABANDONED_REQUEST_SECONDS * 1000)}ms"
    with connection.cursor() as cursor:
        cursor.execute(_lock_and_find_sql(), [lock_id, idle_limit, scope["account_id"], scope["livemode"], scope["key"]])
        locked, *record = cursor.fetchone()
    if record[0] is None:
        return locked, None
    return locked, IdempotencyRecord.from_db(connection.alias, _record_fields(), record)


@functools.cache
def _record_fields() -> list[str]:
    return [model_field.attname for model_field in IdempotencyRecord._meta.concrete_fields]


@functools.cache
def _lock_and_find_sql() -> str:
    quote = connection.ops.quote_name
    columns = ", ".join(f"r.{quote(model_field.column)}" for model_field in IdempotencyRecord._meta.concrete_fields)
    return (f"SELECT l.locked, {columns} FROM (SELECT pg_try_advisory_xact_lock(%s) AS locked, "
            "set_config('idle_in_transaction_session_timeout', %s, true)) AS l "
            f"LEFT JOIN {quote(IdempotencyRecord._meta.db_table)} AS r "
            "ON l.locked AND r.account_id = %s AND r.livemode = %s AND r.key = %s")


def _in_use(request) -> HttpResponse:
    response = error_response(request, "idempotency_key_in_use")
    response["Retry-After"] = "1"
    return response


def _replay(request, record: IdempotencyRecord, request_fingerprint: str) -> HttpResponse:
    if record.fingerprint != request_fingerprint:
        return error_response(
            request, "idempotency_key_reused",
            f"This {HEADER} was first used for a different request ({record.method} {record.path}). "
            "Use a new key for a new request.", field=HEADER)
    response = HttpResponse(bytes(record.response_body), status=record.response_status,
                            content_type=record.response_content_type)
    response["Idempotent-Replayed"] = "true"
    # The answer is the original, so it keeps the original's id (its error body names it too).
    response["Request-Id"] = record.request_id
    return response


def purge_expired() -> int:
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=expiry_cutoff()).delete()
    return deleted
