"""Three real ``queueapp serve --cluster on`` nodes on one real PostgreSQL database
(tests/pg.py), with producers and leasing workers talking to every node and
in-process handlers on every node; the leader is SIGKILLed in the middle and
started again. Then: every acknowledged enqueue exists and completed once, no job
was handed to two workers, a 1-second schedule fired once a second across the
cluster with no second missing or doubled, another node led once the leader died,
every node answers metrics for the whole cluster, and every node's self-audit is
clean."""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from conftest import ServeProcess, wait_for

HERE = Path(__file__).parent.parent
LOAD_S = 4.0  # load before the kill, and again after the restart


class Nodes:
    def __init__(self, db: str, folder: Path) -> None:
        self.env = {"PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
                    "CLUSTER_LOG": str(folder / "runs.log")}
        self.args = ("--cluster", "on", "--handlers", "cluster_handlers", "--concurrency", "4",
                     "--audit-interval-ms", "600000", "--shutdown-grace-ms", "2000")
        self.db = db
        self.folder = folder
        self.procs = [self._start() for _ in range(3)]
        self.urls = [p.url for p in self.procs]

    def _start(self) -> ServeProcess:
        return ServeProcess(self.db, *self.args, env=self.env, folder=self.folder).start()

    def restart(self, index: int) -> None:
        proc = ServeProcess(self.db, *self.args, env=self.env, folder=self.folder)
        proc.port = self.procs[index].port  # the same address: its clients come back to it
        self.procs[index] = proc.start()


class Load:
    """Producers and workers, one of each per node, until ``stop`` is set; each
    keeps going through the other nodes' addresses while its own is down."""

    def __init__(self, http: aiohttp.ClientSession, nodes: Nodes) -> None:
        self.http = http
        self.nodes = nodes
        self.acknowledged: set[int] = set()
        self.grants: dict[int, list[str]] = {}  # job id -> lease tokens handed to the workers
        self.completed_by_worker: set[int] = set()
        self.stop = asyncio.Event()

    async def _post(self, home: int, path: str, body: Any) -> tuple[int, Any]:
        """POST to the node ``home``; while it is down, to the next one."""
        urls = self.nodes.urls
        for attempt in range(len(urls) * 20):
            url = urls[(home + attempt) % len(urls)]
            try:
                async with self.http.post(url + path, json=body, timeout=aiohttp.ClientTimeout(total=10)) as r:
                    return r.status, await r.json()
            except (TimeoutError, aiohttp.ClientError):
                await asyncio.sleep(0.05)
        raise AssertionError(f"no node answered {path}")

    async def produce(self, home: int) -> None:
        rng = random.Random(home)
        while not self.stop.is_set():
            if rng.random() < 0.2:
                items = [{"name": rng.choice(["local", "remote"]), "data": {"ms": 1}} for _ in range(20)]
                status, body = await self._post(home, "/queues/jobs/bulk?queue=work&return=ids", {"jobs": items})
                if status == 201:
                    self.acknowledged.update(int(i) for i in body["ids"])
            else:
                name = rng.choice(["local", "remote"])
                status, body = await self._post(home, "/queues/jobs?queue=work", {"name": name, "data": {"ms": 1}})
                if status == 201:
                    self.acknowledged.add(int(body["id"]))
            await asyncio.sleep(0.005)

    async def work(self, home: int) -> None:
        while not self.stop.is_set() or self.remote_left():
            status, body = await self._post(home, "/queues/jobs/lease?queue=work",
                                            {"names": ["remote"], "max": 5, "waitMs": 300, "leaseMs": 5000})
            if status != 200:
                continue
            for job in body["jobs"]:
                self.grants.setdefault(int(job["id"]), []).append(job["leaseToken"])
                # through another node than the one that granted it
                status, _ = await self._post(home + 1, f"/queues/jobs/{job['id']}/complete",
                                             {"leaseToken": job["leaseToken"], "result": {"by": home}})
                # 409: a node committed it and was killed before answering; the retry finds it done
                assert status in (200, 409), (job["id"], status)
                self.completed_by_worker.add(int(job["id"]))

    def remote_left(self) -> bool:
        return self.stop.is_set() and not self.drained

    drained = False


async def leader_of(http: aiohttp.ClientSession, url: str) -> str | None:
    async with http.get(f"{url}/queues/nodes") as r:
        return (await r.json())["leader"]


async def test_three_nodes_one_killed_under_load(postgres: Any, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    db = postgres.create_database("cluster_kill")
    nodes = Nodes(db, tmp_path)
    try:
        await _run(http, nodes, db, tmp_path)
    finally:
        for proc in nodes.procs:
            if proc.proc is not None and proc.proc.poll() is None:
                proc.kill9()


async def _run(http: aiohttp.ClientSession, nodes: Nodes, db: str, tmp_path: Path) -> None:
    status, _ = await Load(http, nodes)._post(0, "/queues/schedules?queue=work",
                                              {"name": "beat", "everyMs": 1000, "missed": "all"})
    assert status in (200, 201)
    load = Load(http, nodes)
    tasks = [asyncio.create_task(load.produce(i)) for i in range(3)]
    tasks += [asyncio.create_task(load.work(i)) for i in range(3)]
    await asyncio.sleep(LOAD_S)

    leader = await wait_for(lambda: leader_of(http, nodes.urls[0]))
    ids = [await (await http.get(f"{u}/queues/nodes")).json() for u in nodes.urls]
    async with http.get(f"{nodes.urls[1]}/livez") as r:  # every answer names the node that gave it
        assert r.headers["X-Queueapp-Node"] == ids[1]["node"]
    victim = next(i for i, n in enumerate(ids) if n["node"] == leader)
    killed_at = time.monotonic()
    nodes.procs[victim].kill9()
    survivor = nodes.urls[(victim + 1) % 3]

    async def new_leader() -> str | None:
        found = await leader_of(http, survivor)
        return found if found not in (None, leader) else None

    successor = await wait_for(new_leader, timeout=15)
    took_over_s = time.monotonic() - killed_at
    nodes.restart(victim)
    await asyncio.sleep(LOAD_S)
    load.stop.set()
    await asyncio.gather(*tasks[:3])
    status, _ = await load._post(0, "/queues/schedules/beat/pause?queue=work", None)
    assert status == 200

    conn = await asyncpg.connect(db)
    try:
        async def all_finished() -> bool:
            left = await conn.fetchval("SELECT count(*) FROM jobs WHERE queue = 'work' AND state <> 'completed'")
            return left == 0

        await wait_for(all_finished, timeout=90)
        load.drained = True
        await asyncio.gather(*tasks[3:])
        rows = await conn.fetch("SELECT id, name, state, attempts_made, job_key, errors::text FROM jobs"
                                " WHERE queue = 'work'")
        counts = {r["state"]: r["count"] for r in await conn.fetch(
            "SELECT state, count(*) FROM jobs WHERE queue = 'work' GROUP BY state")}
    finally:
        await conn.close()

    by_id = {r["id"]: r for r in rows}
    # every acknowledged enqueue exists and completed
    assert load.acknowledged and load.acknowledged <= by_id.keys()
    assert all(by_id[i]["state"] == "completed" for i in load.acknowledged)
    # no job was handed to two workers: each leased job was granted once
    remote = {i for i in load.acknowledged if by_id[i]["name"] == "remote"}
    assert remote and remote <= load.grants.keys()  # (and jobs added just as their node died)
    assert all(by_id[i]["name"] == "remote" and by_id[i]["state"] == "completed" for i in load.grants)
    assert all(len(tokens) == 1 for tokens in load.grants.values())
    # each in-process job ran once, or twice when the killed node was running it
    runs: dict[int, list[int]] = {}
    for line in (tmp_path / "runs.log").read_text().splitlines():
        run = json.loads(line)
        runs.setdefault(run["id"], []).append(run["pid"])
    local = {i for i in load.acknowledged if by_id[i]["name"] == "local"}
    assert local <= runs.keys()
    twice = {i: pids for i, pids in runs.items() if len(pids) > 1}
    assert len({pids[0] for pids in twice.values()}) <= 1, (
        f"jobs ran twice off more than the killed node: {twice}",
        {i: by_id[i]["errors"] for i in twice if i in by_id})
    assert all(len(pids) == 2 for pids in twice.values())
    # the schedule: one job per second of the run, none missing, none doubled
    beats = sorted(datetime.fromisoformat(r["job_key"].split("@", 1)[1].replace("Z", "+00:00")).timestamp()
                   for r in rows if r["name"] == "beat")
    assert len(beats) >= 2 * LOAD_S
    assert all(round(b - a, 3) == 1.0 for a, b in zip(beats, beats[1:], strict=False)), beats
    # leadership moved within a few seconds
    assert successor != leader and took_over_s < 10
    # metrics from any node are the cluster's, and every node's audit is clean
    for url in nodes.urls:
        async def metrics_agree(url: str = url) -> bool:
            async with http.get(f"{url}/queues/metrics?queue=work") as r:
                seen = await r.json()
            return seen["completed"] == counts.get("completed", 0)

        await wait_for(metrics_agree, timeout=10)
        async with http.get(f"{url}/debug/audit") as r:
            assert (await r.json()) == {"ok": True, "problems": []}
    for proc in nodes.procs:
        assert proc.terminate() == 0
