"""Continuous replication of the SQLite database to a folder, and restoring from it.

SQLite writes each committed transaction to its write-ahead log (WAL) as whole page
images, the last one marked as a commit. The writer is the only one that writes, so
right after each COMMIT, in the writer's thread, the new frames of the log are
copied to the folder as they are: the copy is exact, whatever the change was.

The folder holds generations, each a snapshot and the logs written since:

    DIR/generations/<started ms>-<id>/
        snapshot.db        the database when the generation began (WAL mode)
        manifest.json      when, and where in the log the snapshot stands
        wal/<n>.wal        the n-th log since (a log starts again after a checkpoint)
        commits            a line per commit shipped: "<n> <end offset> <at ms>"

``replication`` says when a commit is on the folder's disk: ``sync``, before it is
acknowledged (each batch that tells anyone is fsynced there too); ``async``, within
about a second (the copy is written at once; its fsync waits for the next second).
The appliance checkpoints the log itself (SQLite's automatic checkpoints are off),
only after shipping, so that no frame is folded into the database unseen.

A restore takes the newest generation that began before the time asked for, applies
its logs up to the last commit made by then (SQLite replays a log's frames up to the
last complete commit), and checks the result.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..records import ReplicaStatus

log = logging.getLogger("queueapp.replica")

WAL_HEADER = 32
FRAME_HEADER = 24
CHECKPOINT_BYTES = 64 * 1024 * 1024  # a log this long is folded into the database after shipping
FSYNC_EVERY_S = 1.0  # async: the folder's copy reaches its disk this often
CHECKPOINT_RETRY_S = 1.0


class WalShipper:
    """Ships the log to ``folder`` (in the writer's thread, after each commit)."""

    def __init__(self, db: Path, folder: Path, mode: str = "async", snapshot_every_ms: int = 6 * 3_600_000,
                 retention_ms: int = 72 * 3_600_000, checkpoint_bytes: int = CHECKPOINT_BYTES,
                 checkpoint_retry_s: float = CHECKPOINT_RETRY_S) -> None:
        assert mode in ("async", "sync")
        self.checkpoint_bytes = checkpoint_bytes
        self.checkpoint_retry_s = checkpoint_retry_s
        self.db = db
        self.wal = Path(f"{db}-wal")
        self.folder = folder
        self.mode = mode
        self.snapshot_every_ms = snapshot_every_ms
        self.retention_ms = retention_ms
        self.status = ReplicaStatus(str(folder), mode)
        self._generation: Path | None = None
        self._started_ms = 0
        self._index = -1
        self._salts = b""
        self._offset = 0  # of the current log, shipped up to here
        self._segment: BinaryIO | None = None
        self._commits: BinaryIO | None = None
        self._last_fsync = 0.0
        self._checkpoint_after = 0.0  # a checkpoint a reader held up is tried again from then
        self.commits_bytes = 0  # of the generation's commit lines written

    # a generation ----------------------------------------------------------------------

    def begin(self, conn: sqlite3.Connection) -> None:
        """A new generation: the log folded in (when readers let it), then a snapshot
        of the database as it is, which the logs shipped from here build on."""
        conn.execute("PRAGMA wal_autocheckpoint=0")
        self._close_files()
        _checkpoint_now(conn)  # an empty log to begin from, unless a reader holds it
        root = self.folder / "generations"
        # Named by when it began, later than any before it (so that names sort in order).
        now = max([_now_ms(), *(_started(g) + 1 for g in root.iterdir())] if root.is_dir() else [_now_ms()])
        generation = root / f"{now:016d}-{secrets.token_hex(3)}"
        (generation / "wal").mkdir(parents=True)
        staging = generation / "snapshot.db.part"
        target = sqlite3.connect(staging)
        try:
            conn.backup(target)
            target.execute("PRAGMA journal_mode=WAL")
        finally:
            target.close()
        _fsync_file(staging)
        staging.rename(generation / "snapshot.db")
        header = self._header()
        self._salts = header[16:24] if header else b""
        self._index = 0
        self._offset = 0  # the log from its start: frames the snapshot holds already are harmless
        manifest = {"startedMs": now, "pageSize": conn.execute("PRAGMA page_size").fetchone()[0]}
        (generation / "manifest.json").write_text(json.dumps(manifest))
        _fsync_file(generation / "manifest.json")
        _fsync_dir(generation)
        self._generation = generation
        self._started_ms = now
        self._commits = (generation / "commits").open("ab")
        self.commits_bytes = 0
        self.status.generation = generation.name
        log.info("replica generation begun", extra={"event": "replica.generation", "folder": str(self.folder),
                                                    "generation": generation.name})
        self._prune(now)

    # after each commit --------------------------------------------------------------------

    def position(self) -> tuple[str, int]:
        """Where the copy stands: its generation, and the bytes of its commit lines."""
        return (self.status.generation, self.commits_bytes)

    def start(self, conn: sqlite3.Connection) -> None:
        """At the appliance's start: a generation, or, when the folder cannot take one,
        the failure said (the appliance serves, its health critical, and tries again
        at each commit)."""
        self._guarded(lambda: self.begin(conn))

    def ship(self, conn: sqlite3.Connection, durable: bool) -> None:
        """Copy the log's new commits to the folder; on its disk before returning when
        the mode is sync and the batch told anyone (``durable``). A failure is kept
        in the status and tried again at the next commit: nothing is lost while the
        log is not checkpointed, and it is not while shipping fails."""

        def step() -> None:
            if self._generation is None or _now_ms() - self._started_ms >= self.snapshot_every_ms:
                self.begin(conn)
            self._copy_new_frames()
            if (self.mode == "sync" and durable) or time.monotonic() - self._last_fsync >= FSYNC_EVERY_S:
                self.sync()
            if self._offset >= self.checkpoint_bytes:
                self._checkpoint(conn)

        self._guarded(step)

    def flush(self) -> None:
        """The copy so far on the folder's disk (async: a second after it was written)."""
        self._guarded(self.sync)

    def _guarded(self, step: Callable[[], None]) -> None:
        try:
            step()
        except (OSError, sqlite3.Error) as exc:
            if self.status.error is None:
                self.status.failing_since_ms = _now_ms()
                log.error("cannot ship the log to the replica folder", extra={
                    "event": "replica.failed", "folder": str(self.folder), "error": str(exc)})
            self.status.error = f"{type(exc).__name__}: {exc}"
            self._close_files()
            self._generation = None  # the next success begins a generation again, from a snapshot
            return
        if self.status.error is not None:
            log.info("shipping to the replica folder again", extra={"event": "replica.recovered",
                                                                     "folder": str(self.folder)})
        self.status.error = None
        self.status.failing_since_ms = None

    def sync(self) -> None:
        """The copy so far on the folder's disk."""
        for file in (self._segment, self._commits):
            if file is not None:
                file.flush()
                os.fsync(file.fileno())
        self._last_fsync = time.monotonic()
        self.status.unsynced_commits = 0
        self.status.first_unsynced_ms = None
        self.status.last_synced_ms = self.status.last_shipped_ms

    def close(self) -> None:
        if self._segment is not None or self._commits is not None:
            try:
                self.sync()
            except OSError:
                pass
        self._close_files()

    # the log ------------------------------------------------------------------------------

    def _header(self) -> bytes:
        try:
            with self.wal.open("rb") as f:
                header = f.read(WAL_HEADER)
        except FileNotFoundError:
            return b""
        return header if len(header) == WAL_HEADER else b""

    def _copy_new_frames(self) -> None:
        assert self._generation is not None and self._commits is not None
        with self.wal.open("rb") as f:
            header = f.read(WAL_HEADER)
            if len(header) < WAL_HEADER:
                return  # an empty log: nothing committed since it was truncated
            salts = header[16:24]
            if salts != self._salts:  # the log started again: a new one, shipped from its start
                self._next_log(salts)
            page_size = int.from_bytes(header[8:12], "big")
            position = max(self._offset, WAL_HEADER)
            f.seek(position)
            end = self._offset
            while True:
                frame = f.read(FRAME_HEADER)
                if len(frame) < FRAME_HEADER or frame[8:16] != salts:
                    break  # the end of what this log holds (later bytes are an older log's)
                position += FRAME_HEADER + page_size
                f.seek(position)
                if int.from_bytes(frame[4:8], "big"):  # a commit frame: the database's size after it
                    end = position
            if end <= self._offset:
                return
            f.seek(self._offset)
            data = f.read(end - self._offset)
        if self._segment is None:
            self._segment = (self._generation / "wal" / f"{self._index:08d}.wal").open("ab")
        self._segment.write(data)
        self._segment.flush()
        now = _now_ms()
        line = f"{self._index} {end} {now}\n".encode()
        self._commits.write(line)
        self._commits.flush()
        self.commits_bytes += len(line)
        self._offset = end
        self.status.commits += 1
        self.status.bytes += len(data)
        self.status.last_shipped_ms = now
        if not self.status.unsynced_commits:
            self.status.first_unsynced_ms = now
        self.status.unsynced_commits += 1

    def _next_log(self, salts: bytes) -> None:
        if self._segment is not None:
            self._segment.flush()
            os.fsync(self._segment.fileno())
            self._segment.close()
            self._segment = None
        if self._offset or self._salts:
            self._index += 1
        self._salts = salts
        self._offset = 0

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        """Fold the shipped log into the database and start it again. A reader that
        holds the log makes it wait for a later try (a second on): the writer never
        waits for readers."""
        if time.monotonic() < self._checkpoint_after:
            return
        self.sync()
        if _checkpoint_now(conn):
            self._next_log(b"")
        else:
            self._checkpoint_after = time.monotonic() + self.checkpoint_retry_s

    def _close_files(self) -> None:
        for file in (self._segment, self._commits):
            if file is not None:
                try:
                    file.close()
                except OSError:
                    pass
        self._segment = self._commits = None

    def _prune(self, now: int) -> None:
        """Generations no longer needed to restore any moment of the retention: all
        but the newest that began before its start, and those after it."""
        generations = sorted((self.folder / "generations").iterdir())
        keep_from = 0
        for i, generation in enumerate(generations):
            if _started(generation) <= now - self.retention_ms:
                keep_from = i
        for generation in generations[:keep_from]:
            shutil.rmtree(generation, ignore_errors=True)


def _checkpoint_now(conn: sqlite3.Connection) -> bool:
    """Fold the log into the database and empty it, without waiting for readers:
    False when one holds it (what could be folded is)."""
    waits = conn.execute("PRAGMA busy_timeout").fetchone()[0]
    conn.execute("PRAGMA busy_timeout=0")
    try:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        conn.execute(f"PRAGMA busy_timeout={int(waits)}")
    return not busy


# -- restoring ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Restored:
    generation: str
    commits: int  # applied
    last_commit_ms: int | None


def restore(folder: Path, target: Path, to_ms: int | None = None) -> Restored:
    """Rebuild the database as of the last commit shipped to ``folder`` (or the last
    one made by ``to_ms``) at ``target``, which must not exist."""
    if target.exists():
        raise ValueError(f"{target} exists: restore makes a new file")
    root = folder / "generations"
    generations = sorted(root.iterdir()) if root.is_dir() else []
    usable = [g for g in generations if (g / "snapshot.db").is_file()
              and (to_ms is None or _started(g) <= to_ms)]
    if not usable:
        raise ValueError(f"no generation in {folder} began before that time" if generations
                         else f"{folder} holds no replica")
    generation = usable[-1]
    commits = _commits(generation, to_ms)
    staging = target.with_name(target.name + ".restoring")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{staging}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(generation / "snapshot.db", staging)
    ends: dict[int, int] = {}
    for index, end, _ in commits:
        ends[index] = end
    for index in sorted(ends):
        data = (generation / "wal" / f"{index:08d}.wal").read_bytes()[: ends[index]]
        Path(f"{staging}-wal").write_bytes(data)
        conn = sqlite3.connect(staging)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
    conn = sqlite3.connect(staging)
    try:
        problem = conn.execute("PRAGMA integrity_check").fetchone()[0]
        if problem != "ok":
            raise ValueError(f"the restored database is not sound: {problem}")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{staging}{suffix}").unlink(missing_ok=True)
    _fsync_file(staging)
    staging.rename(target)
    return Restored(generation.name, len(commits), commits[-1][2] if commits else None)


def _commits(generation: Path, to_ms: int | None) -> list[tuple[int, int, int]]:
    """The generation's commits (log, end offset, when), those made by ``to_ms`` whose
    frames the folder holds whole. A torn last line (a crash while it was written),
    or a line whose log is shorter (a copy of the folder taken while it grew), ends
    them."""
    found: list[tuple[int, int, int]] = []
    path = generation / "commits"
    if not path.is_file():
        return found
    sizes: dict[int, int] = {}
    for line in path.read_bytes().splitlines():
        parts = line.split()
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            break
        index, end, at = (int(p) for p in parts)
        if index not in sizes:
            log_file = generation / "wal" / f"{index:08d}.wal"
            sizes[index] = log_file.stat().st_size if log_file.is_file() else 0
        if (to_ms is not None and at > to_ms) or end > sizes[index]:
            break
        found.append((index, end, at))
    return found


def _started(generation: Path) -> int:
    head = generation.name.split("-", 1)[0]
    return int(head) if head.isdigit() else 0


def _now_ms() -> int:
    return int(time.time() * 1000)


def _fsync_file(path: Path) -> None:
    with path.open("rb+") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- reading the folder (a standby's copy of it) ------------------------------------------------

MAX_READ = 4 * 1024 * 1024  # a file is read this much at a time


def listing(folder: Path) -> list[tuple[str, list[tuple[str, int]]]]:
    """Every generation with its complete files and their sizes now, oldest first
    (a snapshot being written is not listed until it is whole)."""
    root = folder / "generations"
    found = []
    for generation in sorted(root.iterdir()) if root.is_dir() else []:
        files = [(name, (generation / name).stat().st_size) for name in ("snapshot.db", "manifest.json", "commits")
                 if (generation / name).is_file()]
        if not any(name == "snapshot.db" for name, _ in files):
            continue
        files += [(f"wal/{log_file.name}", log_file.stat().st_size)
                  for log_file in sorted((generation / "wal").glob("*.wal"))]
        found.append((generation.name, files))
    return found


def read_file(folder: Path, generation: str, name: str, offset: int, limit: int = MAX_READ) -> bytes:
    """Bytes of a generation's file from ``offset``; ValueError for a name that is not
    one of a generation's files (nothing outside the folder is ever read)."""
    if not _GENERATION.fullmatch(generation) or not _FILE.fullmatch(name):
        raise ValueError(f"no replica file {generation}/{name}")
    path = folder / "generations" / generation / name
    if not path.is_file():
        raise FileNotFoundError(f"no replica file {generation}/{name}")
    with path.open("rb") as f:
        f.seek(offset)
        return f.read(max(0, min(limit, MAX_READ)))


def held_position(folder: Path) -> tuple[str, int] | None:
    """Where a copy of the folder stands on its disk: its newest generation with a
    snapshot, and the bytes of that generation's commit lines (None: nothing yet)."""
    root = folder / "generations"
    for generation in sorted(root.iterdir(), reverse=True) if root.is_dir() else []:
        if (generation / "snapshot.db").is_file():
            commits = generation / "commits"
            return generation.name, commits.stat().st_size if commits.is_file() else 0
    return None


def last_commit_ms(folder: Path) -> int | None:
    """When the newest commit the folder holds was shipped: read from the end of the
    newest commit lines (a line is a few tens of bytes), never the whole file."""
    root = folder / "generations"
    for generation in sorted(root.iterdir(), reverse=True) if root.is_dir() else []:
        commits = generation / "commits"
        size = commits.stat().st_size if commits.is_file() else 0
        if not size:
            continue
        with commits.open("rb") as f:
            f.seek(max(0, size - 256))
            tail = f.read()
        for line in reversed(tail.split(b"\n")[1:-1] if size > 256 else tail.split(b"\n")[:-1]):
            parts = line.split()
            if len(parts) == 3 and all(p.isdigit() for p in parts):
                return int(parts[2])
    return None


_GENERATION = re.compile(r"[0-9]{16}-[0-9a-f]{6}")
_FILE = re.compile(r"snapshot\.db|manifest\.json|commits|wal/[0-9]{8}\.wal")
