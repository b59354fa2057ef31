"""Normalisation to the taxonomy, the routing score and decision, pricing,
image preparation, canary assignment, circuit breaker and rate limit."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.core.cache import cache
from PIL import Image

from annotator.imaging import MAX_REQUEST_IMAGE_BYTES, prepare_image
from annotator.pipeline import (
    annotation_normalise,
    normalise_tags,
    review_threshold,
    route_decide,
    routing_score,
)
from annotator.pricing import cost_usd
from annotator.routing import (
    circuit_is_open,
    circuit_record,
    in_canary,
    provider_answered_at,
    rate_limit_wait,
)
from annotator.schema import AnnotationOut
from catalog.taxonomy.formats import parse_json, taxonomy_load
from catalog.taxonomy.vocabulary import match_key, vocabulary_current

pytestmark = pytest.mark.django_db

TAXONOMY = """{
 "categories": [
  {"name": "Clothing", "synonyms": ["apparel"], "children": [
   {"name": "Tops", "children": [
    {"name": "T-Shirts", "synonyms": ["tee"]},
    {"name": "Shirts", "review_threshold": 0.95}]},
   {"name": "Shorts"}]},
  {"name": "Sportswear", "children": [{"name": "Shorts"}]}
 ],
 "attributes": [
  {"code": "color", "name": "Colour", "values": [
    {"name": "Navy Blue", "synonyms": ["navy"], "hex": "#1f2a44"},
    {"name": "Red", "hex": "#c0392b"}]},
  {"code": "material", "name": "Material", "values": [{"name": "Cotton"}]},
  {"code": "style", "name": "Style", "values": [{"name": "Casual"}]},
  {"code": "pattern", "name": "Pattern", "values": [{"name": "Checked", "synonyms": ["plaid"]}]},
  {"code": "season", "name": "Season", "values": [{"name": "Summer"}]}
 ]
}"""


@pytest.fixture
def vocabulary():
    taxonomy_load(spec=parse_json(TAXONOMY))
    return vocabulary_current()


def answer(**overrides) -> AnnotationOut:
    data = {
        "category": "Apparel",
        "subcategory": "t shirts",
        "attributes": {
            "color": "NAVY",
            "material": "cotton",
            "style": "Casual",
            "pattern": "Plaid",
            "season": "summer",
        },
        "tags": ["Navy Tee", "navy tee", "checked", " Cotton ", "casual", "men"],
        "confidence": 0.93,
        "field_confidence": {"category": 0.97, "subcategory": 0.95, "color": 0.9},
        "image_issues": [],
    }
    data.update(overrides)
    return AnnotationOut.model_validate(data)


def test_match_key_ignores_case_plural_and_punctuation():
    assert match_key("T-Shirts") == match_key("t shirt") == match_key("TSHIRTS") == "tshirt"
    assert match_key("Dresses") == match_key("dress")
    assert match_key("Shirts & Tops") == "shirtandtop"


def test_normalise_maps_synonyms_and_plurals_to_taxonomy_rows(vocabulary):
    normalised = annotation_normalise(answer(), vocabulary)

    assert normalised.category.path == "Clothing > Tops > T-Shirts"
    assert normalised.attributes == {
        "color": "Navy Blue",
        "material": "Cotton",
        "style": "Casual",
        "pattern": "Checked",
        "season": "Summer",
    }
    assert normalised.tags == ["navy tee", "checked", "cotton", "casual", "men"]
    assert normalised.unmapped == {}


def test_ambiguous_subcategory_prefers_the_named_parent(vocabulary):
    sport = annotation_normalise(answer(category="Sportswear", subcategory="shorts"), vocabulary)
    clothing = annotation_normalise(answer(category="Clothing", subcategory="Shorts"), vocabulary)

    assert sport.category.path == "Sportswear > Shorts"
    assert clothing.category.path == "Clothing > Shorts"


def test_unmapped_values_are_kept_raw_and_flagged(vocabulary):
    out = answer(subcategory="Kimono", attributes={"color": "Chartreuse", "material": "Cotton"})

    normalised = annotation_normalise(out, vocabulary)

    assert normalised.category.path == "Clothing"  # the category still maps
    assert normalised.unmapped == {"subcategory": "Kimono", "color": "Chartreuse"}
    assert normalised.missing == ["style", "pattern", "season"]


def test_tags_are_topped_up_to_five_and_capped_at_eight():
    assert normalise_tags(["a"], fill=["Navy Blue", "Cotton", "Shirts", "Casual", "x"]) == [
        "a",
        "navy blue",
        "cotton",
        "shirts",
        "casual",
    ]
    assert len(normalise_tags([f"t{i}" for i in range(12)], fill=[])) == 8


def test_score_is_capped_by_the_weakest_key_field_and_penalised(vocabulary):
    confident = answer()
    assert routing_score(confident, annotation_normalise(confident, vocabulary)) == 0.9

    unsure_colour = answer(field_confidence={"category": 0.99, "color": 0.4})
    assert routing_score(unsure_colour, annotation_normalise(unsure_colour, vocabulary)) == 0.4

    unmapped = answer(
        attributes={
            "color": "Chartreuse",
            "material": "Cotton",
            "style": "Casual",
            "pattern": "Checked",
            "season": "Summer",
        }
    )
    assert routing_score(unmapped, annotation_normalise(unmapped, vocabulary)) == 0.75

    no_category = answer(category=None, subcategory=None)
    assert routing_score(no_category, annotation_normalise(no_category, vocabulary)) == 0.0


@pytest.mark.parametrize(
    ("overrides", "audit_draw", "expected"),
    [
        ({}, 0.5, ("auto_accepted", "")),
        ({}, 0.001, ("needs_review", "audit")),
        ({"confidence": 0.6}, 0.5, ("needs_review", "low_confidence")),
        ({"image_issues": ["watermark or text"]}, 0.5, ("needs_review", "image_issue")),
        ({"subcategory": "Kimono"}, 0.5, ("needs_review", "unmapped_value")),
        ({"category": None, "subcategory": None}, 0.5, ("needs_review", "low_confidence")),
    ],
)
def test_route_decision(vocabulary, settings, overrides, audit_draw, expected):
    settings.REVIEW_THRESHOLD, settings.REVIEW_AUDIT_RATE = 0.85, 0.02
    out = answer(**overrides)
    normalised = annotation_normalise(out, vocabulary)

    decision = route_decide(
        answer=out,
        normalised=normalised,
        score=routing_score(out, normalised),
        threshold=review_threshold(normalised.category, vocabulary),
        audit_draw=audit_draw,
    )

    assert decision == expected


def test_per_category_threshold_overrides_the_global_one(vocabulary, settings):
    settings.REVIEW_THRESHOLD = 0.85
    shirts = vocabulary.find_categories("Shirts")[0]
    tees = vocabulary.find_categories("T-Shirts")[0]

    assert review_threshold(shirts, vocabulary) == 0.95
    assert review_threshold(tees, vocabulary) == 0.85


def test_vocabulary_follows_taxonomy_changes_without_restart(vocabulary):
    from catalog.models import Category

    assert vocabulary_current().find_categories("Kimono") == []
    tees = Category.objects.get(name="T-Shirts")
    tees.synonyms = ["tee", "kimono"]
    tees.save()

    assert vocabulary_current().find_categories("Kimono")[0].name == "T-Shirts"


def test_cost_uses_the_price_table_and_dated_model_names(settings):
    settings.ANNOTATOR_PRICES = {"gpt-4o-mini": (0.15, 0.60)}

    assert cost_usd("gpt-4o-mini", 1_000_000, 0) == Decimal("0.150000")
    assert cost_usd("gpt-4o-mini-2024-07-18", 1200, 90) == Decimal("0.000234")
    assert cost_usd("unknown-model", 1200, 90) == Decimal("0")


def test_prepare_image_downscales_orients_and_bounds_bytes():
    big = Image.new("RGB", (4000, 3000), (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees when displayed
    data = io.BytesIO()
    big.save(data, "JPEG", exif=exif)

    prepared = prepare_image(data.getvalue(), max_side=1024)

    with Image.open(io.BytesIO(prepared)) as out:
        assert (out.format, out.mode, out.size) == ("JPEG", "RGB", (768, 1024))
    noise = Image.effect_noise((2048, 2048), 128).convert("RGB")
    raw = io.BytesIO()
    noise.save(raw, "PNG")
    assert len(prepare_image(raw.getvalue(), max_side=99999)) <= MAX_REQUEST_IMAGE_BYTES


def test_canary_assignment_is_deterministic_and_proportional():
    chosen = [pid for pid in range(1, 10_001) if in_canary(pid, 10)]

    assert chosen == [pid for pid in range(1, 10_001) if in_canary(pid, 10)]
    assert 900 <= len(chosen) <= 1100
    assert not any(in_canary(pid, 0) for pid in range(1, 1000))


def test_circuit_opens_after_consecutive_failures_and_a_success_resets(settings):
    cache.clear()
    settings.ANNOTATOR_CIRCUIT_FAILURES, settings.ANNOTATOR_CIRCUIT_COOLDOWN = 3, 60
    circuit_record("openai", ok=False)
    circuit_record("openai", ok=False)
    circuit_record("openai", ok=True)
    circuit_record("openai", ok=False)
    circuit_record("openai", ok=False)
    assert not circuit_is_open("openai")

    circuit_record("openai", ok=False)

    assert circuit_is_open("openai")
    assert not circuit_is_open("local")


def test_a_failure_counts_when_an_answer_resets_the_count_at_the_same_moment(settings, monkeypatch):
    # given an answer on another thread that resets the failure count right after
    # this thread made sure the count exists (between its add and its incr)
    cache.clear()
    settings.ANNOTATOR_CIRCUIT_FAILURES, settings.ANNOTATOR_CIRCUIT_COOLDOWN = 2, 60
    add = cache.add

    def add_then_reset(key, *args, **kwargs):
        added = add(key, *args, **kwargs)
        circuit_record("openai", ok=True)
        return added

    monkeypatch.setattr(cache, "add", add_then_reset)
    # when the failure is recorded, then it counts as the first (no KeyError from incr)
    circuit_record("openai", ok=False)
    monkeypatch.undo()
    assert cache.get("annotator:circuit:openai:failures") == 1
    circuit_record("openai", ok=False)
    assert circuit_is_open("openai")


def test_answers_read_and_write_the_shared_circuit_state_once_per_interval(monkeypatch):
    # given a process whose calls are answered many times a second
    calls: list[str] = []
    inside: list[str] = []  # a cache's get_many may call its own get

    for name in ("get", "get_many", "set", "delete"):
        real = getattr(cache, name)

        def spy(key, *args, _real=real, _name=name, **kwargs):
            if not inside:
                calls.append(_name)
            inside.append(_name)
            try:
                return _real(key, *args, **kwargs)
            finally:
                inside.pop()

        monkeypatch.setattr(cache, name, spy)

    # when 50 answers are recorded within the view's half second
    for _ in range(50):
        circuit_record("openai", ok=True)

    # then the shared state was read once and "answered at" written once
    assert calls == ["get_many", "set"]
    assert provider_answered_at("openai") is not None


def test_a_failure_makes_the_next_answer_read_the_state_again_and_reset_it(settings):
    settings.ANNOTATOR_CIRCUIT_FAILURES, settings.ANNOTATOR_CIRCUIT_COOLDOWN = 2, 60
    circuit_record("openai", ok=True)  # the view now holds "no failures"

    circuit_record("openai", ok=False)
    circuit_record("openai", ok=True)  # within the half second: must still reset

    assert cache.get("annotator:circuit:openai:failures") is None
    circuit_record("openai", ok=False)
    assert not circuit_is_open("openai")


def test_rate_limit_waits_for_the_next_minute_once_the_budget_is_spent(settings):
    cache.clear()
    settings.ANNOTATOR_RPM = 2
    clock = {"t": 120.0}
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock["t"] += seconds

    for _ in range(3):
        rate_limit_wait(now=lambda: clock["t"], sleep=sleep)

    assert slept == [60.0]
