"""``distributed_downloader.tools.filters``, as the original names it."""

from distdl.tools.bases import FilterToolBase, PythonFilterToolBase
from distdl.tools.builtin import DuplicatesBasedFiltering, SizeBasedFiltering
from distdl.tools.registry import FilterRegister

__all__ = [
    "DuplicatesBasedFiltering",
    "FilterRegister",
    "FilterToolBase",
    "PythonFilterToolBase",
    "SizeBasedFiltering",
]
