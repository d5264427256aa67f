"""``python -m distributed_downloader.tools.main CONFIG TOOL [--reset_* ...]``, as the original."""

from distdl.cli import legacy_tools_main as main

__all__ = ["main"]

if __name__ == "__main__":  # pragma: no cover
    main()
