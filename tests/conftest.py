"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def _corpus_path() -> Path:
    override = os.environ.get("LOGWEIR_CORPUS")
    if override:
        return Path(override)
    return REPO_ROOT.parent / "shared" / "corpus"


@pytest.fixture(scope="session")
def corpus() -> Path:
    """``../shared/corpus``: fails under CI when missing, skips elsewhere."""
    path = _corpus_path()
    if not (path / "MANIFEST.md").is_file():
        message = f"corpus not found at {path} (set LOGWEIR_CORPUS)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path
