"""Where the dispatcher finds work: the ``WorkSource`` protocol, with two
implementations, chosen where the service is built (service.py):

- ``MemorySource`` (memory.py): one appliance keeps every waiting job in memory, in
  lanes, and tells the store which ones it took;
- ``DatabaseSource`` (cluster/claims.py): a node of a cluster keeps none, and asks
  the database for the best waiting jobs (``FOR UPDATE SKIP LOCKED``), since other
  nodes add and take jobs it never sees.

The dispatcher, its ledger, its lease desk and its outcomes desk are the same code
over either. A source learns of committed changes from the ledger, takes the best
jobs for this process's handlers or for a worker's lease (the store's post-commit
hook hands the claimed jobs to ``started``), wakes whoever waits for work, counts a
queue's group keys, and says when its next timer is due.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from ..model import Job, NewJob
from ..store import Added
from .ledger import Ledger, Placing, Running
from .runtime import ActiveJob, QueueRuntime

# The post-commit hook of a claim: the ledger's bookkeeping of the claimed jobs,
# answering those that became active in memory.
Started = Callable[[list[Job]], list[ActiveJob]]


# Who runs a job that the appliance's own handlers run (kept with the job as its
# worker; a cluster node adds its name).
IN_PROCESS = "appliance"


class WorkSource(Placing, Protocol):
    tracks_leases: bool  # leased jobs are in memory's active table (False: the database's only)
    shared_with_others: bool  # other processes run jobs of the same table
    poll_ms: int | None  # the loop looks for work this often even when nobody woke it

    async def load(self, ledger: Ledger, leased: list[Job]) -> int: ...
    async def audit(self, ledger: Ledger) -> list[str]: ...
    def handlers_changed(self) -> None: ...

    # taking work ---------------------------------------------------------------------------------
    def queues_to_look(self, queues: dict[str, QueueRuntime], everything: bool) -> Iterable[QueueRuntime]: ...
    def claim_for_handlers(self, q: QueueRuntime, free: int, started: Started) -> Any: ...
    def claim_for_lease(self, queue: str, q: QueueRuntime | None, names: list[str] | None, max_jobs: int,
                        lease_ms: int, worker: str, started: Started) -> Any: ...
    def after_turn(self) -> Any: ...
    async def resumed(self, queue: str) -> None: ...
    async def fire_schedule(self, queue: str, name: str, expected_next: int, jobs: list[NewJob], next_run_at: int,
                            now: int, then: Callable[[Any], None]) -> tuple[list[Added], bool] | None: ...

    # time ----------------------------------------------------------------------------------------
    def reopen_due(self, now: int) -> None: ...

    # reads ---------------------------------------------------------------------------------------
    async def expired_leases(self, running: Running) -> list[tuple[int, str]]: ...
    def next_expiry(self, running: Running) -> int | None: ...
    async def key_counts(self, queue: str) -> dict[str, tuple[int, int]]: ...
    async def cancelled(self, job_id: int) -> None: ...
