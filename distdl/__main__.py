from distdl.runtime.stop_signals import defer_stop_signals

defer_stop_signals()  # before the heavy imports: a Ctrl-C while they load stops the run

from distdl.cli import main  # noqa: E402

main()
