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
        SubmitError             sbatch refused a job of a ``distdl submit`` chain
      ToolError        (8)
        ToolNotFoundError
      OutputLockedError (9)     another distdl run holds the output folder's lock
      OutputWriteError (10)     output could not be written (disk full, quota, I/O, permissions)
      RunStopped  (130, 143)    a signal stopped the run gracefully: SIGINT 130, SIGTERM and
                                SIGUSR1 143 (128 + the signal, as a shell reports it)

A DistdlError whose message is empty has been reported already (by rank 0, or by the
launched ranks): the CLI exits with its code and prints nothing more.
"""

from __future__ import annotations

import errno
import os

from distdl.core.stopping import exit_code as stop_exit_code


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


class SubmitError(LaunchError):
    """sbatch refused a job (its message is in ours), or printed no job id."""


class RunStopped(DistdlError):
    """A signal stopped the run: every partition kept what it had settled.

    The message is the one line rank 0 prints, ``stopped: N partitions done, M left;
    continue with: distdl resume CONFIG``; it is empty on the other ranks.
    """

    def __init__(self, signum: int, line: str = "") -> None:
        super().__init__(line)
        self.signum = signum
        self.exit_code = stop_exit_code(signum)


class AlreadyReported(DistdlError):
    """A failure whose message was printed where it happened (e.g. by the launched ranks)."""

    def __init__(self, exit_code: int) -> None:
        super().__init__("")
        self.exit_code = exit_code


class ToolError(DistdlError):
    exit_code = 8


class ToolNotFoundError(ToolError):
    pass


class OutputLockedError(DistdlError):
    """Another live run (``run``, ``resume`` or ``reset``) holds the output folder's lock.

    Not a StateError: exit code 4 suggests ``distdl reset``, which must never be run while
    the other run lives.
    """

    exit_code = 9


class OutputWriteError(DistdlError):
    """An output file could not be written whole: no space, quota, too large, I/O, access.

    The message names the file and the operating system's error, e.g. ``cannot write
    …/successes.parquet: No space left on device (ENOSPC)``. A partition that hits it fails
    as a whole and gets no marker; ``distdl resume`` finishes it once the cause is fixed.
    """

    exit_code = 10

    def __init__(self, path: object, cause: OSError | str) -> None:
        self.path = str(path)
        self.errno = cause.errno if isinstance(cause, OSError) else None
        super().__init__(f"cannot write {self.path}: {describe_os_error(cause)}")


def describe_os_error(cause: OSError | str) -> str:
    """``No space left on device (ENOSPC)``: the reason without pyarrow's wrapping."""
    if isinstance(cause, str):
        return cause
    if cause.errno is None:
        return str(cause)
    name = errno.errorcode.get(cause.errno, str(cause.errno))
    return f"{os.strerror(cause.errno)} ({name})"
