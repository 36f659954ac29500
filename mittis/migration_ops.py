"""Migration operations shared by the apps' migrations."""

from django.db import migrations, models


def unique_by_constraint(app_label: str, model_name: str, field_name: str, field: models.Field, name: str):
    """A unique text field made unique by `UniqueConstraint(name=name)` instead of `unique=True` (mittis/ids.py says
    why), in place: the constraint that `unique=True` made is renamed, its index kept, and the `varchar_pattern_ops`
    index beside it dropped. Nothing is rebuilt, so the table is locked only for the rename. `field` is the field as
    it is now, without `unique=True`."""

    def forwards(apps, schema_editor):
        table, column = _table_and_column(apps, app_label, model_name, field_name)
        quote = schema_editor.quote_name
        with schema_editor.connection.cursor() as cursor:
            old = _unique_constraint(cursor, table, column)
            for index in _pattern_indexes(cursor, table, column):
                cursor.execute(f"DROP INDEX IF EXISTS {quote(index)}")
        schema_editor.execute(f"ALTER TABLE {quote(table)} RENAME CONSTRAINT {quote(old)} TO {quote(name)}")

    def backwards(apps, schema_editor):
        table, column = _table_and_column(apps, app_label, model_name, field_name)
        quote = schema_editor.quote_name
        schema_editor.execute(f"ALTER TABLE {quote(table)} RENAME CONSTRAINT {quote(name)} TO {quote(f'{table}_{column}_key')}")
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {quote(f'{table}_{column}_like')} ON {quote(table)} "
                              f"({quote(column)} varchar_pattern_ops)")

    return migrations.SeparateDatabaseAndState(
        state_operations=[
            migrations.AlterField(model_name=model_name, name=field_name, field=field),
            migrations.AddConstraint(model_name=model_name,
                                     constraint=models.UniqueConstraint(fields=[field_name], name=name)),
        ],
        database_operations=[migrations.RunPython(forwards, backwards)],
    )


def _table_and_column(apps, app_label: str, model_name: str, field_name: str) -> tuple[str, str]:
    model = apps.get_model(app_label, model_name)
    return model._meta.db_table, model._meta.get_field(field_name).column


def _unique_constraint(cursor, table: str, column: str) -> str:
    """The name of the unique constraint on exactly `column`, whatever Django called it when it made it."""
    cursor.execute("SELECT c.conname FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid "
                   "AND c.conkey = ARRAY[a.attnum] WHERE c.conrelid = %s::regclass AND c.contype = 'u' "
                   "AND a.attname = %s", [table, column])
    [(name,)] = cursor.fetchall()
    return name


def _pattern_indexes(cursor, table: str, column: str) -> list[str]:
    """The `varchar_pattern_ops` or `text_pattern_ops` indexes on `column` alone (Django's `…_like`)."""
    cursor.execute("SELECT i.indexrelid::regclass::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                   "AND a.attnum = i.indkey[0] JOIN pg_opclass o ON o.oid = i.indclass[0] "
                   "WHERE i.indrelid = %s::regclass AND i.indnatts = 1 AND a.attname = %s "
                   "AND o.opcname IN ('varchar_pattern_ops', 'text_pattern_ops')", [table, column])
    return [name for (name,) in cursor.fetchall()]

