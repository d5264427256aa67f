"""How many local ranks ``distdl run`` starts when ``--ranks`` is not given."""

from __future__ import annotations

import pytest

from distdl.config import DownloaderParameters
from distdl.runtime import launch


@pytest.mark.parametrize(
    ("cores", "cpu_per_worker", "ranks"),
    [
        (1, 2, 1),  # one worker has every core: no MPI, one process
        (2, 2, 1),
        (2, 1, 3),  # two workers and the coordinator
        (3, 2, 3),  # two workers of two decoders: one too many beats an idle core
        (8, 2, 5),
        (8, 8, 1),
        (16, 4, 5),
    ],
)
def test_every_core_gets_a_decoder_and_one_worker_runs_in_this_process(
    monkeypatch: pytest.MonkeyPatch, cores: int, cpu_per_worker: int, ranks: int
) -> None:
    monkeypatch.setattr(launch, "usable_cores", lambda: cores)
    assert launch.default_rank_count(cpu_per_worker) == ranks


def test_by_default_a_worker_rank_drives_two_decoders() -> None:
    assert DownloaderParameters().cpu_per_worker == 2


def test_the_cores_counted_are_those_this_process_may_run_on() -> None:
    assert 1 <= launch.usable_cores() <= (launch.os.cpu_count() or 1)
