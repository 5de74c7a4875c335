"""What several appliance nodes on one database need of their store besides the
``Store`` interface: claims the database arbitrates, wake-ups between nodes,
leadership, node liveness and counts every node can read. Only a store that
several processes can share implements it (``Store.shared``); SQLite's is None.

A node in a cluster keeps no waiting job in memory: the database chooses the next
job for whichever node asks, so no job is handed out twice."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..flow import NONE, Aging, GroupLimits
from ..model import Job, JobState, NewJob
from .records import Added

# A queue's group limits in the config file, its aging, and whether stored group settings govern it.
FlowRules = tuple[GroupLimits, Aging | None, bool]


@dataclass(frozen=True, slots=True)
class NodeSeen:
    """A node of the cluster, as its last heartbeat left it."""

    id: str
    started_at: int
    seen_at: int
    stats: dict[str, Any]  # what it published: its recent finishes per queue (see cluster/figures.py)


class SharedStore(ABC):
    node: str  # this process's name in the cluster

    @abstractmethod
    async def claim(self, queue: str, names: list[str] | None, excluded: list[str], limit: int, now: int,
                    lease_ms: int | None, rules: FlowRules = (NONE, None, True), *, worker: str,
                    then: Callable[[list[Job]], Any] | None = None) -> list[Job]:
        """Up to ``limit`` of the queue's best waiting jobs (of ``names`` when given, never
        of ``excluded``), made active: leased for ``lease_ms``, or run by this node's
        handlers when None; ``worker`` says who runs them. Nothing when the queue is
        paused. Jobs past their expiry come back expired instead. ``rules``: the config file's group limits of the
        queue (its stored policy wins), its priority aging, and whether stored group
        settings were seen (False: a claim that finds the queue governed after all
        claims nothing, rather than read the settings at every claim)."""

    @abstractmethod
    async def key_counts(self, queue: str) -> dict[str, tuple[int, int]]:
        """(active, waiting) jobs of each group key of ``queue`` that has some."""

    @abstractmethod
    async def promote_due(self, now: int, limit: int) -> int:
        """Delayed jobs due by ``now`` -> waiting (skipping rows another node holds),
        their queues' nodes woken; how many."""

    @abstractmethod
    async def wake(self, woken: dict[str, set[str]]) -> None:
        """Tell every node that these queues have new waiting jobs of these names (an
        empty set: of any name)."""

    @abstractmethod
    async def tell_cancelled(self, job_id: int) -> None:
        """Tell every node that a running job was cancelled (its runner stops it)."""

    @abstractmethod
    async def listen(self, on_queue: Callable[[str, list[str] | None], None],
                     on_cancel: Callable[[int], None]) -> None:
        """Call ``on_queue`` with the queue and the names of the new jobs (None: any)
        for every wake-up, and ``on_cancel`` for every cancelled running job, told by
        another node, until ``unlisten``; reconnects when the connection is lost (a
        wake-up may be lost then: nodes also poll)."""

    @abstractmethod
    async def unlisten(self) -> None: ...

    @abstractmethod
    async def lead(self, now: int, lease_ms: int) -> int | None:
        """Take or renew leadership until ``now + lease_ms``: the term while this node
        leads, None while another node's lease runs."""

    @abstractmethod
    async def step_down(self, term: int) -> None: ...

    @abstractmethod
    async def leader(self, now: int) -> str | None:
        """The node whose leader's lease runs at ``now``."""

    @abstractmethod
    async def seen(self, now: int, stats: dict[str, Any]) -> None:
        """This node is alive, with what it publishes for the others."""

    @abstractmethod
    async def nodes(self, now: int, within_ms: int) -> list[NodeSeen]:
        """The nodes seen within ``within_ms`` of ``now``."""

    @abstractmethod
    async def database_ms(self) -> int:
        """The database's clock now, in ms since the epoch (the cluster's one clock)."""

    @abstractmethod
    async def forget_node(self) -> None:
        """This node stops: it leaves the node list at once."""

    @abstractmethod
    async def counts(self) -> dict[str, dict[JobState, int]]:
        """Jobs per queue and state in the whole cluster, without counting the table."""

    @abstractmethod
    async def fold_counts(self) -> int: ...

    @abstractmethod
    async def expired_leases(self, now: int, limit: int) -> list[tuple[int, str]]:
        """(id, token) of leased jobs whose lease ran out by ``now``."""

    @abstractmethod
    async def orphans(self, now: int, gone_ms: int) -> list[tuple[int, str]]:
        """(id, token) of jobs run by the handlers of a node not seen for ``gone_ms``."""

    @abstractmethod
    async def active_jobs(self, limit: int) -> list[tuple[Job, str | None]]:
        """Running jobs of the whole cluster, oldest first, each with the node that
        claimed it."""

    @abstractmethod
    async def running_here(self, *, then: Callable[[list[tuple[int, str]]], Any]) -> None:
        """For the self-audit: (id, token) of the jobs this node's handlers run, read
        in commit order with this node's writes, given to ``then`` (as a write's hook)."""

    @abstractmethod
    async def both_counts(self) -> tuple[dict[str, dict[JobState, int]], dict[str, dict[JobState, int]]]:
        """For the self-audit: the counts as metrics read them, and a count of the
        table, in one snapshot."""

    @abstractmethod
    async def fire_schedule(
        self, term: int, queue: str, name: str, expected_next: int, jobs: list[NewJob], next_run_at: int,
        now: int, *, then: Callable[[Any], Any] | None = None,
    ) -> tuple[list[Added], bool] | None:
        """A schedule's run as the leader of ``term`` (``Store.fire_schedule``, fenced:
        a deposed leader fires nothing)."""
