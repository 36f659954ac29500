"""Benchmark an export: `manage.py bench_export --messages 1000000 [--format csv|ndjson]`.

Seeds that many messages for a throwaway account (fast bulk inserts), then runs the export in a child
process, as a worker would, and prints its rows per second (the export's run, not the child's start) and the
child's peak memory (max RSS).
Prints figures; asserts nothing. Use a database of its own: `DATABASE_URL=postgres://…/mittis_bench`.
"""

from datetime import timedelta
from decimal import Decimal
import resource
import subprocess
import sys
import time

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from messaging.models import Export, Message
from mittis.accounts.models import Account
from mittis.ids import new_public_id

SEED_BATCH = 5000


class Command(BaseCommand):
    help = "Seed N messages and time their export in a separate process (rows/s, peak memory)."

    def add_arguments(self, parser):
        parser.add_argument("--messages", type=int, default=100_000)
        parser.add_argument("--format", choices=["csv", "ndjson"], default="csv")
        parser.add_argument("--run", type=int, help=argparse_suppress())
        parser.add_argument("--keep", action="store_true", help="Keep the seeded account and its messages.")

    def handle(self, *args, messages, format, run, keep, **options):
        if run:  # the child: one export, as a worker (already up) runs its slices back to back, timed without
            from messaging.exports import export_slice  # the process's start; the next slice is not published

            started, after, slices = time.monotonic(), 0, 0
            while True:
                export, more = export_slice(export_id=run, after=after)
                slices += 1
                if not more:
                    break
                after = export.last_key
            self.stdout.write(f"{slices} {time.monotonic() - started:.6f}")
            return
        account = Account.objects.create(name=f"bench-export {timezone.now():%Y%m%d%H%M%S}")
        started = time.monotonic()
        self._seed(account, messages)
        seeded = time.monotonic() - started
        self.stdout.write(f"seeded {messages:,} messages in {seeded:.1f} s")

        now = timezone.now()
        export = Export.objects.create(account=account, livemode=True, type=Export.MESSAGES, format=format,
                                       start=now - timedelta(days=1), end=now + timedelta(days=1))
        # The child's Python and Django start (a second here) is a worker's once, not an export's.
        slices, elapsed = subprocess.run([sys.executable, sys.argv[0], "bench_export", "--run", str(export.pk)],
                                         check=True, stdout=subprocess.PIPE, text=True).stdout.split()[-2:]
        elapsed = float(elapsed)
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
        export.refresh_from_db()
        in_db = Message.objects.filter(account=account).count()
        self.stdout.write(
            f"export {export.public_id} ({format}): status {export.status}, {export.row_count:,} rows "
            f"(database: {in_db:,}), {export.file_size / 1e6:.1f} MB in {elapsed:.1f} s, {slices} slice(s) = "
            f"{export.row_count / elapsed:,.0f} rows/s, worker peak memory {peak_mb:.0f} MB")
        if not keep:
            from messaging.exports import export_storage

            for part in export.file_parts:
                export_storage().delete(part)
            Export.objects.filter(pk=export.pk).delete()
            Message.objects.filter(account=account)._raw_delete(Message.objects.db)
            account.delete()

    def _seed(self, account: Account, count: int) -> None:
        now = timezone.now()
        for offset in range(0, count, SEED_BATCH):
            size = min(SEED_BATCH, count - offset)
            with transaction.atomic():
                Message.objects.bulk_create([Message(
                    public_id=new_public_id("msg"), account=account, livemode=True, direction=Message.OUTBOUND,
                    status="delivered", from_number="+18045550142", to=f"+1804555{n % 10000:04d}",
                    body=f"Your order {offset + n} shipped, tracking 1Z{n:010d} — thanks, \"Acme\"",
                    encoding="UCS-2", segments=1, country="US", price=Decimal("0.008"), currency="USD",
                    metadata={"order": str(offset + n)}, expires_at=now + timedelta(hours=4), carrier="sandbox",
                    sent_at=now, delivered_at=now,  # as `transition` stamps a delivered message: each row formats them
                ) for n in range(size)], batch_size=size)


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS
