"""Post-download tools: filter → scheduler → runner → verification, under MPI ranks.

    from distdl.tools import apply_tools, FilterRegister, RunnerRegister, MPIRunnerTool

Each tool writes a new dataset version under ``{tools_folder}/<name>/`` and never rewrites
the download (see :mod:`distdl.tools.versions` and :mod:`distdl.tools.folder`). Names are
loaded lazily so that ``distdl --help`` does not import Polars.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "apply_tools": "distdl.tools.apply",
    "ToolOutcome": "distdl.tools.apply",
    "ToolOptions": "distdl.tools.pipeline",
    "ToolsRegistryBase": "distdl.tools.registry",
    "FilterRegister": "distdl.tools.registry",
    "SchedulerRegister": "distdl.tools.registry",
    "RunnerRegister": "distdl.tools.registry",
    "registered_tools": "distdl.tools.registry",
    "ToolsBase": "distdl.tools.bases",
    "ToolContext": "distdl.tools.bases",
    "FilterToolBase": "distdl.tools.bases",
    "PythonFilterToolBase": "distdl.tools.bases",
    "SchedulerToolBase": "distdl.tools.bases",
    "DefaultScheduler": "distdl.tools.bases",
    "RunnerToolBase": "distdl.tools.bases",
    "MPIRunnerTool": "distdl.tools.bases",
    "FilterRunnerTool": "distdl.tools.bases",
    "PartitionResult": "distdl.tools.bases",
    "load_tools": "distdl.tools.plugins",
    "open_version": "distdl.tools.pipeline",
    "export_version": "distdl.tools.exports",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'distdl.tools' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = sorted(_EXPORTS)
