"""Where distdl's CPU goes in a run: each process's CPU time (psutil), split by what
py-spy's samples of it were doing.

``py-spy record --subprocesses --format raw`` writes one line per distinct stack:
``process PID:"cmdline";...;process PID:"cmdline";frame;...;frame COUNT``, the process
frames naming each ancestor down to the sampled one. py-spy counts a thread waiting for a
CPU, or blocked where it cannot tell, as active, so sample counts are not CPU time on a
busy machine: stacks whose leaf is a wait (``select``, ``poll``, a blocking pipe read, a
sleep, uvloop's own loop) are dropped, and each process's real CPU time is split in the
proportions of the rest. Each stack is put in one category by its frames, leaf first, and
each process in one role (launcher, rank 0, worker rank, decoder) by what it runs.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

_PROCESS = re.compile(r'process (\d+):"(.*?)";', re.DOTALL)
# (category, substrings of a frame "function (file:line)"), tried on each frame from the leaf
# up; the first rule any frame matches wins.
RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("hashing", ("md5_hex", "hashlib")),
    ("resize", ("resize (PIL", "reduce (PIL", "resize_to (", "thumbnail (PIL")),
    ("encode", ("_save (PIL", "save (PIL", "encode (distdl")),
    ("decode", ("load (PIL", "draft (PIL", "convert (PIL", "decode (distdl", "open_image (")),
    ("header probe", ("probe (distdl",)),
    ("decoder pipes", ("decoder_pool.py", "decoder_child.py", "connection.py")),
    ("parquet", ("pyarrow", "partition_writer.py", "parquet")),
    ("mpi", ("mpi_channel.py", "mpi4py")),
    ("network", ("aiohttp", "fetcher.py", "yarl", "multidict", "selector_events.py", "socket")),
    ("planning", ("polars", "distdl/plan/", "distdl/inputs/", "profile.py")),
    ("imports", ("<frozen importlib", "_find_and_load")),
    ("event loop", ("asyncio", "uvloop", "lease_runner.py", "host_gate.py", "worker.py")),
    ("coordination", ("coordinator.py", "budgets.py", "scheduler.py", "throttle.py")),
)
ROLES = (("rank 0", "coordinator.py"), ("worker rank", "lease_runner.py"))
# Functions a thread waits in, as leaves: blocked in a system call (a pipe write waits for
# the reader), or in uvloop's C loop (its epoll; its socket reads are dropped with it).
WAITS = frozenset(
    {"select", "poll", "wait", "sleep", "run", "_worker", "_recv", "_send",
     "acquire", "readinto", "accept"}
)  # fmt: skip


@dataclass
class Breakdown:
    seconds: Counter[str] = field(default_factory=Counter)  # category -> CPU s
    by_role: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    processes: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))

    @property
    def total(self) -> float:
        return sum(self.seconds.values())


class CpuSampler(threading.Thread):
    """CPU time of every process under a pid (itself included), sampled every 0.1 s: the
    last sample of each is what it used, near enough (a process's last 0.1 s may be lost)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self._pid = 0
        self._cpu: dict[int, float] = {}
        self._commands: dict[int, str] = {}
        self._lock = threading.Lock()

    def watch(self, pid: int) -> None:
        self._pid = pid
        self.start()

    def run(self) -> None:
        import psutil  # only the profiled run needs it

        try:
            root = psutil.Process(self._pid)
        except psutil.NoSuchProcess:
            return
        while root.is_running() and root.status() != psutil.STATUS_ZOMBIE:
            for process in (root, *root.children(recursive=True)):
                try:
                    times = process.cpu_times()
                    command = " ".join(process.cmdline())
                except psutil.Error:
                    continue
                with self._lock:
                    self._cpu[process.pid] = times.user + times.system
                    if command:  # a process that has exited has none left
                        self._commands.setdefault(process.pid, command)
            time.sleep(0.1)

    def cpu_by_pid(self) -> dict[int, tuple[float, str]]:
        self.join(5)
        with self._lock:
            return {pid: (cpu, self._commands.get(pid, "")) for pid, cpu in self._cpu.items()}


def classify(frames: list[str]) -> str:
    for frame in reversed(frames):
        for category, needles in RULES:
            if any(needle in frame for needle in needles):
                return category
    return "other"


def _split(line: str) -> tuple[list[int], list[str], int] | None:
    stack, _, count = line.rstrip("\n").rpartition(" ")
    if not count.isdigit():
        return None
    pids = []
    position = 0
    while match := _PROCESS.match(stack, position):
        pids.append(int(match.group(1)))
        position = match.end()
    frames = stack[position:].split(";") if position < len(stack) else []
    return pids, frames, int(count)


def aggregate(raw: Path, cpu_by_pid: dict[int, tuple[float, str]]) -> Breakdown:
    """Each process's CPU split by its working samples; a process without any (mpiexec,
    py-spy itself) is counted under its command's first word."""
    samples: dict[int, Counter[str]] = defaultdict(Counter)
    stacks: dict[int, list[str]] = defaultdict(list)
    for line in _records(raw.read_text()):
        parsed = _split(line)
        if parsed is None or not parsed[0] or not parsed[1]:
            continue
        pids, frames, count = parsed
        stacks[pids[-1]].append(";".join(frames))
        if _function(frames[-1]) not in WAITS:
            samples[pids[-1]][classify(frames)] += count
    breakdown = Breakdown()
    for pid, (cpu, command) in cpu_by_pid.items():
        role = _role(command, stacks.get(pid, []))
        breakdown.processes[role].add(pid)
        working = samples.get(pid)
        shares = working if working else Counter({role: 1})
        total = sum(shares.values())
        for category, count in shares.items():
            breakdown.seconds[category] += cpu * count / total
            breakdown.by_role[role][category] += cpu * count / total
    return breakdown


def _function(frame: str) -> str:
    """``Connection._recv (multiprocessing/connection.py:395)`` -> ``_recv``."""
    return frame.split(" (", 1)[0].rsplit(".", 1)[-1]


def _records(text: str) -> list[str]:
    """Lines of the file, a command line's own line breaks joined back into its record."""
    records: list[str] = []
    for line in text.splitlines():
        if records and not line.startswith("process "):
            records[-1] += "\n" + line
        else:
            records.append(line)
    return records


def _role(command: str, stacks: list[str]) -> str:
    if "decoder_child" in command:
        return "decoder"
    if Path(command.split(" ", 1)[0]).name == "py-spy":
        return "py-spy (the profiler)"
    if " -m distdl " not in f"{command} ":
        return Path(command.split(" ", 1)[0]).name or "other"
    text = "\n".join(stacks)
    roles = [role for role, needle in ROLES if needle in text]
    if len(roles) == len(ROLES):  # --ranks 1, distdl's default on 2 cores
        return "rank 0 with its worker (one process)"
    return roles[0] if roles else "launcher"


def render(breakdown: Breakdown, images: int, server_cpu: float) -> str:
    """The categories in CPU milliseconds per image, overall and by process role."""
    ms = 1000 / images
    total = breakdown.total
    lines = [f"where distdl's CPU went: {total * ms:.2f} ms/img (+ server {server_cpu * ms:.2f}):"]
    for category, seconds in breakdown.seconds.most_common():
        share = 100 * seconds / total
        lines.append(f"  {category:<16} {seconds * ms:6.2f} ms/img  {share:5.1f} %")
    lines.append("by process (ms/img):")
    for role, categories in sorted(breakdown.by_role.items(), key=lambda kv: -kv[1].total()):
        top = ", ".join(f"{c} {s * ms:.2f}" for c, s in categories.most_common(6))
        count = len(breakdown.processes[role])
        lines.append(f"  {role} (x{count}): {categories.total() * ms:.2f}: {top}")
    return "\n".join(lines)
