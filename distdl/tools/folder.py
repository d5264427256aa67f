"""One tool version's folder, ``{tools_folder}/<name>/``, and its stage checkpoints.

    version.json            what this version is: tool, output kind, input version and its
                            fingerprint, the parameters that shape the output
    partitions.parquet      the input's partitions and row counts          (filter stage)
    filter_table.parquet    the rows the tool removes, with the reason     (filter stage)
    filtered                stage marker, written once both tables are in place
    schedule.parquet        server_name, partition_id, rows, rank          (scheduler stage)
    scheduled               stage marker
    server_name=<safe>/partition_id=<n>/
        selection.parquet   kept uuids (selection versions), or
        successes.parquet   the rows with new images (images versions)
        removed.parquet     uuid, reason (+ tool columns such as duplicate_of)
        completed           partition marker: written after both files (runner stage)
    verified                stage marker with the totals                   (verification)

Every file is written under a temporary name and renamed; a stage's marker is written only
after the stage finished, so a stage without its marker is simply done again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from distdl.io.atomic import atomic_write_text, publish, safe_rmtree, temp_path_for
from distdl.io.markers import partition_dirs
from distdl.tools.versions import PartitionRef

Stage = Literal["filtered", "scheduled", "verified"]
ResetStage = Literal["filtering", "scheduling", "runners"]
VERSION_FILE = "version.json"
PARTITIONS_TABLE = "partitions.parquet"
FILTER_TABLE = "filter_table.parquet"
SCHEDULE_TABLE = "schedule.parquet"


def write_table(path: Path, table: pa.Table) -> None:
    """Write a small table atomically (temp file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_path_for(path)
    try:
        pq.write_table(table, temp, compression="zstd")
        publish(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


class ToolFolder:
    def __init__(self, root: Path, output_root: Path) -> None:
        self.root = Path(root)
        self.name = self.root.name
        self._output_root = output_root  # every delete must stay inside it

    @property
    def version_file(self) -> Path:
        return self.root / VERSION_FILE

    @property
    def partitions_table(self) -> Path:
        return self.root / PARTITIONS_TABLE

    @property
    def filter_table(self) -> Path:
        return self.root / FILTER_TABLE

    @property
    def schedule_table(self) -> Path:
        return self.root / SCHEDULE_TABLE

    def partition_dir(self, ref: PartitionRef) -> Path:
        return self.root / ref.subpath

    # -- identity ---------------------------------------------------------------------
    def read_version(self) -> dict[str, Any] | None:
        try:
            content = json.loads(self.version_file.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return None
        return content if isinstance(content, dict) else None

    def write_version(self, identity: dict[str, Any]) -> None:
        text = json.dumps(identity, indent=2, sort_keys=True) + "\n"
        atomic_write_text(self.version_file, text)

    # -- stage markers ----------------------------------------------------------------
    def is_done(self, stage: Stage) -> bool:
        return (self.root / stage).is_file()

    def stage_summary(self, stage: Stage) -> dict[str, Any] | None:
        return read_marker_file(self.root / stage)

    def mark_done(self, stage: Stage, summary: dict[str, Any]) -> None:
        text = json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n"
        atomic_write_text(self.root / stage, text)

    def clear(self, stage: Stage) -> None:
        (self.root / stage).unlink(missing_ok=True)

    # -- resets -----------------------------------------------------------------------
    def reset(self, stage: ResetStage) -> None:
        """Forget a stage and every stage after it (the original's --reset_* flags)."""
        self.clear("verified")
        if stage in ("filtering", "scheduling"):
            self.clear("scheduled")
            self.schedule_table.unlink(missing_ok=True)
        if stage == "filtering":
            self.clear("filtered")
            self.filter_table.unlink(missing_ok=True)
            self.partitions_table.unlink(missing_ok=True)
        if stage in ("filtering", "runners"):
            self.remove_partitions()

    def remove_partitions(self) -> None:
        servers = {folder.parent for _server, _pid, folder in partition_dirs(self.root)}
        for server in servers:
            safe_rmtree(server, self._output_root)

    def remove_all(self) -> None:
        if self.root.exists():
            safe_rmtree(self.root, self._output_root)


def read_marker_file(path: Path) -> dict[str, Any] | None:
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError:
        return {}
    return content if isinstance(content, dict) else {}
