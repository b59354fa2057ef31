"""EvaluationRun and EvaluationItem move from review to the tuning app.

State only: their tables (review_evaluationrun, review_evaluationitem) stay
where review's 0002 created them, so no row moves. review's 0003 removes
them from review's state after this migration."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('annotator', '0005_routing_setting'),
        ('catalog', '0004_taxonomy_change'),
        ('review', '0002_prompt_tuning'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                            name='EvaluationRun',
                            fields=[
                                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                                ('model', models.CharField(blank=True, help_text="Overrides the version's model; blank: its own.", max_length=200)),
                                ('sample', models.CharField(choices=[('random', 'Random'), ('recent', 'Most recent')], max_length=10)),
                                ('size', models.PositiveIntegerField()),
                                ('seed', models.IntegerField(blank=True, null=True)),
                                ('total', models.PositiveIntegerField(default=0)),
                                ('created_at', models.DateTimeField(auto_now_add=True)),
                                ('finished_at', models.DateTimeField(blank=True, null=True)),
                                ('baseline', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='annotator.promptversion')),
                                ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                                ('prompt_version', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='annotator.promptversion')),
                            ],
                            options={
                                'db_table': 'review_evaluationrun',
                                'ordering': ['-id'],
                            },
                        ),
                migrations.CreateModel(
                            name='EvaluationItem',
                            fields=[
                                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                                ('truth', models.JSONField(default=dict)),
                                ('candidate', models.JSONField(blank=True, null=True)),
                                ('candidate_error', models.CharField(blank=True, max_length=1000)),
                                ('candidate_score', models.FloatField(blank=True, null=True)),
                                ('candidate_cost_usd', models.DecimalField(decimal_places=6, default=0, max_digits=12)),
                                ('candidate_latency_ms', models.PositiveIntegerField(default=0)),
                                ('baseline', models.JSONField(blank=True, null=True)),
                                ('baseline_error', models.CharField(blank=True, max_length=1000)),
                                ('baseline_source', models.CharField(choices=[('stored', 'Stored annotation'), ('run', 'Run in this evaluation')], max_length=10)),
                                ('done_at', models.DateTimeField(blank=True, null=True)),
                                ('baseline_annotation', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='annotator.annotation')),
                                ('decision', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='review.decision')),
                                ('product', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='catalog.product')),
                                ('run', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='items', to='tuning.evaluationrun')),
                            ],
                            options={
                                'db_table': 'review_evaluationitem',
                                'ordering': ['id'],
                                'indexes': [models.Index(fields=['run', 'done_at'], name='evaluation_item_progress')],
                                'constraints': [models.UniqueConstraint(fields=('run', 'product'), name='evaluation_item_unique')],
                            },
                        ),
            ],
            database_operations=[],
        ),
    ]
