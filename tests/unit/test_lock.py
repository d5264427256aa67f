"""The output lock: one holder, stale locks taken over safely, heartbeat, release."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from distdl.errors import OutputLockedError
from distdl.io.lock import LOCK_FILE, TOKEN_ENV, LockHolder, OutputLock, read_lock

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def _no_inherited_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)


def plant_lock(root: Path, *, host: str, pid: int, age: float = 0.0) -> Path:
    """A lock file as another run would have left it, its last heartbeat ``age`` s ago."""
    root.mkdir(parents=True, exist_ok=True)
    holder = LockHolder(
        host=host,
        pid=pid,
        started_at="2026-01-01T00:00:00+00:00",
        heartbeat_at="2026-01-01T00:00:00+00:00",
        command="distdl run other.yaml",
        token="feedfacecafebeef",
    )
    path = root / LOCK_FILE
    path.write_bytes(holder.to_bytes())
    if age:
        then = time.time() - age
        os.utime(path, (then, then))
    return path


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_one_holder_and_the_second_is_told_who(tmp_path: Path) -> None:
    with OutputLock(tmp_path, "distdl run a.yaml") as first:
        record = json.loads((tmp_path / LOCK_FILE).read_text())
        assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
        assert record["command"] == "distdl run a.yaml"
        assert {"started_at", "heartbeat_at", "token"} <= record.keys()
        with pytest.raises(OutputLockedError) as refused:
            OutputLock(tmp_path, "distdl reset a.yaml").acquire()
        message = str(refused.value)
        assert "distdl run a.yaml" in message and f"pid {os.getpid()}" in message
        assert str(tmp_path / LOCK_FILE) in message and "10 minutes" in message
        assert first.still_ours()
    assert not (tmp_path / LOCK_FILE).exists()
    with OutputLock(tmp_path, "distdl run a.yaml"):
        pass


def test_released_on_an_exception(tmp_path: Path) -> None:
    with pytest.raises(ValueError), OutputLock(tmp_path, "distdl run"):
        raise ValueError("boom")
    assert os.listdir(tmp_path) == []


def test_a_dead_holder_on_this_host_is_taken_over_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pid = dead_pid()
    plant_lock(tmp_path, host=socket.gethostname(), pid=pid)
    with caplog.at_level(logging.WARNING, logger="distdl.lock"), OutputLock(tmp_path, "x") as lock:
        assert lock.took_over_from is not None and f"pid {pid}" in lock.took_over_from
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert "took over the stale lock" in caplog.text
    assert os.listdir(tmp_path) == []  # no aside or probe file left behind


def test_a_live_holder_on_another_host_is_respected_until_its_heartbeat_is_stale(
    tmp_path: Path,
) -> None:
    plant_lock(tmp_path, host="node-17", pid=dead_pid(), age=60)
    with pytest.raises(OutputLockedError, match="node-17"):
        OutputLock(tmp_path, "x").acquire()
    plant_lock(tmp_path, host="node-17", pid=1, age=11 * 60)
    with OutputLock(tmp_path, "x") as lock:
        assert lock.took_over_from is not None and "heartbeat is" in lock.took_over_from


def test_a_reused_pid_does_not_keep_a_lock_alive(tmp_path: Path) -> None:
    # Our own pid, but a process started long after the lock: the holder is gone.
    plant_lock(tmp_path, host=socket.gethostname(), pid=os.getppid())
    record = json.loads((tmp_path / LOCK_FILE).read_text())
    record["started_at"] = "1990-01-01T00:00:00+00:00"
    (tmp_path / LOCK_FILE).write_text(json.dumps(record))
    with OutputLock(tmp_path, "x") as lock:
        assert lock.took_over_from is not None


def test_a_record_being_written_counts_as_held_until_stale(tmp_path: Path) -> None:
    (tmp_path / LOCK_FILE).write_bytes(b"")
    with pytest.raises(OutputLockedError, match="still being written"):
        OutputLock(tmp_path, "x").acquire()
    then = time.time() - 3600
    os.utime(tmp_path / LOCK_FILE, (then, then))
    with OutputLock(tmp_path, "x") as lock:
        assert lock.took_over_from is not None


def test_heartbeat_refreshes_the_lock_and_notices_a_take_over(tmp_path: Path) -> None:
    lock = OutputLock(tmp_path, "x", heartbeat_interval=0.05)
    with pytest.raises(OutputLockedError, match="took over the lock"), lock:
        first = read_lock(tmp_path)
        assert first is not None and first.holder is not None
        then = time.time() - 3600
        os.utime(tmp_path / LOCK_FILE, (then, then))
        deadline = time.monotonic() + 10
        while (state := read_lock(tmp_path)) is not None and state.age > 60:
            assert time.monotonic() < deadline, "the heartbeat never refreshed the lock"
            time.sleep(0.02)
        # Another run decides we are stale and takes over.
        os.rename(tmp_path / LOCK_FILE, tmp_path / "gone")
        plant_lock(tmp_path, host="node-2", pid=1)
        while not lock.lost:
            assert time.monotonic() < deadline, "the heartbeat never noticed"
            time.sleep(0.02)
    assert (tmp_path / LOCK_FILE).exists()  # the new holder's lock is left alone
    assert json.loads((tmp_path / LOCK_FILE).read_text())["host"] == "node-2"


def test_launched_ranks_borrow_the_lock_of_the_process_that_started_them(
    tmp_path: Path,
) -> None:
    with OutputLock(tmp_path, "distdl run --ranks 3"):
        token = os.environ[TOKEN_ENV]
        child = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from distdl.io.lock import OutputLock\n"
                "with OutputLock(sys.argv[1], 'rank 0') as lock: print(lock.still_ours())",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            env=dict(os.environ),
            timeout=30,
        )
        assert child.returncode == 0, child.stderr
        assert child.stdout.strip() == "True"
        assert json.loads((tmp_path / LOCK_FILE).read_text())["token"] == token
    assert TOKEN_ENV not in os.environ
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_token_of_another_lock_is_not_a_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plant_lock(tmp_path, host="node-3", pid=1)
    monkeypatch.setenv(TOKEN_ENV, "0123456789abcdef")
    with pytest.raises(OutputLockedError):
        OutputLock(tmp_path, "x").acquire()


def _contend(root: str, barrier: multiprocessing.synchronize.Barrier, wins: object) -> None:
    barrier.wait()
    try:
        lock = OutputLock(Path(root), "contender")
        lock.acquire()
    except OutputLockedError:
        return
    wins.value += 1  # type: ignore[attr-defined]
    time.sleep(1.0)  # hold it while the others look
    lock.release()


@pytest.mark.parametrize("stale", [False, True])
def test_of_many_simultaneous_contenders_exactly_one_wins(tmp_path: Path, stale: bool) -> None:
    if stale:
        plant_lock(tmp_path, host="node-9", pid=1, age=3600)
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(8)
    wins = context.Value("i", 0, lock=True)
    processes = [
        context.Process(target=_contend, args=(str(tmp_path), barrier, wins)) for _ in range(8)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(30)
    assert all(p.exitcode == 0 for p in processes)
    assert wins.value == 1
    assert not (tmp_path / LOCK_FILE).exists()
    assert [p for p in os.listdir(tmp_path) if p != LOCK_FILE] == []


def test_a_take_over_in_progress_elsewhere_is_waited_for_not_joined(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distdl.io import lock as lock_module

    plant_lock(tmp_path, host="node-4", pid=1, age=3600)
    (tmp_path / f"{LOCK_FILE}.takeover").write_text("node-5 77 busy\n")  # a live taker
    monkeypatch.setattr(lock_module, "_TAKE_PATIENCE", 0.5)
    with pytest.raises(OutputLockedError, match="kept taking over"):
        OutputLock(tmp_path, "x").acquire()
    assert json.loads((tmp_path / LOCK_FILE).read_text())["host"] == "node-4"  # untouched


def test_a_guard_left_by_a_taker_that_died_is_removed(tmp_path: Path) -> None:
    plant_lock(tmp_path, host="node-4", pid=1, age=3600)
    guard = tmp_path / f"{LOCK_FILE}.takeover"
    guard.write_text("node-5 77 died\n")
    then = time.time() - 120
    os.utime(guard, (then, then))
    with OutputLock(tmp_path, "x") as lock:
        assert lock.took_over_from is not None and "node-4" in lock.took_over_from
    assert os.listdir(tmp_path) == []


def test_a_lock_left_by_the_slurm_job_this_one_follows_is_taken_over_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The holder ran on another node (its process cannot be seen) with a fresh heartbeat:
    # only the chain's knowledge that its job has ended makes it stale.
    path = plant_lock(tmp_path, host="node-elsewhere", pid=4242)
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "job_id": "7001"}) + "\n")
    monkeypatch.setenv("SLURM_JOB_ID", "7002")
    monkeypatch.setenv("DISTDL_AFTER_JOB", "7000")  # another job: the lock stays theirs
    with pytest.raises(OutputLockedError) as refused:
        OutputLock(tmp_path, "distdl run a.yaml").acquire()
    assert "Slurm job 7001" in str(refused.value)
    monkeypatch.setenv("DISTDL_AFTER_JOB", "7001")
    with OutputLock(tmp_path, "distdl run a.yaml") as lock:
        assert lock.took_over_from is not None and "job 7001 has ended" in lock.took_over_from
        assert json.loads(path.read_text())["job_id"] == "7002"


def test_a_record_without_a_job_id_still_reads() -> None:
    record = {
        "host": "h",
        "pid": 1,
        "started_at": "2026-01-01T00:00:00+00:00",
        "heartbeat_at": "2026-01-01T00:00:00+00:00",
        "command": "distdl run",
        "token": "t",
    }
    holder = LockHolder.parse(json.dumps(record).encode())
    assert holder is not None and holder.job_id is None
