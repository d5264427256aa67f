"""distdl: download huge image datasets from URL lists, politely, over MPI ranks.

from distdl import download_images
download_images("config.yaml")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from distdl.errors import (
    ConfigError,
    DistdlError,
    InputError,
    LaunchError,
    PartitionError,
    RankFailure,
    StateError,
    ToolError,
    ToolNotFoundError,
)

__version__ = "0.1.0"

if TYPE_CHECKING:
    from distdl.api import RunOutcome
    from distdl.config import Config, load_config
    from distdl.tools.apply import ToolOutcome


def __getattr__(name: str) -> Any:
    """``Config`` and ``load_config`` load pydantic: only when asked for, so that the command
    line starts handling Ctrl-C before the seconds its heavy imports can take."""
    if name in ("Config", "load_config"):
        from distdl import config

        return getattr(config, name)
    raise AttributeError(f"module 'distdl' has no attribute {name!r}")


def download_images(config_path: str, **options: Any) -> RunOutcome:
    """Run every stage not yet complete for ``config_path`` (see distdl.api.RunOptions)."""
    from distdl.api import download_images as _download_images

    return _download_images(config_path, **options)


def apply_tools(config_path: str, tool_name: str, **options: Any) -> ToolOutcome:
    """Apply a post-download tool (see distdl.tools.pipeline.ToolOptions for the options)."""
    from distdl.tools.apply import apply_tools as _apply_tools

    return _apply_tools(config_path, tool_name, **options)


__all__ = [
    "Config",
    "ConfigError",
    "DistdlError",
    "InputError",
    "LaunchError",
    "PartitionError",
    "RankFailure",
    "StateError",
    "ToolError",
    "ToolNotFoundError",
    "__version__",
    "apply_tools",
    "download_images",
    "load_config",
]
