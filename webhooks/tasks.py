from datetime import datetime

from celery import shared_task

from webhooks import services


@shared_task(name="webhooks.deliver")
def deliver(delivery_id: int) -> None:
    """One attempt; the service schedules the next (its retry policy is the contract's schedule)."""
    services.delivery_attempt(delivery_id=delivery_id)


@shared_task(name="webhooks.sweep_deliveries")
def sweep_deliveries() -> int:
    return len(services.deliveries_sweep())


@shared_task(name="webhooks.recover_endpoint")
def recover_endpoint(endpoint_id: int, since: str, until: str) -> int:
    return services.endpoint_recover(endpoint_id=endpoint_id, since=datetime.fromisoformat(since),
                                     until=datetime.fromisoformat(until))


@shared_task(name="webhooks.flush_endpoint")
def flush_endpoint(endpoint_id: int, lane: int = 0) -> int:
    """One lane of an endpoint's due deliveries, in batches over one connection (see `endpoint_flush`)."""
    return services.endpoint_flush(endpoint_id=endpoint_id, lane=lane)
