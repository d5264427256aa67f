"""Every path of an output folder, in one place.

    {path_to_output}/
      {urls_folder}/server_name=<safe>/partition_id=<n>/urls.parquet     planned URLs
      {urls_folder}/servers.parquet                                       per-server counts
      {images_folder}/server_name=<safe>/partition_id=<n>/successes.parquet
      {images_folder}/server_name=<safe>/partition_id=<n>/errors.parquet
      {images_folder}/server_name=<safe>/partition_id=<n>/completed      the done-marker
      {images_folder}/server_name=%5Frejected/partition_id=0/…          planning rejects
      {logs_folder}/rank-<r>.log
      {schedules_folder}/                                                  run summaries
      robots/<safe>.json                                                   robots.txt per host
      run-state.json                                    rank 0's live state (distdl status)
      {profiles_table}  {ignored_table}  {inner_checkpoint_file}  {tools_folder}/

Planning rejects live in a folder no real server can map to (see REJECTED_SERVER_DIR), so
one glob over ``{images_folder}/**/errors.parquet`` finds every error row.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from distdl.core.urls import safe_dir_name

# safe_dir_name never percent-encodes "_" (it passes through), so no server folder is named
# "%5Frejected": this one is reserved for planning rejects.
REJECTED_SERVER_DIR = "%5Frejected"
SUCCESSES_FILE = "successes.parquet"
ERRORS_FILE = "errors.parquet"
URLS_FILE = "urls.parquet"
COMPLETED_MARKER = "completed"
SERVERS_TABLE = "servers.parquet"
RUN_STATE_FILE = "run-state.json"


def partition_subpath(server_name: str, partition_id: int) -> Path:
    """``server_name=<safe>/partition_id=<n>``: Hive-style, safe for any server name."""
    return Path(f"server_name={safe_dir_name(server_name)}") / f"partition_id={partition_id}"


@dataclass(frozen=True)
class Layout:
    root: Path
    urls: Path
    logs: Path
    images: Path
    schedules: Path
    profiles_table: Path
    ignored_table: Path
    checkpoint_file: Path
    tools: Path

    @classmethod
    def from_config(cls, config: object) -> Layout:
        from distdl.config import Config  # local: config imports nothing from here

        assert isinstance(config, Config)
        root = Path(config.path_to_output)
        structure = config.output_structure

        def under(relative: str) -> Path:
            return root / relative

        return cls(
            root=root,
            urls=under(structure.urls_folder),
            logs=under(structure.logs_folder),
            images=under(structure.images_folder),
            schedules=under(structure.schedules_folder),
            profiles_table=under(structure.profiles_table),
            ignored_table=under(structure.ignored_table),
            checkpoint_file=under(structure.inner_checkpoint_file),
            tools=under(structure.tools_folder),
        )

    @property
    def servers_table(self) -> Path:
        return self.urls / SERVERS_TABLE

    def url_partition_dir(self, server_name: str, partition_id: int) -> Path:
        return self.urls / partition_subpath(server_name, partition_id)

    def image_partition_dir(self, server_name: str, partition_id: int) -> Path:
        return self.images / partition_subpath(server_name, partition_id)

    @property
    def rejected_dir(self) -> Path:
        return self.images / f"server_name={REJECTED_SERVER_DIR}" / "partition_id=0"

    @property
    def robots(self) -> Path:
        return self.root / "robots"

    def robots_file(self, server_name: str) -> Path:
        """robots.txt as fetched while profiling (status and text, JSON)."""
        return self.robots / f"{safe_dir_name(server_name)}.json"

    @property
    def run_state(self) -> Path:
        """What rank 0 last knew of the run, rewritten every few seconds (``distdl status``)."""
        return self.root / RUN_STATE_FILE

    def log_file(self, rank: int) -> Path:
        return self.logs / f"rank-{rank}.log"

    def is_inside(self, path: Path) -> bool:
        """True when ``path`` resolves inside the output root: the guard of every delete."""
        root = self.root.resolve()
        target = path.resolve()
        return target != root and root in target.parents
