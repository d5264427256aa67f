"""Shared test set-up. Tests marked ``slow`` (the seeded fault campaign, real MPI and Slurm
runs, real-signal stops) run only when asked for: ``pytest -m slow`` for them alone,
``pytest -m "slow or not slow"`` for everything; CI runs ``pytest`` then ``pytest -m slow``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# Shared test helpers live in tests/support.py.
sys.path.insert(0, str(Path(__file__).parent))


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("slow") and "slow" not in (item.config.option.markexpr or ""):
        pytest.skip("slow: run with -m slow (or -m 'slow or not slow')")
