"""The fault-injection suite: slow tests run only when asked for with ``-m``.

``pytest`` runs the quick part; ``pytest -m slow tests/faults`` the seeded campaign only;
``pytest -m "slow or not slow"`` everything.
"""

from __future__ import annotations

# The slow part is skipped by default by tests/conftest.py.
