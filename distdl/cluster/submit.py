"""``distdl submit``: a chain of sbatch jobs, each starting after the last ended.

The chain has ``num_downloads`` jobs (``tools_parameters.num_workers`` for a tool), linked by
``--dependency=afterany:<previous>``: a job starts once the one before it ended, however it
ended (stopped before its time limit, failed, cancelled). Each runs the same rendered
script; the id of the job it follows reaches it as ``DISTDL_AFTER_JOB``, so it takes over
that job's output lock at once (:mod:`distdl.io.lock`) even when the lock was left on
another node. Job ids are parsed from ``sbatch --parsable`` (``id`` or ``id;cluster``) and
recorded in the chain file (:mod:`distdl.cluster.chain`) as each is accepted; a refused
submission raises :class:`~distdl.errors.SubmitError` with sbatch's own message.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from distdl.cluster.chain import ChainRecord, record_path, still_queued, write_chain
from distdl.cluster.commands import Runner, run_command
from distdl.cluster.environment import original_environment
from distdl.cluster.script import render_script, setup_lines
from distdl.cluster.site import Site, resolve_site
from distdl.config import Config
from distdl.core.text import plural
from distdl.errors import ConfigError, StateError, SubmitError
from distdl.io.atomic import atomic_write_text
from distdl.io.lock import AFTER_JOB_ENV
from distdl.layout import Layout

TEMPLATES_ENV = "DISTDL_SLURM_TEMPLATES"  # a folder holding distdl.sbatch and tools.sbatch


@dataclass(frozen=True)
class JobShape:
    jobs: int
    nodes: int
    ntasks_per_node: int
    cpus_per_task: int


@dataclass(frozen=True)
class Chain:
    """A rendered chain, ready to submit."""

    kind: str  # "download" or "tools"
    tool: str | None
    shape: JobShape
    script: str
    script_path: Path
    args: tuple[str, ...]  # after the script: CONFIG [TOOL]

    def sbatch_argv(self, previous: str | None) -> list[str]:
        argv = ["sbatch", "--parsable"]
        if previous is not None:
            argv += [
                f"--dependency=afterany:{previous}",
                f"--export=ALL,{AFTER_JOB_ENV}={previous}",
            ]
        return [*argv, str(self.script_path), *self.args]


def templates_folder(env: Mapping[str, str] = os.environ) -> Path:
    """``$DISTDL_SLURM_TEMPLATES``, else the templates shipped with distdl (the source
    tree's ``slurm/*.sbatch`` are links to them, so an installed wheel has them too)."""
    if env.get(TEMPLATES_ENV):
        return Path(env[TEMPLATES_ENV])
    return Path(__file__).resolve().parent / "templates"


def job_shape(
    config: Config, tool: str | None, nodes: int | None, ntasks_per_node: int | None
) -> JobShape:
    section = config.tools_parameters if tool else config.downloader_parameters
    jobs = (
        config.tools_parameters.num_workers if tool else config.downloader_parameters.num_downloads
    )
    shape = JobShape(
        jobs=jobs,
        nodes=nodes or section.max_nodes,
        ntasks_per_node=ntasks_per_node or section.workers_per_node,
        cpus_per_task=section.cpu_per_worker,
    )
    if tool is None and shape.nodes * shape.ntasks_per_node < 2:
        raise ConfigError(
            "downloader_parameters.workers_per_node: a download job needs at least 2 tasks "
            "(rank 0 coordinates, the others download); raise workers_per_node or max_nodes, "
            "or give --ntasks-per-node 2"
        )
    return shape


def build_chain(
    config: Config,
    config_path: str | os.PathLike[str],
    *,
    tool: str | None = None,
    nodes: int | None = None,
    ntasks_per_node: int | None = None,
    site: Site | None = None,
    templates: Path | None = None,
) -> Chain:
    layout = Layout.from_config(config)
    site = site or resolve_site(config.slurm)
    shape = job_shape(config, tool, nodes, ntasks_per_node)
    kind = "tools" if tool else "download"
    template_file = (templates or templates_folder()) / (
        "tools.sbatch" if tool else "distdl.sbatch"
    )
    try:
        template = template_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise SubmitError(
            f"cannot read the job template {template_file} ({exc.strerror}); point "
            f"{TEMPLATES_ENV} at a folder holding distdl.sbatch and tools.sbatch"
        ) from None
    options = {
        "nodes": str(shape.nodes),
        "ntasks-per-node": str(shape.ntasks_per_node),
        "cpus-per-task": str(shape.cpus_per_task),
        "output": str(layout.logs / f"slurm-{'tools-' if tool else ''}%j.out"),
    }
    if tool:  # the tools stop on Slurm's signal; downloads read their end time
        options["signal"] = f"USR1@{round(config.slurm.stop_margin)}"
    for name in ("account", "partition", "time"):
        value = getattr(site, name)
        if value:
            options[name] = value
    environment = original_environment(config, config_path, tool)
    try:
        setup = setup_lines(site, environment)
        script = render_script(template, options, site.sbatch_options, setup)
    except ValueError as exc:
        raise SubmitError(f"{template_file}: {exc}") from None
    config_arg = str(Path(config_path).resolve())
    return Chain(
        kind=kind,
        tool=tool,
        shape=shape,
        script=script,
        script_path=layout.schedules / "slurm" / f"{kind}{'-' + tool if tool else ''}.sbatch",
        args=(config_arg, tool) if tool else (config_arg,),
    )


def dry_run_text(chain: Chain) -> str:
    """The script and the sbatch commands that would submit the chain, as shell."""
    commands = []
    for index in range(1, chain.shape.jobs + 1):
        previous = f"$JOB{index - 1}" if index > 1 else None
        argv = chain.sbatch_argv(previous)
        shown = " ".join(a if previous and previous in a else shlex.quote(a) for a in argv)
        commands.append(f"JOB{index}=$({shown})")
    return "\n".join(
        [
            f"# the job script, written to {chain.script_path}:",
            chain.script.rstrip("\n"),
            f"# the sbatch commands ({plural(chain.shape.jobs, chain.kind + ' job')}, "
            "each after the last):",
            *commands,
        ]
    )


def parse_job_id(stdout: str) -> str:
    """The job id ``sbatch --parsable`` printed: ``123`` or ``123;cluster``."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    job = lines[-1].split(";")[0] if lines else ""
    if not job.isdigit():
        raise SubmitError(f"sbatch --parsable printed no job id: {stdout.strip()!r}")
    return job


def submit_chain(chain: Chain, layout: Layout, runner: Runner = run_command) -> list[str]:
    """Submit every job of the chain; their ids. Each accepted job is recorded at once."""
    queued = still_queued(layout, runner)
    if queued:
        raise StateError(
            f"jobs {', '.join(queued)} of an earlier chain on {layout.root} are still queued "
            "or running: wait for them, or cancel them with scancel, then submit again"
        )
    layout.logs.mkdir(parents=True, exist_ok=True)
    chain.script_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(chain.script_path, chain.script)
    record = ChainRecord.new(chain.kind, chain.tool, str(chain.script_path))
    previous: str | None = None
    for index in range(1, chain.shape.jobs + 1):
        done = runner(chain.sbatch_argv(previous))
        if not done.ok:
            submitted = f"; jobs {', '.join(record.jobs)} were submitted" if record.jobs else ""
            message = (done.stderr or done.stdout).strip() or f"exit code {done.returncode}"
            raise SubmitError(
                f"sbatch refused job {index} of {chain.shape.jobs}: {message}{submitted}"
            )
        previous = parse_job_id(done.stdout)
        record = record.with_job(previous)
        write_chain(record_path(layout), record)
    return list(record.jobs)


def submitted_text(chain: Chain, jobs: list[str], layout: Layout, config_path: str) -> str:
    arrow = " -> ".join(jobs)
    return (
        f"submitted {plural(len(jobs), chain.kind + ' job')}, each after the last "
        f"(afterany): {arrow}\n"
        f"  {chain.shape.nodes} nodes x {chain.shape.ntasks_per_node} tasks, "
        f"{chain.shape.cpus_per_task} CPUs per task; script {chain.script_path}\n"
        f"  output: {layout.logs}/slurm-{'tools-' if chain.tool else ''}<job id>.out; "
        f"watch with: distdl status {config_path}"
    )
