"""Prompt text and its rendering. The taxonomy block is rendered in a stable
order (paths sorted, values in the admin's order), so the long prefix is
byte-identical between calls and providers can cache it."""

from __future__ import annotations

from catalog.taxonomy.vocabulary import Vocabulary

DEFAULT_SYSTEM_PROMPT = """\
Tag a fashion marketplace's product photo from the image and the title: one \
JSON object following the schema.
- category: a top-level category; subcategory: the most specific one below it; \
both exactly as listed.
- attributes: a value exactly as listed, or null if the photo does not show it \
or the product is outside the attribute's categories ("only ..." / "all but ...").
- tags: 5 to 8 lowercase search keywords a shopper would type.
- confidence (0-1): how sure you are of the whole answer; field_confidence: per \
field. Be honest: 0.5 is a coin toss.
- image_issues: e.g. "no product visible", "several products", "low \
resolution", "watermark or text"; empty if none.

{taxonomy}"""

DEFAULT_USER_TEMPLATE = "Product title: {title}"


def render_taxonomy(vocabulary: Vocabulary) -> str:
    """Compact: each top-level category once, the parents below it indented,
    each followed by its leaf categories, so every path is there without
    repeating its ancestors (about half the tokens of one path per line)."""
    lines = ["Categories (Top: subcategories; indented: path below Top: subcategories):"]
    lines += render_category_groups(vocabulary)
    lines += ["", "Attributes (code: values):"]
    for code, values in vocabulary.attributes.items():
        lines.append(
            f"{code}{_scope_note(vocabulary, code)}: " + ", ".join(value.name for value in values)
        )
    return "\n".join(lines)


def render_category_groups(vocabulary: Vocabulary) -> list[str]:
    groups: dict[str, list[str]] = {}
    for path in sorted(term.path for term in vocabulary.leaves):
        parent, _, leaf = path.rpartition(" > ")
        groups.setdefault(parent, []).append(leaf)
    lines: list[str] = []
    tops_seen: set[str] = set()
    for parent, leaves in groups.items():
        names = _listed(leaves)
        if not parent:
            lines.append(names)
            continue
        top, _, rest = parent.partition(" > ")
        if not rest:
            lines.append(f"{top}: {names}")
            tops_seen.add(top)
            continue
        if top not in tops_seen:
            lines.append(top)
            tops_seen.add(top)
        lines.append(f" {rest}: {names}")
    return lines


def _listed(names: list[str]) -> str:
    """Names as a comma list; with " | " when a name holds a comma (ambiguous)."""
    return (" | " if any("," in name for name in names) else ", ").join(names)


def prompt_tokens_estimate(text: str) -> int:
    """Input tokens of a text as characters / 4 (no tokenizer is installed:
    tiktoken needs its encoding files from the internet)."""
    return (len(text) + 3) // 4


def _scope_note(vocabulary: Vocabulary, code: str) -> str:
    """Where an attribute applies. Every attribute is in the one schema
    (nullable), so the prompt says which apply where; the pipeline drops the
    others once the category is known (bench/attribute_prompt_bench.py
    measured this against a two-step prompt). Paths under one parent are
    listed once under it ("Footwear > Heels, Pumps"), and a scope of whole
    top-level categories is said by what it leaves out when that is shorter
    ("all but Beauty & Personal Care")."""
    term = vocabulary.attribute_terms.get(code)
    name = term.name if term else code
    label = f" ({name})" if name.lower() != code.replace("_", " ").lower() else ""
    if term is None or term.scope is None:
        return label
    where = _paths_grouped(term.scope_paths) or "no category"
    if term.scope_paths and all(" > " not in path for path in term.scope_paths):
        tops = sorted({t.path for t in vocabulary.categories if " > " not in t.path})
        outside = [top for top in tops if top not in term.scope_paths]
        if outside and len("all but " + "; ".join(outside)) < len("only " + where):
            return f"{label} (all but {'; '.join(outside)})"
    return f"{label} (only {where})"


def _paths_grouped(paths: tuple[str, ...]) -> str:
    """Sorted category paths, each parent once: "A > x, y; B"."""
    groups: dict[str, list[str]] = {}
    for path in paths:
        parent, _, leaf = path.rpartition(" > ")
        groups.setdefault(parent, []).append(leaf)
    parts = []
    for parent, leaves in groups.items():
        parts.append(f"{parent} > {_listed(leaves)}" if parent else _listed(leaves))
    return "; ".join(parts)


def render_system_prompt(template: str, vocabulary: Vocabulary) -> str:
    return template.replace("{taxonomy}", render_taxonomy(vocabulary))


def render_user_prompt(template: str, *, title: str) -> str:
    return template.replace("{title}", title.strip() or "(no title)")
