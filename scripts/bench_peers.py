"""Peers for ``scripts/bench --peers``: the queues a user would pick instead, on
the same machine, in the same run.

- Huey with its SQLite storage (WAL, fsync on): installed with pip into a throwaway
  folder.
- RQ and BullMQ on a local Redis with ``appendfsync always`` (so an acknowledged
  job is on disk, as with queueapp's default): need ``redis-server`` on the PATH
  (Debian package "redis-server"); RQ is pip-installed and BullMQ npm-installed into
  the throwaway folder. A peer that cannot be installed or started is skipped, with
  the reason in the results.

Each peer: enqueue one job at a time, enqueue in bulk where the peer has a bulk
call, and process no-op jobs with its usual worker setup.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

N = 20_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pip(target: Path, *packages: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--target", str(target), *packages],
                   check=True, capture_output=True, timeout=600)


def _run_py(code: str, env_path: list[Path], timeout: int = 900) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in env_path)}
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                         env=env, timeout=timeout)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def huey_peer(work: Path) -> dict:
    lib = work / "huey-lib"
    _pip(lib, "huey")
    app = work / "huey-app"
    app.mkdir()
    (app / "peer_huey_app.py").write_text(textwrap.dedent(f"""
        from huey import SqliteHuey
        huey = SqliteHuey(filename={str(work / 'huey.db')!r}, fsync=True, journal_mode="wal", results=False)

        @huey.task()
        def noop(i):
            return None
    """))
    enqueue = _run_py(f"""
        import json, time
        from peer_huey_app import huey, noop
        t = time.perf_counter()
        for i in range({N}):
            noop(i)
        print(json.dumps({{"enqueue_per_s": round({N} / (time.perf_counter() - t))}}))
    """, [lib, app])
    env = {**os.environ, "PYTHONPATH": f"{lib}{os.pathsep}{app}"}
    consumer = subprocess.Popen(
        [sys.executable, "-m", "huey.bin.huey_consumer", "peer_huey_app.huey", "-w", "8", "-k", "thread",
         "-d", "0.001", "-m", "0.01", "-q"], env=env, cwd=str(app),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = time.perf_counter()
    try:
        progress = _run_py("""
            import time
            from peer_huey_app import huey
            while huey.pending_count():
                time.sleep(0.05)
            print("{}")
        """, [lib, app])
    finally:
        consumer.terminate()
        consumer.wait(30)
    assert progress == {}
    return {**enqueue, "process_per_s": round(N / (time.perf_counter() - started)),
            "setup": "SqliteHuey(fsync=True, WAL), consumer with 8 threads"}


class Redis:
    def __init__(self, work: Path) -> None:
        if not shutil.which("redis-server"):
            raise RuntimeError("redis-server is not installed (Debian: apt-get install redis-server)")
        self.port = _free_port()
        data = work / f"redis-{self.port}"
        data.mkdir()
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(data),
             "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def rq_peer(work: Path) -> dict:
    redis = Redis(work)
    lib = work / "rq-lib"
    try:
        _pip(lib, "rq", "redis")
        app = work / "rq-app"
        app.mkdir()
        (app / "peer_rq_app.py").write_text("def noop(i):\n    return None\n")
        result = _run_py(f"""
            import json, time
            from redis import Redis
            from rq import Queue
            from peer_rq_app import noop
            q = Queue("bench", connection=Redis(port={redis.port}))
            t = time.perf_counter()
            for i in range({N}):
                q.enqueue(noop, i)
            one = {N} / (time.perf_counter() - t)
            q.empty()
            t = time.perf_counter()
            for lo in range(0, {N}, 1000):
                q.enqueue_many([Queue.prepare_data(noop, (i,)) for i in range(lo, lo + 1000)])
            bulk = {N} / (time.perf_counter() - t)
            print(json.dumps({{"enqueue_per_s": round(one), "bulk_per_s": round(bulk)}}))
        """, [lib, app])
        env = {**os.environ, "PYTHONPATH": f"{lib}{os.pathsep}{app}"}
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "rq.cli", "worker", "--burst", "--quiet", "-w",
                        "rq.worker.SimpleWorker", "--url", f"redis://127.0.0.1:{redis.port}", "bench"],
                       env=env, cwd=str(app), check=True, capture_output=True, timeout=900)
        result["process_per_s"] = round(N / (time.perf_counter() - started))
        result["setup"] = "Redis appendfsync always; one SimpleWorker (burst)"
        return result
    finally:
        redis.stop()


BULLMQ = """
const { Queue, Worker, QueueEvents } = require("bullmq");
const connection = { host: "127.0.0.1", port: Number(process.argv[2]) };
const N = Number(process.argv[3]);
(async () => {
  const q = new Queue("bench", { connection });
  let t = Date.now(); let next = 0;
  await Promise.all(Array.from({ length: 64 }, async () => {
    while (next < N) { next += 1; await q.add("noop", { i: next }, { removeOnComplete: true }); }
  }));
  const one = N / ((Date.now() - t) / 1000);
  await q.obliterate({ force: true });
  t = Date.now();
  for (let lo = 0; lo < N; lo += 1000) {
    await q.addBulk(Array.from({ length: 1000 }, (_, i) => (
      { name: "noop", data: { i: lo + i }, opts: { removeOnComplete: true } })));
  }
  const bulk = N / ((Date.now() - t) / 1000);
  let done = 0; t = Date.now();
  await new Promise((resolve) => {
    const w = new Worker("bench", async () => null, { connection, concurrency: 50 });
    w.on("completed", () => { done += 1; if (done === N) resolve(w); });
  }).then((w) => w.close());
  const processed = N / ((Date.now() - t) / 1000);
  await q.close();
  console.log(JSON.stringify({
    enqueue_per_s: Math.round(one), bulk_per_s: Math.round(bulk), process_per_s: Math.round(processed) }));
  process.exit(0);
})().catch((e) => { console.error(e); process.exit(1); });
"""


def bullmq_peer(work: Path) -> dict:
    if not shutil.which("node") or not shutil.which("npm"):
        raise RuntimeError("node and npm are needed")
    redis = Redis(work)
    try:
        folder = work / "bullmq"
        folder.mkdir()
        subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "bullmq", "ioredis"], cwd=str(folder),
                       check=True, capture_output=True, timeout=600)
        (folder / "bench.js").write_text(BULLMQ)
        out = subprocess.run(["node", "bench.js", str(redis.port), str(N)], cwd=str(folder),
                             capture_output=True, text=True, timeout=900)
        if out.returncode:
            raise RuntimeError(out.stderr[-2000:])
        return {**json.loads(out.stdout.strip().splitlines()[-1]),
                "setup": "Redis appendfsync always; 64 concurrent add(); Worker concurrency 50"}
    finally:
        redis.stop()


def run_all(work: Path, args) -> dict:  # noqa: ANN001 - argparse namespace
    results = {}
    for name, peer in (("huey", huey_peer), ("rq", rq_peer), ("bullmq", bullmq_peer)):
        print(f"... peer {name}", file=sys.stderr, flush=True)
        try:
            results[name] = peer(work)
        except Exception as exc:  # a peer that cannot run is skipped, not fatal
            results[name] = {"skipped": f"{type(exc).__name__}: {str(exc)[:300]}"}
    return results
