"""Crash-consistency campaign: drive a real ``queueapp serve`` from several clients,
kill it with SIGKILL at random moments, restart it over the same file, and check
after every restart that:

- every acknowledged enqueue exists;
- no group key has more active jobs than its limit, and no blocked job waits on
  dependencies that have all finished;
- every acknowledged completion is still completed, and no job is handed out again
  after its completion was acknowledged;
- no job's attempts exceed its maximum, and each row's state agrees with its fields
  (a completed job has a finish time and no lease; a waiting one neither);
- the counts in ``GET /queues/metrics`` equal the counts in the table;
- ``queueapp check`` finds the table sound after each kill, and the running
  appliance's self-audit (``GET /debug/audit``) finds memory and table in agreement
  under load, just before each kill, and after each restart.

Used by tests/test_crash_campaign.py (a CI-sized run) and scripts/crash-campaign
(longer runs).
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from conftest import ServeProcess

GROUPS = ["g0", "g1", "g2", "g3", "g-big"]


@dataclass
class Ledger:
    enqueued: set[str] = field(default_factory=set)
    completed: set[str] = field(default_factory=set)
    failed_acks: int = 0
    leases: int = 0
    violations: list[str] = field(default_factory=list)
    kills: int = 0
    outages: int = 0
    in_flight_at_kill: int = 0
    audits: int = 0


async def _enqueuer(session: aiohttp.ClientSession, url: str, ledger: Ledger, rng: random.Random,
                    stop: asyncio.Event, backlog_full: asyncio.Event | None = None) -> None:
    while not stop.is_set():
        if backlog_full is not None and backlog_full.is_set():
            await asyncio.sleep(0.1)  # producers hold back while the workers catch up
            continue
        try:
            if rng.random() < 0.05:
                await _fan_in(session, url, ledger, rng)
            elif rng.random() < 0.3:
                # Large bulks too (64 jobs and more take the one-statement path), alike
                # or each with its own options, answered with jobs or with ids.
                shared = {"attempts": rng.randint(1, 3), "backoff": {"type": "fixed", "delay": 0}}
                if rng.random() < 0.5:
                    shared["group"] = rng.choice(GROUPS)
                alike = rng.random() < 0.5
                body = {"jobs": [{"name": "work", "data": {"n": rng.randrange(10**6)},
                                  "options": shared if alike else {**shared, "attempts": rng.randint(1, 3)}}
                                 for _ in range(rng.choice([rng.randint(2, 20), rng.randint(64, 300)]))]}
                answer = rng.choice(["jobs", "ids"])
                async with session.post(f"{url}/queues/jobs/bulk?return={answer}", json=body) as r:
                    if r.status == 201:
                        payload = await r.json()
                        ledger.enqueued.update(payload["ids"] if answer == "ids" else
                                               (j["id"] for j in payload["jobs"]))
            else:
                async with session.post(f"{url}/queues/jobs", json={"name": "work", "options": _options(rng)}) as r:
                    if r.status in (200, 201):  # 200: the job its unique key holds
                        ledger.enqueued.add((await r.json())["id"])
        except (TimeoutError, aiohttp.ClientError, json.JSONDecodeError):
            return  # the server is gone


def _options(rng: random.Random) -> dict:
    """A single job's options: a few unique keys in any mode, some expiring soon,
    many a tenant's (its key's limits apply)."""
    options: dict = {"attempts": rng.randint(1, 3), "backoff": {"type": "fixed", "delay": 0}}
    if rng.random() < 0.2:
        options["unique"] = {"key": f"u{rng.randrange(50)}", "mode": rng.choice(["reject", "replace", "debounce"])}
        options["delay"] = rng.choice([0, 20])
    if rng.random() < 0.1:  # none may start late
        options["expireInMs"] = rng.choice([1, 50, 2_000])
    if rng.random() < 0.4:
        options["group"] = rng.choice(GROUPS)
    return options


async def _fan_in(session: aiohttp.ClientSession, url: str, ledger: Ledger, rng: random.Random) -> None:
    """Children, and a parent that waits for them all (options.dependsOn by index)."""
    children = rng.randint(1, 30)
    child = {"name": "work", "options": {"attempts": 2, "backoff": {"type": "fixed", "delay": 0},
                                         "group": rng.choice(GROUPS)}}
    parent = {"name": "work", "options": {"dependsOn": [f"#{i}" for i in range(children)]}}
    body = {"jobs": [child] * children + [parent]}
    async with session.post(f"{url}/queues/jobs/bulk?return=ids", json=body) as r:
        if r.status == 201:
            ledger.enqueued.update((await r.json())["ids"])


async def _worker(session: aiohttp.ClientSession, url: str, ledger: Ledger, rng: random.Random,
                  stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            async with session.post(f"{url}/queues/jobs/lease", json={"max": 5, "leaseMs": 60_000}) as r:
                jobs = (await r.json())["jobs"] if r.status == 200 else []
            ledger.leases += len(jobs)
            for job in jobs:
                if job["id"] in ledger.completed:
                    ledger.violations.append(f"job {job['id']} was handed out after its completion")
                if rng.random() < 0.8:
                    async with session.post(f"{url}/queues/jobs/{job['id']}/complete",
                                            json={"leaseToken": job["leaseToken"], "result": job["id"]}) as r:
                        if r.status == 200:
                            ledger.completed.add(job["id"])
                else:
                    async with session.post(f"{url}/queues/jobs/{job['id']}/fail",
                                            json={"leaseToken": job["leaseToken"], "error": "chaos"}) as r:
                        if r.status == 200:
                            ledger.failed_acks += 1
            if not jobs:
                await asyncio.sleep(0.005)
        except (TimeoutError, aiohttp.ClientError, json.JSONDecodeError, KeyError):
            return


async def _operator(session: aiohttp.ClientSession, url: str, rng: random.Random, stop: asyncio.Event) -> None:
    """Someone at the dashboard: retries failed jobs and cancels or promotes others,
    many at a time, while producers, workers and the kill go on."""
    while not stop.is_set():
        action, query = rng.choice([("retry", "state=failed"), ("cancel", "state=waiting&order=desc"),
                                    ("promote", "state=delayed")])
        try:
            async with session.post(f"{url}/queues/jobs/actions?{query}", json={"action": action}) as r:
                await r.read()
            if rng.random() < 0.2:  # a worker told to slow down by an upstream: hold a key back
                verb = rng.choice(["pause", "resume"])
                body = {"durationMs": rng.choice([50, 500])} if verb == "pause" else None
                async with session.post(f"{url}/queues/groups/{rng.choice(GROUPS)}/{verb}", json=body) as r:
                    await r.read()
        except (TimeoutError, aiohttp.ClientError):
            return
        await asyncio.sleep(rng.uniform(0.01, 0.05))


async def _drive_and_kill(servers: list[ServeProcess], victim: int, ledger: Ledger, rng: random.Random) -> None:
    """Load on every node (one appliance, or the nodes of a cluster), then SIGKILL
    ``servers[victim]`` while the clients are mid-request."""
    stop = asyncio.Event()
    timeout = aiohttp.ClientTimeout(total=10)
    urls = [server.url for server in servers]
    async with aiohttp.ClientSession(timeout=timeout) as session:
        clients = [asyncio.create_task(_enqueuer(session, urls[i % len(urls)], ledger, rng, stop)) for i in range(3)]
        clients += [asyncio.create_task(_worker(session, urls[i % len(urls)], ledger, rng, stop)) for i in range(2)]
        clients.append(asyncio.create_task(_operator(session, rng.choice(urls), rng, stop)))
        await asyncio.sleep(rng.uniform(0.1, 0.5))
        for url in urls:
            await _audit(session, url, ledger, "under load")
        ledger.in_flight_at_kill += sum(1 for c in clients if not c.done())
        servers[victim].kill9()
        ledger.kills += 1
        stop.set()
        await asyncio.gather(*clients)


async def _drive_through_outage(servers: list[ServeProcess], faults: Faults, ledger: Ledger,
                                rng: random.Random) -> None:
    """Load on every node, the database stopped for ``faults.outage_s`` and started
    again; then every node's self-audit must come back clean."""
    stop = asyncio.Event()
    urls = [server.url for server in servers]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        clients = [asyncio.create_task(_enqueuer(session, urls[i % len(urls)], ledger, rng, stop)) for i in range(3)]
        clients += [asyncio.create_task(_worker(session, urls[i % len(urls)], ledger, rng, stop)) for i in range(2)]
        await asyncio.sleep(rng.uniform(0.1, 0.5))
        faults.database.stop_for_a_while()
        await asyncio.sleep(faults.outage_s)  # the outage itself: its length is the fault
        faults.database.resume()
        ledger.outages += 1
        stop.set()
        await asyncio.gather(*clients)
        for url in urls:
            deadline = time.monotonic() + 30
            while True:
                try:
                    async with session.get(f"{url}/debug/audit") as r:
                        problems = (await r.json())["problems"] if r.status == 200 else ["no answer"]
                except (TimeoutError, aiohttp.ClientError):
                    problems = ["no answer"]
                if not problems or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)  # a node reconnecting: nothing to wait on but its next answer
            ledger.audits += 1
            ledger.violations.extend(f"self-audit after an outage: {p}" for p in problems)


async def _audit(session: aiohttp.ClientSession, url: str, ledger: Ledger, when: str) -> None:
    async with session.get(f"{url}/debug/audit") as r:
        report = await r.json()
    ledger.audits += 1
    ledger.violations.extend(f"self-audit {when}: {p}" for p in report["problems"])


def query(db: Path | str, sql: str) -> list[tuple]:
    """Rows of ``sql`` from the appliance's database: a SQLite file, or PostgreSQL."""
    if isinstance(db, str) and db.startswith("postgresql://"):
        import asyncpg

        async def fetch() -> list[tuple]:
            conn = await asyncpg.connect(db)
            try:
                return [tuple(r) for r in await conn.fetch(sql)]
            finally:
                await conn.close()

        return asyncio.run(fetch())
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def check_table(db: Path | str, ledger: Ledger) -> None:
    """With the appliance down: the table's own invariants (queueapp check, which
    reads SQLite files; on PostgreSQL the invariants below and the self-audit)."""
    from queueapp.store import check_database

    if isinstance(db, str):
        return

    _, problems = check_database(str(db))
    ledger.violations.extend(f"queueapp check: {p}" for p in problems)


def check_invariants(db: Path | str, urls: list[str], ledger: Ledger) -> None:
    import urllib.request

    rows = {str(r[0]): r[1:] for r in query(
        db, "select id, state, attempts, attempts_made, finished_at, lease_token from jobs")}
    for job_id in ledger.enqueued - rows.keys():
        ledger.violations.append(f"acknowledged job {job_id} is missing")
    held = query(db, "select unique_key, count(*) from jobs where unique_key is not null and state in"
                     " ('waiting', 'delayed', 'active') group by unique_key having count(*) > 1")
    ledger.violations.extend(f"unique key {key} holds {n} pending or running jobs" for key, n in held)
    crowded = query(db, "select group_key, count(*) from jobs where state = 'active' and group_key is not null"
                        " group by group_key having count(*) > (case group_key when 'g-big' then 4 else 2 end)")
    unblocked = query(db, "select id from jobs j where state = 'blocked' and not exists (select 1 from"
                          " job_dependencies d join jobs p on p.id = d.depends_on where d.job_id = j.id and"
                          " p.state in ('waiting', 'delayed', 'active', 'blocked'))")
    ledger.violations.extend(f"group {key} has {n} active jobs, above its limit" for key, n in crowded)
    ledger.violations.extend(f"job {job_id} is blocked, its dependencies all finished" for (job_id,) in unblocked)
    for job_id in ledger.completed:
        if rows.get(job_id, ("missing",))[0] != "completed":
            ledger.violations.append(f"acknowledged completion of {job_id} is lost: {rows.get(job_id)}")
    for job_id, (state, attempts, made, finished_at, token) in rows.items():
        if made > attempts:
            ledger.violations.append(f"job {job_id} made {made} of {attempts} attempts")
        if state in ("completed", "failed", "cancelled", "expired") and (finished_at is None or token is not None):
            ledger.violations.append(f"finished job {job_id} has finished_at={finished_at} token={token}")
        if state in ("waiting", "delayed") and (finished_at is not None or token is not None):
            ledger.violations.append(f"unfinished job {job_id} has finished_at={finished_at} token={token}")
    for url in urls:
        with urllib.request.urlopen(f"{url}/debug/audit", timeout=30) as r:
            ledger.audits += 1
            ledger.violations.extend(f"self-audit after restart: {p}" for p in json.loads(r.read())["problems"])
        _check_metrics(db, url, ledger)


def _check_metrics(db: Path | str, url: str, ledger: Ledger) -> None:
    """GET /queues/metrics against the table's counts. Leases kept across the restart
    may run out and be returned between two reads, so the counts are compared at a
    quiet moment: the metrics read the same before and after the table. (A node of a
    cluster reads the counts every second: it is given a few seconds to agree.)"""
    import urllib.request

    def metrics() -> dict:
        with urllib.request.urlopen(f"{url}/queues/metrics", timeout=10) as r:
            return json.loads(r.read())

    states = ("waiting", "active", "completed", "failed", "delayed")
    deadline = time.monotonic() + 5
    for _ in range(200):
        before = metrics()
        counts = dict(query(db, "select state, count(*) from jobs where queue = 'default' group by state"))
        after = metrics()
        agree = all(after[s] == counts.get(s, 0) for s in states)
        if all(before[s] == after[s] for s in states) and (agree or time.monotonic() > deadline):
            break
        time.sleep(0.05)  # a child process's counts: nothing to wait on but the next read
    for state in states:
        if after[state] != counts.get(state, 0):
            ledger.violations.append(f"metrics say {after[state]} {state}, the table {counts.get(state, 0)}")


SERVE_ARGS = ("--durability", "full", "--audit-interval-ms", "600000")


def _set_group_limits(url: str) -> None:
    """Two at once per key and 40 starts a second; one key may run four."""
    import urllib.request

    for path, body in [("/queues/groups/policy", {"concurrency": 2, "rate": {"max": 40, "perMs": 1000}}),
                       ("/queues/groups/g-big", {"concurrency": 4})]:
        request = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="PUT",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as r:
            assert r.status == 200


@dataclass
class Faults:
    """Faults of a cluster's bad day besides the kills: the first node's wall clock
    ``skew_s`` ahead (libfaketime, through every restart), and every other round a
    database outage of ``outage_s`` under load (``database``: the PostgreSQL server,
    tests/pg.py) instead of a kill."""

    skew_s: float = 0
    outage_s: float = 0
    database: Any = None


def _skewed(skew_s: float) -> dict[str, str] | None:
    if not skew_s:
        return None
    lib = next(iter(sorted(Path("/usr/lib").glob("*/faketime/libfaketimeMT.so.1"))), None)
    if lib is None:
        raise RuntimeError("a skewed node needs libfaketime: apt-get install faketime")
    return {"LD_PRELOAD": str(lib), "FAKETIME": f"+{skew_s:g}s", "DONT_FAKE_MONOTONIC": "1"}


def run_campaign(db: Path | str, kills: int, seed: int = 1, folder: Path | None = None, nodes: int = 1,
                 faults: Faults | None = None) -> Ledger:
    """``db``: a SQLite file, or a PostgreSQL URL (``folder`` then holds the logs);
    ``nodes`` above 1: that many nodes of a cluster on the PostgreSQL database, one
    of them, at random, killed and started again each round (``faults``: more)."""
    rng = random.Random(seed)
    ledger = Ledger()
    faults = faults or Faults()
    args = SERVE_ARGS + (("--cluster", "on") if nodes > 1 else ())

    def start(index: int) -> ServeProcess:
        env = _skewed(faults.skew_s) if index == 0 else None
        return ServeProcess(db, *args, folder=folder, env=env).start()

    servers = [start(i) for i in range(nodes)]
    _set_group_limits(servers[0].url)
    try:
        for round_ in range(kills):
            check_invariants(db, [s.url for s in servers], ledger)
            if faults.outage_s and round_ % 2 == 1:
                asyncio.run(_drive_through_outage(servers, faults, ledger, rng))
                continue
            victim = rng.randrange(nodes)
            asyncio.run(_drive_and_kill(servers, victim, ledger, rng))
            check_table(db, ledger)
            servers[victim] = start(victim)
        check_invariants(db, [s.url for s in servers], ledger)
    finally:
        for server in servers:
            if server.proc is not None and server.proc.poll() is None:
                server.terminate()
    return ledger


class Standby:
    """``queueapp standby`` following a primary into a folder, until killed."""

    def __init__(self, url: str, folder: Path, name: str, token: str | None = None) -> None:
        import os
        import subprocess
        import sys

        self.folder = folder
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        env = {**os.environ, **({"QUEUEAPP_TOKEN": token} if token else {})}
        self.proc = subprocess.Popen([sys.executable, "-m", "queueapp", "standby", "--primary", url, "--to",
                                      str(folder), "--name", name], env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

    def following(self, url: str, timeout: float = 60) -> dict[str, Any]:
        """Once the primary counts it and waits for nobody missing: its listing then."""
        import urllib.request

        deadline = time.monotonic() + timeout
        while True:
            request = urllib.request.Request(f"{url}/queues/replication", headers=self.headers)
            with urllib.request.urlopen(request, timeout=10) as r:
                listing = json.loads(r.read())
            if listing["standbys"] and listing["degradedSince"] is None:
                return listing
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the standby does not follow the primary")
            time.sleep(0.05)  # another process's progress: nothing to wait on but its report

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


def run_standby_campaign(folder: Path, kills: int, seed: int = 1) -> Ledger:
    """A primary replicating to a folder with one synchronous standby (another
    process) under load; each round kills the primary, the standby, or both. A lost
    primary is replaced by a database restored from the standby's copy (the primary's
    file and folder are taken to be gone with its host); a lost standby is started
    again. After each round the invariants are read from whichever serves."""
    import subprocess
    import sys

    rng = random.Random(seed)
    ledger = Ledger()
    generation = 0

    def serve(db: Path) -> ServeProcess:
        return ServeProcess(db, *SERVE_ARGS, "--replicate-to", str(folder / f"replica-{generation}"),
                            "--sync-standbys", "1", "--standby-timeout-ms", "20000", folder=folder).start()

    db = folder / "primary-0.db"
    primary = serve(db)
    _set_group_limits(primary.url)
    standby = Standby(primary.url, folder / "copy-0", "standby")
    standby.following(primary.url)
    try:
        for _ in range(kills):
            check_invariants(db, [primary.url], ledger)
            victim = rng.choice(["primary", "standby", "both"])
            asyncio.run(_drive_and_kill([primary], 0, ledger, rng) if victim != "standby" else
                        _drive_and_kill_standby(primary, standby, ledger, rng))
            if victim == "standby":
                standby = Standby(primary.url, standby.folder, "standby")
                standby.following(primary.url)
                continue
            standby.kill()
            generation += 1
            db = folder / f"primary-{generation}.db"
            restored = subprocess.run([sys.executable, "-m", "queueapp", "restore", "--from", str(standby.folder),
                                       "--to", str(db), "--db", str(db)], capture_output=True, text=True,
                                      timeout=120)
            if restored.returncode != 0:
                ledger.violations.append(f"restore from the standby failed: {restored.stderr[-300:]}")
                break
            check_table(db, ledger)
            primary = serve(db)
            standby = Standby(primary.url, folder / f"copy-{generation}", "standby")
            standby.following(primary.url)
        check_invariants(db, [primary.url], ledger)
    finally:  # the primary first: its stop answers what it has, which the standby confirms
        if primary.proc is not None and primary.proc.poll() is None:
            primary.terminate()
        standby.kill()
    return ledger


async def _drive_and_kill_standby(primary: ServeProcess, standby: Standby, ledger: Ledger,
                                  rng: random.Random) -> None:
    """Load on the primary, then the standby SIGKILLed mid-stream: answers wait for
    it (the clients give up after their timeout), nothing answered is lost."""
    stop = asyncio.Event()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        clients = [asyncio.create_task(_enqueuer(session, primary.url, ledger, rng, stop)) for _ in range(3)]
        clients += [asyncio.create_task(_worker(session, primary.url, ledger, rng, stop)) for _ in range(2)]
        await asyncio.sleep(rng.uniform(0.1, 0.5))
        await _audit(session, primary.url, ledger, "under load")
        standby.kill()
        ledger.kills += 1
        stop.set()
        await asyncio.gather(*clients)


async def _soak(server: ServeProcess, ledger: Ledger, seconds: float, rng: random.Random) -> list[dict]:
    """Mixed load without kills; samples the server's memory and queue every 10 s."""
    stop = asyncio.Event()
    backlog_full = asyncio.Event()
    samples = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        clients = [asyncio.create_task(_enqueuer(session, server.url, ledger, rng, stop, backlog_full))
                   for _ in range(3)]
        clients += [asyncio.create_task(_worker(session, server.url, ledger, rng, stop)) for _ in range(3)]
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            await asyncio.sleep(min(5, seconds))
            async with session.get(f"{server.url}/queues/metrics") as r:
                metrics = await r.json()
            rss = int(next(line.split()[1] for line in
                           Path(f"/proc/{server.proc.pid}/status").read_text().splitlines()
                           if line.startswith("VmRSS")))
            samples.append({"t": round(time.monotonic() - started), "rss_mb": round(rss / 1024, 1),
                            "waiting": metrics["waiting"], "completed": metrics["completed"],
                            "throughput_per_min": metrics["throughput"]})
            # enqueuers outpace two workers: hold them back over 20,000 waiting, as
            # producers of a real deployment would be throttled
            if metrics["waiting"] > 20_000:
                backlog_full.set()
            else:
                backlog_full.clear()
        stop.set()
        await asyncio.gather(*clients)
    return samples


def soak(db: Path, seconds: float, seed: int) -> dict:
    rng = random.Random(seed)
    ledger = Ledger()
    server = ServeProcess(db, *SERVE_ARGS).start()
    try:
        samples = asyncio.run(_soak(server, ledger, seconds, rng))
        check_invariants(db, [server.url], ledger)
    finally:
        server.terminate()
    return {"seconds": seconds, "acknowledgedEnqueues": len(ledger.enqueued),
            "acknowledgedCompletions": len(ledger.completed), "samples": samples,
            "violations": ledger.violations[:20], "violationCount": len(ledger.violations)}


def main() -> None:
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description="SIGKILL a real queueapp serve at random moments.")
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--soak", type=float, metavar="SECONDS",
                        help="instead: mixed load for this long without kills, sampling memory")
    parser.add_argument("--postgres", action="store_true",
                        help="on the PostgreSQL store (a server started for the campaign, tests/pg.py)")
    parser.add_argument("--nodes", type=int, default=1,
                        help="with --postgres: this many nodes of a cluster, a random one killed each round")
    parser.add_argument("--skew", type=float, default=0, metavar="SECONDS",
                        help="with --nodes: the first node's clock runs this far ahead (libfaketime)")
    parser.add_argument("--outage", type=float, default=0, metavar="SECONDS",
                        help="with --postgres: every other round, the database stopped this long instead of a kill")
    parser.add_argument("--standby", action="store_true",
                        help="a primary with a synchronous standby; each round kills the primary, the standby or"
                             " both (a lost primary is rebuilt from the standby's copy)")
    args = parser.parse_args()
    if args.soak:
        with tempfile.TemporaryDirectory() as folder:
            report = soak(Path(folder) / "soak.db", args.soak, args.seed)
        print(json.dumps(report, indent=2))
        raise SystemExit(1 if report["violationCount"] else 0)
    with tempfile.TemporaryDirectory() as folder:
        started = time.monotonic()
        if args.postgres:
            from pg import postgres_server

            with postgres_server() as server:
                faults = Faults(args.skew, args.outage, server)
                ledger = run_campaign(server.create_database("campaign"), args.kills, args.seed, Path(folder),
                                      args.nodes, faults)
        elif args.standby:
            ledger = run_standby_campaign(Path(folder), args.kills, args.seed)
        else:
            ledger = run_campaign(Path(folder) / "crash.db", args.kills, args.seed)
    print(json.dumps({
        "kills": ledger.kills, "outages": ledger.outages, "skewS": args.skew, "seed": args.seed,
        "seconds": round(time.monotonic() - started, 1),
        "acknowledgedEnqueues": len(ledger.enqueued), "acknowledgedCompletions": len(ledger.completed),
        "acknowledgedFailures": ledger.failed_acks, "leases": ledger.leases, "selfAudits": ledger.audits,
        "violations": ledger.violations[:20], "violationCount": len(ledger.violations),
    }, indent=2))
    raise SystemExit(1 if ledger.violations else 0)


if __name__ == "__main__":
    main()
