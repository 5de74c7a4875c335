"""Group flow control (options.group) and priority aging: against a real ``queueapp
serve`` with in-process handlers and 50 leasing workers, never more than N jobs of a
key active at once and never more than M starts of a key in any window; keys take
turns; the policy, keys' own limits, pauses and rate windows survive a restart;
aging with a fake clock."""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections import defaultdict
from pathlib import Path

from conftest import iso_ms, wait_for

from queueapp.clock import FakeClock
from queueapp.flow import Aging, GroupLimits
from queueapp.options import JobOptions

HERE = Path(__file__).parent.parent
AUDIT = ("--audit-interval-ms", "60000")


def serve_env(log: Path) -> dict[str, str]:
    return {"PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "GROUP_LOG": str(log)}


async def call(http, method: str, url: str, body=None):
    async with http.request(method, url, json=body) as r:
        payload = await r.json()
        assert r.status < 300, (r.status, payload)
        return payload


async def audit_clean(http, url: str) -> None:
    assert await call(http, "GET", f"{url}/debug/audit") == {"ok": True, "problems": []}


async def all_jobs(http, url: str, queue: str, state: str) -> list[dict]:
    jobs, cursor = [], None
    while True:
        page = await call(http, "GET", f"{url}/queues/jobs?queue={queue}&state={state}&limit=1000"
                          + (f"&cursor={cursor}" if cursor else ""))
        jobs += page["jobs"]
        cursor = page.get("nextCursor")
        if not cursor:
            return jobs


async def lease_workers(http, url: str, queue: str, count: int, intervals: list, done: asyncio.Event) -> None:
    """``count`` workers leasing remote-step jobs: each records when it holds a job
    (after the lease answers, until before it completes) and completes it."""
    rng = random.Random(5)

    async def worker() -> None:
        while not done.is_set():
            leased = await call(http, "POST", f"{url}/queues/jobs/lease?queue={queue}",
                                {"names": ["remote-step"], "max": rng.randint(1, 3), "waitMs": 200})
            for job in leased["jobs"]:
                start = time.monotonic_ns()
                await asyncio.sleep(rng.uniform(0, 0.006))
                intervals.append((job["options"]["group"], start, time.monotonic_ns()))
                await call(http, "POST", f"{url}/queues/jobs/{job['id']}/complete",
                           {"leaseToken": job["leaseToken"]})

    await asyncio.gather(*(worker() for _ in range(count)))


def local_intervals(log: Path) -> list[tuple[str, int, int]]:
    started: dict[int, tuple[str, int]] = {}
    found = []
    for line in log.read_text().splitlines():
        event = json.loads(line)
        if event["event"] == "start":
            started[event["id"]] = (event["group"], event["at"])
        else:
            group, at = started.pop(event["id"])
            found.append((group, at, event["at"]))
    return found


def max_overlap(intervals: list[tuple[str, int, int]]) -> dict[str, int]:
    """The most intervals of one key open at any instant."""
    edges: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for group, start, end in intervals:
        edges[group] += [(start, 1), (end, -1)]
    most = {}
    for group, points in edges.items():
        now = peak = 0
        for _, step in sorted(points, key=lambda p: (p[0], p[1])):  # a finish before a start at one instant
            now += step
            peak = max(peak, now)
        most[group] = peak
    return most


async def test_never_more_than_n_of_a_key_active_with_leasing_workers_and_handlers(serve, http, tmp_path):
    log = tmp_path / "starts.log"
    server = serve("--handlers", "group_handlers", "--concurrency", "12", *AUDIT, env=serve_env(log))
    url = server.url
    await call(http, "PUT", f"{url}/queues/groups/policy?queue=tenants", {"concurrency": 2})
    await call(http, "PUT", f"{url}/queues/groups/big?queue=tenants", {"concurrency": 4})
    rng = random.Random(1)
    keys = ["t1", "t2", "t3", "t4", "big"]
    jobs = [{"name": rng.choice(["local-step", "remote-step"]), "data": {"ms": rng.randint(0, 6)},
             "options": {"group": rng.choice(keys), "priority": rng.randint(1, 5)}} for _ in range(800)]
    for start in range(0, len(jobs), 200):
        await call(http, "POST", f"{url}/queues/jobs/bulk?queue=tenants", {"jobs": jobs[start:start + 200]})
    leased: list[tuple[str, int, int]] = []
    done = asyncio.Event()
    workers = asyncio.create_task(lease_workers(http, url, "tenants", 50, leased, done))

    async def all_completed() -> bool:
        return (await call(http, "GET", f"{url}/queues/metrics?queue=tenants"))["completed"] == len(jobs)

    await wait_for(all_completed, timeout=120)
    done.set()
    await workers
    peaks = max_overlap(leased + local_intervals(log))
    limits = {key: 4 if key == "big" else 2 for key in keys}
    assert all(peaks[key] <= limits[key] for key in keys), peaks
    assert peaks["big"] > 2  # the key's own limit was used, not the queue's
    assert {group for group, _, _ in leased} == set(keys) and len(local_intervals(log)) > 100
    await audit_clean(http, url)


async def test_never_more_than_m_starts_of_a_key_in_any_window(serve, http, tmp_path):
    server = serve("--handlers", "group_handlers", *AUDIT, env=serve_env(tmp_path / "starts.log"))
    url = server.url
    await call(http, "PUT", f"{url}/queues/groups/policy?queue=api", {"rate": {"max": 3, "perMs": 400}})
    jobs = [{"name": name, "options": {"group": key}}
            for _ in range(12) for key in ("acct-1", "acct-2") for name in ("local-step", "remote-step")]
    await call(http, "POST", f"{url}/queues/jobs/bulk?queue=api", {"jobs": jobs})
    done = asyncio.Event()
    workers = asyncio.create_task(lease_workers(http, url, "api", 50, [], done))
    await wait_for(lambda: _completed(http, url, "api", len(jobs)), timeout=60)
    done.set()
    await workers
    starts: dict[str, list[int]] = defaultdict(list)
    for job in await all_jobs(http, url, "api", "completed"):
        starts[job["options"]["group"]].append(iso_ms(job["startedAt"]))
    for key, times in starts.items():
        times.sort()
        assert len(times) == 24
        gaps = [later - earlier for earlier, later in zip(times, times[3:], strict=False)]
        assert min(gaps) >= 400, (key, gaps)
        assert min(gaps) < 800  # the limit paced them; it did not stall them
    await audit_clean(http, url)


async def _completed(http, url: str, queue: str, count: int) -> bool:
    return (await call(http, "GET", f"{url}/queues/metrics?queue={queue}"))["completed"] == count


async def test_a_key_with_ten_jobs_is_not_held_up_by_a_key_with_ten_thousand(serve, http, tmp_path):
    server = serve("--handlers", "group_handlers", "--concurrency", "4", *AUDIT,
                   env=serve_env(tmp_path / "starts.log"))
    url = server.url
    # Both backlogs are in line before anything runs: A's 10,000, then B's 10.
    await call(http, "POST", f"{url}/queues/pause?queue=fair")
    await call(http, "POST", f"{url}/queues/jobs/bulk?queue=fair",
               {"jobs": [{"name": "tick", "options": {"group": "A"}}] * 10_000})
    await call(http, "POST", f"{url}/queues/jobs/bulk?queue=fair",
               {"jobs": [{"name": "tick", "options": {"group": "B"}}] * 10})
    await call(http, "POST", f"{url}/queues/resume?queue=fair")
    await wait_for(lambda: _completed(http, url, "fair", 10_010), timeout=120)
    finished = await all_jobs(http, url, "fair", "completed")
    last_b = max((iso_ms(j["finishedAt"]), int(j["id"])) for j in finished if j["options"]["group"] == "B")
    a_before = sum(1 for j in finished if j["options"]["group"] == "A" and (iso_ms(j["finishedAt"]), 0) <= last_b)
    assert a_before <= 500, a_before  # within the first 5 % of A's jobs
    await audit_clean(http, url)


async def test_a_paused_key_waits_its_duration_and_others_run(make_client):
    client = await make_client(audit_interval_ms=60_000)
    await client.post("/queues/jobs/bulk?queue=q", json={"jobs": [
        {"name": "n", "options": {"group": "slow-down"}}, {"name": "n", "options": {"group": "fine"}}]})
    r = await client.post("/queues/groups/slow-down/pause?queue=q", json={"durationMs": 300})
    assert (await r.json())["paused"] is True
    r = await client.post("/queues/jobs/lease?queue=q", json={"max": 5})
    assert [j["options"]["group"] for j in (await r.json())["jobs"]] == ["fine"]
    began = time.monotonic()
    r = await client.post("/queues/jobs/lease?queue=q", json={"max": 5, "waitMs": 5000})
    assert [j["options"]["group"] for j in (await r.json())["jobs"]] == ["slow-down"]
    assert time.monotonic() - began < 3  # woken when the pause ran out, not at the poll's end
    view = await (await client.get("/queues/groups?queue=q")).json()
    assert {k["key"]: (k["paused"], k["active"]) for k in view["keys"]} == {"slow-down": (False, 1), "fine": (False, 1)}


async def test_bad_group_input_is_refused_and_changes_nothing(make_client):
    client = await make_client()
    for path, body in [
        ("/queues/groups/policy?queue=q", {"concurrency": 0}),
        ("/queues/groups/policy?queue=q", {"rate": {"max": 1}}),
        ("/queues/groups/policy?queue=q", {"concurrency": "2"}),
        ("/queues/groups/policy?queue=q", {"limit": 2}),
        ("/queues/groups/k?queue=q", {"rate": {"max": 2, "perMs": 0}}),
        ("/queues/groups/" + "x" * 129 + "?queue=q", {}),
    ]:
        r = await client.put(path, json=body)
        assert r.status == 400 and (await r.json())["error"]["code"] == "validation_error", (path, body)
    r = await client.post("/queues/jobs?queue=q", json={"name": "n", "options": {"group": "a/b"}})
    assert r.status == 400
    r = await client.post("/queues/groups/k/pause?queue=q", json={"durationMs": -1})
    assert r.status == 400
    view = await (await client.get("/queues/groups?queue=q")).json()
    assert view["policy"] == {"concurrency": None, "rate": None} and view["keys"] == []


async def test_policy_keys_pauses_and_windows_survive_a_restart(make_service, db_path):
    clock = FakeClock()
    service = await make_service(clock=clock, background=False)
    await service.groups.set_policy("q", GroupLimits(concurrency=2, rate_max=3, rate_per_ms=60_000))
    # A key's own limits replace the queue's: vip may run 5 at once, and start 3 a minute.
    await service.groups.set_key("q", "vip", GroupLimits(concurrency=5, rate_max=3, rate_per_ms=60_000))
    await service.groups.pause("q", "held", None)
    await service.add_jobs([service.build_job("n", {}, JobOptions(group=key), queue="q")
                            for key in ["A"] * 6 + ["vip"] * 6 + ["held"] * 2])
    first = await service.workers.lease("q", None, 100, 600_000, 0)
    assert sorted(j.options["group"] for j in first) == ["A", "A", "vip", "vip", "vip"]  # vip: 3 starts a minute
    await service.stop(grace_s=1)

    again = await make_service(clock=clock, background=False)
    view = await again.groups.view("q")
    assert (view.limits.concurrency, view.limits.rate_max) == (2, 3)
    keys = {k.key: k for k in view.keys}
    assert keys["vip"].limits.concurrency == 5 and keys["vip"].custom
    assert keys["held"].paused and keys["A"].active == 2
    assert await again.workers.lease("q", None, 100, 600_000, 0) == []  # A full, vip's window full, held paused
    for job in first:
        if job.options["group"] == "A":
            await again.workers.complete(job.id, job.lease_token, None)
    clock.advance(60_001)
    later = await again.workers.lease("q", None, 100, 600_000, 0)
    assert sorted(j.options["group"] for j in later) == ["A", "A", "vip", "vip"]  # vip: 3 of 5 still run
    assert await again.dispatcher.audit() == []


async def test_aging_lifts_waiting_low_jobs_under_endless_high_load(make_service):
    clock = FakeClock()
    service = await make_service(clock=clock, background=False, aging=lambda queue: Aging(60_000, 2))
    low = await service.add_job("report", {}, {"priority": 4}, queue="q")
    served = []
    for _ in range(5):  # a minute of HIGH jobs arriving and being served, ahead of the LOW one
        await service.add_job("page", {}, {"priority": 2}, queue="q")
        served += await service.workers.lease("q", None, 1, 60_000, 0)
        clock.advance(15_000)
    assert low.id not in [j.id for j in served]
    clock.advance(45_000)  # two minutes waited: LOW counts as HIGH, and was due first
    await service.add_job("page", {}, {"priority": 2}, queue="q")
    assert [j.id for j in await service.workers.lease("q", None, 1, 60_000, 0)] == [low.id]
    assert await service.dispatcher.audit() == []


async def test_aging_stops_at_its_bound(make_service):
    clock = FakeClock()
    service = await make_service(clock=clock, background=False, aging=lambda queue: Aging(1_000, 1))
    background = await service.add_job("sweep", {}, {"priority": 5}, queue="q")
    clock.advance(3_600_000)  # an hour: BACKGROUND rises one level only, to LOW
    normal = await service.add_job("page", {}, {"priority": 3}, queue="q")
    taken = await service.workers.lease("q", None, 2, 60_000, 0)
    assert [j.id for j in taken] == [normal.id, background.id]


async def test_the_python_client_sets_limits_pauses_and_reads_keys(make_client):
    from queueapp.client import QueueClient

    server = await make_client()
    async with QueueClient(str(server.make_url("")).rstrip("/"), queue="tenants") as client:
        await client.set_group_policy(concurrency=1, rate=(5, 1000))
        await client.set_group_limits("acct 7", concurrency=3)  # a space in the path, encoded
        await client.add_bulk([{"name": "n", "options": {"group": key}} for key in ["acct 7"] * 4 + ["b"] * 2])
        await client.pause_group("b", duration_ms=60_000)
        leased = await client.lease(max_jobs=10)
        assert [j["options"]["group"] for j in leased] == ["acct 7"] * 3
        view = await client.groups()
        keys = {k["key"]: k for k in view["keys"]}
        assert view["policy"] == {"concurrency": 1, "rate": {"max": 5, "perMs": 1000}}
        assert keys["acct 7"]["limits"] == {"concurrency": 3, "rate": None} and keys["acct 7"]["active"] == 3
        assert keys["b"]["paused"] and keys["b"]["waiting"] == 2
        await client.resume_group("b")
        assert [j["options"]["group"] for j in await client.lease(max_jobs=10)] == ["b"]
