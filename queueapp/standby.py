"""``queueapp standby --primary URL --to DIR``: keep a copy of a running appliance's
replica folder (replicate_to) on another host, over its API, so that losing the
primary's host loses nothing the copy had: ``queueapp restore --from DIR`` there
rebuilds the database.

The primary's files only grow (a snapshot is listed once whole), so each round asks
for the listing and fetches, file by file, the bytes past what the copy holds: the
logs first, the commit lines after them (a restore uses a commit only when its log
holds it whole). Generations the primary removed are removed here too. What the
copy holds reaches its disk before the next round. The lag said is the time between
the primary's last commit shipped and the copy's last.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import aiohttp

from .clock import to_iso
from .store.sqlite.replica import held_position, last_commit_ms
from .tls import client_context

log = logging.getLogger("queueapp.standby")

ROUND_S = 0.2  # between rounds when the primary cannot be asked to wait
POLL_MS = 5_000  # how long the primary is asked to wait for a change
REPORT_S = 10.0  # how often the lag is logged
ORDER = {"snapshot.db": 0, "manifest.json": 1, "commits": 3}  # the logs (wal/...) come at 2


class StandbyRefused(Exception):
    """The primary refused this standby (token), or does not replicate."""


class Standby:
    def __init__(self, primary: str, folder: Path, token: str | None = None, cacert: str | None = None,
                 name: str | None = None) -> None:
        self.primary = primary.rstrip("/")
        self.folder = folder
        # who it is to the primary, which counts it among its synchronous standbys
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.ssl = client_context(cacert) if primary.startswith("https://") else None
        self.lag_ms: int | None = None
        self.rounds = 0
        self._reported = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        connector = aiohttp.TCPConnector(ssl=self.ssl) if self.ssl is not None else None
        async with aiohttp.ClientSession(connector=connector, headers=self.headers,
                                         timeout=aiohttp.ClientTimeout(total=60)) as session:
            pause = ROUND_S
            while not stop.is_set():
                try:
                    fetched = await _unless_stopped(self.round(session), stop)
                    if fetched is None:
                        return  # stopped while the primary was asked to wait
                    pause = 0 if fetched else ROUND_S
                except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                    log.warning("cannot follow the primary; trying again", extra={
                        "event": "standby.unreachable", "primary": self.primary, "error": str(exc)})
                    pause = min(max(pause * 2, 0.5), 5.0)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), pause)

    async def round(self, session: aiohttp.ClientSession) -> int:
        """Fetch what the copy lacks, once the primary has moved on from what it holds
        (a long poll); then say where the copy stands. The bytes fetched."""
        held = self.position()
        query = {} if held is None else {"after": f"{held[0]}:{held[1]}", "waitMs": str(POLL_MS)}
        async with session.get(f"{self.primary}/queues/replication", params=query) as answer:
            if answer.status in (401, 403, 404):
                raise StandbyRefused(f"the primary answered {answer.status}: {(await answer.text())[:300]}")
            answer.raise_for_status()
            listing = await answer.json()
        fetched = 0
        names = {g["name"] for g in listing["generations"]}
        for generation in listing["generations"]:
            files = sorted(generation["files"], key=lambda f: (ORDER.get(f["path"], 2), f["path"]))
            for file in files:
                fetched += await self._fetch(session, generation["name"], file["path"], file["size"])
        root = self.folder / "generations"
        for gone in sorted(root.iterdir()) if root.is_dir() else []:
            if gone.name not in names:
                shutil.rmtree(gone, ignore_errors=True)
        self.rounds += 1
        self._say_lag(listing["replica"])
        now = self.position()
        if now is not None:
            body = {"name": self.name, "generation": now[0], "commitsBytes": now[1]}
            async with session.post(f"{self.primary}/queues/replication/standby", json=body) as answer:
                answer.raise_for_status()
        return fetched

    def position(self) -> tuple[str, int] | None:
        """Where the copy stands on this disk (its newest generation, the bytes of its
        commit lines)."""
        return held_position(self.folder)

    async def _fetch(self, session: aiohttp.ClientSession, generation: str, path: str, size: int) -> int:
        target = self.folder / "generations" / generation / path
        whole = target
        if path == "snapshot.db":
            if whole.is_file():
                return 0
            target = target.with_name("snapshot.db.part")
        have = target.stat().st_size if target.is_file() else 0
        if have >= size:
            return 0
        target.parent.mkdir(parents=True, exist_ok=True)
        fetched = 0
        with target.open("ab") as out:
            while have < size:
                query = {"generation": generation, "path": path, "offset": str(have)}
                async with session.get(f"{self.primary}/queues/replication/file", params=query) as answer:
                    answer.raise_for_status()
                    data = await answer.read()
                if not data:
                    break
                data = data[: size - have]
                out.write(data)
                have += len(data)
                fetched += len(data)
            out.flush()
            os.fsync(out.fileno())
        if path == "snapshot.db" and have >= size:
            target.rename(whole)
        return fetched

    def _say_lag(self, replica: dict[str, Any]) -> None:
        last_here = last_commit_ms(self.folder)
        shipped = replica.get("lastShippedAt")
        primary_ms = None if shipped is None else _ms(shipped)
        self.lag_ms = None if primary_ms is None else max(0, primary_ms - (last_here or 0))
        now = time.monotonic()
        if now - self._reported >= REPORT_S:
            self._reported = now
            log.info("standby following", extra={
                "event": "standby.lag", "primary": self.primary, "lag_ms": self.lag_ms,
                "last_commit": to_iso(last_here) if last_here else "-"})


async def _unless_stopped(work: Any, stop: asyncio.Event) -> int | None:
    """``work``'s result, or None (``work`` cancelled) when ``stop`` is set first: a
    long poll does not hold a stop up."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None


def _ms(iso: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)
