"""The launcher names the rank whose process ended first, also when the process manager
kills the other ranks the moment it notices, as MPICH's hydra does."""

from __future__ import annotations

import os
import resource
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from distdl.runtime import lifeline
from distdl.runtime.lifeline import Lifelines, hold_lifeline, lifeline_path

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="epoll order is Linux's"),
]

# A rank stand-in: a few threads (a dying process's pid is reported ended only once all
# have exited), its lifeline, then a death by SIGKILL when told to, or a wait for one.
_RANK = """
import os, signal, sys, threading, time
from distdl.runtime.lifeline import hold_lifeline
for _ in range(4):
    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
assert hold_lifeline(sys.argv[1])
print("held", flush=True)
sys.stdin.readline()
os.kill(os.getpid(), signal.SIGKILL)
"""


def _start_rank(ready: Path, rank: int, pmi_fd: int | None = None) -> subprocess.Popen[str]:
    env = dict(os.environ, PMI_RANK=str(rank))
    env.pop("PMI_FD", None)
    if pmi_fd is not None:
        env["PMI_FD"] = str(pmi_fd)
    return subprocess.Popen(
        [sys.executable, "-c", _RANK, str(ready)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        pass_fds=() if pmi_fd is None else (pmi_fd,),
    )


_Listen = Callable[[Path, int], Lifelines]


@pytest.fixture
def listen() -> Iterator[_Listen]:
    """Opens the launcher's end for that many ranks in a folder; closed after the test."""
    opened: list[Lifelines] = []

    def open_for(folder: Path, count: int) -> Lifelines:
        opened.append(Lifelines(folder, count))
        return opened[-1]

    yield open_for
    for lifelines in opened:
        lifelines.close()


@pytest.fixture
def ranks() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        _kill(process)


def _all_say_held(started: list[subprocess.Popen[str]]) -> None:
    for process in started:
        assert process.stdout is not None and process.stdout.readline() == "held\n"


def _held_by_all(lifelines: Lifelines, started: list[subprocess.Popen[str]]) -> None:
    _all_say_held(started)
    while lifelines.holding < len(started):
        lifelines.watch(1.0)


def _until_all_closed(lifelines: Lifelines) -> None:
    while lifelines.holding:
        lifelines.watch(1.0)


def _kill(process: subprocess.Popen[str]) -> None:
    process.kill()
    process.wait()


def test_the_rank_whose_process_ended_first_is_named(
    tmp_path: Path, ranks: list[subprocess.Popen[str]], listen: _Listen
) -> None:
    lifelines = listen(tmp_path, 3)
    ranks += [_start_rank(tmp_path, rank) for rank in range(3)]
    _held_by_all(lifelines, ranks)
    lifelines.watch(0.0)
    assert lifelines.first_ended == []
    for rank in (2, 0, 1):
        _kill(ranks[rank])
    _until_all_closed(lifelines)
    assert lifelines.first_ended == [2]


def test_ranks_that_ended_before_the_launcher_looked_are_named_together(
    tmp_path: Path, ranks: list[subprocess.Popen[str]], listen: _Listen
) -> None:
    lifelines = listen(tmp_path, 3)
    ranks += [_start_rank(tmp_path, rank) for rank in range(3)]
    _all_say_held(ranks)
    _kill(ranks[2])
    _kill(ranks[1])
    lifelines.watch(1.0)  # accepts all three at once: which of 1 and 2 went first?
    assert lifelines.first_ended == [1, 2]


@pytest.mark.parametrize("round_", range(12))
def test_a_process_manager_killing_the_others_at_once_does_not_hide_the_first(
    tmp_path: Path, ranks: list[subprocess.Popen[str]], round_: int, listen: _Listen
) -> None:
    # The test plays hydra: each rank's PMI socket is one end of a pair; the moment the
    # test reads the end of one, it SIGKILLs every other rank.
    lifelines = listen(tmp_path, 3)
    pairs = [socket.socketpair() for _ in range(3)]
    try:
        for rank, (_, theirs) in enumerate(pairs):
            ranks.append(_start_rank(tmp_path, rank, theirs.fileno()))
            theirs.close()
        _held_by_all(lifelines, ranks)
        dying = round_ % 3
        assert ranks[dying].stdin is not None
        ranks[dying].stdin.write("die\n")
        ranks[dying].stdin.flush()
        ours = [mine for mine, _ in pairs]
        select.select(ours, [], [], 30.0)
        for process in ranks:
            os.kill(process.pid, signal.SIGKILL)
        for process in ranks:
            process.wait()
        _until_all_closed(lifelines)
        assert lifelines.first_ended == [dying]
    finally:
        for mine, _ in pairs:
            mine.close()


@pytest.fixture
def held_here(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    held: list[int] = []
    monkeypatch.setattr(lifeline, "_held", held)
    yield held
    for fd in held:
        os.close(fd)


def test_the_lifeline_is_held_above_the_pmi_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, held_here: list[int], listen: _Listen
) -> None:
    lifelines = listen(tmp_path, 1)
    spare = [os.open(os.devnull, os.O_RDONLY) for _ in range(3)]
    pmi, hydra_end = socket.socketpair()
    for fd in spare:  # free descriptors below the PMI socket's
        os.close(fd)
    try:
        monkeypatch.setenv("PMI_RANK", "0")
        monkeypatch.setenv("PMI_FD", str(pmi.fileno()))
        assert hold_lifeline(str(tmp_path))
        (line,) = held_here
        assert line > pmi.fileno() > min(spare)
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        assert line >= min(soft, 4096) - 16  # above what MPI opens later, too
        lifelines.watch(1.0)
        assert lifelines.holding == 1
    finally:
        pmi.close()
        hydra_end.close()


def test_no_lifeline_outside_a_launched_rank(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, held_here: list[int]
) -> None:
    monkeypatch.delenv("PMI_RANK", raising=False)
    assert not hold_lifeline(str(tmp_path))
    monkeypatch.setenv("PMI_RANK", "1")
    assert not hold_lifeline(None)
    assert not hold_lifeline(str(tmp_path))  # nobody listening: the rank runs on
    assert held_here == []


def test_a_folder_too_deep_for_a_socket_leaves_the_ranks_unnamed(
    tmp_path: Path, listen: _Listen
) -> None:
    deep = tmp_path / ("d" * 120)
    deep.mkdir()
    lifelines = listen(deep, 2)  # the run goes on; only the naming is lost
    lifelines.watch(0.0)
    assert lifelines.holding == 0 and lifelines.first_ended == []


def _connect(ready: Path, rank: int) -> socket.socket:
    line = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    line.connect(str(lifeline_path(ready, rank)))
    return line


def test_a_lifeline_closed_before_it_was_accepted_leaves_the_first_unknown(
    tmp_path: Path, listen: _Listen
) -> None:
    lifelines = listen(tmp_path, 2)
    one = _connect(tmp_path, 1)
    lifelines.watch(1.0)
    assert lifelines.holding == 1
    _connect(tmp_path, 0).close()  # rank 0 ends before the launcher accepts it…
    one.close()  # …and rank 1 after: in the same look, rank 1's end is seen first
    _until_all_closed(lifelines)
    assert lifelines.first_ended == [0, 1]  # so neither is named


def test_no_rank_is_named_while_one_never_connected(tmp_path: Path, listen: _Listen) -> None:
    lifelines = listen(tmp_path, 3)
    zero, one = _connect(tmp_path, 0), _connect(tmp_path, 1)
    lifelines.watch(1.0)
    one.close()  # rank 2, never seen, may have ended before it
    zero.close()
    _until_all_closed(lifelines)
    assert lifelines.first_ended == []
