"""Input tokens per product of two ways to ask for category-scoped attributes.

(a) one request: the system prompt lists every attribute with the categories
    it applies to, the schema holds every attribute (nullable); the pipeline
    drops the ones that do not apply once the category is known. The system
    prompt and schema are the same for every product, so providers can cache
    them (OpenAI caches identical prompt prefixes of 1,024+ tokens).
(b) two requests: first the category (categories only, a two-field schema),
    then the attributes of that category (only its attributes and values, a
    schema of those); the image is sent in both.

    .venv/bin/python bench/attribute_prompt_bench.py [--image-tokens 85]

Tokens are estimated as characters / 4 (tiktoken's o200k_base needs a file
download this machine cannot make); the JSON schema is counted as its compact
JSON text. `--image-tokens` is what one image costs (85 for OpenAI's
detail=low; a 512 px image at detail=high costs 255). Needs no database: the
vocabulary is built from catalog/data/default_taxonomy.json. Prints JSON:
per variant the mean, median and max input tokens per product over every
leaf category, and for (a) the share that is the cacheable prefix.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from annotator.prompts import (  # noqa: E402
    DEFAULT_SYSTEM_PROMPT,
    DEFAULT_USER_TEMPLATE,
    render_system_prompt,
    render_user_prompt,
)
from annotator.providers.local import vocabulary_from_spec_json  # noqa: E402
from annotator.schema import strict_json_schema  # noqa: E402
from catalog.taxonomy.vocabulary import Vocabulary  # noqa: E402

TAXONOMY = ROOT / "catalog" / "data" / "default_taxonomy.json"
TITLE = "Kestrel & Co Navy Blue Polka Dot Wool Crew-Neck Sweater"


def tokens(text: str) -> int:
    return round(len(text) / 4)


def schema_tokens(codes: list[str]) -> int:
    return tokens(json.dumps(strict_json_schema(codes), separators=(",", ":")))


def one_step(vocabulary: Vocabulary, image_tokens: int) -> dict[str, int]:
    system = render_system_prompt(DEFAULT_SYSTEM_PROMPT, vocabulary)
    user = render_user_prompt(DEFAULT_USER_TEMPLATE, title=TITLE)
    prefix = tokens(system) + schema_tokens(list(vocabulary.attributes))
    return {"total": prefix + tokens(user) + image_tokens, "cacheable": prefix}


def two_step(vocabulary: Vocabulary, leaf, image_tokens: int) -> dict[str, int]:
    user = tokens(render_user_prompt(DEFAULT_USER_TEMPLATE, title=TITLE))
    categories_only = replace(vocabulary, attributes={}, attribute_terms={})
    first = tokens(render_system_prompt(DEFAULT_SYSTEM_PROMPT, categories_only))
    first += schema_tokens([]) + user + image_tokens
    codes = vocabulary.attributes_for(leaf)
    second_vocabulary = replace(
        vocabulary,
        categories=(leaf,),
        attributes={code: vocabulary.attributes[code] for code in codes},
        attribute_terms={},
    )
    # The second prompt names the category found instead of listing all of them.
    second = tokens(render_system_prompt(DEFAULT_SYSTEM_PROMPT, second_vocabulary))
    second += schema_tokens(codes) + user + image_tokens
    return {"total": first + second, "first": first, "second": second}


def summary(values: list[int]) -> dict[str, float]:
    return {
        "mean": round(statistics.mean(values), 1),
        "median": statistics.median(values),
        "max": max(values),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-tokens", type=int, default=85)
    args = parser.parse_args()
    vocabulary = vocabulary_from_spec_json(json.loads(TAXONOMY.read_text(encoding="utf-8")))
    leaves = vocabulary.leaves
    a = [one_step(vocabulary, args.image_tokens) for _ in leaves]
    b = [two_step(vocabulary, leaf, args.image_tokens) for leaf in leaves]
    result = {
        "token_estimate": "characters / 4",
        "image_tokens": args.image_tokens,
        "leaf_categories": len(leaves),
        "attributes": len(vocabulary.attributes),
        "a_one_schema_all_attributes": {
            **summary([row["total"] for row in a]),
            "cacheable_prefix": a[0]["cacheable"],
            "requests_per_product": 1,
        },
        "b_two_step": {
            **summary([row["total"] for row in b]),
            "first_request": summary([row["first"] for row in b]),
            "second_request": summary([row["second"] for row in b]),
            "requests_per_product": 2,
        },
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
