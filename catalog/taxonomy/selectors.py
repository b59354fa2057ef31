"""Reads of the taxonomy admin: the category tree, counted and searched."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Count, Prefetch

from catalog.models import Attribute, AttributeValue, Category, Product
from catalog.taxonomy.formats import PATH_SEPARATOR
from catalog.taxonomy.services.history import TaxonomyChangeError
from catalog.taxonomy.vocabulary import match_key


@dataclass
class CategoryNode:
    """A node of the admin tree: products counted with every descendant's."""

    category: Category
    children: list[CategoryNode] = field(default_factory=list)
    products: int = 0
    own_products: int = 0
    matches: bool = False
    open: bool = False


def category_tree_counted(
    *, query: str = "", selected_id: int | None = None
) -> tuple[list[CategoryNode], int]:
    """The tree with products per node (one GROUP BY, rolled up over the tree
    in memory). With a `query` (a name or synonym; a path when it holds ">")
    only the matching nodes stay, with their ancestors open and their subtrees
    closed. Returns the roots and the number of matching nodes."""
    roots, _attributes = category_tree()
    own = dict(
        Product.objects.order_by()
        .filter(category__isnull=False)
        .values_list("category_id")
        .annotate(n=Count("id"))
        .values_list("category_id", "n")
    )
    needle = " ".join(query.split()).casefold()
    key = match_key(needle) if needle else ""

    def matches(category: Category) -> bool:
        # A query with ">" searches paths; else names and synonyms, so "tops"
        # finds Tops, not every node under it.
        texts = [category.path] if ">" in needle else [category.name, *category.synonyms]
        return any(needle in text.casefold() for text in texts) or (
            bool(key) and key in {match_key(text) for text in texts}
        )

    totals: dict[int, int] = {}

    def total(tree_node: TreeNode) -> int:
        pk = tree_node.category.pk
        totals[pk] = own.get(pk, 0) + sum(total(child) for child in tree_node.children)
        return totals[pk]

    for root in roots:
        total(root)
    found = 0

    def build(tree_node: TreeNode, inside_match: bool = False) -> CategoryNode | None:
        """In a search: a matching node, its ancestors (open) and its
        subtree (closed) stay; everything else goes."""
        nonlocal found
        category = tree_node.category
        node = CategoryNode(
            category=category,
            own_products=own.get(category.pk, 0),
            # Counts include every descendant, also those a search hides.
            products=totals[category.pk],
            matches=bool(needle) and matches(category),
        )
        found += node.matches
        match_below = False
        for child in tree_node.children:
            built = build(child, inside_match or node.matches)
            if built is not None:
                node.children.append(built)
                match_below = match_below or built.matches or built.open
        if needle:
            if not (node.matches or match_below or inside_match):
                return None
            node.open = match_below
        else:
            node.open = category.depth == 0 and bool(node.children)
        return node

    counted = [node for node in (build(root) for root in roots) if node is not None]
    if selected_id is not None and not needle:
        _open_path_to(counted, selected_id)
    return counted, found


def _open_path_to(nodes: list[CategoryNode], target_id: int) -> bool:
    for node in nodes:
        if node.category.pk == target_id or _open_path_to(node.children, target_id):
            node.open = node.open or bool(node.children)
            return True
    return False


@dataclass
class TreeNode:
    category: Category
    children: list[TreeNode] = field(default_factory=list)


def category_tree() -> tuple[list[TreeNode], list[Attribute]]:
    """The whole tree from one query, and the attributes with their values."""
    nodes: dict[int, TreeNode] = {}
    roots: list[TreeNode] = []
    for category in Category.objects.order_by("depth", "path"):
        node = nodes[category.pk] = TreeNode(category)
        if category.parent_id is None:
            roots.append(node)
        else:
            nodes[category.parent_id].children.append(node)
    attributes = list(
        Attribute.objects.prefetch_related(
            Prefetch("values", queryset=AttributeValue.objects.order_by("position", "name"))
        )
    )
    return roots, attributes


def category_by_path(text: str) -> Category:
    """The category at a path typed as "A > B" (spaces around ">" optional)."""
    path = PATH_SEPARATOR.join(part.strip() for part in text.split(">") if part.strip())
    category = Category.objects.filter(path=path).first() if path else None
    if category is None:
        raise TaxonomyChangeError(f"There is no category {text.strip()!r}.")
    return category
