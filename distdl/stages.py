"""The pipeline's stages, in order, and what completes each one.

A stage is recorded as complete in ``inner_checkpoint_file`` only after it has finished.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

from distdl.config import Config, input_settings
from distdl.errors import StateError
from distdl.inputs.tally import FILTERED_FILE
from distdl.io.atomic import fsync_tree
from distdl.io.checkpoint import STAGES as CHECKPOINT_STAGES
from distdl.io.checkpoint import Checkpoint, input_fingerprint
from distdl.layout import Layout

if TYPE_CHECKING:  # planning imports polars: not needed by a process that only launches
    from distdl.plan.planner import PlanSummary

log = logging.getLogger("distdl.stages")

Stage = Literal["batched", "profiled", "downloaded"]
STAGES: tuple[Stage, ...] = CHECKPOINT_STAGES  # one order, kept by the checkpoint file
InputFormat = Literal["csv", "tsv", "parquet"]


def stages_until(until: Stage) -> tuple[Stage, ...]:
    return STAGES[: STAGES.index(until) + 1]


def plan_fingerprint(config: Config, input_format: InputFormat | None) -> dict[str, object]:
    params = config.downloader_parameters
    return input_fingerprint(
        config.path_to_input,
        batch_size=params.batch_size,
        input_format=input_format,
        extra=input_settings(config),
    )


def ensure_batched(
    config: Config,
    layout: Layout,
    checkpoint: Checkpoint,
    input_format: InputFormat | None,
    config_path: str = "CONFIG",
) -> PlanSummary | None:
    """Plan the input unless an identical plan is already complete; refuse a changed one.

    An unfinished plan is simply redone from scratch (it is built in a staging folder), so
    only a complete plan is protected by the fingerprint.
    """
    fingerprint = plan_fingerprint(config, input_format)
    if checkpoint.is_complete("batched"):
        checkpoint.check_fingerprint(fingerprint, config=config_path)
        return None
    layout.root.mkdir(parents=True, exist_ok=True)
    checkpoint.record_fingerprint(fingerprint)
    from distdl.plan.planner import plan_input

    summary = plan_input(config, layout, input_format)
    fsync_tree(layout.urls)  # the plan's files were written without fsync: flush before done
    checkpoint.mark_complete(
        "batched",
        rows=summary.total_rows,
        rejected=summary.rejected_rows,
        filtered=summary.filtered_rows,
        servers=summary.servers,
        partitions=summary.partitions,
    )
    log.info(
        "planned %d rows: %d partitions on %d servers, %d rejected rows, %d filtered rows "
        "(by reason in %s)",
        summary.total_rows,
        summary.partitions,
        summary.servers,
        summary.rejected_rows,
        summary.filtered_rows,
        layout.urls / FILTERED_FILE,
    )
    return summary


def require_started(checkpoint: Checkpoint, config_path: str) -> None:
    if not checkpoint.started:
        raise StateError(
            f"nothing to resume: no stage of {config_path} has been started; "
            f"use `distdl run {config_path}`"
        )
