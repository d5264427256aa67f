"""``distributed_downloader.tools.runners``, as the original names it."""

from distdl.tools.bases import FilterRunnerTool, MPIRunnerTool, PartitionResult, RunnerToolBase
from distdl.tools.builtin import (
    DuplicationFilterRunnerTool,
    ImageVerificationRunnerTool,
    ResizeRunnerTool,
    SizeBasedFilterRunnerTool,
)
from distdl.tools.registry import RunnerRegister

__all__ = [
    "DuplicationFilterRunnerTool",
    "FilterRunnerTool",
    "ImageVerificationRunnerTool",
    "MPIRunnerTool",
    "PartitionResult",
    "ResizeRunnerTool",
    "RunnerRegister",
    "RunnerToolBase",
    "SizeBasedFilterRunnerTool",
]
