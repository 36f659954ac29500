from celery import shared_task
from django.apps import apps
from django.conf import settings
from django.utils import timezone

from mittis.partitions import Partitioned, partitions_maintain


def partitioned_tables() -> list[Partitioned]:
    """Every table partitioned by month: its model names the key (`PARTITION_KEY`)."""
    return [Partitioned(model._meta.db_table, model._meta.get_field(model.PARTITION_KEY).column)
            for model in apps.get_models() if getattr(model, "PARTITION_KEY", None)]


@shared_task(name="ops.maintain_partitions")
def maintain_partitions() -> int:
    """Daily: the partitions of the months ahead made, those past the history kept dropped whole
    (MITTIS_PARTITIONS_AHEAD, MITTIS_HISTORY_MONTHS). Returns how many partitions it made or dropped."""
    done = partitions_maintain(partitioned_tables(), today=timezone.now().date(),
                               ahead=settings.MITTIS_PARTITIONS_AHEAD, keep=settings.MITTIS_HISTORY_MONTHS)
    return len(done["created"]) + len(done["dropped"])
