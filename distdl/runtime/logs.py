"""Per-rank log files under logs_folder, honouring logger_level; what reaches the terminal.

Each rank writes ``rank-<r>.log``: one event per line (a traceback's line breaks are
escaped), rotated by size so a weeks-long run keeps at most ``LOG_BACKUPS + 1`` files of
``LOG_MAX_BYTES``. Python warnings (Pillow's DecompressionBombWarning, "Invalid APNG", …)
go to the log file through the ``py.warnings`` logger, and what the image decoder processes
write to their stderr (libtiff's C warnings) through ``distdl.decoders``: never to the
terminal.

Rank 0 shows INFO on stderr unless ``quiet`` (then warnings and errors only); other ranks
show errors only. :func:`console_mode` says how rank 0 shows the run's progress: a live
panel on a terminal, plain lines otherwise, nothing when quiet. A launcher whose own stderr
is a terminal sets ``DISTDL_TTY=1`` for ranks whose stderr is a pipe to it.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from pathlib import Path
from typing import TextIO

from distdl.layout import Layout
from distdl.runtime.progress_view import LIVE, PLAIN, QUIET

_FORMAT = "%(asctime)s rank{rank} %(levelname)s %(name)s: %(message)s"
LOG_MAX_BYTES = 64 * 1024 * 1024
LOG_BACKUPS = 4
TTY_ENV = "DISTDL_TTY"
# The file only: noise a user can do nothing about at the terminal (Python warnings,
# decoders' stderr), and the per-lease events (thousands over a run).
FILE_ONLY_LOGGERS = ("py.warnings", "distdl.decoders", "distdl.events")

_console_mode = QUIET


class OneLineFormatter(logging.Formatter):
    """A record, with its traceback, on one line: ``grep`` finds whole events."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\r", "\\r").replace("\n", "\\n")


class _RankFileHandler(logging.handlers.RotatingFileHandler):
    """Opened (and its folder made) at the first event: a start that fails before anything
    is logged (a missing input, a bad config) leaves no output folder behind."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            path, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8", delay=True
        )

    def _open(self) -> TextIO:
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is now: a live panel swaps it to keep its place."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def stderr_is_terminal() -> bool:
    return os.environ.get(TTY_ENV) == "1" or sys.stderr.isatty()


def console_mode() -> str:
    """How the progress shows on this rank's terminal: ``live``, ``plain`` or ``quiet``."""
    return _console_mode


def configure_logging(
    layout: Layout, rank: int, level: str, *, console: bool, quiet: bool = False
) -> None:
    """Send the ``distdl`` loggers (and Python warnings) to ``rank-<r>.log``; rank 0
    (``console``) also shows INFO on stderr, or only warnings when ``quiet``."""
    global _console_mode
    file_handler = _RankFileHandler(layout.log_file(rank))
    file_handler.setFormatter(OneLineFormatter(_FORMAT.format(rank=rank)))
    stream = _StderrHandler()
    stream.setLevel(logging.ERROR if not console else logging.WARNING if quiet else logging.INFO)
    stream.setFormatter(logging.Formatter(_FORMAT.format(rank=rank)))
    logger = logging.getLogger("distdl")
    _replace_handlers(logger, [file_handler, stream])
    logger.setLevel(level)
    logger.propagate = False
    # Library warnings and what decoders write to stderr (libtiff): the file only.
    logging.captureWarnings(True)
    for name in FILE_ONLY_LOGGERS:
        _replace_handlers(logging.getLogger(name), [file_handler])
        logging.getLogger(name).propagate = False
    _console_mode = QUIET
    if console and not quiet:
        _console_mode = LIVE if stderr_is_terminal() else PLAIN


def _replace_handlers(logger: logging.Logger, handlers: list[logging.Handler]) -> None:
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        if handler not in handlers:
            handler.close()
    for handler in handlers:
        logger.addHandler(handler)
