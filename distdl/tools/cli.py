"""The ``distdl tools`` and ``distdl export`` commands, and the original tool's
``distributed_downloader_tools`` entry point; registered on the main app by distdl.cli."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console


class ExportFormat(str, Enum):
    webdataset = "webdataset"
    huggingface = "huggingface"


def register_tool_commands(
    app: typer.Typer, guarded: Callable[[Callable[[], Any]], Any], out: Console
) -> None:
    @app.command("tools")
    def tools_command(
        config: Annotated[Path | None, typer.Argument(help="YAML config")] = None,
        tool: Annotated[str | None, typer.Argument(help="tool name (see --list)")] = None,
        reset_filtering: Annotated[
            bool, typer.Option("--reset-filtering", help="redo every stage")
        ] = False,
        reset_scheduling: Annotated[
            bool, typer.Option("--reset-scheduling", help="redo scheduling on")
        ] = False,
        reset_runners: Annotated[
            bool, typer.Option("--reset-runners", help="redo every partition")
        ] = False,
        tool_name_override: Annotated[
            str | None, typer.Option(help="write the version as {tools_folder}/NAME")
        ] = None,
        input_version: Annotated[
            str, typer.Option("--input", help="version to read: 'download' or a tool version")
        ] = "download",
        plugin: Annotated[
            list[str] | None, typer.Option(help="module or .py file registering tools")
        ] = None,
        ranks: Annotated[
            int | None,
            typer.Option(help="local MPI ranks (default: tools_parameters.workers_per_node)"),
        ] = None,
        list_tools: Annotated[
            bool, typer.Option("--list", help="list the registered tools")
        ] = False,
    ) -> None:
        """Apply a post-download tool: filter → schedule → run on ranks → verify."""
        plugins = tuple(plugin or ())
        if list_tools:
            out.print("\n".join(guarded(lambda: _listing(plugins))), soft_wrap=True)
            return
        if config is None or tool is None:
            raise typer.BadParameter("give CONFIG and TOOL (or --list)")
        resets = [
            n
            for n, on in (
                ("filtering", reset_filtering),
                ("scheduling", reset_scheduling),
                ("runners", reset_runners),
            )
            if on
        ]
        if len(resets) > 1:
            raise typer.BadParameter("give at most one --reset-* option")
        if ranks is not None and ranks < 1:
            raise typer.BadParameter("--ranks must be at least 1")

        def start() -> Any:
            from distdl.tools.apply import run_tool
            from distdl.tools.pipeline import ToolOptions

            options = ToolOptions(
                tool,
                input_version,
                tool_name_override,
                resets[0] if resets else None,
                plugins,
                ranks,
            )  # type: ignore[arg-type]
            return run_tool(config, options)

        outcome = guarded(start)
        if outcome.summary:
            out.print(outcome.summary, soft_wrap=True)

    @app.command("export")
    def export_command(
        config: Annotated[Path, typer.Argument(help="YAML config")],
        version: Annotated[str, typer.Argument(help="'download' or a tool version's name")],
        to: Annotated[Path, typer.Option("--to", help="folder to write (must not exist)")],
        format: Annotated[
            ExportFormat, typer.Option(help="output layout")
        ] = ExportFormat.webdataset,
        shard_size: Annotated[int, typer.Option(help="rows per shard")] = 10_000,
    ) -> None:
        """Materialise a dataset version as WebDataset tar shards or a Hugging Face folder."""
        if shard_size < 1:
            raise typer.BadParameter("--shard-size must be at least 1")

        def start() -> str:
            from distdl.tools.exports import export_version

            return export_version(config, version, to, format.value, shard_size)

        out.print(guarded(start), soft_wrap=True)


def _listing(plugins: tuple[str, ...]) -> list[str]:
    from distdl.tools.plugins import load_tools
    from distdl.tools.registry import ToolsRegistryBase, registered_tools

    load_tools(plugins)
    lines = []
    for name in registered_tools():
        families = ToolsRegistryBase.TOOLS_REGISTRY[name]
        lines.append(
            f"{name:<20} {', '.join(f'{f}: {c.__qualname__}' for f, c in families.items())}"
        )
    return lines


def legacy_tools_app(guarded: Callable[[Callable[[], Any]], Any], out: Console) -> typer.Typer:
    """``distributed_downloader_tools CONFIG TOOL [--reset_filtering | --reset_scheduling |
    --reset_runners] [--tool_name_override NAME]``, as the original spells it."""
    legacy = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

    @legacy.command()
    def legacy_tools(
        config_path: Annotated[Path, typer.Argument(help="YAML config")],
        tool_name: Annotated[str, typer.Argument(help="tool name")],
        reset_filtering: Annotated[bool, typer.Option("--reset_filtering")] = False,
        reset_scheduling: Annotated[bool, typer.Option("--reset_scheduling")] = False,
        reset_runners: Annotated[bool, typer.Option("--reset_runners")] = False,
        tool_name_override: Annotated[str | None, typer.Option("--tool_name_override")] = None,
    ) -> None:
        from distdl.tools.apply import run_tool
        from distdl.tools.pipeline import ToolOptions

        # The original applies the first flag given in this order.
        reset = (
            "filtering"
            if reset_filtering
            else "scheduling"
            if reset_scheduling
            else "runners"
            if reset_runners
            else None
        )
        options = ToolOptions(tool_name, tool_name_override=tool_name_override, reset=reset)  # type: ignore[arg-type]
        outcome = guarded(lambda: run_tool(config_path, options))
        if outcome.summary:
            out.print(outcome.summary, soft_wrap=True)

    return legacy
