"""Shared test settings: keep every test's results out of the working directory."""

import pytest


@pytest.fixture(autouse=True)
def _results_in_tmp(tmp_path, monkeypatch):
    """A run started without an explicit store writes under the test's tmp_path, never into the repo."""
    monkeypatch.setenv("HEAVYTAIL_RESULTS", str(tmp_path / "default-results"))
