"""`manage.py schema_check`: fail when the `/v1` schema breaks a client of the committed one.

With `--write`, a compatible schema (additions only) replaces the committed copy, to be committed in the
same change. CI runs this check through `tests/api/test_schema_compat.py`.
"""

from django.core.management.base import BaseCommand, CommandError

from mittis.api.schema_compat import (
    COMMITTED, breaking_changes, committed_schema, generated_schema, write_committed,
)


class Command(BaseCommand):
    help = "Compare the generated OpenAPI schema with the committed one; --write updates it when compatible."

    def add_arguments(self, parser):
        parser.add_argument("--write", action="store_true", help="Update the committed copy (additions only).")

    def handle(self, *args, write, **options):
        new = generated_schema()
        breaks = breaking_changes(committed_schema(), new) if COMMITTED.exists() else []
        if breaks:
            raise CommandError("The /v1 schema would break existing clients:\n  " + "\n  ".join(breaks))
        if COMMITTED.exists() and committed_schema() == new:
            self.stdout.write("The committed schema is current.")
        elif write:
            write_committed(new)
            self.stdout.write(f"Compatible; {COMMITTED.relative_to(COMMITTED.parents[2])} updated: commit it.")
        else:
            raise CommandError("The schema changed compatibly (additions); run `manage.py schema_check --write` "
                               "and commit mittis/api/openapi-v1.json with the change.")
