"""Keep the SMPP carriers bound: `python manage.py smpp_bind --all`, or name the carriers.

Runs until SIGTERM or SIGINT, then unbinds. One process serves every carrier it is given, one thread
each; a carrier added, disabled or changed in the staff console is picked up within 30 s. Run one
such process per carrier (a second would bind a second session, which the carrier may refuse).
"""

import signal
import threading

from django.core.management.base import BaseCommand, CommandError

from messaging.carriers.smpp_supervisor import BindSupervisor
from messaging.models import Carrier
from messaging.services import CARRIER_INBOX


class Command(BaseCommand):
    help = "Keep SMPP binds up: one session per enabled SMPP carrier (--all) or per carrier named."

    def add_arguments(self, parser):
        parser.add_argument("carriers", nargs="*", metavar="CARRIER", help="Carrier names (kind smpp).")
        parser.add_argument("--all", action="store_true", help="Every enabled SMPP carrier, now and to come.")

    def handle(self, *args, carriers, all, **options):
        if bool(carriers) == bool(all):
            raise CommandError("Name the SMPP carriers to bind, or pass --all.")
        if carriers:
            known = set(Carrier.objects.filter(kind=Carrier.SMPP, name__in=carriers).values_list("name", flat=True))
            if unknown := sorted(set(carriers) - known):
                raise CommandError(f"No SMPP carrier named {', '.join(unknown)}.")
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        self.stdout.write(f"Binding {'every enabled SMPP carrier' if all else ', '.join(carriers)}; SIGTERM unbinds.")
        BindSupervisor(CARRIER_INBOX, names=carriers or None).run(stop)
