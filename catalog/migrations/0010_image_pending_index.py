from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("catalog", "0009_importrun_rows_duplicate"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="productimage",
            index=models.Index(
                condition=models.Q(("status", "pending")),
                fields=["updated_at"],
                name="image_pending_updated",
            ),
        ),
    ]
