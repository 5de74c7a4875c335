"""The self-audit of one appliance: does memory agree with the table?

``compare`` takes a snapshot of the table read in the writer's order (every change
committed before it is in it, none after) and, in the snapshot's post-commit hook,
checks the ledger against it: counts per queue and state, every waiting job in its
lane with its place, every delayed job in the timer heap, every active job in the
active table with its lease token, every queue's in-process slots, and every group
key's count of running jobs. Jobs popped
for a claim or a promotion that is being committed are in flight, and expected.
(A node of a cluster audits what it keeps: cluster/claims.py.)

A difference is a bug: the appliance logs each one (``audit_interval_ms``) and
``GET /debug/audit`` lists them.
"""

from __future__ import annotations

from collections import Counter

from ..model import JobState
from ..store import TableSnapshot
from .lanes import pack, unpack_id
from .ledger import Ledger
from .order import Lanes


def compare(ledger: Ledger, snap: TableSnapshot, lanes: dict[str, Lanes], claiming: dict[int, str | None]) -> list[str]:
    """``claiming``: ids whose claim is being committed, with their queue when for
    this process's handlers."""
    problems: list[str] = []
    in_flight = ledger.in_flight | claiming.keys()
    _compare_counts(ledger, snap, problems)
    problems += snap.drift
    waiting: dict[int, tuple[str, str, str | None, int]] = {}
    delayed: dict[int, tuple[str, str, str | None, int]] = {}
    active: dict[int, tuple[str, str | None]] = {}
    running: Counter[tuple[str, str | None]] = Counter()
    for job_id, queue, name, state, priority, run_at, token, group in snap.unfinished:
        if state == JobState.WAITING:
            waiting[job_id] = (queue, name, group, pack(priority, run_at, job_id))
        elif state == JobState.DELAYED:
            delayed[job_id] = (queue, name, group, run_at)
        else:
            active[job_id] = (queue, token)
            running[(queue, group)] += 1
    _compare_lanes(lanes, in_flight, waiting, problems)
    _compare_timers(ledger, in_flight, delayed, problems)
    _compare_active(ledger, claiming, active, problems)
    _compare_groups(lanes, bool(in_flight), running, problems)
    return problems


def _compare_counts(ledger: Ledger, snap: TableSnapshot, problems: list[str]) -> None:
    queues = set(snap.counts) | set(ledger.metrics.queues)
    for queue in sorted(queues):
        table = snap.counts.get(queue, {})
        memory = ledger.metrics.peek(queue).counts
        for state in JobState:
            if table.get(state, 0) != memory[state]:
                problems.append(f"queue {queue}: {state} count is {memory[state]} in memory, "
                                f"{table.get(state, 0)} in the table")


def _compare_lanes(lanes: dict[str, Lanes], in_flight: set[int], waiting: dict[int, tuple[str, str, str | None, int]],
                   problems: list[str]) -> None:
    seen: Counter[int] = Counter()
    for queue, of_queue in lanes.items():
        for lane in of_queue.all_lanes():
            for key in lane.live_keys():
                job_id = unpack_id(key)
                seen[job_id] += 1
                expected = waiting.get(job_id)
                if expected is None:
                    problems.append(f"job {job_id} is in line in memory but not waiting in the table")
                elif expected != (queue, lane.name, lane.group, key) or key >> 90 != lane.priority:
                    problems.append(f"job {job_id} is in line in the wrong place")
    for job_id, n in seen.items():
        if n > 1:
            problems.append(f"job {job_id} is in line {n} times")
    missing = set(waiting) - set(seen) - in_flight
    for job_id in sorted(missing)[:20]:
        problems.append(f"job {job_id} is waiting in the table but in no lane: it would never run")


def _compare_timers(ledger: Ledger, in_flight: set[int], delayed: dict[int, tuple[str, str, str | None, int]],
                    problems: list[str]) -> None:
    timers = Counter(t.job_id for t in ledger.timers.live())
    for t in ledger.timers.live():
        expected = delayed.get(t.job_id)
        if expected is None:
            problems.append(f"job {t.job_id} has a timer in memory but is not delayed in the table")
        elif expected != (t.queue, t.name, t.group, t.run_at):
            problems.append(f"job {t.job_id}'s timer does not match its row")
    for job_id, n in timers.items():
        if n > 1:
            problems.append(f"job {job_id} has {n} timers")
    for job_id in sorted(set(delayed) - set(timers) - in_flight)[:20]:
        problems.append(f"job {job_id} is delayed in the table but has no timer: it would never run")


def _compare_active(ledger: Ledger, claiming: dict[int, str | None], active: dict[int, tuple[str, str | None]],
                    problems: list[str]) -> None:
    for job_id, a in ledger.active.items():
        expected = active.get(job_id)
        if expected is None:
            problems.append(f"job {job_id} is running in memory but not active in the table")
        elif expected != (a.queue, a.token):
            problems.append(f"job {job_id} is active under another lease token in the table")
    for job_id in sorted(set(active) - set(ledger.active))[:20]:
        problems.append(f"job {job_id} is active in the table but unknown in memory: nothing would return it")
    running = Counter(a.queue for a in ledger.active.values() if a.in_process)
    here = Counter(queue for queue in claiming.values() if queue is not None)
    for queue, q in ledger.queues.items():
        if q.running != running[queue] + here[queue]:
            problems.append(f"queue {queue}: {q.running} in-process slots taken, but "
                            f"{running[queue]} jobs run and {here[queue]} are being claimed")


def _compare_groups(lanes: dict[str, Lanes], in_flight: bool, running: Counter[tuple[str, str | None]],
                    problems: list[str]) -> None:
    """Each key's running count is its active jobs; nothing is being claimed unless
    a claim is in flight."""
    for queue, of_queue in lanes.items():
        for key, line in of_queue.lines.items():
            gate = line.gate
            if gate.running != running[(queue, key)]:
                problems.append(f"queue {queue}: group {key!r} counts {gate.running} running jobs, "
                                f"the table {running[(queue, key)]} active")
            if gate.claiming < 0 or (gate.claiming and not in_flight):
                problems.append(f"queue {queue}: group {key!r} counts {gate.claiming} jobs being claimed, "
                                "with no claim in flight")
    for (queue, key), n in running.items():
        if queue not in lanes or key not in lanes[queue].lines:
            problems.append(f"queue {queue}: group {key!r} has {n} active jobs that memory does not count")
