"""The imperative shell: coordinator and workers over a channel (in-process queues or MPI)."""
