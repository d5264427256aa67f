"""Running on a Slurm cluster: job chains (``distdl submit``), the original tool's environment
variables (``distdl env``), a job's own end time, and the chain's job states.

Every Slurm command goes through a :data:`~distdl.cluster.commands.Runner`, so rendering,
parsing and the decisions are tested with fake ``sbatch``/``squeue`` runners.
"""
