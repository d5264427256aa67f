"""The distdl exception tree.

Per-URL problems (404, timeouts, undecodable bytes, …) are never exceptions above the
fetcher: they are error rows with a code from :mod:`distdl.core.codes`. Exceptions are for
bad input that stops a whole run, and for bugs.

    DistdlError                 base; ``exit_code`` is what the CLI exits with
      ConfigError      (2)      bad YAML / keys / values; the message names the key path
      InputError       (3)      unreadable input, missing columns, duplicate uuids
      StateError       (4)      resume against a changed plan; suggests ``distdl reset``
      PartitionError   (5)      a partition failed as a whole (host, partition, cause)
      RankFailure      (6)      a rank died or raised; the run is failed, never "succeeds"
      LaunchError      (7)      no MPI launcher could be started
      ToolError        (8)
        ToolNotFoundError
"""

from __future__ import annotations


class DistdlError(Exception):
    exit_code: int = 1


class ConfigError(DistdlError):
    exit_code = 2

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class InputError(DistdlError):
    exit_code = 3


class StateError(DistdlError):
    exit_code = 4


class PartitionError(DistdlError):
    exit_code = 5

    def __init__(self, server_name: str, partition_id: int, cause: str) -> None:
        self.server_name = server_name
        self.partition_id = partition_id
        self.cause = cause
        super().__init__(f"partition {server_name}/{partition_id} failed: {cause}")


class RankFailure(DistdlError):
    exit_code = 6


class LaunchError(DistdlError):
    exit_code = 7


class ToolError(DistdlError):
    exit_code = 8


class ToolNotFoundError(ToolError):
    pass
