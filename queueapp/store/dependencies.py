"""options.dependsOn: a job blocked until its dependencies have completed. An edge
per unfinished dependency lives in ``job_dependencies``; when a dependency finishes,
its edges go in the same transaction, and each dependent moves on: to waiting (or
delayed) when it has no edge left, or to failed when the dependency failed for good
and the dependent does not ``allowDependencyFailure`` (which fails its own
dependents in turn). The rules of an enqueue with dependencies, for both stores;
the statements are in sql/dependencies.py, the moves in transitions.settle."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import NotFound
from ..model import JobState, NewJob

UNFINISHED_STATES = ("waiting", "delayed", "active", "blocked")


class HasId(Protocol):
    @property
    def id(self) -> int: ...


def resolve(refs: tuple[str, ...], index: int, earlier: Sequence[HasId | None]) -> list[int]:
    """Job ids of ``refs``: an id, or "#n", the n-th job of the same request (an
    earlier one: a job cannot wait for itself or a later one)."""
    ids = []
    for ref in refs:
        if ref.startswith("#"):
            n = int(ref[1:])
            if n >= index or earlier[n] is None:
                raise NotFound(f"dependsOn {ref}: no earlier job #{n} in this request (a job may depend on an"
                               " earlier job of its request, or on a job by id)")
            added = earlier[n]
            assert added is not None
            ids.append(added.id)
        else:
            ids.append(int(ref))
    return list(dict.fromkeys(ids))


@dataclass(frozen=True, slots=True)
class Placement:
    """How a job with dependencies is stored: its state (blocked while any is
    unfinished, failed when one ended otherwise than completed, unless allowed), and
    the edges it waits on."""

    state: JobState
    run_at: int
    finished_at: int | None
    error: str | None
    blocking: list[int]
    options: dict[str, Any]


def placement(new: NewJob, deps: list[int], states: dict[int, str], now: int) -> Placement:
    """``new``'s placement given its dependencies' ``states`` (by id, from either
    engine). Raises NotFound for a dependency that does not exist."""
    missing = [d for d in deps if d not in states]
    if missing:
        raise NotFound(f"dependsOn names job {missing[0]}, which does not exist")
    failed = [d for d in deps if states[d] not in UNFINISHED_STATES and states[d] != "completed"]
    blocking = [d for d in deps if states[d] in UNFINISHED_STATES]
    state, run_at = new.placed(now)
    finished, error = None, None
    if failed and not new.options.get("allowDependencyFailure"):
        state, finished, error = JobState.FAILED, now, f"dependency {failed[0]} {states[failed[0]]}"
    elif blocking:
        state = JobState.BLOCKED
    options = {**new.options, "dependsOn": [str(d) for d in deps]}  # "#n" said as the job it named
    return Placement(state, run_at, finished, error, blocking if state is JobState.BLOCKED else [], options)
