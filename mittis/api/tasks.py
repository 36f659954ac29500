from celery import shared_task

from mittis.api.idempotency import purge_expired


@shared_task(name="api.purge_expired_idempotency_keys")
def purge_expired_idempotency_keys() -> int:
    """Idempotency keys are kept MITTIS_IDEMPOTENCY_KEY_HOURS (24) hours, then forgotten."""
    return purge_expired()


@shared_task(name="api.noop")
def noop(*args) -> None:
    """Does nothing: `make bench` measures Celery's own cost per task with it."""
