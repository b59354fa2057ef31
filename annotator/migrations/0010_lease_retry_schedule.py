from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("annotator", "0009_lease_released"),
    ]

    operations = [
        migrations.AddField(
            model_name="annotationlease",
            name="retries",
            field=models.PositiveSmallIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="annotationlease",
            name="retry_at",
            field=models.DateTimeField(blank=True, db_index=True, null=True),
        ),
    ]
