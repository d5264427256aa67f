"""Shared test set-up. Tests marked ``slow`` (the seeded fault campaign, real MPI and Slurm
runs, real-signal stops) run only when asked for: ``pytest -m slow`` for them alone,
``pytest -m "slow or not slow"`` for everything; CI runs ``pytest`` then ``pytest -m slow``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Shared test helpers live in tests/support.py.
sys.path.insert(0, str(Path(__file__).parent))

# A developer's proxy (HTTPS_PROXY, no_proxy, ALL_PROXY, ...) must not change what a test
# sees: distdl honours these variables, and so do the processes the tests start. Cleared at
# import, before any fixture; tests/integration/test_proxy.py sets its own.
for _name in [name for name in os.environ if name.lower().endswith("_proxy")]:
    del os.environ[_name]


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Under pytest-xdist (CI: `-n 2 --dist loadgroup`) the tests that start several ranks
    # (marked mpi) and the Slurm ones run one at a time, on one worker: two such runs at
    # once put six ranks on two cores, and a test's short rank_silence_limit could declare
    # a starved rank dead; the Slurm cluster has one node.
    grouping = bool(getattr(config.option, "loadgroup", False))  # set in xdist's workers
    for item in items:
        if item.get_closest_marker("mpi") or "slurm" in item.path.parts:
            item.add_marker(pytest.mark.xdist_group("ranks"))
            if grouping:
                _send_to_group(item, "ranks")


def _send_to_group(item: pytest.Item, group: str) -> None:
    """What pytest-xdist's loadgroup does to a grouped test: rename it ``<nodeid>@<group>``
    (the scheduler groups by the suffix). xdist 3.8 renames through ``item._nodeid``, which
    pytest 9.2 no longer reads (it keeps a structured id in ``item._id``), so the groups
    would be silently ignored: rename it that way too. Loud if neither works any more."""
    suffix = f"@{group}"
    if item.nodeid.endswith(suffix):
        return  # xdist's own renaming worked
    node_id = getattr(item, "_id", None)
    if node_id is not None and hasattr(node_id, "parse"):
        item._id = type(node_id).parse(item.nodeid + suffix)  # type: ignore[attr-defined]
    if not item.nodeid.endswith(suffix):
        raise pytest.UsageError(f"cannot put {item.nodeid} in xdist group {group!r}")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("slow") and "slow" not in (item.config.option.markexpr or ""):
        pytest.skip("slow: run with -m slow (or -m 'slow or not slow')")
