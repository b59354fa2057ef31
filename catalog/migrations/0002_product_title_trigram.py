"""Substring search over product titles at 1M+ rows: on PostgreSQL a trigram
GIN index on UPPER(title) backs Django's `icontains` (UPPER(..) LIKE UPPER(..)).
Other databases keep the plain scan. If the role may not create the pg_trgm
extension, the index is skipped with a notice instead of failing the deploy."""

from django.db import migrations

INDEX = "catalog_product_title_trgm"


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SAVEPOINT loupe_trgm")
        try:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        except Exception:  # noqa: BLE001 - missing privilege: skip the index
            cursor.execute("ROLLBACK TO SAVEPOINT loupe_trgm")
            print(f"\n  pg_trgm unavailable: {INDEX} not created (title search scans)")
            return
        cursor.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON catalog_product "
            "USING gin (UPPER(title) gin_trgm_ops)"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("catalog", "0001_initial")]
    operations = [migrations.RunPython(create, drop)]
