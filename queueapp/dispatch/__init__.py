"""Dispatching: the in-memory order of unfinished jobs (lanes), the ledger that turns
committed changes into memory state, in-process execution and leases."""

from .dispatcher import Dispatcher
from .ledger import ActiveJob, Ledger, QueueRuntime

__all__ = ["ActiveJob", "Dispatcher", "Ledger", "QueueRuntime"]
