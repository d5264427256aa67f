"""Applying a tool: the composition root of the tools pipeline.

Outside a launcher, this process takes the output lock, runs the filter and scheduler
stages, then runs the partitions itself (``--ranks 1``) or on ``--ranks N`` local MPI ranks
started by the same launcher as ``distdl run``; under ``mpiexec``/``srun`` it uses the world
it was given (rank 0 holds the lock and runs the stages before the runners). Every rank
runs its share of the partitions; rank 0 then verifies and marks the version finished.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distdl.cluster.environment import exported, original_environment
from distdl.config import Config, load_config
from distdl.errors import AlreadyReported, DistdlError, RankFailure, RunStopped, ToolError
from distdl.io.lock import OutputLock
from distdl.layout import Layout
from distdl.runtime.launch import (
    RanksExit,
    launch_local_ranks,
    launched_world_size,
    stop_grace,
    was_launched_by_us,
)
from distdl.runtime.logs import configure_logging
from distdl.runtime.mpi_channel import checked_world
from distdl.runtime.rank_zero import on_rank0, wait_for_all
from distdl.runtime.stop_signals import (
    StopSignal,
    noting_stop_signals,
    raising_stop_signals,
    stop_signal_of,
)
from distdl.tools.bases import ToolContext
from distdl.tools.pipeline import ToolOptions, describe, prepare, tool_folder, verify
from distdl.tools.plugins import load_tools
from distdl.tools.registry import ToolClasses, tool_classes

log = logging.getLogger("distdl.tools")


@dataclass(frozen=True)
class ToolOutcome:
    name: str  # the version written ({tools_folder}/<name>)
    folder: Path
    totals: dict[str, Any]
    summary: str


def apply_tools(config_path: str | os.PathLike[str], tool_name: str, **options: Any) -> ToolOutcome:
    """Apply a tool: ``apply_tools("config.yaml", "size_based")`` (see ToolOptions)."""
    if "plugins" in options:
        options["plugins"] = tuple(options["plugins"])
    return run_tool(config_path, ToolOptions(tool_name=tool_name, **options))


def run_tool(config_path: str | os.PathLike[str], options: ToolOptions) -> ToolOutcome:
    config = load_config(config_path)
    layout = Layout.from_config(config)
    # The original tool's variables (TOOLS_* among them), for every rank and its plugins.
    version = options.tool_name_override or options.tool_name
    with exported(original_environment(config, config_path, version)):
        return _run_tool_with_environment(config, layout, options, config_path)


def _run_tool_with_environment(
    config: Config, layout: Layout, options: ToolOptions, config_path: str | os.PathLike[str]
) -> ToolOutcome:
    load_tools(options.plugins)
    classes = tool_classes(options.tool_name)
    world = launched_world_size()
    if world is not None and world > 1:
        return _run_as_mpi_rank(config, layout, classes, options, str(config_path))
    configure_logging(layout, 0, config.downloader_parameters.logger_level, console=True)
    ranks = options.ranks or config.tools_parameters.workers_per_node
    try:
        with raising_stop_signals(), OutputLock(layout.root, _command(options, config_path)):
            context = prepare(config, layout, classes, options, ranks)
            if ranks > 1:
                ended = launch_local_ranks(
                    ranks, _rank_argv(str(config_path), options), stop_grace()
                )
                _check_ranks_exit(ended, layout, options, str(config_path))
                return _outcome(context)
            _run_runner(classes, context)
            return _finish(classes, context)
    except (KeyboardInterrupt, StopSignal) as exc:
        signum = stop_signal_of(exc)
        raise RunStopped(
            signum or signal.SIGTERM, _stopped_line(options, str(config_path))
        ) from None


def _command(options: ToolOptions, config_path: str | os.PathLike[str]) -> str:
    return f"distdl tools {config_path} {options.tool_name}"


def _stopped_line(options: ToolOptions, config_path: str) -> str:
    return f"stopped: continue with: distdl tools {config_path} {_tool_args(options)}"


def _tool_args(options: ToolOptions) -> str:
    return " ".join([options.tool_name, *_option_argv(options)])


def _option_argv(options: ToolOptions) -> list[str]:
    argv = ["--input", options.input_version]
    if options.tool_name_override:
        argv += ["--tool-name-override", options.tool_name_override]
    for plugin in options.plugins:
        argv += ["--plugin", plugin]
    return argv


def _rank_argv(config_path: str, options: ToolOptions) -> list[str]:
    """What the launched ranks run: the stages before are done, so no reset flag."""
    plugins = [str(Path(p).resolve()) if p.endswith(".py") else p for p in options.plugins]
    resolved = ToolOptions(
        options.tool_name, options.input_version, options.tool_name_override, plugins=tuple(plugins)
    )
    return ["tools", config_path, options.tool_name, *_option_argv(resolved)]


def _run_runner(classes: ToolClasses, context: ToolContext) -> dict[str, int]:
    done = classes.runner(context).run()
    assert isinstance(done, dict)
    log.info(
        "%s rank %d: %d partitions done (%d already were)",
        context.folder.name,
        context.rank,
        done["partitions"],
        done["skipped"],
    )
    return done


def _finish(classes: ToolClasses, context: ToolContext) -> ToolOutcome:
    folder = context.folder
    totals = verify(folder, classes.runner.output_kind)
    return ToolOutcome(folder.name, folder.root, totals, describe(folder, totals))


def _outcome(context: ToolContext) -> ToolOutcome:
    folder = context.folder
    totals = folder.stage_summary("verified")
    if totals is None:
        raise ToolError(f"{folder.name}: the ranks ended without verifying the version")
    return ToolOutcome(folder.name, folder.root, totals, describe(folder, totals))


def _check_ranks_exit(
    ended: RanksExit, layout: Layout, options: ToolOptions, config_path: str
) -> None:
    if ended.code == 0:
        return
    if ended.stopped_by is not None or ended.code in (130, 143):
        signum = ended.stopped_by or (signal.SIGINT if ended.code == 130 else signal.SIGTERM)
        raise RunStopped(signum, _stopped_line(options, config_path))
    if ended.reported:
        raise AlreadyReported(ended.code)
    death = ended.death() or f"the MPI ranks exited with code {ended.code}"
    raise RankFailure(
        f"{death}; see {layout.logs}; continue with: distdl tools {config_path} "
        f"{_tool_args(options)}"
    )


# -- under a launcher ----------------------------------------------------------------------
def _run_as_mpi_rank(
    config: Config, layout: Layout, classes: ToolClasses, options: ToolOptions, config_path: str
) -> ToolOutcome:
    comm = checked_world()
    rank, size = comm.Get_rank(), comm.Get_size()
    configure_logging(layout, rank, config.downloader_parameters.logger_level, console=rank == 0)
    try:
        # Signals are noted, and acted on in rank 0's steps and in each rank's share of the
        # partitions: a rank that left a collective on its own would leave the others
        # waiting in it until the launcher killed them.
        with noting_stop_signals(), contextlib.ExitStack() as held:
            lock = OutputLock(layout.root, _command(options, config_path))

            def take_lock() -> None:  # on rank 0 only; a refusal reaches every rank
                held.enter_context(lock)

            def prepare_version() -> None:
                prepare(config, layout, classes, options, size)

            on_rank0(comm, take_lock)
            on_rank0(comm, prepare_version)
            context = prepare_view(config, layout, classes, options, rank, size)
            mine = _guarded_share(classes, context)
            wait_for_all(comm)
            outcomes = comm.gather(mine, root=0)
            outcome = on_rank0(comm, lambda: _judge(outcomes, classes, context))
    except (KeyboardInterrupt, StopSignal) as exc:
        signum = stop_signal_of(exc) or signal.SIGTERM
        raise RunStopped(signum, _stopped_line(options, config_path) if rank == 0 else "") from None
    if rank != 0 or was_launched_by_us():
        return ToolOutcome(outcome.name, outcome.folder, outcome.totals, "")
    return outcome


def prepare_view(
    config: Config, layout: Layout, classes: ToolClasses, options: ToolOptions, rank: int, size: int
) -> ToolContext:
    """This rank's context, once rank 0 prepared the version (nothing is written here)."""
    from distdl.tools.pipeline import open_version

    folder = tool_folder(layout, options.version_name)
    source = open_version(layout, options.input_version)
    return ToolContext(config, layout, classes.name, folder, source, rank, size)


def _guarded_share(classes: ToolClasses, context: ToolContext) -> tuple[str, Any]:
    """This rank's partitions; a failure or a stop is reported to rank 0, never swallowed:
    every rank goes on to the collectives that follow."""
    try:
        with raising_stop_signals():  # a signal noted before is raised here
            return ("ok", _run_runner(classes, context))
    except (KeyboardInterrupt, StopSignal) as exc:
        return ("stopped", stop_signal_of(exc) or signal.SIGTERM)
    except DistdlError as exc:
        return ("failed", f"rank {context.rank}: {exc}")
    except Exception as exc:
        log.exception("rank %d failed", context.rank)
        return ("failed", f"rank {context.rank}: {type(exc).__name__}: {exc}")


def _judge(
    outcomes: list[tuple[str, Any]], classes: ToolClasses, context: ToolContext
) -> ToolOutcome:
    failures = [detail for status, detail in outcomes if status == "failed"]
    if failures:
        raise RankFailure("; ".join(failures) + "; run the tool again to continue")
    stops = [detail for status, detail in outcomes if status == "stopped"]
    if stops:
        raise StopSignal(stops[0])  # on rank 0's step: every rank stops
    return _finish(classes, context)
