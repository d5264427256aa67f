"""The fault-injection suite: slow tests run only when asked for with ``-m``.

``pytest`` runs the quick part; ``pytest -m slow tests/faults`` the seeded campaign only;
``pytest -m "slow or not slow"`` everything.
"""

from __future__ import annotations

import pytest


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("slow") and "slow" not in (item.config.option.markexpr or ""):
        pytest.skip("slow: run with -m slow (or -m 'slow or not slow')")
