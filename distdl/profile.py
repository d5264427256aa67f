"""The ``profiled`` stage: per-host budgets before downloading.

Budgets come from ``profiles_table`` when it lists a host (learned by an earlier run, or set
by hand), else ``default_rate_limit``; the download stage adapts them while it runs.
"""

from __future__ import annotations

import logging

from distdl.config import Config
from distdl.io.profiles import read_profiles
from distdl.layout import Layout

log = logging.getLogger("distdl.profile")


def run_profiling(config: Config, layout: Layout) -> None:
    known = read_profiles(layout.profiles_table)
    log.info(
        "profiles: %d hosts with a budget in %s; others start at %.2f req/s",
        len(known),
        layout.profiles_table,
        config.downloader_parameters.default_rate_limit,
    )
