from __future__ import annotations

import json

import pytest

from annotator.parsing import AnnotationParseError, parse_annotation
from annotator.schema import AnnotationOut, answer_validate

ANNOTATION = {
    "category": "Apparel",
    "subcategory": "Shirts",
    "attributes": {"color": "Navy Blue", "material": "Cotton"},
    "tags": ["navy shirt", "checked"],
    "confidence": 0.91,
    "field_confidence": {"category": 0.97},
    "image_issues": [],
}
EXPECTED = AnnotationOut.model_validate(ANNOTATION)
TEXT = json.dumps(ANNOTATION)


@pytest.mark.parametrize(
    "answer",
    [
        TEXT,
        f"```json\n{TEXT}\n```",
        f"```\n{TEXT}\n```",
        f"Here is the JSON you asked for:\n{TEXT}",
        f"{TEXT}\nLet me know if you need more.",
        f"Sure! Fields like {{category}} are below.\n```json\n{TEXT}\n```\nDone.",
        f"I see {{a shirt}}. {TEXT}",
    ],
    ids=["plain", "json-fence", "bare-fence", "prose-before", "prose-after", "both", "braces"],
)
def test_the_annotation_is_found_wherever_it_is_in_the_answer(answer):
    assert parse_annotation(answer) == EXPECTED


def test_trailing_commas_are_tolerated():
    # given
    answer = '{"category": "Apparel", "tags": ["navy", "shirt",], "confidence": 0.5,}'

    # when
    annotation = parse_annotation(answer)

    # then
    assert annotation.category == "Apparel"
    assert annotation.tags == ["navy", "shirt"]
    assert annotation.confidence == 0.5


def test_braces_quotes_and_commas_inside_strings_are_left_alone():
    # given
    answer = (
        'Result: {"category": "Odd } name {", "subcategory": "say \\"hi\\", }", '
        '"tags": ["a,]", "b"]} trailing'
    )

    # when
    annotation = parse_annotation(answer)

    # then
    assert annotation.category == "Odd } name {"
    assert annotation.subcategory == 'say "hi", }'
    assert annotation.tags == ["a,]", "b"]


def test_percent_confidence_becomes_a_fraction():
    annotation = parse_annotation('{"confidence": 91, "field_confidence": {"category": 95}}')

    assert annotation.confidence == 0.91
    assert annotation.field_confidence.get("category") == 0.95


def test_tags_given_as_one_string_are_split():
    annotation = parse_annotation('{"tags": "navy shirt, checked , ,casual"}')

    assert annotation.tags == ["navy shirt", "checked", "casual"]


def test_keys_outside_the_attribute_set_are_dropped_by_validation():
    parsed = parse_annotation(
        '{"attributes": {"color": "Red", "neckline": "V"},'
        ' "field_confidence": {"category": 0.9, "neckline": 0.4}}'
    )

    annotation = answer_validate(parsed.model_dump(), ["color"])

    assert annotation.attributes == {"color": "Red"}
    assert annotation.field_confidence == {"category": 0.9, "subcategory": None, "color": None}


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("", "empty answer"),
        ("   \n", "empty answer"),
        ("The shirt is navy blue.", "no JSON object in the answer"),
        (
            '{"category": "Apparel", "tags": ["na',
            "unterminated JSON object (was the answer cut off?)",
        ),
        (
            '{"category": "Apparel" "tags": []}',
            "invalid JSON: Expecting ',' delimiter: line 1 column 24 (char 23)",
        ),
        (
            "{'category': 'Apparel'}",
            "invalid JSON: Expecting property name enclosed in double "
            "quotes: line 1 column 2 (char 1)",
        ),
    ],
    ids=["empty", "blank", "no-object", "cut-off", "missing-comma", "single-quotes"],
)
def test_unreadable_answers_raise_a_clear_error(answer, message):
    with pytest.raises(AnnotationParseError) as caught:
        parse_annotation(answer)

    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            '{"confidence": 150}',
            "answer does not match the annotation schema: "
            "confidence: Input should be less than or equal to 1 (got 150)",
        ),
        (
            '{"tags": 5}',
            "answer does not match the annotation schema: "
            "tags: Input should be a valid list (got 5)",
        ),
        (
            '{"field_confidence": {"color": "high"}}',
            "answer does not match the annotation schema: field_confidence.color: "
            "Input should be a valid number, unable to parse string as a number (got 'high')",
        ),
    ],
    ids=["confidence-out-of-range", "tags-not-a-list", "field-confidence-not-a-number"],
)
def test_json_that_breaks_the_schema_raises_a_clear_error(answer, message):
    with pytest.raises(AnnotationParseError) as caught:
        parse_annotation(answer)

    assert str(caught.value) == message


def test_parse_error_is_a_value_error():
    assert issubclass(AnnotationParseError, ValueError)
