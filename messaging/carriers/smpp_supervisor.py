"""Every SMPP carrier kept bound: `python manage.py smpp_bind --all` runs a BindSupervisor, which keeps a
BindRunner thread (smpp_bind) per enabled SMPP carrier, or per carrier named."""

import logging
import threading

from django.db import DatabaseError, close_old_connections, connections

from messaging.carriers.base import Inbox
from messaging.carriers.smpp_bind import UNBIND_GRACE, BindRunner

logger = logging.getLogger(__name__)

RESCAN_INTERVAL = 30.0  # how soon the supervisor notices a carrier added, disabled or changed


class BindSupervisor:
    """A BindRunner thread per enabled SMPP carrier (or per carrier named), started, stopped and
    restarted as carriers are added, disabled or changed, and after a runner dies."""

    def __init__(self, inbox: Inbox, names: list[str] | None = None, *, rescan_interval: float = RESCAN_INTERVAL):
        self.inbox = inbox
        self.names = names
        self.rescan_interval = rescan_interval
        self.running: dict[int, tuple[str, threading.Event, threading.Thread]] = {}

    def run(self, stop: threading.Event) -> None:
        try:
            while True:
                close_old_connections()
                try:
                    self._reconcile()
                except DatabaseError:
                    logger.exception("Could not read the SMPP carriers; trying again in %ss", self.rescan_interval)
                if stop.wait(self.rescan_interval):
                    break
        finally:
            for _, runner_stop, _ in self.running.values():
                runner_stop.set()
            for _, _, thread in self.running.values():
                thread.join(UNBIND_GRACE + 3)
            connections.close_all()

    def _reconcile(self) -> None:
        from messaging.models import Carrier

        carriers = Carrier.objects.filter(kind=Carrier.SMPP, enabled=True)
        if self.names is not None:
            carriers = carriers.filter(name__in=self.names)
        wanted = {carrier.pk: carrier for carrier in carriers}
        for pk, (fingerprint, runner_stop, thread) in list(self.running.items()):
            carrier = wanted.get(pk)
            if carrier is None or _fingerprint(carrier) != fingerprint or not thread.is_alive():
                runner_stop.set()
                thread.join(UNBIND_GRACE + 3)
                del self.running[pk]
        for pk, carrier in wanted.items():
            if pk not in self.running:
                runner_stop = threading.Event()
                thread = threading.Thread(target=BindRunner(carrier, self.inbox).run, args=(runner_stop,),
                                          name=f"smpp-{carrier.name}")
                thread.start()
                self.running[pk] = (_fingerprint(carrier), runner_stop, thread)


def _fingerprint(carrier) -> str:
    """What a runner was started with: a change means a new bind."""
    return repr((carrier.name, sorted((carrier.settings or {}).items()), carrier.credentials_encrypted, carrier.tps))
