"""`Idempotency-Key` on every POST: the same request sent twice acts once and gets the same answer.

The record of a key and everything its request creates (the message, its charge, its event, the
send task queued on commit) commit in one transaction. The key's lock is the guard: an advisory lock
tells a concurrent duplicate at once that the first is still in flight (409). Afterwards it gets the
stored answer; the unique constraint on the record backs the lock up. See ../shared/API-CONTRACT.md, Idempotency.

A view that writes everything in one statement (`writes_in_one_statement`, POST /v1/messages) folds the
key into that statement instead (`KeyInStatement`): the lock, the check that no record exists, and the
record itself become parts of it, and it runs on its own, without BEGIN and COMMIT around it. Whenever
that attempt does not end with the record written, nothing was written, and the transactional path
answers (409, a replay, an error recorded, or the send after an expired record).

Stored answers are sealed with the keys that encrypt secrets (`mittis.crypto.seal`, bound to the record's account,
mode and key): an answer may hold a webhook secret (`whsec_…`, which a client that lost the first answer needs
from the replay) or a message body. Each record names the object its answer is (`object_id`), so a redaction
finds the answers to rewrite without decrypting the others.

A replay is the stored answer as it was: in the API version it was rendered in, which its `Mittis-Version` names,
whatever version the repeat asks for.
"""

import contextlib
from dataclasses import dataclass
from datetime import timedelta
import functools
import hashlib
import json

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
import http_sf
from mittis import crypto
from mittis.accounts.authentication import api_key_for_request
from mittis.api.errors import error_response
from mittis.api.models import IdempotencyRecord
from mittis.api.renderers import VersionedJSONRenderer
from mittis.api.versioning import HEADER as VERSION_HEADER
from mittis.db import StatementUndone, insert, insert_select, quoted_table

HEADER = "Idempotency-Key"
MAX_LENGTH = 255


class InvalidKey(ValueError):
    pass


class KeyNotFree(Exception):
    """The one-statement attempt found the key locked or already recorded, and wrote nothing."""


class WriteRefused(Exception):
    """The one-statement attempt tried a write outside its statement; refused before it ran."""


# What ends a one-statement attempt having written nothing (IntegrityError: a twin recorded the key after the
# statement's snapshot was taken); the transactional path then answers.
RETRY_TRANSACTIONALLY = (KeyNotFree, WriteRefused, StatementUndone, IntegrityError)


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
    except (ValueError, RecursionError):  # not JSON, or nested too deeply to parse: the parser refuses it (400)
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
        request._idempotency_pending = (scope, fingerprint(request, body))
        return self.get_response(request)  # `process_view` takes it from here, knowing the view

    def process_view(self, request, view_func, view_args, view_kwargs):
        pending = request.__dict__.pop("_idempotency_pending", None)
        if pending is None:
            return None  # not a keyed POST: `__call__` has it in hand
        scope, request_fingerprint = pending

        def respond():
            response = view_func(request, *view_args, **view_kwargs)
            if callable(getattr(response, "render", None)):
                response.render()  # the handler's own render() is then a no-op; the record needs the bytes now
            return response

        if getattr(getattr(view_func, "cls", None), "writes_in_one_statement", False):
            key = KeyInStatement(request=request, scope=scope, fingerprint=request_fingerprint)
            request.idempotency = key
            # Inside a caller's transaction (a test's), a savepoint makes "wrote nothing" true after an error too.
            attempt = transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext()
            try:
                with attempt, connection.execute_wrapper(key.refuse_other_writes):
                    response = respond()
                if key.recorded or response.status_code >= 500:
                    return response  # sent and recorded; or failed having written nothing, stored nothing
            except RETRY_TRANSACTIONALLY:
                pass
            finally:
                request.idempotency = None
        return self._once(request, scope, request_fingerprint, respond)

    def _atomically(self, request):
        """Without a key a write is still all or nothing: a 5xx leaves no half-done request behind."""
        with transaction.atomic():
            response = self.get_response(request)
            if response.status_code >= 500:
                transaction.set_rollback(True)
            return response

    def _once(self, request, scope: dict, request_fingerprint: str, respond):
        try:
            with transaction.atomic():
                locked, existing = _lock_and_find(scope)
                if not locked:
                    return _in_use(request)
                if existing is not None:
                    if existing.created_at >= expiry_cutoff():
                        return _replay(request, existing, request_fingerprint)
                    existing.delete()  # expired, not yet purged: forgotten, so this request is new (rare)
                response = respond()
                if response.status_code >= 500 or response.status_code == 429 or response.streaming:
                    # A crash stores nothing and undoes whatever the request did: the client retries. So does a
                    # 429 (the contract: "try again later" must not be replayed to the retry that comes later).
                    transaction.set_rollback(True)
                    return response
                _record(request, scope, request_fingerprint, response)
                return response
        except IntegrityError:
            # Another request stored this key meanwhile (its snapshot predates the lock; see `_lock_and_find`): whatever
            # this one did is undone, and a retry gets the stored answer.
            return _in_use(request)


def _record(request, scope: dict, request_fingerprint: str, response: HttpResponse) -> None:
    """The key's record with its answer, written last: the lock keeps its twin out until commit, and the
    unique constraint would refuse it anyway."""
    insert(IdempotencyRecord(
        **scope, fingerprint=request_fingerprint, method=request.method, path=request.get_full_path()[:2000],
        request_id=getattr(request, "request_id", ""), response_status=response.status_code,
        response_content_type=response.get("Content-Type", "application/json"),
        response_body=crypto.seal(response.content, context=_context(**scope)),
        object_id=_object_id(getattr(response, "data", None)), api_version=request.api_version,
        created_at=timezone.now()))


def _object_id(answer) -> str:
    """The id of the object an answer is (a DRF response's data), or "" (a list, an error, not JSON)."""
    object_id = answer.get("id") if isinstance(answer, dict) else None
    return object_id if isinstance(object_id, str) and len(object_id) <= 100 else ""


def _context(*, account_id: int, livemode: bool, key: str) -> bytes:
    """What a stored answer is sealed to: an answer copied into another record (another account's) does not open."""
    return f"{account_id}:{livemode:d}:{key}".encode()


def stored_answer(record: IdempotencyRecord) -> bytes:
    """The answer's bytes as first given. A row written before answers were sealed holds them in the clear."""
    body = bytes(record.response_body)
    if not crypto.is_sealed(body):
        return body
    return crypto.unseal(body, context=_context(account_id=record.account_id, livemode=record.livemode,
                                                key=record.key))


def _store(record: IdempotencyRecord, answer: bytes) -> None:
    record.response_body = crypto.seal(answer, context=_context(account_id=record.account_id,
                                                                livemode=record.livemode, key=record.key))


def _lock_and_find(scope: dict) -> tuple[bool, IdempotencyRecord | None]:
    """(whether this request holds the key, the key's record). A transaction-scoped advisory lock tells a duplicate at once that the first request is in flight, and the record comes in the same
    statement. That statement's snapshot predates its lock: a duplicate taking the lock the moment the first
    request commits does not see the first one's record, runs, and meets the unique constraint with its own
    (409, and its retry is replayed), which a second round trip on every request would save only it.

    A request whose connection vanished without a FIN (a network partition, a killed host) would
    leave its backend idle in transaction, holding the key, until TCP keepalive notices hours later;
    the same statement bounds that idle time so the database ends it and the key is free again."""
    idle_limit = f"{int(settings.MITTIS_ABANDONED_REQUEST_SECONDS * 1000)}ms"
    with connection.cursor() as cursor:
        cursor.execute(_lock_and_find_sql(), [_lock_id(scope), idle_limit, scope["account_id"], scope["livemode"],
                                              scope["key"]])
        locked, *record = cursor.fetchone()
    if record[0] is None:
        return locked, None
    return locked, IdempotencyRecord.from_db(connection.alias, _record_fields(), record)


def _lock_id(scope: dict) -> int:
    material = f"{scope['account_id']}:{scope['livemode']}:{scope['key']}".encode()
    return int.from_bytes(hashlib.sha256(material).digest()[:8], "big", signed=True)


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


STATEMENT_PREFIX = "WITH idempotency_key AS ("
_RENDERER = VersionedJSONRenderer()


@dataclass(eq=False)
class KeyInStatement:
    """A keyed POST whose view writes in one statement: the `mittis.db.StatementGuard` the view hands to its
    service. The service adds `guard` first (the key's advisory lock, taken and released within the statement,
    and no record of the key) and conditions every write on it, then `record` (the answer, written with the
    rows it names). The statement then runs in autocommit: accepting a message was BEGIN, lock, writes, record and COMMIT, five round trips with the
    account's balance row locked across three of them; it is one.

    As in the transactional path, a twin whose snapshot predates the first's commit meets the unique
    constraint on the record, and the whole statement with it."""

    request: HttpRequest
    scope: dict
    fingerprint: str
    recorded: HttpResponse | None = None
    _answer: tuple[int, bytes, str] | None = None

    def guard(self, statement) -> str:
        """Adds the key's part, first (`refuse_other_writes` knows the statement by it); returns the SQL
        condition that every write of the statement must meet."""
        assert not statement.parts, "the key's part comes first"
        table = quoted_table(IdempotencyRecord)
        statement.add("idempotency_key", f"SELECT pg_try_advisory_xact_lock(%s) AND NOT EXISTS (SELECT 1 FROM "
                                         f"{table} WHERE account_id = %s AND livemode = %s AND key = %s) AS free",
                      [_lock_id(self.scope), self.scope["account_id"], self.scope["livemode"], self.scope["key"]])
        return "(SELECT free FROM idempotency_key)"

    def record(self, statement, *, status: int, data: dict, source: str) -> None:
        """The key's record, one row per row of `source` (the part whose rows mean the request was done), holding
        the answer rendered as the API renders JSON (in the request's version): the very bytes the first answer
        and every replay give, sealed here (in Python: the statement gets it as a parameter)."""
        request = self.request
        body, content_type = _RENDERER.render(data, renderer_context={"request": request}), _RENDERER.media_type
        self._answer = (status, body, content_type)
        statement.add("idempotency_record", *insert_select(IdempotencyRecord(
            **self.scope, fingerprint=self.fingerprint, method=request.method,
            path=request.get_full_path()[:2000], request_id=getattr(request, "request_id", ""),
            response_status=status, response_content_type=content_type,
            response_body=crypto.seal(body, context=_context(**self.scope)), object_id=_object_id(data),
            api_version=request.api_version, created_at=timezone.now()), source=source))

    def ran(self, *, free: bool, done: bool) -> None:
        """What the statement answered: whether the key was free, whether the writes (and the record) were made."""
        if not free:
            raise KeyNotFree
        if done:
            status, body, content_type = self._answer
            self.recorded = HttpResponse(body, status=status, content_type=content_type)

    def retries(self, error: Exception) -> bool:
        """Whether `error` ends the attempt having written nothing, so that the middleware runs the request
        again on the transactional path (the exception handler then leaves `error` to it)."""
        return isinstance(error, RETRY_TRANSACTIONALLY)

    def refuse_other_writes(self, execute, sql, params, many, context):
        """`connection.execute_wrapper` for the attempt: reads, and the statement that holds the key, run; any
        other write would commit unguarded, so it is refused and the transactional path runs instead."""
        if not (sql.startswith(STATEMENT_PREFIX) or sql.lstrip()[:6].upper() == "SELECT"):
            raise WriteRefused(sql[:60])
        return execute(sql, params, many, context)


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
    response = HttpResponse(stored_answer(record), status=record.response_status,
                            content_type=record.response_content_type)
    response["Idempotent-Replayed"] = "true"
    # The answer is the original, so it keeps the original's id (its error body names it too) and its version.
    response["Request-Id"] = record.request_id
    response[VERSION_HEADER] = record.api_version
    return response


def purge_expired() -> int:
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=expiry_cutoff()).delete()
    return deleted


def redact_stored_answers(sender, *, account_id: int, livemode: bool, object_id: str, created_at, changes: dict,
                          **kwargs) -> None:
    """`mittis.signals.object_redacted`: overwrite the redacted fields in the stored answers that are that object.
    Answers live a day at most (keys expire), and none predates its object: an object older than a day is in
    none. The database finds the answers by their `object_id` among one account's day of POSTs; only those are
    decrypted, and rows older than that column (plaintext, `object_id` NULL) are looked inside."""
    cutoff = expiry_cutoff()
    if created_at < cutoff:
        return
    needle = object_id.encode()
    for record in IdempotencyRecord.objects.filter(
            Q(object_id=object_id) | Q(object_id__isnull=True), account_id=account_id, livemode=livemode,
            method="POST", created_at__gte=max(cutoff, created_at)):
        body = stored_answer(record)
        if record.object_id is None and needle not in body:
            continue
        try:
            answer = json.loads(body)
        except ValueError:
            continue
        if isinstance(answer, dict) and answer.get("id") == object_id:
            answer.update(changes)
            _store(record, _RENDERER.render(answer))
            record.object_id = object_id
            record.save(update_fields=["response_body", "object_id"])


ANSWERS_PER_TRANSACTION = 500  # a busy day holds millions of stored answers: a row lock each, in batches


def reencrypt_stored_answers() -> int:
    """Every stored answer sealed under the newest key (`reencrypt_secrets`), one in the clear (written before
    answers were sealed) sealed, with its `object_id`. In batches by id, each row locked while it is rewritten
    (a redaction may rewrite it meanwhile); a row purged meanwhile is skipped."""
    count, after = 0, 0
    while True:
        with transaction.atomic():
            rows = list(IdempotencyRecord.objects.select_for_update().filter(pk__gt=after).order_by("pk")
                        .only("pk", "account_id", "livemode", "key", "response_body", "object_id")
                        [:ANSWERS_PER_TRANSACTION])
            if not rows:
                return count
            for row in rows:
                answer = stored_answer(row)
                if row.object_id is None:
                    try:
                        row.object_id = _object_id(json.loads(answer))
                    except (ValueError, RecursionError):
                        row.object_id = ""
                _store(row, answer)
            IdempotencyRecord.objects.bulk_update(rows, ["response_body", "object_id"])
        count += len(rows)
        after = rows[-1].pk
