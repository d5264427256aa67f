"""``distributed_downloader.tools``: the registries and base classes with the original's names."""

from distdl.tools.bases import (
    DefaultScheduler,
    FilterRunnerTool,
    FilterToolBase,
    MPIRunnerTool,
    PartitionResult,
    PythonFilterToolBase,
    RunnerToolBase,
    SchedulerToolBase,
    ToolContext,
    ToolsBase,
)
from distdl.tools.registry import (
    FilterRegister,
    RunnerRegister,
    SchedulerRegister,
    ToolsRegistryBase,
)

__all__ = [
    "DefaultScheduler",
    "FilterRegister",
    "FilterRunnerTool",
    "FilterToolBase",
    "MPIRunnerTool",
    "PartitionResult",
    "PythonFilterToolBase",
    "RunnerRegister",
    "RunnerToolBase",
    "SchedulerRegister",
    "SchedulerToolBase",
    "ToolContext",
    "ToolsBase",
    "ToolsRegistryBase",
]
