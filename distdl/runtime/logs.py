"""Per-rank log files under logs_folder, honouring logger_level."""

from __future__ import annotations

import logging
import sys

from distdl.layout import Layout

_FORMAT = "%(asctime)s rank{rank} %(levelname)s %(name)s: %(message)s"


def configure_logging(layout: Layout, rank: int, level: str, *, console: bool) -> None:
    """Send the ``distdl`` loggers to ``rank-<r>.log``; rank 0 also shows INFO on stderr."""
    layout.logs.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger("distdl")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.setLevel(level)
    logger.propagate = False
    file_handler = logging.FileHandler(layout.log_file(rank), encoding="utf-8")
    file_handler.setFormatter(logging.Formatter(_FORMAT.format(rank=rank)))
    logger.addHandler(file_handler)
    stream = logging.StreamHandler(sys.stderr)
    stream.setLevel(logging.INFO if console else logging.ERROR)
    stream.setFormatter(logging.Formatter(_FORMAT.format(rank=rank)))
    logger.addHandler(stream)
