"""The ranks a run is made of, so that its stages are written once for every kind of run.

A :class:`World` is what the stages need from the ranks: which one this process is, a step
that rank 0 leads and every rank learns the outcome of, and the download stage. There are
two:

* :class:`MpiWorld`: the ranks of mpiexec or srun. Rank 0 plans and coordinates over MPI
  messages, the others download.
* :class:`LocalWorld`: this process alone (``--ranks 1``, ``--until profiled``). It is rank
  0, and its download runs the coordinator and one worker in this process, over queues.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from distdl.config import Config
from distdl.core.stopping import DEFAULT_GRACE
from distdl.errors import RankFailure
from distdl.layout import Layout
from distdl.runtime.event_loop import run_loop
from distdl.runtime.launch import stop_grace
from distdl.runtime.mpi_channel import MpiChannel, abort_at_exit
from distdl.runtime.rank_zero import on_rank0

if TYPE_CHECKING:
    from distdl.runtime.coordinator import RunReport

T = TypeVar("T")


class World(Protocol):
    @property
    def rank(self) -> int: ...

    @property
    def workers(self) -> int:
        """How many ranks download (the estimate of ``--until profiled`` uses it)."""
        ...

    @property
    def declared_dead(self) -> bool:
        """Whether rank 0 declared a rank dead during the download (it may be hung)."""
        ...

    def on_rank0(self, action: Callable[[], T]) -> T:
        """``action()`` on rank 0; its result (or its failure, or a stop) on every rank."""
        ...

    def download(
        self, config: Config, layout: Layout, retry_codes: frozenset[int]
    ) -> RunReport | None:
        """The download stage: rank 0's report (None on the other ranks)."""
        ...


class LocalWorld:
    """This process alone: rank 0, downloading with one in-process worker."""

    rank = 0
    declared_dead = False

    def __init__(self, workers: int = 1) -> None:
        self.workers = workers

    def on_rank0(self, action: Callable[[], T]) -> T:
        return action()

    def download(self, config: Config, layout: Layout, retry_codes: frozenset[int]) -> RunReport:
        from distdl.runtime.download import run_in_process

        return run_loop(run_in_process(config, layout, retry_codes, grace=stop_grace()))


class MpiWorld:
    """The MPI ranks of mpiexec or srun (``comm``: their world communicator)."""

    def __init__(self, comm: Any) -> None:
        self._comm = comm
        self.rank: int = comm.Get_rank()
        self.size: int = comm.Get_size()
        self.workers = self.size - 1
        self.declared_dead = False

    def on_rank0(self, action: Callable[[], T]) -> T:
        return on_rank0(self._comm, action)

    def download(
        self, config: Config, layout: Layout, retry_codes: frozenset[int]
    ) -> RunReport | None:
        from distdl.runtime.download import run_rank

        # Only rank 0 asks Slurm for its KillWait (hundreds of ranks must not all call
        # scontrol); the workers get their share of it in rank 0's Stop.
        grace = stop_grace() if self.rank == 0 else DEFAULT_GRACE
        channel = MpiChannel(self._comm)
        try:
            return run_loop(
                run_rank(
                    config,
                    layout,
                    channel,
                    self.size,
                    retry_codes,
                    grace=grace,
                    on_dead_ranks=self._end_with_abort,
                )
            )
        finally:
            if not self.declared_dead:  # messages to a hung rank never leave; MPI_Abort follows
                channel.flush()

    def _end_with_abort(self) -> None:
        # A rank declared dead may be hung, not gone: MPI_Finalize or the launcher would
        # wait for it forever. MPI_Abort at exit ends the whole job instead.
        self.declared_dead = True
        abort_at_exit(self._comm, RankFailure.exit_code)
