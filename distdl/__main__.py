import os

from distdl.runtime.lifeline import hold_lifeline
from distdl.runtime.stop_signals import READY_ENV, defer_stop_signals

defer_stop_signals()  # before the heavy imports: a Ctrl-C while they load stops the run
hold_lifeline(os.environ.get(READY_ENV))  # in a rank we launched: how its end is told

from distdl.cli import main  # noqa: E402

main()
