"""Continuous replication of the SQLite database to a folder (replicate_to), and
``queueapp restore --from``: the log shipped commit by commit through checkpoints
and restarts of the log, a reader holding the log, new generations; a real
``queueapp serve`` killed and its database deleted, rebuilt with every acknowledged
change; a restore to a given second with exactly the jobs committed by then."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import ServeProcess
from crash_harness import Standby
from node import until

from queueapp.store.sqlite.replica import WalShipper, held_position, last_commit_ms, restore


def _rows(db: Path) -> list[tuple[int, str]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT id, v FROM t ORDER BY id").fetchall()
    finally:
        conn.close()


def _source(tmp_path: Path) -> tuple[Path, Path, sqlite3.Connection]:
    """A database in WAL mode with a table t, its replica folder, and the connection
    that writes it."""
    db = tmp_path / "source.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    return db, tmp_path / "replica", conn


def test_the_log_is_shipped_through_checkpoints_restarts_and_generations(tmp_path):
    db, folder, conn = _source(tmp_path)
    shipper = WalShipper(db, folder, "sync", checkpoint_bytes=10_000_000, checkpoint_retry_s=0)
    shipper.begin(conn)
    reader = sqlite3.connect(db, isolation_level=None, timeout=0)
    shipped: list[tuple[int, int]] = []  # (when shipped, rows committed by then)
    for n in range(1, 301):
        if n == 60:  # another connection folds the whole log in (an operator's sqlite3, say): SQLite
            reader.execute("PRAGMA wal_checkpoint(PASSIVE)")  # then starts it again over older frames
        if n == 80:
            shipper.checkpoint_bytes = 40_000  # from here the shipper checkpoints every few commits
        if n == 100:  # a reader holds the log: the checkpoints cannot empty it
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM t").fetchone()
        if n == 160:
            reader.execute("COMMIT")  # let go: SQLite starts the log again over older frames
        if n == 220:
            shipper.snapshot_every_ms = 0  # a new generation at the next commit
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO t (v) VALUES (?)", [(f"row-{n}-{k}-" + "x" * 300,) for k in range(3)])
        if n % 7 == 0:
            conn.execute("DELETE FROM t WHERE id = ?", (n,))
        conn.execute("COMMIT")
        shipper.ship(conn, durable=True)
        if n == 220:
            shipper.snapshot_every_ms = 6 * 3_600_000
        assert shipper.status.error is None
        shipped.append((shipper.status.last_shipped_ms, len(_rows(db))))
    expected = _rows(db)
    shipper.close()
    conn.close()
    reader.close()

    logs = sorted({p.name for p in folder.glob("generations/*/wal/*.wal")})
    assert len(list(folder.glob("generations/*"))) == 2 and len(logs) >= 3  # checkpoints started new logs
    assert last_commit_ms(folder) == shipped[-1][0]  # read from the end of the newest commit lines
    assert held_position(folder) == (shipper.status.generation, (sorted(folder.glob("generations/*"))[-1]
                                                                 / "commits").stat().st_size)
    whole = restore(folder, tmp_path / "whole.db")
    assert _rows(tmp_path / "whole.db") == expected and whole.last_commit_ms == shipped[-1][0]

    # As of a moment in the first generation: exactly what was committed by then.
    at, count = shipped[150]
    while len(shipped) > 151 and shipped[151][0] == at:  # commits of the same millisecond go together
        shipped.pop(151)
    at, count = max((s for s in shipped if s[0] <= at), key=lambda s: s[0])
    restore(folder, tmp_path / "then.db", to_ms=at)
    assert len(_rows(tmp_path / "then.db")) == count
    with pytest.raises(ValueError, match="exists"):
        restore(folder, tmp_path / "then.db")
    with pytest.raises(ValueError, match="before that time"):
        restore(folder, tmp_path / "never.db", to_ms=1)


def _send(url: str, method: str, path: str, body: object = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=20) as answer:
        text = answer.read()
    return json.loads(text) if text else {}


def _queueapp(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "queueapp", *args], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).parent.parent.parent)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_killed_appliance_whose_file_is_lost_is_rebuilt_with_every_acknowledged_change(serve, db_path, tmp_path,
                                                                                         mode):
    folder = tmp_path / "replica"
    appliance: ServeProcess = serve("--replicate-to", str(folder), "--replication", mode)
    url = appliance.url
    added = [_send(url, "POST", "/queues/jobs", {"name": "send", "data": {"n": n}})["id"] for n in range(30)]
    added += _send(url, "POST", "/queues/jobs/bulk?return=ids",
                   {"jobs": [{"name": "send", "data": {"n": n}} for n in range(30, 500)]})["ids"]
    leased = _send(url, "POST", "/queues/jobs/lease", {"max": 20})["jobs"]
    done = [job["id"] for job in leased[:12]]
    _send(url, "POST", "/queues/jobs/complete", {"jobs": [{"id": i, "leaseToken": j["leaseToken"]}
                                                           for i, j in zip(done, leased, strict=False)]})
    health = _send(url, "GET", "/queues/health")
    assert health["replica"]["mode"] == mode and not health["replica"]["failing"]
    with urllib.request.urlopen(url + "/metrics", timeout=10) as answer:
        metrics = answer.read().decode()
    assert "queueapp_replica_commits_total" in metrics and "queueapp_replica_failing" in metrics
    appliance.kill9()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)

    rebuilt = _queueapp("restore", "--from", str(folder), "--db", str(db_path))
    assert rebuilt.returncode == 0, rebuilt.stderr
    checked = _queueapp("check", "--db", str(db_path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    conn = sqlite3.connect(db_path)
    states = dict(conn.execute("SELECT id, state FROM jobs").fetchall())
    conn.close()
    assert sorted(str(i) for i in states) == sorted(added)  # none missing, none twice
    assert all(states[int(i)] == "completed" for i in done)
    assert sum(1 for s in states.values() if s == "active") == 8  # leased, not finished: as the primary had them

    again: ServeProcess = serve("--replicate-to", str(folder), "--replication", mode)  # serves the rebuilt file
    assert _send(again.url, "GET", "/queues/metrics")["completed"] == 12


def test_a_restore_to_a_given_second_has_exactly_the_jobs_committed_by_then(serve, db_path, tmp_path):
    folder = tmp_path / "replica"
    appliance: ServeProcess = serve("--replicate-to", str(folder))
    url = appliance.url
    before = [_send(url, "POST", "/queues/jobs", {"name": "early"})["id"] for _ in range(20)]
    moment = int(time.time() * 1000)
    until(lambda: time.time() * 1000 > moment + 5, timeout=5, what="the clock passes the moment")
    after = [_send(url, "POST", "/queues/jobs", {"name": "late"})["id"] for _ in range(20)]
    appliance.terminate()

    target = tmp_path / "then.db"
    restored = _queueapp("restore", "--from", str(folder), "--to-time", str(moment), "--to", str(target),
                         "--db", str(db_path))
    assert restored.returncode == 0, restored.stderr
    conn = sqlite3.connect(target)
    kept = sorted(str(r[0]) for r in conn.execute("SELECT id FROM jobs"))
    conn.close()
    assert kept == sorted(before) and not set(kept) & set(after)
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(moment / 1000)) + f".{moment % 1000:03d}Z"
    again = _queueapp("restore", "--from", str(folder), "--to-time", iso, "--to", str(tmp_path / "iso.db"),
                      "--db", str(db_path))
    assert again.returncode == 0 and "commits" in again.stdout
    refused = _queueapp("restore", "--from", str(folder), "--to-time", "yesterday", "--to", str(tmp_path / "x.db"),
                        "--db", str(db_path))
    assert refused.returncode == 1 and "ISO 8601" in refused.stderr
    assert os.path.exists(db_path)  # restoring to another file leaves the database alone


def test_a_folder_that_cannot_be_written_is_said_in_health_and_metrics_and_caught_up_after(serve, db_path, tmp_path):
    folder = tmp_path / "replica"
    folder.mkdir()
    (folder / "generations").write_text("not a folder")  # nothing can be made under it
    appliance: ServeProcess = serve("--replicate-to", str(folder), "--replication", "sync")
    url = appliance.url
    first = _send(url, "POST", "/queues/jobs", {"name": "kept-anyway"})["id"]
    health = _send_any(url, "/queues/health")
    assert health["status"] == "critical" and health["replica"]["failing"]
    assert any("replica" in issue and "not being written" in issue for issue in health["issues"])
    with urllib.request.urlopen(url + "/metrics", timeout=10) as answer:
        assert "queueapp_replica_failing{" in answer.read().decode()

    (folder / "generations").unlink()  # the folder is back
    second = _send(url, "POST", "/queues/jobs", {"name": "after"})["id"]
    health = _send_any(url, "/queues/health")
    assert not health["replica"]["failing"] and health["replica"]["lagMs"] == 0
    appliance.kill9()
    rebuilt = _queueapp("restore", "--from", str(folder), "--to", str(tmp_path / "rebuilt.db"), "--db", str(db_path))
    assert rebuilt.returncode == 0, rebuilt.stderr
    conn = sqlite3.connect(tmp_path / "rebuilt.db")
    ids = sorted(str(r[0]) for r in conn.execute("SELECT id FROM jobs"))
    conn.close()
    assert ids == sorted([first, second])  # the new generation's snapshot holds what came before


def _send_any(url: str, path: str) -> dict:
    """A GET whose 503 carries the answer too (health when critical)."""
    try:
        return _send(url, "GET", path)
    except urllib.error.HTTPError as error:
        return json.loads(error.read())


def test_generations_older_than_the_retention_are_removed_but_the_one_it_needs(tmp_path):
    db, folder, conn = _source(tmp_path)
    kept = WalShipper(db, folder, "sync", snapshot_every_ms=0, retention_ms=3_600_000)
    for n in range(4):  # every commit begins a generation
        conn.execute("INSERT INTO t (v) VALUES (?)", (f"row-{n}",))
        kept.ship(conn, durable=True)
        until(lambda n=n: len(list(folder.glob("generations/*"))) == n + 1, timeout=5, what="a generation a commit")
    kept.close()
    assert len(list(folder.glob("generations/*"))) == 4  # all within the retention
    short = WalShipper(db, folder, "sync", retention_ms=0)
    short.begin(conn)  # everything before now is past the retention: only this newest is needed
    short.close()
    conn.close()
    assert len(list(folder.glob("generations/*"))) == 1
    restore(folder, tmp_path / "back.db")
    assert [v for _, v in _rows(tmp_path / "back.db")] == [f"row-{n}" for n in range(4)]


def test_a_standby_on_another_folder_keeps_every_acknowledged_change_when_the_primary_is_lost(serve, db_path,
                                                                                               tmp_path):
    folder, copy = tmp_path / "replica", tmp_path / "standby"
    token = "replication-admin-1"
    appliance: ServeProcess = serve("--replicate-to", str(folder), "--replication", "sync", "--token", token)
    url = appliance.url
    env = {**os.environ, "QUEUEAPP_TOKEN": token}

    def standby() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "queueapp", "standby", "--primary", url, "--to", str(copy)],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def enqueue(n: int) -> list[str]:
        body = json.dumps({"jobs": [{"name": "send", "data": {"n": k}} for k in range(n)]}).encode()
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        request = urllib.request.Request(url + "/queues/jobs/bulk?return=ids", data=body, method="POST",
                                         headers=headers)
        with urllib.request.urlopen(request, timeout=20) as answer:
            return json.loads(answer.read())["ids"]

    def caught_up() -> bool:
        """The copy holds the primary's last commit line."""
        mine = sorted(copy.glob("generations/*/commits"))
        theirs = sorted(folder.glob("generations/*/commits"))
        return (bool(mine) and [p.parent.name for p in mine] == [p.parent.name for p in theirs]
                and mine[-1].read_bytes() == theirs[-1].read_bytes())

    refused = subprocess.run([sys.executable, "-m", "queueapp", "standby", "--primary", url, "--to", str(copy)],
                             env={**os.environ, "QUEUEAPP_TOKEN": "wrong"}, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "401" in refused.stderr
    follower = standby()
    added = enqueue(300)
    until(lambda: follower.poll() is not None or caught_up(), timeout=60, what="the standby catches up")
    follower.kill()  # a standby killed and started again goes on from what it holds
    follower.wait(10)
    added += enqueue(200)
    follower = standby()
    added += [str(i) for i in enqueue(100)]
    until(lambda: follower.poll() is not None or caught_up(), timeout=60, what="the standby catches up again")
    follower.send_signal(signal.SIGTERM)
    assert follower.wait(30) == 0, follower.stdout.read().decode() if follower.stdout else ""

    appliance.kill9()  # the primary's host is lost: its database and its folder with it
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    shutil.rmtree(folder)
    rebuilt = tmp_path / "rebuilt.db"
    restored = _queueapp("restore", "--from", str(copy), "--to", str(rebuilt), "--db", str(db_path))
    assert restored.returncode == 0, restored.stderr
    conn = sqlite3.connect(rebuilt)
    ids = sorted(str(r[0]) for r in conn.execute("SELECT id FROM jobs"))
    conn.close()
    assert ids == sorted(added)



SYNC_TOKEN = "sync-standby-admin-1"


def _authed(url: str, method: str, path: str, body: object = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method=method, headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {SYNC_TOKEN}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_with_a_synchronous_standby_every_acknowledged_change_is_on_its_disk(serve, db_path, tmp_path):
    folder, copy = tmp_path / "replica", tmp_path / "standby"
    appliance: ServeProcess = serve("--replicate-to", str(folder), "--sync-standbys", "1", "--standby-timeout-ms",
                                    "20000", "--token", SYNC_TOKEN)
    url = appliance.url
    follower = Standby(url, copy, "standby-1", SYNC_TOKEN)
    try:
        assert [s["name"] for s in follower.following(url)["standbys"]] == ["standby-1"]
        added = []
        for n in range(40):  # each answered only once the standby holds it
            status, job = _authed(url, "POST", "/queues/jobs", {"name": "charge", "data": {"n": n}})
            assert status == 201, job
            added.append(job["id"])
    finally:
        follower.kill()  # the instant after the last answer: the standby had it, or it was not answered
    appliance.kill9()
    shutil.rmtree(folder)
    rebuilt = _queueapp("restore", "--from", str(copy), "--to", str(tmp_path / "rebuilt.db"), "--db", str(db_path))
    assert rebuilt.returncode == 0, rebuilt.stderr
    conn = sqlite3.connect(tmp_path / "rebuilt.db")
    ids = {str(r[0]) for r in conn.execute("SELECT id FROM jobs")}
    conn.close()
    assert set(added) <= ids


def test_without_its_standby_a_change_is_refused_or_answered_in_degraded_mode(serve, tmp_path):
    refusing: ServeProcess = serve("--replicate-to", str(tmp_path / "r1"), "--sync-standbys", "1",
                                   "--standby-timeout-ms", "300", "--standby-lost", "refuse", "--token", SYNC_TOKEN,
                                   "--audit-interval-ms", "600000")
    url = refusing.url
    follower = Standby(url, tmp_path / "c1", "only", SYNC_TOKEN)
    follower.following(url)
    assert _authed(url, "POST", "/queues/jobs", {"name": "confirmed"})[0] == 201
    follower.kill()  # the only standby is lost
    status, refused = _authed(url, "POST", "/queues/jobs", {"name": "unconfirmed"})
    assert status == 503 and "no standby confirmed" in refused["error"]["message"]
    page = _authed(url, "GET", "/queues/jobs?queue=default&order=asc")[1]
    assert [j["name"] for j in page["jobs"]] == ["confirmed", "unconfirmed"]  # committed here, and memory knows it
    assert _authed(url, "GET", "/debug/audit")[1] == {"ok": True, "problems": []}
    health = _authed(url, "GET", "/queues/health")[1]
    assert health["status"] == "critical" and any("refusing" in i for i in health["issues"])
    refusing.terminate()

    folder, copy = tmp_path / "r2", tmp_path / "copy"
    degrading: ServeProcess = serve("--replicate-to", str(folder), "--sync-standbys", "1", "--standby-timeout-ms",
                                    "300", "--token", SYNC_TOKEN)
    url = degrading.url
    statuses = [_authed(url, "POST", "/queues/jobs", {"name": "charge"})[0] for _ in range(20)]
    assert statuses == [201] * 20  # answered without the standby, the first after the wait
    assert _authed(url, "GET", "/queues/replication")[1]["degradedSince"] is not None
    health = _authed(url, "GET", "/queues/health")[1]
    assert health["status"] == "critical" and any("answering without" in i for i in health["issues"])
    follower = Standby(url, copy, "late", SYNC_TOKEN)
    try:
        follower.following(url)  # it catches up, and changes wait for it again
        assert _authed(url, "POST", "/queues/jobs", {"name": "charge"})[0] == 201
        assert _authed(url, "GET", "/queues/health")[1]["status"] == "healthy"
    finally:
        follower.kill()
