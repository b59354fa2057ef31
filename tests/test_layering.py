"""The apps depend on each other one way only (docs/architecture.md):

    api, reports, tuning -> review -> annotator -> catalog -> accounts

An app may import its own modules and any app on a lower floor, never one on
its floor or above. Imports are read with ast from every module of each app,
also those inside functions (a lazy import is still a dependency), and
`apps.get_model` outside migrations counts as a hidden one."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FLOORS = {
    "accounts": 0,
    "catalog": 1,
    "annotator": 2,
    "review": 3,
    "api": 4,
    "reports": 4,
    "tuning": 4,
}
# Project modules every app may use; config.urls is not one (it imports every app).
SHARED = {
    "config.http",
    "config.stats",
    "config.csv_cells",
    "config.celery",
    "config.queue",
    "config.counters",
    "config.db",
    "config.malloc",
}


def _modules(app: str) -> list[Path]:
    return sorted((ROOT / app).rglob("*.py")) if (ROOT / app).is_dir() else []


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, node.module)]
            # `from review import services` names the module review.services
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def upward_edges() -> list[str]:
    edges = []
    for app, floor in FLOORS.items():
        for path in _modules(app):
            for line, module in _imports(path):
                top = module.split(".")[0]
                where = f"{path.relative_to(ROOT)}:{line} imports {module}"
                if top == "config" and module not in SHARED and "." in module:
                    if not any(module.startswith(f"{shared}.") for shared in SHARED):
                        edges.append(where)
                elif top in FLOORS and top != app and FLOORS[top] >= floor:
                    edges.append(where)
    return sorted(set(edges))


def test_apps_import_only_apps_on_a_lower_floor():
    assert upward_edges() == []


def test_no_hidden_model_lookups_outside_migrations():
    hidden = [
        f"{path.relative_to(ROOT)}"
        for app in FLOORS
        for path in _modules(app)
        if "migrations" not in path.parts and "apps.get_model(" in path.read_text()
    ]
    assert hidden == []


@pytest.mark.parametrize(
    ("app", "source", "caught"),
    [
        ("catalog", "from review.models import Decision\n", True),
        ("catalog", "def f():\n    from annotator import tasks\n", True),
        ("accounts", "import catalog.selectors\n", True),
        ("tuning", "from reports import stats\n", True),
        ("tuning", "from review.services import FIELDS\n", False),
        ("review", "from config.urls import urlpatterns\n", True),
        ("review", "from config.http import HtmxHttpRequest\n", False),
    ],
)
def test_the_check_itself_catches_an_upward_import(tmp_path, monkeypatch, app, source, caught):
    """The guard would fail on a planted upward import (and only then)."""
    monkeypatch.setattr("tests.test_layering.ROOT", tmp_path)
    (tmp_path / app).mkdir()
    (tmp_path / app / "planted.py").write_text(source)
    assert bool(upward_edges()) is caught
