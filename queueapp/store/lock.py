"""One appliance per database: an exclusive lock on a file beside it.

Two processes on one SQLite file would each believe they own every job: the second's
start-up recovery would fail the first's running jobs, and both would hand out the
same ids. ``serve``, ``migrate``, ``restore`` and ``check`` take this lock before they
read or write anything, and refuse with one line naming the holder when it is taken.
The kernel drops the lock when its holder dies, however it dies.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class DatabaseInUse(RuntimeError):
    pass


class DatabaseLock:
    def __init__(self, db: Path) -> None:
        self.path = db.with_name(db.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> DatabaseLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DatabaseInUse(
                f"{self.path.with_suffix('')} is in use by another queueapp process (pid {holder});"
                " stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> DatabaseLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class NoFileLock(DatabaseLock):
    """A database that is not a file (PostgreSQL): its store guards it itself."""

    def __init__(self) -> None:
        self._fd = None

    def acquire(self) -> DatabaseLock:
        return self

    def release(self) -> None:
        pass
