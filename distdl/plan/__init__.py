"""Stage "batched": stream the input URL list into per-server partitions.

The entry points live in :mod:`distdl.plan.planner` (``plan_input``, ``read_servers_table``)
and, for reading a finished plan without Polars, :mod:`distdl.plan.partition_files`
(``list_url_partitions``, ``read_url_partition``); the other modules are the planner's
parts: reader, classify, chunk, duplicates, partitioner (with spill and writer), rejects,
ignored, staging.
"""
