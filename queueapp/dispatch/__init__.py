"""Dispatching: one dispatcher over a work source (memory's lanes on one appliance,
the database's claims on a node of a cluster), the ledger that turns committed
changes into memory state, in-process execution, leases and outcomes."""

from .dispatcher import Dispatcher
from .ledger import Ledger
from .memory import MemorySource
from .policies import GroupPolicies
from .runtime import ActiveJob, QueueRuntime
from .source import WorkSource
from .wakeup import Wakeup

__all__ = ["ActiveJob", "Dispatcher", "GroupPolicies", "Ledger", "MemorySource", "QueueRuntime", "WorkSource",
           "Wakeup"]
