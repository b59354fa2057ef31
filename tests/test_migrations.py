"""Models moved between apps by state only (review -> annotator: PromptActivation;
review -> tuning: EvaluationRun, EvaluationItem): a database at the old schema,
with rows, migrates forward keeping every row, and back again."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

BEFORE_THE_MOVE = [
    ("review", "0002_prompt_tuning"),
    ("annotator", "0005_routing_setting"),
    # tuning's first migration only takes the models over (state); the columns
    # it added later to the shared tables did not exist before the move.
    ("tuning", "0001_initial"),
]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True)
def test_an_old_database_migrates_forward_keeping_its_rows_and_back_again():
    leaves = MigrationExecutor(connection).loader.graph.leaf_nodes()
    old = _migrate(BEFORE_THE_MOVE)
    user = old.get_model("auth", "User").objects.create(username="old")
    version = old.get_model("annotator", "PromptVersion").objects.create(
        version=7, name="old", system_prompt="{taxonomy}", user_template="{title}"
    )
    old.get_model("review", "PromptActivation").objects.create(
        prompt_version=version, activated_by=user, activated_at=timezone.now()
    )
    run = old.get_model("review", "EvaluationRun").objects.create(
        prompt_version=version, sample="random", size=1, total=1, created_by=user
    )
    product = old.get_model("catalog", "Product").objects.create(sku="OLD-1")
    old.get_model("review", "EvaluationItem").objects.create(
        run=run, product=product, baseline_source="stored"
    )

    new = _migrate(leaves)

    activation = new.get_model("annotator", "PromptActivation").objects.get()
    item = new.get_model("tuning", "EvaluationItem").objects.select_related("run").get()
    assert (activation.prompt_version_id, activation.activated_by_id) == (version.pk, user.pk)
    assert (item.run.pk, item.run.created_by_id, item.product_id) == (run.pk, user.pk, product.pk)
    assert new.get_model("annotator", "RoutingSettingChange").objects.count() == 0

    back = _migrate(BEFORE_THE_MOVE)
    assert back.get_model("review", "EvaluationItem").objects.count() == 1
    _migrate(leaves)
