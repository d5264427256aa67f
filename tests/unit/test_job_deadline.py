"""A Slurm job's end time as Slurm tells it, and the stop sent `stop_margin` before it."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from distdl.cluster.commands import Completed
from distdl.cluster.end_time import job_end_time, parse_scontrol_end, parse_slurm_time
from distdl.runtime.job_deadline import JobDeadline, seconds_to_stop

END = "2026-11-30T16:01:02"
END_EPOCH = time.mktime(time.strptime(END, "%Y-%m-%dT%H:%M:%S"))


def runner(answers: dict[str, Completed]):
    calls: list[list[str]] = []

    def run(argv: Sequence[str]) -> Completed:
        calls.append(list(argv))
        return answers.get(argv[0], Completed(127, "", "not found"))

    run.calls = calls  # type: ignore[attr-defined]
    return run


def test_squeue_s_end_time_is_read_in_local_time() -> None:
    run = runner({"squeue": Completed(0, END + "\n")})
    assert job_end_time(env={"SLURM_JOB_ID": "42"}, runner=run) == END_EPOCH
    assert run.calls == [["squeue", "-h", "-j", "42", "-o", "%e"]]  # type: ignore[attr-defined]


def test_without_squeue_the_environment_then_scontrol() -> None:
    run = runner({})
    env = {"SLURM_JOB_ID": "42", "SLURM_JOB_END_TIME": "1800000000"}
    assert job_end_time(env=env, runner=run) == 1800000000.0
    shown = (
        "JobId=42 JobName=distdl\n   StartTime=2026-11-30T15:01:02 EndTime="
        + END
        + " Deadline=N/A\n"
    )
    run = runner({"scontrol": Completed(0, shown)})
    assert job_end_time(env={"SLURM_JOB_ID": "42"}, runner=run) == END_EPOCH


def test_no_limit_and_no_job_mean_no_end_time() -> None:
    assert parse_slurm_time("UNLIMITED") is None
    assert parse_slurm_time("N/A") is None
    assert parse_scontrol_end("JobId=1 EndTime=Unknown") is None
    assert job_end_time(env={}, runner=runner({})) is None
    run = runner({"squeue": Completed(0, "NONE\n")})
    assert job_end_time(env={"SLURM_JOB_ID": "42"}, runner=run) is None


def test_seconds_to_stop() -> None:
    assert seconds_to_stop(end=1000.0, margin=120.0, now=800.0) == 80.0
    assert seconds_to_stop(end=1000.0, margin=120.0, now=990.0) == 0.0


def test_the_stop_is_sent_margin_seconds_before_the_end() -> None:
    fired = threading.Event()
    clock = [1000.0]
    ends = iter([1000.0 + 130.0, 1000.0 + 121.0])  # read at start, then again at the stop

    def read_end() -> float | None:
        return next(ends, 1121.0)

    def fake_wait_clock() -> float:
        clock[0] += 5.0  # each look at the clock is five seconds on
        return clock[0]

    watch = JobDeadline(120.0, read_end, clock=fake_wait_clock, on_deadline=fired.set, recheck=0.01)
    with watch:
        assert fired.wait(10)
    assert watch.fired


def test_no_stop_without_a_limit_nor_after_the_run_ended() -> None:
    fired = threading.Event()
    with JobDeadline(120.0, lambda: None, on_deadline=fired.set):
        time.sleep(0.05)
    assert not fired.is_set()
    far = time.time() + 3600
    watch = JobDeadline(120.0, lambda: far, on_deadline=fired.set)
    with watch:
        pass
    time.sleep(0.05)
    assert not fired.is_set() and not watch.fired


def test_a_failed_re_read_keeps_the_end_already_known() -> None:
    fired = threading.Event()
    reads = iter([time.time() + 0.3])  # then None: squeue failed

    watch = JobDeadline(0.1, lambda: next(reads, None), on_deadline=fired.set, recheck=0.05)
    with watch:
        assert fired.wait(10)
