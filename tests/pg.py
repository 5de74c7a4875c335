"""A real PostgreSQL server for the tests: Debian's ``postgresql`` package (``.ci/run``
installs it when missing), a fresh cluster made with ``initdb`` in a temporary
folder, run as an unprivileged user on a free port on 127.0.0.1, stopped and removed
at the end. No mocks: the PostgreSQL store is tested against the real engine."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

USER = "queueapp"  # the cluster's superuser, trusted on loopback only


def server_binaries() -> Path:
    """The newest installed PostgreSQL's bin folder (Debian keeps them off PATH)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not found:
        raise RuntimeError("PostgreSQL's server is not installed: apt-get install postgresql (.ci/run does)")
    return found[-1].parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_owner(owner: str | None, *command: str) -> list[str]:
    """``command`` run as ``owner`` when the tests run as root (PostgreSQL refuses root)."""
    return ["runuser", "-u", owner, "--", *command] if owner else list(command)


class PostgresServer:
    def __init__(self) -> None:
        self.bin = server_binaries()
        self.port = _free_port()
        self.owner = "postgres" if os.geteuid() == 0 else None
        self.root = Path(tempfile.mkdtemp(prefix="queueapp-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"

    @property
    def url(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/postgres"

    def url_of(self, database: str) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def _run(self, *command: str) -> None:
        result = subprocess.run(_as_owner(self.owner, *command), capture_output=True, text=True, timeout=120)
        if result.returncode:
            raise RuntimeError(f"{command[0]} failed: {result.stdout}{result.stderr}")

    def start(self) -> PostgresServer:
        if self.owner:
            pw = pwd.getpwnam(self.owner)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", USER, "--auth=trust", "-E", "UTF8",
                  "--no-instructions")
        self.resume()
        return self

    def create_database(self, name: str) -> str:
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, name)
        return self.url_of(name)

    def stop_for_a_while(self) -> None:
        """Stop the server as an outage would (its data kept): clients' connections
        drop and new ones are refused until ``resume``."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def resume(self) -> None:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=on"
                   " -c max_connections=200 -c shared_buffers=64MB")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self) -> None:
        if self.data.exists():
            subprocess.run(_as_owner(self.owner, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast",
                                     "-w", "stop"), capture_output=True, timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        yield server.start()
    finally:
        server.stop()
