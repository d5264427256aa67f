"""The `distdl` command line: thin; every DistdlError becomes a message and its exit code."""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar

import typer
from rich.console import Console

from distdl.core.stopping import exit_code as stop_exit_code
from distdl.errors import ConfigError, DistdlError, OutputWriteError, RunStopped
from distdl.runtime.stop_signals import (
    StopSignal,
    defer_stop_signals,
    ignore_stop_signals,
    stop_signal_of,
)

if TYPE_CHECKING:
    from distdl.api import RunOutcome

app = typer.Typer(
    help="Download huge image datasets from URL lists, politely, over MPI ranks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: rich's panels label every flag `<bool>`
)
err = Console(stderr=True, highlight=False)
out = Console(highlight=False)
T = TypeVar("T")


class StageName(str, Enum):
    batched = "batched"
    profiled = "profiled"
    downloaded = "downloaded"


class InputFormatName(str, Enum):
    csv = "csv"
    tsv = "tsv"
    parquet = "parquet"


ConfigArg = Annotated[Path, typer.Argument(help="YAML config (see configs/example.yaml)")]


# OS errors that mean the output could not be written: one line and exit 10, no traceback.
WRITE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EACCES, errno.EPERM, errno.EROFS}
)


def _guarded(action: Callable[[], T]) -> T:
    try:
        return action()
    except ConfigError as exc:
        for problem in exc.problems:
            err.print(f"[red]config error:[/red] {problem}", markup=True, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    except DistdlError as exc:
        _fail(exc)
    except OSError as exc:
        if exc.errno not in WRITE_ERRNOS:
            raise
        _fail(OutputWriteError(exc.filename or "the output folder", exc))
    except (KeyboardInterrupt, StopSignal) as exc:
        # A stop outside a run's own handling (while starting, say): no traceback.
        signum = stop_signal_of(exc)
        raise typer.Exit(stop_exit_code(signum if signum is not None else 15)) from None


def _fail(exc: DistdlError) -> NoReturn:
    """One line and the error's exit code; nothing when it was reported already (an empty
    message), and a stop's line as it is (it is not an error)."""
    if isinstance(exc, RunStopped):
        if str(exc):
            err.print(str(exc), soft_wrap=True, markup=False)
    elif str(exc):
        err.print(f"[red]error:[/red] {exc}", soft_wrap=True)
    raise typer.Exit(exc.exit_code) from None


def _codes(text: str | None) -> frozenset[int]:
    if not text:
        return frozenset()
    try:
        return frozenset(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated integer codes, got {text!r}") from None


def _run(
    config: Path,
    until: StageName,
    ranks: int | None,
    input_format: InputFormatName | None,
    retry_errors: str | None,
    resume: bool,
    quiet: bool = False,
) -> None:
    if ranks is not None and ranks < 1:
        raise typer.BadParameter("--ranks must be at least 1")
    retry_codes = _codes(retry_errors)

    def start() -> RunOutcome:
        # Imported here, guarded: a Ctrl-C while pyarrow and Polars load is a stop too.
        from distdl.api import RunOptions, run

        options = RunOptions(
            until=until.value,
            ranks=ranks,
            input_format=input_format.value if input_format else None,
            retry_errors=retry_codes,
            resume=resume,
            quiet=quiet,
        )
        return run(config, options)

    outcome = _guarded(start)
    if outcome.summary:
        out.print(outcome.summary, soft_wrap=True)


UntilOpt = Annotated[StageName, typer.Option(help="stop after this stage")]
RanksOpt = Annotated[
    int | None, typer.Option(help="local MPI ranks to start (default: cores + 1); 1 = no MPI")
]
FormatOpt = Annotated[
    InputFormatName | None, typer.Option("--input-format", help="override the input extension")
]
RetryOpt = Annotated[
    str | None,
    typer.Option(
        "--retry-errors", help="re-queue rows whose last error had one of these codes, e.g. 429,-12"
    ),
]

QuietOpt = Annotated[
    bool,
    typer.Option("--quiet", "-q", help="no progress on the terminal, only warnings and errors"),
]


def _stage_command(resume: bool) -> Callable[..., None]:
    """`run` and `resume` take the same options; they differ only in refusing a fresh start."""

    def command(
        config: ConfigArg,
        until: UntilOpt = StageName.downloaded,
        ranks: RanksOpt = None,
        input_format: FormatOpt = None,
        retry_errors: RetryOpt = None,
        quiet: QuietOpt = False,
    ) -> None:
        _run(config, until, ranks, input_format, retry_errors, resume=resume, quiet=quiet)

    return command


app.command(
    "run", help="Run every stage not yet complete (plan → profile → download), up to --until."
)(_stage_command(resume=False))
app.command("resume", help="Like `run`, but refuses when nothing was started for this config.")(
    _stage_command(resume=True)
)


def _version(wanted: bool) -> None:
    if wanted:
        from distdl import __version__

        out.print(f"distdl {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="print the version"),
    ] = False,
) -> None:
    """Download huge image datasets from URL lists, politely, over MPI ranks."""


@app.command("reset")
def reset_command(
    config: ConfigArg,
    stage: Annotated[
        StageName | None, typer.Option(help="invalidate this stage and every later one")
    ] = None,
    delete_images: Annotated[
        bool,
        typer.Option(
            "--delete-images", help="delete downloaded partitions instead of moving them aside"
        ),
    ] = False,
    purge_previous: Annotated[
        bool,
        typer.Option(
            "--purge-previous", help="remove what earlier resets moved aside (.previous-* entries)"
        ),
    ] = False,
) -> None:
    """Invalidate a stage and the ones after it (what it moves aside, it says where), or
    remove what earlier resets moved aside. Only ever touches path_to_output."""
    from distdl.api import purge_previous as purge
    from distdl.api import reset

    if stage is None and not purge_previous:
        raise typer.BadParameter("give --stage, --purge-previous, or both")
    if stage is not None:
        message = _guarded(lambda: reset(config, stage.value, delete_images=delete_images))
        out.print(message or "nothing to reset", soft_wrap=True)
    if purge_previous:
        out.print(_guarded(lambda: purge(config)), soft_wrap=True)


class SortKey(str, Enum):
    rows_left = "rows_left"
    rate = "rate"
    error_share = "error_share"


@app.command("status")
def status_command(
    config: ConfigArg,
    as_json: Annotated[
        bool, typer.Option("--json", help="one JSON object (schema distdl.status/1)")
    ] = False,
    sort: Annotated[SortKey, typer.Option(help="order of the hosts table")] = SortKey.rows_left,
) -> None:
    """Stages, partitions, rows by error code, hosts, the ETA, and a run under way: read
    from the output folder alone, while a run goes on or after it."""
    from distdl.api import status

    text = _guarded(lambda: status(config, as_json=as_json, sort=sort.value))
    if as_json:
        sys.stdout.write(text + "\n")
    else:
        out.print(text, soft_wrap=True, markup=False)


@app.command("report")
def report_command(
    config: ConfigArg,
    output: Annotated[
        Path | None, typer.Option(help="HTML file to write (default: logs_folder/report.html)")
    ] = None,
) -> None:
    """One self-contained HTML file of plots (opens offline): throughput over time, the
    critical hosts' budgets against their 429/5xx, error codes, image sizes, the ETA."""
    from distdl.api import report

    path = _guarded(lambda: report(config, output))
    out.print(f"report: {path}", soft_wrap=True, markup=False)


@app.command("submit")
def submit_command(
    config: ConfigArg,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="print the job script and sbatch commands only")
    ] = False,
    tools: Annotated[
        str | None, typer.Option("--tools", help="submit this tool instead of the download")
    ] = None,
    nodes: Annotated[
        int | None, typer.Option(min=1, help="nodes per job (default: max_nodes)")
    ] = None,
    ntasks_per_node: Annotated[
        int | None,
        typer.Option(min=1, help="MPI tasks per node (default: workers_per_node)"),
    ] = None,
) -> None:
    """Submit a chain of Slurm jobs (num_downloads of them; num_workers for --tools), each
    starting after the last ended and resuming where it stopped."""
    from distdl.cluster.submit import build_chain, dry_run_text, submit_chain, submitted_text
    from distdl.config import load_config
    from distdl.layout import Layout

    def submit() -> str:
        loaded = load_config(config)
        chain = build_chain(
            loaded, config, tool=tools, nodes=nodes, ntasks_per_node=ntasks_per_node
        )
        if dry_run:
            return dry_run_text(chain)
        layout = Layout.from_config(loaded)
        return submitted_text(chain, submit_chain(chain, layout), layout, str(config))

    out.print(_guarded(submit), soft_wrap=True, markup=False, highlight=False)


@app.command("env")
def env_command(
    config: ConfigArg,
    tool: Annotated[
        str | None, typer.Option("--tool", help="add the tool's OUTPUT_TOOLS_LOGS_FOLDER")
    ] = None,
) -> None:
    """Print the original tool's environment variables (CONFIG_PATH, PATH_TO_OUTPUT,
    OUTPUT_*, DOWNLOADER_*, TOOLS_*) as export lines: eval "$(distdl env CONFIG)"."""
    from distdl.cluster.environment import export_lines, original_environment
    from distdl.config import load_config

    loaded = _guarded(lambda: load_config(config))
    sys.stdout.write("\n".join(export_lines(original_environment(loaded, config, tool))) + "\n")


@app.command("doctor")
def doctor_command(
    config: Annotated[
        Path | None, typer.Argument(help="optional config, to check `contact`")
    ] = None,
) -> None:
    """Check the installation: Python, MPI, pillow-simd and its codecs, libraries, CPUs."""
    from distdl import doctor

    contact = None
    if config is not None:
        from distdl.config import load_config

        contact = _guarded(lambda: load_config(config)).downloader_parameters.contact
    checks = doctor.run_checks(contact=contact)
    out.print(doctor.render(checks), soft_wrap=True)
    raise typer.Exit(doctor.exit_code(checks))


@app.command("demo")
def demo_command(
    hosts: Annotated[int, typer.Option(help="simulated servers")] = 12,
    images: Annotated[int, typer.Option(help="images in the URL list")] = 1200,
    ranks: Annotated[
        int | None,
        typer.Option(help="MPI ranks (1 = in-process; default: as distdl run picks them)"),
    ] = None,
    output: Annotated[Path | None, typer.Option(help="folder for the run (default: fresh)")] = None,
    config: Annotated[
        Path | None, typer.Option(help="config to start from (default: configs/example.yaml)")
    ] = None,
) -> None:
    """A full run against a local simulated server fleet with hidden rate limits."""
    from distdl.demo import run_demo

    if hosts < 1 or images < hosts:
        raise typer.BadParameter("need --hosts >= 1 and at least one image per host")
    summary = _guarded(
        lambda: run_demo(hosts=hosts, images=images, ranks=ranks, folder=output, config=config)
    )
    out.print(summary, soft_wrap=True)


def _as_command(entry: Callable[[], object]) -> None:
    """An entry point's whole life: a Ctrl-C while modules load stops the run with no
    traceback; once it is over, a late stop signal has nothing left to stop."""
    defer_stop_signals()
    try:
        entry()
    finally:
        ignore_stop_signals()


def main() -> None:
    _as_command(app)


legacy_app = typer.Typer(
    add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None
)


@legacy_app.command()
def legacy_command(
    config: ConfigArg,
    reset_batched: Annotated[bool, typer.Option("--reset_batched", help="replan first")] = False,
    reset_profiled: Annotated[
        bool, typer.Option("--reset_profiled", help="reprofile first")
    ] = False,
) -> None:
    """The original tool's entry point: `distributed_downloader CONFIG`."""
    from distdl.api import RunOptions, reset, run

    if reset_batched and reset_profiled:
        raise typer.BadParameter("give only one of --reset_batched and --reset_profiled")
    if reset_batched or reset_profiled:
        stage = "batched" if reset_batched else "profiled"
        out.print(_guarded(lambda: reset(config, stage)), soft_wrap=True)
    outcome = _guarded(lambda: run(config, RunOptions()))
    out.print(outcome.summary, soft_wrap=True)


def legacy_main() -> None:
    _as_command(legacy_app)


# `distdl tools`, `distdl export` and `distributed_downloader_tools` (distdl/tools/cli.py).
from distdl.tools.cli import legacy_tools_app, register_tool_commands  # noqa: E402

register_tool_commands(app, _guarded, out)


def legacy_tools_main() -> None:
    _as_command(lambda: legacy_tools_app(_guarded, out)())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
