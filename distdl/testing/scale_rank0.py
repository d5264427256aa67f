"""Rank 0's side of the coordinator simulation: the real coordinator and budgets, adapted.

Only what a simulated run of weeks cannot afford is changed: the learned rates are saved
once (and that save timed) instead of every minute, heartbeats go out only while a sample
measures rank 0, and the channel records what rank 0 sends (pickling it while sampling, as
MPI would) instead of sending it.
"""

from __future__ import annotations

import pickle
import time

from distdl.runtime.budgets import HostBudgets
from distdl.runtime.coordinator import Coordinator
from distdl.runtime.messages import Message


class UnsavedBudgets(HostBudgets):
    """Rank 0 saves the learned rates every minute; in a simulated run of days that is
    thousands of files. The cost of one save is measured once, at the end, instead."""

    def save(self) -> None:
        pass

    def measured_save(self) -> float:
        started = time.process_time()
        super().save()
        return time.process_time() - started


class SimCoordinator(Coordinator):
    """The coordinator, heartbeating only while a sample measures it: between samples the
    virtual workers report in long windows, never die, and nothing listens for heartbeats
    (hundreds of ranks heartbeated every simulated second of a run of days would take hours)."""

    measuring = False

    def _send_heartbeats(self) -> None:
        if self.measuring:
            super()._send_heartbeats()

    def _declare_silent_dead(self) -> None:
        if self.measuring:
            super()._declare_silent_dead()


class RecordingOutbox:
    """Rank 0's channel: records what it sends; pickles it (as MPI would) while sampling."""

    rank = 0

    def __init__(self) -> None:
        self.sent: list[tuple[int, Message]] = []
        self.pickling = False
        self.bytes = 0
        self.count = 0

    def send(self, dest: int, message: Message) -> None:
        if self.pickling:
            self.bytes += len(pickle.dumps(message, pickle.HIGHEST_PROTOCOL))
            self.count += 1
        self.sent.append((dest, message))

    def poll(self) -> list[tuple[int, Message]]:
        return []
