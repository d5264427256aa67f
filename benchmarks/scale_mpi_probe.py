"""What the MPI layer itself costs rank 0 per message (run by scale_sim.py under mpiexec -n 2).

Rank 1 sends rank 0 a stream of feedback reports; rank 0 receives them through the real
``MpiChannel`` (Iprobe, recv, unpickle) and then sends as many rate changes back, measuring
its process time for both. It prints one JSON object: microseconds per message received and
per message sent, less the pickling, which the simulation already measures.

    mpiexec -n 2 python benchmarks/scale_mpi_probe.py 50000
"""

from __future__ import annotations

import json
import pickle
import sys
import time

from distdl.core.throttle import Feedback
from distdl.runtime.messages import ChangeRate, Heartbeat, HostFeedbackReported, Message
from distdl.runtime.mpi_channel import MpiChannel, comm_world

REPORT = HostFeedbackReported(
    "inaturalist-open-data.s3.amazonaws.com",
    Feedback(ok=5, rate_limited=1, server_errors=1, latency_sum=1.25, latency_count=7),
)


def _pickling(message: Message, count: int) -> float:
    started = time.process_time()
    for _ in range(count):
        pickle.loads(pickle.dumps(message, pickle.HIGHEST_PROTOCOL))
    return (time.process_time() - started) / count


def _receive(channel: MpiChannel, count: int) -> float:
    got = 0
    cpu = 0.0
    while got < count:
        started = time.process_time()
        messages = channel.poll()
        cpu += time.process_time() - started
        got += len(messages)
        if not messages:
            time.sleep(0.005)  # rank 0's loop sleeps between polls too
    return cpu / count


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    channel = MpiChannel(comm_world())
    if channel.rank == 1:
        for index in range(count):
            channel.send(0, REPORT)
            if index % 100 == 0:
                time.sleep(0.001)  # a stream, not one burst
        _receive(channel, count)
        channel.send(0, Heartbeat())
        channel.flush()
        return
    receive = _receive(channel, count)
    change = ChangeRate(123456, 12.5)
    cpu = 0.0
    for index in range(count):
        started = time.process_time()
        channel.send(1, change)
        cpu += time.process_time() - started
        if index % 100 == 0:
            time.sleep(0.001)  # passes of rank 0's loop, not one burst
    send = cpu / count
    _receive(channel, 1)
    channel.flush()
    figures = {
        "receive_us": 1e6 * (receive - _pickling(REPORT, count) / 2),
        "send_us": 1e6 * (send - _pickling(change, count) / 2),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
