"""A cluster's bad days, with real ``queueapp serve --cluster on`` nodes on a real
PostgreSQL (tests/pg.py), each bounded and short:

- one node of three started 30 s ahead (Debian's ``faketime``) and made the
  leader: every deadline the nodes share comes from the database's clock, so
  nothing is returned early, no schedule fires early, no delayed job starts early,
  a worker's lease is honoured, and once the skewed leader is SIGKILLed another
  node leads within a few seconds; the node shows its skew;
- PostgreSQL stopped for 15 s under in-process and leased load: no live node is
  declared gone for want of a heartbeat nobody could write, every job completes
  (none failed as "the node running the job stopped"), nothing acknowledged is
  lost, every node's self-audit is clean afterwards, and the logs say what happened
  without a traceback.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from conftest import ServeProcess, iso_ms, wait_for

HERE = Path(__file__).parent.parent
ARGS = ("--cluster", "on", "--handlers", "cluster_handlers", "--concurrency", "4",
        "--audit-interval-ms", "600000", "--shutdown-grace-ms", "2000")
SKEW_S = 30

pytestmark = pytest.mark.timeout(300)


def _env(folder: Path) -> dict[str, str]:
    return {"PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "CLUSTER_LOG": str(folder / "runs.log")}


# libfaketime, loaded into the node's own process (the faketime command would run it
# as a child, which a SIGKILL of the command would leave running).
FAKETIME_LIB = next(iter(sorted(Path("/usr/lib").glob("*/faketime/libfaketimeMT.so.1"))), None)


def skewed_env(env: dict[str, str]) -> dict[str, str]:
    """A node whose wall clock runs ``SKEW_S`` ahead of the host's (and the
    database's); its monotonic clock is left alone."""
    return {**env, "LD_PRELOAD": str(FAKETIME_LIB), "FAKETIME": f"+{SKEW_S}s", "DONT_FAKE_MONOTONIC": "1"}


async def get(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url, timeout=aiohttp.ClientTimeout(total=10)) as r:
        return await r.json()


async def post(http: aiohttp.ClientSession, url: str, body: Any) -> tuple[int, Any]:
    async with http.post(url, json=body, timeout=aiohttp.ClientTimeout(total=30)) as r:
        return r.status, await r.json()


@pytest.mark.skipif(FAKETIME_LIB is None, reason="faketime is missing: .ci/run installs it")
async def test_a_leader_whose_clock_runs_30_s_ahead_moves_no_shared_deadline(
        postgres: Any, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    db = postgres.create_database("cluster_skew")
    env = _env(tmp_path)
    skewed = ServeProcess(db, *ARGS, env=skewed_env(env), folder=tmp_path).start()
    procs = [skewed]
    try:
        me = (await get(http, f"{skewed.url}/queues/nodes"))["node"]
        await wait_for(lambda: _leads(http, skewed.url, me), timeout=15)
        procs += [ServeProcess(db, *ARGS, env=env, folder=tmp_path).start() for _ in range(2)]
        a, b = procs[1].url, procs[2].url
        # the skewed node shows its skew, and says so in its log
        nodes = await wait_for(lambda: _all_seen(http, a, 3), timeout=15)
        skew = {n["id"]: n["skewMs"] for n in nodes}
        assert abs(skew[me] - SKEW_S * 1000) < 2000 and all(abs(s) < 1000 for n, s in skew.items() if n != me)

        status, _ = await post(http, f"{a}/queues/schedules?queue=work",
                               {"name": "beat", "everyMs": 1000, "missed": "skip"})
        assert status in (200, 201)
        started = time.monotonic()
        # a worker's lease of 20 s, held 7 s: honoured (the skewed leader took leases
        # back at once)
        _, held_job = await post(http, f"{a}/queues/jobs?queue=work", {"name": "remote"})
        _, leased = await post(http, f"{a}/queues/jobs/lease?queue=work",
                               {"names": ["remote"], "max": 1, "leaseMs": 20_000})
        assert [j["id"] for j in leased["jobs"]] == [held_job["id"]]
        # a job delayed by 5 s, through a node with a true clock and through the skewed one
        for url in (a, skewed.url):
            await post(http, f"{url}/queues/jobs?queue=work", {"name": "later", "options": {"delay": 5000}})
        # in-process jobs of 2 s on the true nodes, one attempt each: none returned as
        # if their node were gone
        _, slow = await post(http, f"{b}/queues/jobs/bulk?queue=work&return=ids",
                             {"jobs": [{"name": "local", "data": {"ms": 2000}, "options": {"attempts": 1}}] * 8})
        await _watch_for_seven_seconds(http, a, b, started)
        status, done = await post(http, f"{a}/queues/jobs/{held_job['id']}/complete",
                                  {"leaseToken": leased["jobs"][0]["leaseToken"]})
        assert status == 200 and done["state"] == "completed", done

        async def all_done() -> bool:
            states = [(await get(http, f"{a}/queues/jobs/{i}"))["state"] for i in slow["ids"]]
            assert "failed" not in states, states
            return all(s == "completed" for s in states)

        await wait_for(all_done, timeout=30)
        # the skewed leader dies: another node leads within a few seconds (its lease
        # ran on the database's clock, not 30 s past it)
        skewed.kill9()
        killed = time.monotonic()
        leader = await wait_for(lambda: _leader_other_than(http, a, me), timeout=15)
        assert leader != me and time.monotonic() - killed < 8
        for url in (a, b):
            assert (await get(http, f"{url}/debug/audit")) == {"ok": True, "problems": []}
        assert "event=cluster.clock_skew" in skewed.log_path.read_text()
    finally:
        for proc in procs:
            if proc.proc is not None and proc.proc.poll() is None:
                proc.kill9()


async def _watch_for_seven_seconds(http: aiohttp.ClientSession, a: str, b: str, started: float) -> None:
    """No run of the 1-second schedule appears before its time, and no job delayed
    by 5 s starts sooner (leased through a node with a true clock; its times are
    the database's, as every node now writes them)."""
    early_runs: list[str] = []
    seen_runs: set[str] = set()
    while time.monotonic() - started < 7:
        for job in (await get(http, f"{a}/queues/jobs?queue=work&name=beat&limit=100"))["jobs"]:
            if job["jobId"] not in seen_runs:
                seen_runs.add(job["jobId"])
                if iso_ms(job["jobId"].partition("@")[2]) > time.time() * 1000 + 500:
                    early_runs.append(job["jobId"])
        _, got = await post(http, f"{b}/queues/jobs/lease?queue=work", {"names": ["later"], "max": 2})
        for job in got["jobs"]:
            waited = iso_ms(job["startedAt"]) - iso_ms(job["createdAt"])
            assert waited >= 4900, f"a job delayed by 5 s started after {waited} ms"
            await post(http, f"{b}/queues/jobs/{job['id']}/complete", {"leaseToken": job["leaseToken"]})
        await asyncio.sleep(0.2)  # a look every 200 ms: the promise is about time itself
    assert not early_runs, early_runs
    assert 1 <= len(seen_runs) <= 10, sorted(seen_runs)  # fired, and never faster than once a second


async def _leads(http: aiohttp.ClientSession, url: str, node: str) -> bool:
    return (await get(http, f"{url}/queues/nodes"))["leader"] == node


async def _all_seen(http: aiohttp.ClientSession, url: str, count: int) -> list[dict] | None:
    nodes = (await get(http, f"{url}/queues/nodes"))["nodes"]
    return nodes if len(nodes) == count and all(n.get("skewMs") is not None for n in nodes) else None


async def _leader_other_than(http: aiohttp.ClientSession, url: str, node: str) -> str | None:
    leader = (await get(http, f"{url}/queues/nodes"))["leader"]
    return leader if leader not in (None, node) else None


async def test_a_database_outage_of_15_s_returns_no_live_nodes_jobs(http: aiohttp.ClientSession,
                                                                   tmp_path: Path) -> None:
    from pg import postgres_server

    with postgres_server() as server:
        db = server.create_database("outage")
        env = _env(tmp_path)
        procs = [ServeProcess(db, *ARGS, env=env, folder=tmp_path).start() for _ in range(2)]
        try:
            await _outage(http, server, db, procs)
        finally:
            for proc in procs:
                if proc.proc is not None and proc.proc.poll() is None:
                    proc.kill9()


async def _outage(http: aiohttp.ClientSession, server: Any, db: str, procs: list[ServeProcess]) -> None:
    a, b = procs[0].url, procs[1].url
    # in-process jobs running through the outage (one attempt each: a second would
    # mean the first was taken back), and a worker's lease that outlives it
    _, local = await post(http, f"{a}/queues/jobs/bulk?queue=work&return=ids",
                          {"jobs": [{"name": "local", "data": {"ms": 4000}, "options": {"attempts": 1}}] * 8})
    _, remote = await post(http, f"{b}/queues/jobs/bulk?queue=work&return=ids",
                           {"jobs": [{"name": "remote", "options": {"attempts": 1}}] * 4})
    _, leased = await post(http, f"{b}/queues/jobs/lease?queue=work", {"names": ["remote"], "max": 4,
                                                                       "leaseMs": 60_000})
    assert len(leased["jobs"]) == 4

    async def running() -> bool:
        counts = await get(http, f"{a}/queues/metrics?queue=work")
        return counts["active"] >= 8 + 4

    await wait_for(running, timeout=15)
    server.stop_for_a_while()
    await asyncio.sleep(15)  # the outage itself: nothing to wait on but its length
    server.resume()
    # the workers' completions, once the database answers again
    for job in leased["jobs"]:
        async def completed(job: dict = job) -> bool:
            try:
                status, body = await post(http, f"{a}/queues/jobs/{job['id']}/complete",
                                          {"leaseToken": job["leaseToken"]})
            except (TimeoutError, aiohttp.ClientError):
                return False
            assert status in (200, 503), (status, body)
            return status == 200

        await wait_for(completed, timeout=30)

    async def all_done() -> bool:
        jobs = [await get(http, f"{a}/queues/jobs/{i}") for i in local["ids"] + remote["ids"]]
        failed = [j for j in jobs if j["state"] == "failed"]
        assert not failed, failed
        return all(j["state"] == "completed" and j["attemptsMade"] == 1 for j in jobs)

    await wait_for(all_done, timeout=60)
    conn = await asyncpg.connect(db)
    try:
        assert await conn.fetchval("SELECT count(*) FROM jobs WHERE error LIKE '%node running the job stopped%'") == 0
    finally:
        await conn.close()
    for url in (a, b):
        async def clean(url: str = url) -> bool:
            return (await get(http, f"{url}/debug/audit")) == {"ok": True, "problems": []}

        await wait_for(clean, timeout=15)
    for proc in procs:  # the outage told as what it is, without tracebacks, summarised
        log = proc.log_path.read_text()
        assert "Traceback" not in log
        told = Counter(re.search(r"event=(\S+)", line)[1] for line in log.splitlines()  # type: ignore[index]
                       if re.search(r"level=(warning|error) .*event=", line))
        assert max(told.values(), default=0) <= 4, told  # 15 s of retries a second: a line each 10 s
