# The annotator fixtures are imported and requested by name (F811).
# ruff: noqa: F811
"""Prompt tuning: prompt versions and activation, the corrections browser,
calibration maths and pages, and offline evaluation in a real Celery worker
against the local OpenAI-compatible server.

Reviewed items are made through the real services (pipeline with scripted
answers -> review_item_claim -> decision_record); the pure maths is tested
on plain values with known answers."""

from __future__ import annotations

import json
import random
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Model
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from annotator.models import (
    Annotation,
    PromptActivation,
    PromptVersion,
    RoutingSetting,
    RoutingSettingChange,
)
from annotator.pipeline import annotation_run, review_threshold
from annotator.prompt_versions import prompt_version_activate
from annotator.trial import annotation_try
from catalog.models import Category, Product, ProductImage, TaxonomyChange
from catalog.taxonomy.formats import DEFAULT_TAXONOMY_FILE, parse_json, taxonomy_load
from catalog.taxonomy.services import TaxonomyChangeError, category_threshold_set
from catalog.taxonomy.vocabulary import vocabulary_current
from config.queue import QUEUE_UNREACHABLE
from review.models import Claim, Correction, Decision
from review.services import decision_record, decision_undo, review_fields, review_item_claim
from tests.annotator.conftest import (  # noqa: F401
    GOOD_ANSWER,
    make_products,
    openai_settings,
    v1,
    v2,
)
from tests.brokers import broker_unreachable
from tests.fake_openai import error_reply, reply_with_annotation
from tests.taxonomy_snapshot import taxonomy_load_once
from tests.waiting import wait_for
from tuning import services
from tuning import tasks as tuning_tasks
from tuning.models import EvaluationItem, EvaluationRun
from tuning.services import (
    CorrectionFilters,
    FieldAccuracy,
    ReliabilityBin,
    ThresholdChoice,
    calibration_compute,
    correction_pairs,
    evaluation_report,
    evaluation_start,
    field_accuracy,
    reliability_bins,
    threshold_for_precision,
)

# Registered under its module's name, as Celery's autodiscovery finds it in a
# deployed worker.
assert tuning_tasks.evaluation_run.name == "tuning.tasks.evaluation_run"


@pytest.fixture
def default_taxonomy(db):
    """The default categories with the five attributes these figures were
    worked out for: the attribute set is data, so evaluation, calibration and
    the corrections browser score whatever attributes the taxonomy has."""
    data = json.loads(DEFAULT_TAXONOMY_FILE.read_text(encoding="utf-8"))
    five = ("color", "material", "style", "pattern", "season")
    data["attributes"] = [a for a in data["attributes"] if a["code"] in five]
    taxonomy_load_once("five attributes", lambda: taxonomy_load(spec=parse_json(json.dumps(data))))


TSHIRTS = "Clothing > Tops > T-Shirts"
SHIRTS = "Clothing > Tops > Shirts"
AI_ATTRIBUTES = {
    "color": "Navy Blue",
    "material": "Cotton",
    "style": "Casual",
    "pattern": "Striped",
    "season": "Summer",
}
AI_TAGS = ["navy t-shirt", "striped", "cotton", "casual", "summer"]
UNSURE = {**GOOD_ANSWER, "confidence": 0.5}  # below REVIEW_THRESHOLD (0.85): needs review


def answer(confidence: float = 0.5, subcategory: str = "T-Shirts", **attributes) -> dict:
    return {
        **GOOD_ANSWER,
        "confidence": confidence,
        "subcategory": subcategory,
        "attributes": {**GOOD_ANSWER["attributes"], **attributes},
    }


def edited(category: str = TSHIRTS, **attributes) -> dict:
    return {"category": category, "attributes": {**AI_ATTRIBUTES, **attributes}, "tags": AI_TAGS}


def annotate(fake_openai, product: Product, reply: dict) -> Annotation:
    fake_openai.queue(reply_with_annotation(reply))
    return annotation_run(product=product, rng=random.Random(1))


def review_next(reviewer, product: Product, action: str, values: dict | None = None) -> Decision:
    """Claim the next item as a reviewer does (it must be `product`) and decide it."""
    claim = review_item_claim(reviewer=reviewer)
    assert claim is not None and claim.product_id == product.pk
    product.refresh_from_db()
    return decision_record(
        reviewer=reviewer,
        product_id=product.pk,
        version=product.version,
        action=action,
        values=values,
        vocabulary=vocabulary_current(),
        shown=claim.shown_token,
    ).decision


def image_of(product: Product) -> int:
    return ProductImage.objects.get(product=product, position=0).pk


def snapshot(*models: type[Model]) -> dict:
    return {model.__name__: list(model.objects.order_by("pk").values()) for model in models}


ROLES = ["no_role_user", "tagger", "taxonomist", "manager", "superuser"]
ALLOWED = {"taxonomist", "manager", "superuser"}
PAGES = [
    "prompt_list",
    "prompt_detail",
    "prompt_new",
    "corrections_browser",
    "evaluation_list",
    "evaluation_detail",
    "calibration",
]


@pytest.fixture
def page_urls(v1):
    run = EvaluationRun.objects.create(prompt_version=v1, baseline=v1, sample="recent", size=1)
    return {
        "prompt_list": reverse("prompt_list"),
        "prompt_detail": reverse("prompt_detail", args=[v1.pk]),
        "prompt_new": reverse("prompt_new", args=[v1.pk]),
        "corrections_browser": reverse("corrections_browser"),
        "evaluation_list": reverse("evaluation_list"),
        "evaluation_detail": reverse("evaluation_detail", args=[run.pk]),
        "calibration": reverse("calibration"),
    }


@pytest.mark.django_db
@pytest.mark.parametrize("page", PAGES)
def test_anonymous_users_are_sent_to_login(client, page_urls, page):
    response = client.get(page_urls[page])

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("page", PAGES)
def test_role_matrix(client, request, page_urls, page, role):
    client.force_login(request.getfixturevalue(role))

    response = client.get(page_urls[page])

    if role in ALLOWED:
        assert response.status_code == 200
    else:
        assert response.status_code == 403
        assert b"Your role does not include this page" in response.content


@pytest.fixture
def writes(v1, v2, default_taxonomy):
    """Every write of the tuning pages, with a valid form."""
    tshirts = Category.objects.get(path=TSHIRTS)
    return {
        "activate": (reverse("prompt_activate", args=[v2.pk]), {}),
        "new": (
            reverse("prompt_new", args=[v1.pk]),
            {"name": "x", "system_prompt": "{taxonomy}", "user_template": "{title}"},
        ),
        "evaluate": (
            reverse("evaluation_start"),
            {"prompt_version": v2.pk, "sample": "recent", "size": 5},
        ),
        "apply": (
            reverse("calibration_apply"),
            {"category": tshirts.pk, "threshold": "0.9", "scope": "category"},
        ),
    }


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["anonymous", "no_role_user", "tagger"])
@pytest.mark.parametrize("write", ["activate", "new", "evaluate", "apply"])
def test_denied_writes_change_nothing(client, request, writes, role, write):
    if role != "anonymous":
        client.force_login(request.getfixturevalue(role))
    watched = (PromptVersion, PromptActivation, EvaluationRun, EvaluationItem, Category)
    before = snapshot(*watched)
    changes = TaxonomyChange.objects.count()
    url, data = writes[write]

    response = client.post(url, data)

    if role == "anonymous":
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
    else:
        assert response.status_code == 403
    assert snapshot(*watched) == before
    assert TaxonomyChange.objects.count() == changes


# --- corrections browser ------------------------------------------------------------------


@pytest.fixture
def corrected(default_taxonomy, make_products, openai_settings, fake_openai, tagger, v2):
    """Five reviewed products: the model says Navy Blue where reviewers say
    Blue three times (twice with v1, once with v2 on another model) and
    Black once, with a category fixed too; one accepted as it was."""
    p1, p2, p3, p4, p5 = make_products(5)
    for product, action, values in [
        (p1, "edit", edited(color="Blue")),
        (p2, "edit", edited(color="Blue")),
        (p3, "edit", edited(SHIRTS, color="Black")),
        (p4, "accept", None),
    ]:
        annotate(fake_openai, product, UNSURE)
        review_next(tagger, product, action, values)
    prompt_version_activate(prompt_version=v2, user=tagger)
    annotate(fake_openai, p5, UNSURE)
    review_next(tagger, p5, "edit", edited(color="Blue"))
    return p1, p2, p3, p4, p5


def pairs(groups, name: str) -> list[tuple[str, str, int]]:
    group = next(g for g in groups if g.field == name)
    return [(p.ai_value, p.final_value, p.count) for p in group.pairs]


@pytest.mark.django_db
def test_corrections_browser_counts_pairs_per_field(corrected, django_assert_num_queries):
    p1, p2, p3, p4, p5 = corrected

    # the fields, one GROUP BY query per field (7), the totals, the images
    with django_assert_num_queries(10):
        groups = correction_pairs(filters=CorrectionFilters())

    assert [g.field for g in groups] == list(review_fields())
    assert pairs(groups, "color") == [("Navy Blue", "Blue", 3), ("Navy Blue", "Black", 1)]
    assert pairs(groups, "category") == [(TSHIRTS, SHIRTS, 1)]
    assert pairs(groups, "material") == pairs(groups, "tags") == []
    color = next(g for g in groups if g.field == "color")
    assert color.total == 4
    assert [p.share for p in color.pairs] == [75.0, 25.0]
    # examples: the newest and the oldest product of the pair, with their images
    assert color.pairs[0].product_ids == [p5.pk, p1.pk]
    assert color.pairs[0].image_ids == [image_of(p5), image_of(p1)]
    assert color.pairs[1].image_ids == [image_of(p3)]


@pytest.mark.django_db
def test_corrections_browser_filters(corrected, v1, v2):
    p1, *_ = corrected
    shirts = Category.objects.get(path=SHIRTS)
    clothing = Category.objects.get(path="Clothing")
    footwear = Category.objects.get(path="Footwear")
    Correction.objects.filter(product=p1).update(created_at=timezone.now() - timedelta(days=10))
    today = timezone.localdate()

    def color(**filters) -> list[tuple[str, str, int]]:
        return pairs(correction_pairs(filters=CorrectionFilters(**filters)), "color")

    assert color(model="gpt-4.1-mini") == [("Navy Blue", "Blue", 1)]
    assert color(model="gpt-4o-mini") == [("Navy Blue", "Blue", 2), ("Navy Blue", "Black", 1)]
    assert color(prompt_version=v2) == [("Navy Blue", "Blue", 1)]
    assert color(prompt_version=v1) == [("Navy Blue", "Blue", 2), ("Navy Blue", "Black", 1)]
    assert color(category=shirts) == [("Navy Blue", "Black", 1)]
    assert color(category=clothing) == [("Navy Blue", "Blue", 3), ("Navy Blue", "Black", 1)]
    assert color(category=footwear) == []
    assert color(date_from=today - timedelta(days=1)) == [
        ("Navy Blue", "Blue", 2),
        ("Navy Blue", "Black", 1),
    ]
    assert color(date_to=today - timedelta(days=5)) == [("Navy Blue", "Blue", 1)]


@pytest.mark.django_db
def test_corrections_page_full_and_htmx(client, manager, corrected, v2):
    p1, *_ = corrected
    client.force_login(manager)
    url = reverse("corrections_browser") + f"?prompt_version={v2.pk}"

    page = client.get(url).content.decode()
    fragment = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    row = "<td>Navy Blue</td> <td>Blue</td> <td>1</td> <td>100.0%</td>"

    assert "<header" in page and 'id="correction-results"' in page
    assert "<header" not in fragment and fragment.lstrip().startswith(
        '<div id="correction-results"'
    )
    for html in (page, fragment):
        assert row in " ".join(html.split())
        assert "Black" not in html.split('id="correction-results"')[1]
    everything = client.get(reverse("corrections_browser")).content.decode()
    assert f'src="{reverse("image_thumb", args=[image_of(p1)])}"' in everything
    bad = client.get(reverse("corrections_browser") + "?date_from=yesterday").content.decode()
    assert "Enter a valid date" in bad and "<td>3</td>" in bad  # the bad filter is not applied


@pytest.mark.django_db
def test_corrections_page_queries_do_not_grow_with_the_data(
    client,
    manager,
    corrected,
    make_products,
    fake_openai,
    tagger,
):
    client.force_login(manager)
    url = reverse("corrections_browser")
    with CaptureQueriesContext(connection) as few:
        client.get(url)
    # more pairs, more examples, more fields corrected
    for product in make_products(8)[5:]:
        annotate(fake_openai, product, UNSURE)
        review_next(tagger, product, "edit", edited(SHIRTS, material="Linen", season="Winter"))

    with CaptureQueriesContext(connection) as more:
        page = client.get(url).content.decode()

    assert len(more) == len(few)
    assert "<td>Cotton</td> <td>Linen</td> <td>3</td>" in " ".join(page.split())


# --- calibration maths (known answers) -------------------------------------------------------


# 30 reviewed items: ten at 0.99 all kept; ten at 0.95, nine kept; five at 0.9,
# three kept; five at 0.5, all kept. Cumulative precision from the top:
# 10/10 at 0.99, 19/20 = 0.95 at 0.95, 22/25 = 0.88 at 0.9, 27/30 = 0.9 at 0.5.
POINTS = (
    [(0.99, True)] * 10
    + [(0.95, True)] * 9
    + [(0.95, False)]
    + [(0.9, True)] * 3
    + [(0.9, False)] * 2
    + [(0.5, True)] * 5
)


def test_threshold_for_a_95_percent_target():
    choice = threshold_for_precision(POINTS, 0.95)

    assert choice == ThresholdChoice(threshold=0.95, accepted=20, kept=19, total=30)
    assert choice.precision == 0.95
    assert round(choice.share, 4) == 0.6667


def test_threshold_is_the_lowest_that_reaches_the_target():
    # 0.9 fails (88 %) but 0.5 reaches 90 % again: the lowest one wins
    assert threshold_for_precision(POINTS, 0.90) == ThresholdChoice(0.5, 30, 27, 30)
    assert threshold_for_precision(POINTS, 1.0) == ThresholdChoice(0.99, 10, 10, 30)
    assert threshold_for_precision([(0.9, False), (0.8, False)], 0.5) is None
    assert threshold_for_precision([], 0.95) is None


def test_reliability_bins():
    bins = reliability_bins(POINTS + [(0.0, False), (0.3, True), (1.0, True)], bins=10)

    assert [(b.low, b.high, b.count, b.kept) for b in bins if b.count] == [
        (0.0, 0.1, 1, 0),
        (0.3, 0.4, 1, 1),
        (0.5, 0.6, 5, 5),
        (0.9, 1.0, 26, 23),  # 0.9, 0.95, 0.99 and 1.0 (the last bin is closed)
    ]
    assert bins[9].share == 23 / 26 and bins[1] == ReliabilityBin(0.1, 0.2, 0, 0)
    assert bins[1].share is None


def test_field_accuracy_counts_a_missing_answer_as_wrong():
    truth = {"category": "A", "color": "Blue"}
    rows = [
        (truth, {"category": "A", "color": "Blue"}, {"category": "A", "color": "Navy"}),
        (truth, {"category": "B", "color": "Blue"}, {"category": "A", "color": "Blue"}),
        (truth, None, {"category": "A", "color": "Blue"}),
    ]

    result = field_accuracy(rows, fields=("category", "color"))

    assert result == [
        FieldAccuracy("category", 3, 1, 3),
        FieldAccuracy("color", 3, 2, 2),
        FieldAccuracy("all", 3, 1, 2),
    ]
    assert round(result[0].delta, 4) == -0.6667


# --- calibration from reviewed items ------------------------------------------------------


@pytest.fixture
def calibrated(default_taxonomy, make_products, openai_settings, fake_openai, tagger):
    """Six items through the real pipeline and review queue. Confident ones
    (score >= 0.85) are audited (audit rate 1).
    score 0.95 audit  accept                  kept
    score 0.95 audit  edit colour             category kept, attributes not
    score 0.9  audit  edit category           not kept
    score 0.6         accept                  kept
    score 0.6         reject                  not kept
    score 0.95 image issue, accepted          left out: no threshold decides it"""
    openai_settings.REVIEW_AUDIT_RATE = 1.0
    products = make_products(6)
    plan = [
        (answer(0.95), "accept", None),
        (answer(0.95), "edit", edited(color="Blue")),
        (answer(0.9), "edit", edited(SHIRTS)),
        (answer(0.6), "accept", None),
        (answer(0.6), "reject", None),
        ({**answer(0.95), "image_issues": ["watermark or text"]}, "accept", None),
    ]
    for product, (reply, _, _) in zip(products, plan, strict=True):
        annotate(fake_openai, product, reply)
    for product, (_, action, values) in zip(products, plan, strict=True):
        review_next(tagger, product, action, values)
    reasons = list(Annotation.objects.order_by("id").values_list("score", "review_reason"))
    assert reasons == [
        (0.95, "audit"),
        (0.95, "audit"),
        (0.9, "audit"),
        (0.6, "low_confidence"),
        (0.6, "low_confidence"),
        (0.95, "image_issue"),
    ]
    return products


@pytest.mark.django_db
def test_calibration_from_reviewed_items(calibrated, v1):
    result = calibration_compute(prompt_version=v1, target=0.95)

    assert result.reviewed == 5
    assert result.choice == ThresholdChoice(threshold=0.95, accepted=2, kept=2, total=5)
    assert result.choice.share == 0.4
    assert (result.population, result.population_above) == (5, 2)
    assert (result.audit.successes, result.audit.n) == (2, 3)
    low, high = result.audit.interval
    assert (round(low, 3), round(high, 3)) == (0.208, 0.939)
    assert (result.audit_above.successes, result.audit_above.n) == (2, 2)
    assert [(b.low, b.count, b.kept) for b in result.by_score if b.count] == [
        (0.6, 2, 1),
        (0.9, 3, 2),
    ]
    assert result.env_line == "REVIEW_THRESHOLD=0.95"


@pytest.mark.django_db
def test_calibration_with_attributes_kept_too(calibrated, v1):
    strict = calibration_compute(prompt_version=v1, target=0.95, kept_rule="all")
    half = calibration_compute(prompt_version=v1, target=0.5, kept_rule="all")

    assert strict.choice is None
    assert half.choice == ThresholdChoice(threshold=0.95, accepted=2, kept=1, total=5)
    assert (half.audit.successes, half.audit.n) == (1, 3)


@pytest.mark.django_db
def test_calibration_by_category(calibrated, v1):
    tshirts = Category.objects.get(path=TSHIRTS)
    footwear = Category.objects.get(path="Footwear")

    assert calibration_compute(prompt_version=v1, category=tshirts).reviewed == 5
    nothing = calibration_compute(prompt_version=v1, category=footwear)
    assert (nothing.reviewed, nothing.choice, nothing.population, nothing.audit.n) == (
        0,
        None,
        0,
        0,
    )


@pytest.mark.django_db
def test_undone_decisions_leave_calibration(calibrated, v1, tagger, make_products, fake_openai):
    product = make_products(7)[6]
    annotate(fake_openai, product, answer(0.6))
    review_next(tagger, product, "accept")
    assert calibration_compute(prompt_version=v1).reviewed == 6

    decision_undo(reviewer=tagger)

    assert calibration_compute(prompt_version=v1).reviewed == 5


@pytest.mark.django_db
def test_calibration_page_and_apply_to_a_category(client, taxonomist, calibrated):
    client.force_login(taxonomist)
    tshirts = Category.objects.get(path=TSHIRTS)
    updated_at = tshirts.updated_at

    page = client.get(reverse("calibration")).content.decode()
    fragment = client.get(
        reverse("calibration") + "?target=50&kept=all", HTTP_HX_REQUEST="true"
    ).content.decode()

    assert '<div class="figure">0.95</div>' in page
    assert "would auto-accept 40.0% of the reviewed sample (2/5)" in page
    assert "kept: 2/3, 95% CI 20.8–93.9%" in page
    assert '<code id="env-line">REVIEW_THRESHOLD=0.95</code>' in page
    # what applies now and what is suggested, each named as such
    current = re.search(
        r'Current</strong> global threshold: <span id="current-threshold">([^<]+)', page
    )
    suggested = re.search(
        r'Suggested</strong> for [^:]+: <span id="suggested-threshold">([^<]+)', page
    )
    assert (float(current[1]), suggested[1]) == (settings.REVIEW_THRESHOLD, "0.95")
    assert "<header" not in fragment and "precision 50.0% (1/2 kept)" in fragment

    response = client.post(
        reverse("calibration_apply"),
        {
            "category": tshirts.pk,
            "threshold": "0.95",
            "scope": "category",
            "query": "target=95&kept=all&evil=1",
        },
    )

    assert response["Location"] == reverse("calibration") + "?target=95&kept=all"
    tshirts.refresh_from_db()
    assert tshirts.review_threshold == 0.95 and tshirts.updated_at > updated_at
    change = TaxonomyChange.objects.get()
    assert (change.user, change.action, change.subject, change.before, change.after) == (
        taxonomist,
        "category_edit",
        TSHIRTS,
        {"review_threshold": None},
        {"review_threshold": 0.95},
    )
    # the next annotation in that category is routed with it
    assert vocabulary_current().category(tshirts.pk).review_threshold == 0.95


@pytest.mark.django_db
def test_a_threshold_out_of_range_changes_nothing(client, manager, default_taxonomy):
    client.force_login(manager)
    tshirts = Category.objects.get(path=TSHIRTS)

    client.post(
        reverse("calibration_apply"),
        {"category": tshirts.pk, "threshold": "1.5", "scope": "category"},
    )
    client.post(reverse("calibration_apply"), {"threshold": "1.5", "scope": "global"})
    client.post(reverse("calibration_apply"), {"threshold": "0.9", "scope": "category"})

    tshirts.refresh_from_db()
    assert tshirts.review_threshold is None and TaxonomyChange.objects.count() == 0
    assert not RoutingSetting.objects.exists()


@pytest.mark.django_db
def test_the_global_threshold_applies_from_the_next_annotation(
    client, manager, default_taxonomy, settings
):
    settings.REVIEW_THRESHOLD = 0.85
    client.force_login(manager)
    vocabulary = vocabulary_current()
    tshirts = vocabulary.find_categories("T-Shirts")[0]
    assert review_threshold(tshirts, vocabulary) == 0.85

    response = client.post(
        reverse("calibration_apply"), {"threshold": "0.93", "scope": "global"}, follow=True
    )

    assert "Global review threshold set to 0.93." in response.content.decode()
    setting = RoutingSetting.objects.get()
    assert (setting.review_threshold, setting.updated_by) == (0.93, manager)
    assert review_threshold(tshirts, vocabulary) == 0.93


@pytest.mark.django_db
def test_every_change_of_the_global_threshold_is_kept_and_shown_where_it_is_set(
    client, manager, taxonomist, default_taxonomy
):
    client.force_login(manager)
    client.post(reverse("calibration_apply"), {"threshold": "0.9", "scope": "global"})
    client.force_login(taxonomist)
    client.post(reverse("calibration_apply"), {"threshold": "0.93", "scope": "global"})
    client.post(reverse("calibration_apply"), {"threshold": "0.93", "scope": "global"})  # same

    history = [
        (c.changed_by, c.old_threshold, c.new_threshold) for c in RoutingSettingChange.objects.all()
    ]
    assert history == [(taxonomist, 0.9, 0.93), (manager, None, 0.9)]
    page = client.get(reverse("calibration")).content.decode()
    table = page[page.index('id="threshold-history"') : page.index("</table>")]
    cells = [re.findall(r"<td>([^<]*)</td>", row) for row in table.split("<tr>")[2:]]
    # newest first; before the first change the environment's REVIEW_THRESHOLD applied
    assert [row[1:] for row in cells] == [
        [str(taxonomist), "0.9", "0.93"],
        [str(manager), "REVIEW_THRESHOLD", "0.9"],
    ]


@pytest.mark.django_db
def test_calibration_and_the_taxonomy_screen_set_a_threshold_through_one_audited_service(
    client, taxonomist, default_taxonomy
):
    client.force_login(taxonomist)
    tshirts = Category.objects.get(path=TSHIRTS)

    client.post(
        reverse("calibration_apply"),
        {"category": tshirts.pk, "threshold": "0.912345", "scope": "category"},
    )
    client.post(
        reverse("taxonomy_category_change", args=[tshirts.pk, "edit"]),
        {"synonyms": ", ".join(tshirts.synonyms), "review_threshold": "0.8"},
    )
    direct = category_threshold_set(user=taxonomist, category=tshirts, threshold=0.5)

    tshirts.refresh_from_db()
    assert direct.review_threshold == tshirts.review_threshold == 0.5
    changes = [(c.user, c.before, c.after) for c in TaxonomyChange.objects.order_by("id")]
    assert changes == [
        (taxonomist, {"review_threshold": None}, {"review_threshold": 0.9123}),
        (taxonomist, {"review_threshold": 0.9123}, {"review_threshold": 0.8}),
        (taxonomist, {"review_threshold": 0.8}, {"review_threshold": 0.5}),
    ]
    with pytest.raises(TaxonomyChangeError):
        category_threshold_set(user=taxonomist, category=tshirts, threshold=1.5)


# --- offline evaluation ----------------------------------------------------------------------


@pytest.fixture
def gold(default_taxonomy, make_products, openai_settings, fake_openai, tagger, v1, v2):
    """Five reviewed products. D was annotated while v2 was active; the rest by
    v1, which is active again at the end. Truths:
    A accepted (T-Shirts, Navy Blue, ...)  B colour edited to Blue
    C category edited to Shirts            D accepted     E accepted"""
    a, b, c, d, e = make_products(5)
    prompt_version_activate(prompt_version=v2, user=tagger)
    annotate(fake_openai, d, UNSURE)
    review_next(tagger, d, "accept")
    prompt_version_activate(prompt_version=v1, user=tagger)
    for product, action, values in [
        (a, "accept", None),
        (b, "edit", edited(color="Blue")),
        (c, "edit", edited(SHIRTS)),
        (e, "accept", None),
    ]:
        annotate(fake_openai, product, UNSURE)
        review_next(tagger, product, action, values)
    fake_openai.requests.clear()
    return a, b, c, d, e


@pytest.mark.django_db
def test_a_trial_answers_without_storing_anything(gold, v2, fake_openai):
    a, *_ = gold
    fake_openai.queue(reply_with_annotation(answer(0.9, color="navy")))
    before = snapshot(Product, Annotation, Decision, Claim)

    trial = annotation_try(product=a, prompt_version=v2, model="gpt-4.1-nano")

    assert trial.values == {
        "category_id": Category.objects.get(path=TSHIRTS).pk,
        "category": TSHIRTS,
        "attributes": AI_ATTRIBUTES,  # "navy" is the taxonomy's Navy Blue
        "tags": AI_TAGS,
    }
    assert (trial.score, trial.model, trial.error) == (0.9, "gpt-4.1-nano", "")
    assert trial.normalised.unmapped == {}
    assert fake_openai.requests[0]["model"] == "gpt-4.1-nano"
    assert snapshot(Product, Annotation, Decision, Claim) == before


@pytest.mark.django_db
def test_a_redelivered_item_task_does_not_answer_twice(gold, v2, fake_openai):
    run = evaluation_start(prompt_version=v2, sample="recent", size=1)
    item = run.items.get()
    fake_openai.default = lambda request: reply_with_annotation(answer())

    tuning_tasks.evaluation_item.apply(args=[item.pk])
    tuning_tasks.evaluation_item.apply(args=[item.pk])  # the same message again

    assert len(fake_openai.requests) == 1
    item.refresh_from_db()
    run.refresh_from_db()
    assert item.done_at is not None and run.finished_at is not None


@pytest.mark.django_db
def test_gold_is_accepted_and_edited_not_undone(gold, make_products, fake_openai, tagger):
    a, b, c, d, e = gold
    f, g = make_products(7)[5:]
    annotate(fake_openai, f, UNSURE)
    review_next(tagger, f, "reject")
    annotate(fake_openai, g, UNSURE)
    review_next(tagger, g, "accept")
    decision_undo(reviewer=tagger)

    chosen = {d.product_id for d in services.gold_decisions()}

    assert chosen == {a.pk, b.pk, c.pk, d.pk, e.pk}


@pytest.mark.django_db
def test_evaluation_samples_the_gold_set(gold, v2, manager):
    a, b, c, d, e = gold

    def products(run: EvaluationRun) -> list[int]:
        return sorted(run.items.values_list("product_id", flat=True))

    first = evaluation_start(prompt_version=v2, sample="random", size=3, seed=7, user=manager)
    again = evaluation_start(prompt_version=v2, sample="random", size=3, seed=7, user=manager)
    recent = evaluation_start(prompt_version=v2, sample="recent", size=2, user=manager)
    drawn = evaluation_start(prompt_version=v2, sample="random", size=50, user=manager)

    assert products(first) == products(again) and len(products(first)) == 3
    assert set(products(first)) <= {a.pk, b.pk, c.pk, d.pk, e.pk}
    assert products(recent) == sorted([c.pk, e.pk])  # the last two reviewed
    assert (recent.seed, drawn.seed is not None, drawn.total) == (None, True, 5)
    # the active version (v1) answered all but D, which v2 annotated
    sources = dict(drawn.items.values_list("product_id", "baseline_source"))
    assert sources == {a.pk: "stored", b.pk: "stored", c.pk: "stored", d.pk: "run", e.pk: "stored"}
    item = drawn.items.get(product=b)
    assert item.truth == {
        "category": TSHIRTS,
        "color": "Blue",
        "material": "Cotton",
        "style": "Casual",
        "pattern": "Striped",
        "season": "Summer",
        "tags": ", ".join(sorted(AI_TAGS)),
    }
    assert item.baseline["color"] == "Navy Blue"


@pytest.mark.django_db
def test_an_empty_gold_set_is_refused(client, manager, v1):
    client.force_login(manager)

    response = client.post(
        reverse("evaluation_start"), {"prompt_version": v1.pk, "sample": "recent", "size": 10}
    )

    assert response.status_code == 200
    assert "There are no reviewed items yet" in response.content.decode()
    assert EvaluationRun.objects.count() == 0


def test_evaluation_job_in_a_real_worker(
    client, manager, gold, v1, v2, fake_openai, celery_worker, settings
):
    a, b, c, d, e = gold
    settings.ANNOTATOR_PRICES = {**settings.ANNOTATOR_PRICES, "gpt-4.1-nano": (0.10, 0.40)}
    # The candidate (v2 on gpt-4.1-nano) gets A, B and C right, D's pattern
    # wrong, and no answer at all for E. The active version (v1) is run only
    # for D, which it never annotated, and gets D's material wrong.
    candidate = {
        a.title: reply_with_annotation(answer()),
        b.title: reply_with_annotation(answer(color="Blue")),
        c.title: reply_with_annotation(answer(subcategory="Shirts")),
        d.title: reply_with_annotation(answer(pattern="Solid")),
        e.title: error_reply(400, "image could not be processed"),
    }
    baseline = {d.title: reply_with_annotation(answer(material="Wool"))}

    def reply(request):
        title = request["messages"][1]["content"][0]["text"].removeprefix("Product title: ")
        script = candidate if request["model"] == "gpt-4.1-nano" else baseline
        return script.get(title) or error_reply(500, f"unexpected {request['model']} {title}")

    fake_openai.default = reply
    watched = (Product, Annotation, Decision, Correction, Claim)
    before = snapshot(*watched)
    client.force_login(manager)

    # when
    response = client.post(
        reverse("evaluation_start"),
        {"prompt_version": v2.pk, "model": "gpt-4.1-nano", "sample": "recent", "size": 5},
    )

    # then the worker answers every item
    run = EvaluationRun.objects.get()
    assert response["Location"] == reverse("evaluation_detail", args=[run.pk])
    assert (run.baseline, run.total, run.created_by) == (v1, 5, manager)
    assert wait_for(lambda: EvaluationRun.objects.get(pk=run.pk).finished_at is not None, 60)
    run.refresh_from_db()
    report = evaluation_report(run)
    assert [
        (row.field, row.candidate_correct, row.baseline_correct, row.n) for row in report.accuracy
    ] == [
        ("category", 4, 4, 5),
        ("color", 4, 4, 5),
        ("material", 4, 4, 5),
        ("style", 4, 5, 5),
        ("pattern", 3, 5, 5),
        ("season", 4, 5, 5),
        ("all", 3, 2, 5),
    ]
    assert (report.done, report.candidate_errors, report.baseline_errors) == (5, 1, 0)
    assert (report.baseline_stored, report.baseline_run) == (4, 1)
    # 4 answers of 1200 + 90 tokens at gpt-4.1-nano prices (0.10, 0.40 per 1M)
    assert report.cost_usd == Decimal("0.000624")
    assert sorted(i.item.product_id for i in report.disagreements) == sorted([d.pk, e.pk])
    # the candidate used its prompt and the override model; v1 ran once, for D
    models = sorted(r["model"] for r in fake_openai.requests)
    assert models == ["gpt-4.1-nano"] * 5 + ["gpt-4o-mini"]
    nano = [r for r in fake_openai.requests if r["model"] == "gpt-4.1-nano"]
    assert all("Navy is darker than blue" in r["messages"][0]["content"] for r in nano)
    baseline_request = next(r for r in fake_openai.requests if r["model"] == "gpt-4o-mini")
    assert d.title in baseline_request["messages"][1]["content"][0]["text"]
    assert "Navy is darker" not in baseline_request["messages"][0]["content"]
    # and nothing changed on the products, their annotations or the review queue
    assert snapshot(*watched) == before

    # the page: full, and the htmx fragment that stops polling once finished
    page = client.get(reverse("evaluation_detail", args=[run.pk])).content.decode()
    fragment = client.get(
        reverse("evaluation_detail", args=[run.pk]), HTTP_HX_REQUEST="true"
    ).content.decode()
    assert "<header" in page and "<header" not in fragment
    assert "<strong>5</strong> / 5 done (100%)" in fragment and "every 2s" not in fragment
    assert "60.0% (3/5)" in fragment and "100.0% (5/5)" in fragment  # pattern
    assert "-40.0 points" in fragment
    assert "without an answer from the candidate" in fragment
    assert reverse("prompt_new", args=[v2.pk]) + "?model=gpt-4.1-nano" in fragment


def test_an_evaluation_started_while_the_job_queue_is_unreachable_starts_once_it_is_back(
    client, manager, gold, v2, fake_openai, celery_worker
):
    fake_openai.default = lambda request: reply_with_annotation(answer())
    client.force_login(manager)
    form = {"prompt_version": v2.pk, "sample": "recent", "size": 5}

    # when the web process cannot reach the job queue
    with broker_unreachable():
        response = client.post(reverse("evaluation_start"), form)
        swept_while_down = tuning_tasks.requeue_queued_evaluations()

    # then the page answers 503 with the reason, and the run is saved, waiting for the queue
    assert response.status_code == 503
    assert f"{QUEUE_UNREACHABLE.capitalize()}." in response.content.decode()
    run = EvaluationRun.objects.get()
    assert (run.total, run.waiting_for_queue, run.finished_at, swept_while_down) == (
        5,
        True,
        None,
        0,
    )
    fragment = client.get(reverse("evaluation_detail", args=[run.pk]), HTTP_HX_REQUEST="true")
    assert "waiting for the job queue: it starts when" in fragment.content.decode()
    assert fake_openai.requests == []

    # when the queue is back, the recovery sweep sends it and a worker finishes it
    assert tuning_tasks.requeue_queued_evaluations() == 1
    assert wait_for(lambda: EvaluationRun.objects.get(pk=run.pk).finished_at is not None, 60)
    run.refresh_from_db()
    assert not run.waiting_for_queue
    assert run.items.filter(done_at__isnull=True).count() == 0
    assert len(fake_openai.requests) == 6  # v2 for the five, v1 for D (no stored answer)
    assert tuning_tasks.requeue_queued_evaluations() == 0  # nothing left waiting


def test_evaluating_the_active_version_itself_answers_once_per_item(
    gold, v1, fake_openai, celery_worker
):
    a, b, c, d, e = gold
    fake_openai.default = lambda request: reply_with_annotation(answer())

    run = evaluation_start(prompt_version=v1, sample="recent", size=5)

    assert wait_for(lambda: EvaluationRun.objects.get(pk=run.pk).finished_at is not None, 60)
    assert len(fake_openai.requests) == 5  # D's answer serves as its baseline too
    item = run.items.get(product=d)
    assert item.baseline == item.candidate and item.baseline_source == "run"
    accuracy = {row.field: row.candidate_correct for row in evaluation_report(run).accuracy}
    assert accuracy == {
        "category": 4,
        "color": 4,
        "material": 5,
        "style": 5,
        "pattern": 5,
        "season": 5,
        "all": 3,
    }


@pytest.mark.django_db
def test_evaluation_progress_while_running(client, manager, gold, v2):
    run = evaluation_start(prompt_version=v2, sample="recent", size=5)
    client.force_login(manager)

    fragment = client.get(
        reverse("evaluation_detail", args=[run.pk]), HTTP_HX_REQUEST="true"
    ).content.decode()

    # no worker in this test: nothing is done and the fragment keeps polling
    assert "<strong>0</strong> / 5 done (0%)" in fragment
    assert 'hx-trigger="every 2s"' in fragment
