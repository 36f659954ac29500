"""mittis.db's hand-written writes and what they assume of Django and psycopg: each assumption checked by its
effect, so that an upgrade which breaks one fails here instead of costing or misbehaving quietly."""

from decimal import Decimal

from django.db import connection
from django.utils import timezone
from psycopg import _queries
import pytest
from rest_framework.test import APIClient

from billing.services import balance_top_up
from mittis.api.models import IdempotencyRecord
from mittis.db import insert, insert_many
from tests.conftest import SEED
from tests.factories import api_key_for
from webhooks.services import endpoint_create

PSYCOPG_DEFAULT_BOUNDS = (50, 4096)  # parameters and bytes below which psycopg caches a statement's conversion


# --- psycopg's conversion cache (mittis.db.cache_statement_conversion) ------------------------------
@pytest.fixture
def conversions(monkeypatch):
    """(statement, served from the cache) for each statement psycopg converts from `%s` to `$n`, through the
    two module functions `PostgresQuery.convert` chooses between: the cached one and the one it uses for
    statements over its bounds. Renamed or gone, they fail this fixture."""
    seen = []
    cached, uncached = _queries._query2pg, _queries._query2pg_nocache

    def through_cache(query, encoding):
        hits = cached.cache_info().hits
        converted = cached(query, encoding)
        seen.append((query, cached.cache_info().hits > hits))
        return converted

    def anew(query, encoding):
        seen.append((query, False))
        return uncached(query, encoding)

    monkeypatch.setattr(_queries, "_query2pg", through_cache)
    monkeypatch.setattr(_queries, "_query2pg_nocache", anew)
    return seen


@pytest.fixture
def live_api_with_webhooks(account, settings):
    """A live key whose sends carry the most the accept statement holds: the debit, an endpoint's delivery
    and a status callback's."""
    settings.MITTIS_WEBHOOK_ALLOWED_PRIVATE, settings.MITTIS_WEBHOOK_ALLOW_HTTP = ["127.0.0.1"], True
    balance_top_up(account_id=account.pk, livemode=True, amount=Decimal("10"))
    endpoint_create(account=account, livemode=True, url="http://127.0.0.1:9/hooks", enabled_events=["*"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(account, livemode=True)}")
    return client


def test_the_accept_statement_is_converted_from_psycopgs_cache(conversions, live_api_with_webhooks):
    for n in range(3):  # the first use of a key writes its last_used_at, so that request is transactional
        response = live_api_with_webhooks.post("/v1/messages", {**SEED, "status_callback": "http://127.0.0.1:9/cb"},
                                               format="json", HTTP_IDEMPOTENCY_KEY=f"cache-{n}")
        assert response.status_code == 201

    accepts = [(query, hit) for query, hit in conversions if query.startswith(b"WITH idempotency_key")]
    assert len(accepts) == 2
    statement = accepts[-1][0]
    # Why the bounds are raised: psycopg's own would convert it anew on every request. Should this fail, the
    # statement fits them now, and cache_statement_conversion can go.
    params, length = statement.count(b"%s"), len(statement)
    assert params > PSYCOPG_DEFAULT_BOUNDS[0] or length > PSYCOPG_DEFAULT_BOUNDS[1], (params, length)
    # The effect relied on: a request's conversion of it is a hit in psycopg's cache.
    assert accepts[-1][1], "psycopg converted the accept statement anew: its cache bounds moved or were renamed"


# --- Rows written by hand (mittis.db.insert, insert_many) ---------------------------------------------
def record(account, key: str) -> IdempotencyRecord:
    return IdempotencyRecord(account=account, livemode=False, key=key, fingerprint="f" * 64, method="POST",
                             path="/v1/messages", request_id="req_1", response_status=201,
                             response_content_type="application/json", response_body=b"{}",
                             created_at=timezone.now())


@pytest.mark.parametrize("write", ["insert", "insert_many"])
def test_a_row_inserted_by_hand_is_left_as_djangos_own_save_leaves_it(account, write):
    rows = [record(account, "a"), record(account, "b")] if write == "insert_many" else [record(account, "a")]
    if write == "insert":
        insert(rows[0])
    else:
        insert_many(rows)
    saved = record(account, "saved-by-django")
    saved.save()

    for row in rows:
        assert row.pk is not None
        assert (row._state.adding, row._state.db) == (saved._state.adding, saved._state.db) == (False, connection.alias)
        # The flags' effect: validation no longer counts the row itself as its own duplicate key...
        row.full_clean()
        # ...and a save of some fields updates its row.
        row.response_status = 500
        row.save(update_fields=["response_status"])
    assert sorted(IdempotencyRecord.objects.values_list("key", "response_status")) == sorted(
        [(row.key, 500) for row in rows] + [("saved-by-django", 201)])
