"""Composition root for library users and the CLI: run, resume, reset, status.

The process that launches local MPI ranks imports only what launching needs: MPI, the
network, image and table stacks (pyarrow for the summary included) are imported where they
are used, in the ranks (a second saved before the first request). A test checks it.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from distdl.cluster.environment import exported, original_environment
from distdl.config import Config, load_config, proxy_choice
from distdl.core.stopping import stopped_line
from distdl.errors import AlreadyReported, RankFailure, RunStopped
from distdl.io.checkpoint import Checkpoint
from distdl.io.lock import OutputLock
from distdl.layout import Layout
from distdl.reset import reset_output
from distdl.runtime.job_deadline import job_deadline
from distdl.runtime.launch import (
    RanksExit,
    default_rank_count,
    launch_local_ranks,
    launched_world_size,
    stop_grace,
    was_launched_by_us,
)
from distdl.runtime.logs import configure_logging
from distdl.runtime.rank_zero import on_rank0
from distdl.runtime.stop_signals import (
    StopSignal,
    noting_stop_signals,
    raising_stop_signals,
    stop_signal_of,
)
from distdl.stages import (
    STAGES,
    InputFormat,
    Stage,
    ensure_batched,
    require_started,
    stages_until,
)

if TYPE_CHECKING:
    from distdl.runtime.coordinator import RunReport
    from distdl.runtime.world import World

log = logging.getLogger("distdl")


@dataclass(frozen=True)
class RunOptions:
    until: Stage = "downloaded"
    ranks: int | None = None
    input_format: InputFormat | None = None
    retry_errors: frozenset[int] = frozenset()
    resume: bool = False
    quiet: bool = False  # no progress on the terminal, only warnings and errors


@dataclass
class RunOutcome:
    completed_stages: list[Stage]
    summary: str
    report: RunReport | None = None


def download_images(config_path: str | os.PathLike[str], **options: object) -> RunOutcome:
    """Run every stage not yet complete: ``download_images("config.yaml")``."""
    return run(config_path, RunOptions(**options))  # type: ignore[arg-type]


def run(config_path: str | os.PathLike[str], options: RunOptions = RunOptions()) -> RunOutcome:
    """Raises RunStopped when SIGINT, SIGTERM or SIGUSR1 stopped it (gracefully)."""
    config = load_config(config_path)
    proxy_choice(config.downloader_parameters, os.environ)  # refuse an unusable proxy now
    layout = Layout.from_config(config)
    # The original tool's variables, for every rank and what users run from it.
    with exported(original_environment(config, config_path)):
        return _run_with_environment(config, layout, options, config_path)


def _run_with_environment(
    config: Config, layout: Layout, options: RunOptions, config_path: str | os.PathLike[str]
) -> RunOutcome:
    world = launched_world_size()
    if world is not None and world > 1:
        return _run_as_mpi_rank(config, layout, options, str(config_path))
    level = config.downloader_parameters.logger_level
    configure_logging(layout, 0, level, console=True, quiet=options.quiet)
    signum: int | None = None
    try:
        with (
            raising_stop_signals(),
            OutputLock(layout.root, _lock_command(options, config_path)),
            _job_deadline(config, leads=True),
        ):
            return _run_here(config, layout, options, config_path)
    except (KeyboardInterrupt, StopSignal) as exc:
        signum = stop_signal_of(exc)
    assert signum is not None
    raise RunStopped(signum, _stopped_line(layout, str(config_path)))


def _job_deadline(config: Config, *, leads: bool) -> contextlib.AbstractContextManager[object]:
    """In a Slurm job, the process that leads the run stops it ``slurm.stop_margin`` seconds
    before the job's time limit (see :mod:`distdl.runtime.job_deadline`)."""
    watch = job_deadline(config.slurm.stop_margin) if leads else None
    return watch if watch is not None else contextlib.nullcontext()


def _stopped_line(layout: Layout, config_path: str) -> str:
    """``stopped: N partitions done, M left; continue with: …`` from what is on disk."""
    from distdl.summary import dataset_totals

    totals = dataset_totals(layout)
    checkpoint = Checkpoint.load(layout.checkpoint_file)
    left = totals.partitions_planned - totals.partitions_done
    planned = checkpoint.is_complete("batched")
    return stopped_line(
        totals.partitions_done, left if planned else None, config_path, started=checkpoint.started
    )


def _lock_command(options: RunOptions, config_path: str | os.PathLike[str]) -> str:
    return f"distdl {'resume' if options.resume else 'run'} {config_path}"


def chosen_ranks(config: Config, ranks: int | None) -> int:
    """The ranks a run starts: ``ranks`` when given (``--ranks``), else one worker per
    ``cpu_per_worker`` usable cores plus rank 0 (one process when a worker has them all)."""
    return ranks or default_rank_count(config.downloader_parameters.cpu_per_worker)


def _run_here(
    config: Config, layout: Layout, options: RunOptions, config_path: str | os.PathLike[str]
) -> RunOutcome:
    """Launch MPI ranks for the stages (``--ranks`` > 1), or run them in this process."""
    checkpoint = Checkpoint.load(layout.checkpoint_file)
    if options.resume:
        require_started(checkpoint, str(config_path))
    ranks = chosen_ranks(config, options.ranks)
    if _wants_download(checkpoint, options) and ranks > 1:
        # The ranks do the rest: rank 0 plans, writes the profiles table and coordinates.
        # Launching before planning lets the other ranks start (seconds of imports) while
        # rank 0 plans: the first request goes out that much sooner.
        ended = launch_local_ranks(ranks, _rank_argv(str(config_path), options), stop_grace())
        _check_ranks_exit(ended, layout, str(config_path))
        checkpoint = Checkpoint.load(layout.checkpoint_file)  # rank 0 moved it on
        done = [stage for stage in STAGES if checkpoint.is_complete(stage)]
        return RunOutcome(done, "")  # rank 0 printed the run's summary: one is enough
    from distdl.runtime.world import LocalWorld

    return _run_stages(LocalWorld(workers=max(1, ranks - 1)), config, layout, options, config_path)


def _check_ranks_exit(ended: RanksExit, layout: Layout, config_path: str) -> None:
    """Turn how the launched ranks ended into this process's outcome."""
    if ended.code == 0:
        return
    if ended.stopped_by is not None and ended.killed_after_grace:
        log.error("the ranks did not stop within the grace period: killed")
        raise RunStopped(ended.stopped_by, _stopped_line(layout, config_path))
    if ended.code in (130, 143):  # stopped gracefully; rank 0 printed the line
        raise RunStopped(signal.SIGINT if ended.code == 130 else signal.SIGTERM)
    if ended.reported:  # rank 0 said what happened: its exit code says the rest
        raise AlreadyReported(ended.code)
    death = ended.death()
    if death is not None:
        raise RankFailure(
            f"{death} (exit code {ended.code}); continue with: distdl resume {config_path}"
        )
    raise RankFailure(f"the MPI ranks exited with code {ended.code}; see {layout.logs}")


def _wants(stage: Stage, checkpoint: Checkpoint, options: RunOptions) -> bool:
    return stage in stages_until(options.until) and not checkpoint.is_complete(stage)


def _wants_download(checkpoint: Checkpoint, options: RunOptions) -> bool:
    return _wants("downloaded", checkpoint, options) or (
        "downloaded" in stages_until(options.until) and bool(options.retry_errors)
    )


def _requeue_errors(layout: Layout, checkpoint: Checkpoint, options: RunOptions) -> None:
    if not options.retry_errors or "downloaded" not in stages_until(options.until):
        return
    from distdl.io.carry_over import requeue_error_partitions

    requeued = requeue_error_partitions(layout, options.retry_errors)
    if requeued:
        checkpoint.invalidate_from("downloaded")
    log.info("--retry-errors: %d partitions re-queued", requeued)


def _finish_download(layout: Layout, checkpoint: Checkpoint) -> None:
    from distdl.runtime.download import remaining_partitions

    left = remaining_partitions(layout)
    if left:
        raise RankFailure(f"{len(left)} partitions are still not done; run `distdl resume` again")
    checkpoint.mark_complete("downloaded")


def _rank_argv(config_path: str, options: RunOptions) -> list[str]:
    argv = ["run", config_path, "--until", options.until]
    if options.input_format:
        argv += ["--input-format", options.input_format]
    if options.retry_errors:
        argv += ["--retry-errors", ",".join(str(c) for c in sorted(options.retry_errors))]
    if options.quiet:
        argv.append("--quiet")
    return argv


def _run_as_mpi_rank(
    config: Config, layout: Layout, options: RunOptions, config_path: str
) -> RunOutcome:
    """Inside mpiexec/srun: rank 0 holds the output lock and leads every stage."""
    from distdl.runtime.mpi_channel import checked_world
    from distdl.runtime.world import MpiWorld

    comm = checked_world()
    rank = comm.Get_rank()
    level = config.downloader_parameters.logger_level
    configure_logging(layout, rank, level, console=rank == 0, quiet=options.quiet)
    job = os.environ.get("SLURM_JOB_ID")
    log.info("MPI rank %d of %d%s", rank, comm.Get_size(), f" in Slurm job {job}" if job else "")
    signum: int | None = None
    try:
        # Signals are noted, and acted on in rank 0's steps and the download loop: a rank
        # that left on its own would leave the others in a collective forever.
        with noting_stop_signals(), contextlib.ExitStack() as held:
            lock = OutputLock(layout.root, _lock_command(options, config_path))

            def take_lock() -> None:  # on rank 0 only; a refusal reaches every rank
                held.enter_context(lock)

            on_rank0(comm, take_lock)
            # Ranks that `distdl run` launched are stopped by it: it holds the deadline.
            held.enter_context(_job_deadline(config, leads=rank == 0 and not was_launched_by_us()))
            return _run_stages(MpiWorld(comm), config, layout, options, config_path)
    except (KeyboardInterrupt, StopSignal) as exc:
        signum = stop_signal_of(exc)
    assert signum is not None
    raise RunStopped(signum, _stopped_line(layout, config_path) if rank == 0 else "")


def _run_stages(
    world: World,
    config: Config,
    layout: Layout,
    options: RunOptions,
    config_path: str | os.PathLike[str],
) -> RunOutcome:
    """Rank 0 plans, writes the profiles table and coordinates; the other ranks download
    (in a :class:`LocalWorld`, one worker in this process)."""
    config_path = str(config_path)
    checkpoint = Checkpoint.load(layout.checkpoint_file)

    def plan() -> bool:
        if options.resume:
            require_started(checkpoint, config_path)
        ensure_batched(config, layout, checkpoint, options.input_format, config_path)
        return _wants("profiled", checkpoint, options)

    def profile() -> None:
        from distdl.profile import write_profiles_table

        write_profiles_table(config, layout)
        checkpoint.mark_complete("profiled")

    def requeue() -> bool:
        _requeue_errors(layout, checkpoint, options)
        return _wants("downloaded", checkpoint, options)

    if world.rank != 0:
        # The downloading side's libraries (aiohttp, the image stack) load while rank 0
        # plans, instead of after: a second sooner to the first request.
        importlib.import_module("distdl.runtime.worker_setup")
    if world.on_rank0(plan):
        world.on_rank0(profile)
    if not world.on_rank0(requeue):
        if world.rank != 0:
            return RunOutcome([], "")
        outcome = _outcome(layout, checkpoint, None)
        if options.until == "profiled":  # what the download would take, before it starts
            from distdl.status import plan_eta_text

            outcome.summary += "\n" + plan_eta_text(config, layout, world.workers)
        return outcome
    try:
        report = world.download(config, layout, options.retry_errors)
    except RankFailure as exc:
        if world.declared_dead:
            hint = _after_dead_ranks(layout, checkpoint, config_path)
            raise RankFailure(f"{exc}; {hint}") from None
        raise
    if world.rank != 0:
        return RunOutcome([], "")
    if report is not None and report.stopped_by is not None:
        _outcome(layout, checkpoint, report)  # the run's summary is saved all the same
        raise RunStopped(report.stopped_by, _stopped_line(layout, config_path))
    _finish_download(layout, checkpoint)
    return _outcome(layout, checkpoint, report)


def _after_dead_ranks(layout: Layout, checkpoint: Checkpoint, config_path: str) -> str:
    """What is left after the survivors of a dead rank finished: maybe nothing."""
    from distdl.runtime.download import remaining_partitions

    left = remaining_partitions(layout)
    if not left:
        checkpoint.mark_complete("downloaded")
        return "the other ranks did all its work: every partition is done"
    return f"{len(left)} partitions left; continue with: distdl resume {config_path}"


def _outcome(layout: Layout, checkpoint: Checkpoint, report: RunReport | None) -> RunOutcome:
    from distdl.summary import dataset_totals, render_run, render_totals, save_run_summary

    totals = dataset_totals(layout)
    if report is not None:
        save_run_summary(layout, report)
        text = render_run(report, totals)
    else:
        text = "\n".join(render_totals(totals))
    done = [stage for stage in STAGES if checkpoint.is_complete(stage)]
    return RunOutcome(done, text, report)


def status(
    config_path: str | os.PathLike[str], *, as_json: bool = False, sort: str = "rows_left"
) -> str:
    """What the output folder holds and how a run goes (see :mod:`distdl.status`)."""
    import json

    from distdl.status import collect_status, render_status

    config = load_config(config_path)
    collected = collect_status(config, Layout.from_config(config))
    return json.dumps(collected, indent=2) if as_json else render_status(collected, sort=sort)


def purge_previous(config_path: str | os.PathLike[str]) -> str:
    """Remove what earlier resets moved aside (see :mod:`distdl.previous`), under the lock."""
    from distdl.previous import purge_previous as purge

    config = load_config(config_path)
    layout = Layout.from_config(config)
    with OutputLock(layout.root, f"distdl reset {config_path} --purge-previous"):
        return purge(layout)


def reset(config_path: str | os.PathLike[str], stage: Stage, *, delete_images: bool = False) -> str:
    """Invalidate ``stage`` and every later one, all or nothing (see :mod:`distdl.reset`).

    Never touches anything outside the output folder; downloaded partitions are moved aside
    unless ``delete_images``.
    """
    config = load_config(config_path)
    layout = Layout.from_config(config)
    command = f"distdl reset {config_path} --stage {stage}"
    with OutputLock(layout.root, command):
        return reset_output(layout, stage, delete_images=delete_images)


def report(
    config_path: str | os.PathLike[str], output: str | os.PathLike[str] | None = None
) -> Path:
    """Write the HTML report of the output folder (default: ``logs_folder/report.html``);
    returns its path. Reads only: takes no lock (see :mod:`distdl.report`)."""
    from distdl.io.atomic import atomic_write_text
    from distdl.report.data import gather
    from distdl.report.html import render

    config = load_config(config_path)
    layout = Layout.from_config(config)
    path = Path(output) if output is not None else layout.logs / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, render(gather(config, layout, str(layout.root))))
    return path
