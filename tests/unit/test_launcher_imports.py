"""The process that launches local ranks imports only what launching needs: every module it
loads is time before mpiexec starts, and so before the first request."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(60)

# Loaded by the ranks that use them, never by `distdl run` before it launches them.
RANK_ONLY = ("mpi4py", "pyarrow", "polars", "aiohttp", "distdl.runtime.messages")

CHECK = """
import sys
import distdl.cli, distdl.api
print(" ".join(name for name in sys.argv[1:] if name in sys.modules))
"""


def test_the_launcher_does_not_import_what_only_the_ranks_use() -> None:
    found = subprocess.run(
        [sys.executable, "-c", CHECK, *RANK_ONLY], capture_output=True, text=True, check=True
    ).stdout.split()
    assert found == []
