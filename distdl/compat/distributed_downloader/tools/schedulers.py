"""``distributed_downloader.tools.schedulers``, as the original names it."""

from distdl.tools.bases import DefaultScheduler, SchedulerToolBase
from distdl.tools.registry import SchedulerRegister

__all__ = ["DefaultScheduler", "SchedulerRegister", "SchedulerToolBase"]
