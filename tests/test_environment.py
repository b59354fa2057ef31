"""tests/environment.py: where the shared data is, and what a missing piece does."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.environment import missing, shared_data_folder


def test_the_shared_data_folder_defaults_to_beside_the_repository(monkeypatch, tmp_path):
    monkeypatch.delenv("LOUPE_SHARED_DATA", raising=False)
    root = tmp_path / "checkout"

    assert shared_data_folder(root) == tmp_path / "shared" / "data"


def test_the_shared_data_folder_comes_from_the_variable(monkeypatch, tmp_path):
    root = tmp_path / "checkout"

    monkeypatch.setenv("LOUPE_SHARED_DATA", str(tmp_path / "elsewhere"))
    assert shared_data_folder(root) == tmp_path / "elsewhere"

    monkeypatch.setenv("LOUPE_SHARED_DATA", "data")  # relative: from the repository root
    assert shared_data_folder(root) == root / "data"


@pytest.mark.parametrize("value", ["true", "1", "yes"])
def test_in_ci_a_missing_piece_fails(monkeypatch, value):
    monkeypatch.setenv("CI", value)

    with pytest.raises(pytest.fail.Exception) as failed:
        missing("no chromium")

    assert str(failed.value) == "no chromium (CI is set, so this fails instead of skipping)"


@pytest.mark.parametrize("value", [None, "", "false", "0"])
def test_outside_ci_a_missing_piece_skips(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)

    with pytest.raises(pytest.skip.Exception) as skipped:
        missing("no chromium")

    assert str(skipped.value) == "no chromium"


def test_the_fixture_gives_the_folder_holding_the_data(shared_data: Path):
    assert (shared_data / "fashion-products" / "labels.csv").is_file()
