"""Running Slurm's commands: one injectable function, so tests pass a fake one."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

COMMAND_TIMEOUT = 60.0  # seconds: a busy slurmctld answers slowly, a dead one never


@dataclass(frozen=True)
class Completed:
    """What a command did: its exit code and output (127 when it could not be started)."""

    returncode: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0


Runner = Callable[[Sequence[str]], Completed]


def run_command(argv: Sequence[str]) -> Completed:
    """Run ``argv``; never raises for a missing program, a failure or a timeout."""
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False
        )
    except FileNotFoundError:
        return Completed(127, "", f"{argv[0]}: command not found")
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Completed(126, "", f"{argv[0]}: {exc}")
    return Completed(done.returncode, done.stdout, done.stderr)
