"""PromptActivation moves from review to annotator (which owns prompts).

State only: the table review_promptactivation stays where it is (db_table),
so no row moves. review's 0003 removes the model from review's state after
this migration has added it here."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('annotator', '0005_routing_setting'),
        # The table is created by review's migration on a fresh database.
        ('review', '0002_prompt_tuning'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                            name='PromptActivation',
                            fields=[
                                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                                ('activated_at', models.DateTimeField(db_index=True)),
                                ('activated_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                                ('previous', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='annotator.promptversion')),
                                ('prompt_version', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='activations', to='annotator.promptversion')),
                            ],
                            options={
                                'db_table': 'review_promptactivation',
                                'ordering': ['-id'],
                            },
                        ),
            ],
            database_operations=[],
        ),
    ]
