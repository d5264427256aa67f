"""The stages of one tool, without processes or locks: open the input version, check this
version's identity (rebuild when stale), filter, schedule, and verify what the runners did.

A version's identity (``version.json``) is its tool, output kind, classes, parameters and
its input's name and fingerprint. When any of them differs from what is on disk — more
partitions downloaded, an input version rebuilt, a parameter changed — the old version is
stale: it is removed and built again, never reused.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from distdl.config import Config
from distdl.errors import ToolError
from distdl.io.atomic import remove_stale_temps
from distdl.io.markers import read_marker
from distdl.layout import SUCCESSES_FILE, Layout
from distdl.tools.bases import ToolContext, now_iso
from distdl.tools.folder import ResetStage, ToolFolder
from distdl.tools.registry import ToolClasses
from distdl.tools.versions import (
    DOWNLOAD,
    REMOVED_FILE,
    SELECTION_FILE,
    DatasetVersion,
    DownloadVersion,
    PartitionRef,
    ToolVersion,
    digest,
)

log = logging.getLogger("distdl.tools")


@dataclass(frozen=True)
class ToolOptions:
    tool_name: str
    input_version: str = DOWNLOAD
    tool_name_override: str | None = None  # write the version under this name instead
    reset: ResetStage | None = None
    plugins: tuple[str, ...] = ()
    ranks: int | None = None

    @property
    def version_name(self) -> str:
        return self.tool_name_override or self.tool_name


def tool_folder(layout: Layout, name: str) -> ToolFolder:
    if not name or name in (".", "..") or "/" in name or name == DOWNLOAD:
        raise ToolError(
            f"{name!r} cannot name a tool version (a plain folder name, not {DOWNLOAD!r})"
        )
    return ToolFolder(layout.tools / name, layout.root)


def open_version(layout: Layout, name: str, _seen: frozenset[str] = frozenset()) -> DatasetVersion:
    """The download or a finished tool version, refusing one whose input changed since."""
    if name == DOWNLOAD:
        return DownloadVersion(layout)
    if name in _seen:
        raise ToolError(f"the versions {', '.join(sorted(_seen))} are each other's input")
    folder = tool_folder(layout, name)
    identity = folder.read_version()
    verified = folder.stage_summary("verified")
    if identity is None or verified is None:
        raise ToolError(
            f"no finished version {name!r} in {layout.tools}: run `distdl tools CONFIG "
            f"{identity['tool'] if identity else name}` first"
        )
    source = open_version(layout, identity["input"]["name"], _seen | {name})
    if source.fingerprint() != identity["input"]["fingerprint"]:
        raise ToolError(
            f"version {name!r} was made from an older {source.name!r}: run "
            f"`distdl tools CONFIG {identity['tool']}` for it again first"
        )
    fingerprint = digest(
        [json.dumps(identity, sort_keys=True), json.dumps(verified, sort_keys=True)]
    )
    return ToolVersion(name, folder.root, identity["kind"], source, fingerprint)


def expected_identity(
    classes: ToolClasses, config: Config, source: DatasetVersion
) -> dict[str, Any]:
    return {
        "tool": classes.name,
        "kind": classes.runner.output_kind,
        "classes": {
            family: f"{cls.__module__}.{cls.__qualname__}"
            for family, cls in (
                ("filter", classes.filter),
                ("scheduler", classes.scheduler),
                ("runner", classes.runner),
            )
        },
        "parameters": classes.runner.version_parameters(config),
        "input": {"name": source.name, "fingerprint": source.fingerprint()},
    }


def prepare(
    config: Config, layout: Layout, classes: ToolClasses, options: ToolOptions, world_size: int
) -> ToolContext:
    """Everything before the runners: identity, reset, filter and scheduler stages."""
    folder = tool_folder(layout, options.version_name)
    if options.input_version == folder.name:
        raise ToolError(f"version {folder.name!r} cannot be its own input")
    source = open_version(layout, options.input_version)
    wanted = expected_identity(classes, config, source)
    current = folder.read_version()
    if current is not None and {k: v for k, v in current.items() if k != "created_at"} != wanted:
        log.warning(
            "%s: the version on disk is stale (%s changed): building it again",
            folder.name,
            _what_changed(current, wanted),
        )
        folder.remove_all()
        current = None
    if folder.root.exists():
        remove_stale_temps(folder.root)  # we hold the output lock: no writer is at work
    if options.reset is not None:
        folder.reset(options.reset)
    if current is None:
        folder.write_version({**wanted, "created_at": now_iso()})
    context = ToolContext(config, layout, classes.name, folder, source, 0, world_size)
    if not folder.is_done("filtered"):
        folder.reset("filtering")  # half a filter stage: nothing after it can stand
        folder.mark_done("filtered", {**classes.filter(context).run(), "at": now_iso()})
    if not folder.is_done("scheduled"):
        folder.clear("verified")
        folder.mark_done("scheduled", {**classes.scheduler(context).run(), "at": now_iso()})
    return context


def _what_changed(current: dict[str, Any], wanted: dict[str, Any]) -> str:
    return ", ".join(key for key in wanted if current.get(key) != wanted[key]) or "identity"


def verify(folder: ToolFolder, kind: str) -> dict[str, Any]:
    """Every scheduled partition done, its files whole and its rows all accounted for;
    then the ``verified`` marker with the totals."""
    schedule = pl.read_parquet(folder.schedule_table)
    kept_file = SELECTION_FILE if kind == "selection" else SUCCESSES_FILE
    missing: list[str] = []
    wrong: list[str] = []
    totals = {"partitions": schedule.height, "input_rows": 0, "kept": 0, "removed": 0}
    for row in schedule.iter_rows(named=True):
        ref = PartitionRef(row["server_name"], row["partition_id"])
        out = folder.partition_dir(ref)
        marker = read_marker(out)
        if marker is None:
            missing.append(str(ref.subpath))
            continue
        kept = pq.ParquetFile(out / kept_file).metadata.num_rows
        removed = pq.ParquetFile(out / REMOVED_FILE).metadata.num_rows
        if kept + removed != row["rows"] or marker.get("kept") != kept:
            wrong.append(f"{ref.subpath}: {row['rows']} rows in, {kept} kept + {removed} removed")
        totals["input_rows"] += row["rows"]
        totals["kept"] += kept
        totals["removed"] += removed
    if missing:
        raise ToolError(
            f"{folder.name}: {len(missing)} of {schedule.height} partitions are not done "
            f"(e.g. {missing[0]}); run the tool again to continue"
        )
    if wrong:
        raise ToolError(f"{folder.name}: partitions do not add up: {'; '.join(wrong[:3])}")
    folder.mark_done("verified", {**totals, "at": now_iso()})
    return totals


def describe(folder: ToolFolder, totals: dict[str, Any]) -> str:
    return (
        f"{folder.name}: {totals['partitions']} partitions, {totals['input_rows']} rows in, "
        f"{totals['kept']} kept, {totals['removed']} removed -> {folder.root}"
    )
