from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("review", "0004_claim_shown_token"),
    ]

    operations = [
        migrations.AddField(
            model_name="decision",
            name="server_seconds",
            field=models.FloatField(blank=True, null=True),
        ),
    ]
