"""What the tests need from the machine they run on, and what to do when it is missing.

In CI (the `CI` variable set, as `.ci/run` does) everything a test needs must be
there, so a missing piece fails the test loudly; on a developer's machine the
test is skipped with the reason.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

SHARED_DATA_VARIABLE = "LOUPE_SHARED_DATA"
# The real photos and taxonomy lie beside the repository (never inside it).
SHARED_DATA_DEFAULT = "../shared/data"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no", "off"}


def missing(reason: str) -> NoReturn:
    """Stop a test that cannot run here: a failure in CI, a skip elsewhere."""
    import pytest  # here, so that benchmarks can import this module without pytest

    if in_ci():
        pytest.fail(f"{reason} (CI is set, so this fails instead of skipping)", pytrace=False)
    pytest.skip(reason)


def shared_data_folder(root: Path) -> Path:
    """The shared data folder: $LOUPE_SHARED_DATA, else ../shared/data; a relative
    path is read from the repository `root`. Benchmarks call this too."""
    value = os.environ.get(SHARED_DATA_VARIABLE, "").strip() or SHARED_DATA_DEFAULT
    return (root / value).resolve()
