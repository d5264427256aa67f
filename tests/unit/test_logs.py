"""Rank log files: one event per line, rotated by size; what reaches the terminal."""

from __future__ import annotations

import logging
import logging.handlers
from collections.abc import Iterator
from pathlib import Path

import pytest

from distdl.layout import Layout
from distdl.runtime import logs
from distdl.runtime.progress_view import PLAIN, QUIET


@pytest.fixture
def layout(tmp_path: Path) -> Iterator[Layout]:
    root = tmp_path / "out"
    yield Layout(
        root=root,
        urls=root / "urls",
        logs=root / "logs",
        images=root / "images",
        schedules=root / "schedules",
        profiles_table=root / "profiles.csv",
        ignored_table=root / "ignored.csv",
        checkpoint_file=root / "checkpoint.yaml",
        tools=root / "tools",
    )
    for name in ("distdl", *logs.FILE_ONLY_LOGGERS):
        for handler in list(logging.getLogger(name).handlers):
            logging.getLogger(name).removeHandler(handler)
            handler.close()
    logging.captureWarnings(False)


def test_an_event_with_its_traceback_is_one_line_and_the_file_rotates(layout: Layout) -> None:
    logs.configure_logging(layout, 3, "INFO", console=False)
    log = logging.getLogger("distdl.worker")
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        log.exception("partition failed host=%s", "a.org")
    text = layout.log_file(3).read_text()
    assert text.count("\n") == 1 and "rank3 ERROR" in text and "Traceback" in text
    (handler,) = [
        h for h in logging.getLogger("distdl").handlers if isinstance(h, logging.FileHandler)
    ]
    assert isinstance(handler, logging.handlers.RotatingFileHandler)
    assert handler.maxBytes == logs.LOG_MAX_BYTES and handler.backupCount == logs.LOG_BACKUPS


def test_warnings_and_decoder_lines_go_to_the_file_only(
    layout: Layout, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure_logging(layout, 0, "INFO", console=True)
    assert logs.console_mode() == PLAIN  # pytest's stderr is no terminal
    logging.getLogger("distdl.decoders").warning("decoder 1: TIFFFillStrip: Read error")
    logging.getLogger("py.warnings").warning("UserWarning: Corrupt EXIF data")
    logging.getLogger("distdl.coordinator").warning("shown")
    captured = capsys.readouterr()
    assert "TIFFFillStrip" not in captured.err and "EXIF" not in captured.err
    assert "shown" in captured.err
    text = layout.log_file(0).read_text()
    assert "TIFFFillStrip" in text and "EXIF" in text


def test_quiet_shows_warnings_only(layout: Layout, capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure_logging(layout, 0, "INFO", console=True, quiet=True)
    assert logs.console_mode() == QUIET
    logging.getLogger("distdl.progress").info("12 s: 3/10 rows")
    logging.getLogger("distdl.coordinator").warning("a host paused")
    err = capsys.readouterr().err
    assert "rows" not in err and "a host paused" in err
