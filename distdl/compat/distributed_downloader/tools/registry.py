"""``distributed_downloader.tools.registry``, as the original names it."""

from distdl.tools.bases import ToolsBase
from distdl.tools.registry import ToolsRegistryBase

__all__ = ["ToolsBase", "ToolsRegistryBase"]
