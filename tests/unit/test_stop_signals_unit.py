"""Where stop signals go: noted while the command line starts, raised around a run, given to
the event loop during the download; the handlers before are always put back."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator

import pytest

from distdl.runtime import stop_signals
from distdl.runtime.stop_signals import (
    StopSignal,
    defer_stop_signals,
    loop_stop_signals,
    raising_stop_signals,
    stop_signal_of,
)


@pytest.fixture(autouse=True)
def _handlers_restored() -> Iterator[None]:
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)}
    yield
    stop_signals._noted.clear()
    for signum, handler in before.items():
        signal.signal(signum, handler)


def test_a_signal_while_starting_is_noted_then_raised_when_the_run_handles_signals() -> None:
    defer_stop_signals()
    os.kill(os.getpid(), signal.SIGTERM)  # noted: nothing is raised here
    with pytest.raises(StopSignal) as raised, raising_stop_signals():
        pytest.fail("the noted signal must be raised on entry")
    assert raised.value.signum == signal.SIGTERM
    os.kill(os.getpid(), signal.SIGUSR1)  # after the block: noted again, not raised
    assert stop_signals._noted == [signal.SIGUSR1]


def test_inside_a_run_sigint_is_a_keyboard_interrupt_and_sigusr1_a_stop() -> None:
    with pytest.raises(KeyboardInterrupt), raising_stop_signals():
        os.kill(os.getpid(), signal.SIGINT)
    with pytest.raises(StopSignal) as raised, raising_stop_signals():
        os.kill(os.getpid(), signal.SIGUSR1)
    assert stop_signal_of(raised.value) == signal.SIGUSR1
    assert stop_signal_of(KeyboardInterrupt()) == signal.SIGINT
    assert stop_signal_of(ValueError()) is None


async def test_the_event_loop_gets_every_stop_signal_and_the_old_handlers_come_back() -> None:
    before = signal.getsignal(signal.SIGTERM)
    received: list[int] = []
    defer_stop_signals()
    os.kill(os.getpid(), signal.SIGUSR1)  # noted before the loop took over
    noted_handler = signal.getsignal(signal.SIGTERM)
    with loop_stop_signals(received.append):
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(100):
            if len(received) == 3:
                break
            await asyncio.sleep(0.01)
    assert received == [signal.SIGUSR1, signal.SIGTERM, signal.SIGINT]
    assert signal.getsignal(signal.SIGTERM) is noted_handler
    assert noted_handler is not before


def test_once_the_command_is_over_a_late_signal_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    """Python's exit would put back the default action (death by the signal): a stop that a
    launcher forwards as a finished rank exits must leave its exit code alone."""
    from distdl import cli

    def finished() -> None:
        raise SystemExit(0)  # as typer ends every command

    monkeypatch.setattr(cli, "app", finished)
    with pytest.raises(SystemExit):
        cli.main()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
        assert signal.getsignal(signum) == signal.SIG_IGN
    os.kill(os.getpid(), signal.SIGUSR1)  # would end this test process otherwise
    assert not stop_signals._noted
