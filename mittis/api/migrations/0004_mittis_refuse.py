from django.db import migrations

# A statement that must fail as a whole when one of its parts finds it cannot proceed (a keyed send whose
# balance does not cover it, found after the message was written: messaging.services._insert_in_one_statement).
CREATE = """
CREATE OR REPLACE FUNCTION mittis_refuse(reason text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING MESSAGE = reason;
END
$$
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS mittis_refuse(text)")


class Migration(migrations.Migration):

    dependencies = [
        ("api", "0003_idempotency_record_account_index"),
    ]

    operations = [migrations.RunPython(create, drop)]
