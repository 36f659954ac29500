from django.db import models

from mittis import versions
from mittis.accounts.models import Account


class IdempotencyRecord(models.Model):
    """The answer given to the first request with an `Idempotency-Key`, replayed to its repeats.

    Written in the same transaction as whatever that request created, so either both exist or
    neither; the unique constraint is what makes two requests with one key unable to both proceed.

    The answer is encrypted (`mittis.crypto`, as secrets are): it may hold a `whsec_` secret or a message body.
    """

    # No index of its own: the unique constraint's leads with it, and a planner with stale statistics took this
    # one for a key's lookup, reading every record of the account.
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+", db_index=False)
    livemode = models.BooleanField()
    key = models.CharField(max_length=255)
    # sha256 of method, path and body: a repeat must be the same request.
    fingerprint = models.CharField(max_length=64)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=2000)
    request_id = models.CharField(max_length=40)
    response_status = models.PositiveSmallIntegerField()
    response_content_type = models.CharField(max_length=200)
    # A Fernet token of the answer's bytes; plaintext in rows written before answers were encrypted (see
    # `mittis.api.idempotency.stored_answer`), which expire within a day of the upgrade.
    response_body = models.BinaryField()
    # The id of the object the answer is (`msg_…`), "" for any other answer, so that a redaction finds its answers
    # without decrypting every answer of the account. NULL: written before this column (plaintext; looked inside).
    # Indexed (idempotency_object_idx): a redaction reaches its answers through it, never by reading a day of POSTs.
    object_id = models.CharField(max_length=100, null=True, blank=True)
    # The API version the answer was rendered in, named again by its replays. The first version in rows written by
    # code that predates versions (it rendered only that one); the current one, which the code builds, when unset.
    api_version = models.CharField(max_length=10, default=versions.current, db_default=versions.FIRST_VERSION)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "livemode", "key"], name="idempotency_key_unique")]
        indexes = [models.Index(fields=["object_id"], name="idempotency_object_idx")]

    def __str__(self) -> str:
        return f"{self.method} {self.path} [{self.key}] → {self.response_status}"


class BenchRecord(models.Model):
    """A row for the benchmark's reference endpoints (`make bench`): an insert as cheap as one can be."""

    name = models.CharField(max_length=100)
    count = models.IntegerField()
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
