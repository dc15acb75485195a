"""Shared fixtures: the real datasets in ../shared/data, skipped with a reason where absent."""

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATA} (they come with the project's shared/ folder)")
    return SHARED_DATA


@pytest.fixture
def sketches_dir(shared_data) -> Path:
    return shared_data / "sketches"
