"""The original ``distributed-downloader``'s documented imports, backed by distdl.

    from distributed_downloader import download_images, apply_tools
    download_images("config.yaml")
    apply_tools("config.yaml", "resize")

Installed with distdl's ``[compat]`` extra. Config files keep the original's layout; see the
distdl README for what each key means now.
"""

from __future__ import annotations

import logging
from typing import Any


def download_images(config_path: str, logger: logging.Logger | None = None) -> Any:
    """Run every download stage not yet complete (``logger`` is accepted and unused: distdl
    logs to ``{logs_folder}/rank-<r>.log``)."""
    from distdl import download_images as _download_images

    return _download_images(config_path)


def apply_tools(
    config_path: str, tool_name: str, tool_name_override: str | None = None, **options: Any
) -> Any:
    """Apply a registered tool (see ``distdl.tools.apply.apply_tools`` for the options)."""
    from distdl.tools.apply import apply_tools as _apply_tools

    return _apply_tools(config_path, tool_name, tool_name_override=tool_name_override, **options)


__all__ = ["apply_tools", "download_images"]
