"""PromptActivation now belongs to annotator, EvaluationRun and
EvaluationItem to tuning: drop them from review's state only (their tables
stay, now owned by the other apps' state). Content types follow, so
permissions and admin log entries keep pointing at the right rows."""

from django.db import migrations

MOVED = {"promptactivation": "annotator", "evaluationrun": "tuning", "evaluationitem": "tuning"}


def content_types_move(apps, schema_editor):
    content_type = apps.get_model("contenttypes", "ContentType")
    for model, app_label in MOVED.items():
        if content_type.objects.filter(app_label=app_label, model=model).exists():
            continue
        content_type.objects.filter(app_label="review", model=model).update(app_label=app_label)


def content_types_back(apps, schema_editor):
    content_type = apps.get_model("contenttypes", "ContentType")
    for model, app_label in MOVED.items():
        if not content_type.objects.filter(app_label="review", model=model).exists():
            content_type.objects.filter(app_label=app_label, model=model).update(
                app_label="review"
            )


class Migration(migrations.Migration):

    dependencies = [
        ("review", "0002_prompt_tuning"),
        ("annotator", "0006_prompt_activation_from_review"),
        ("tuning", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="EvaluationItem"),
                migrations.DeleteModel(name="EvaluationRun"),
                migrations.DeleteModel(name="PromptActivation"),
            ],
            database_operations=[],
        ),
        migrations.RunPython(content_types_move, content_types_back),
    ]
