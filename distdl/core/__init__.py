"""Pure policy: stdlib only, no I/O, time passed in as an argument."""
