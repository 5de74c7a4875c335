"""The fixtures every folder shares: a real SQLite file under tmp_path, a real
service, a real aiohttp server on loopback, a real PostgreSQL server, and a real
``queueapp serve`` process.

The tests are where a newcomer looks for them: ``unit/`` (no process, no server),
``integration/`` (real stores, real servers, real ``queueapp serve`` processes),
``browser/`` (the dashboard in a real chromium), ``cluster/`` (several nodes on a
real PostgreSQL). Helpers they share sit here beside this file. Long tests carry
the ``slow`` marker (``make test-fast`` leaves them out; CI runs everything)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from queueapp.app import make_app
from queueapp.config import Config
from queueapp.service import QueueService
from queueapp.store import SqliteStore
from queueapp.workers.registry import HandlerRegistry

REPO = Path(__file__).parent.parent


def _tree_state() -> str | None:
    """What git sees of the checkout (status and the tracked files' changes), or None
    outside a git checkout."""
    try:
        status = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True,
                                timeout=60, check=True).stdout
        diff = subprocess.run(["git", "diff", "--no-ext-diff"], cwd=REPO, capture_output=True, text=True,
                              timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return status + diff


# Besides every test of browser/ and cluster/, the files whose tests take long:
# crash and fault campaigns, fuzzers, builds, processes killed and started again.
SLOW_FILES = {"test_crash.py", "test_crash_campaign.py", "test_openapi_fuzz.py", "test_fuzz.py",
              "test_single_file.py", "test_postgres_serve.py", "test_defects_serve.py", "test_defects_trust.py",
              "test_tls.py", "test_faults.py", "test_workers.py", "test_admin_cli.py"}
SLOW_FOLDERS = {"browser", "cluster", "typescript", "conformance"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.fspath))
        if path.name in SLOW_FILES or path.parent.name in SLOW_FOLDERS:
            item.add_marker(pytest.mark.slow)


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_TREE] = _tree_state()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A test run never changes the checkout: a test that writes into a tracked file
    (or leaves a file that is not ignored) fails the run."""
    before = session.config.stash.get(_TREE, None)
    if before is None:
        return
    after = _tree_state()
    if after is not None and after != before:
        print(f"\nthe test run changed the checkout:\n{after[:2000]}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_TREE = pytest.StashKey[str | None]()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "queue.db"


@pytest.fixture
def registry() -> HandlerRegistry:
    return HandlerRegistry()


# The library tests (make_service) run on both stores: SQLite, and PostgreSQL on a
# server started for the session (tests/pg.py). QUEUEAPP_TEST_STORE=sqlite (or
# postgres) runs them on one only.
STORES = [s for s in ("sqlite", "postgres") if os.environ.get("QUEUEAPP_TEST_STORE", s) == s]


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """One real PostgreSQL server for the whole run (tests/pg.py); each test makes
    databases of its own on it."""
    from pg import postgres_server

    with postgres_server() as server:
        yield server


def database_name(request: pytest.FixtureRequest, prefix: str) -> str:
    """A database name of the test's own (PostgreSQL names are up to 63 bytes)."""
    return prefix + "".join(c if c.isalnum() else "_" for c in request.node.nodeid.lower())[-50:]


@pytest.fixture
async def pg_url(postgres: Any, request: pytest.FixtureRequest) -> str:
    """A fresh database with the PostgreSQL store's schema."""
    import asyncpg

    from queueapp.store.postgres.migrate import migrate

    url = postgres.create_database(database_name(request, "t_"))
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return url


@pytest.fixture
async def pg_conn(pg_url: str) -> AsyncIterator[Any]:
    import asyncpg

    conn = await asyncpg.connect(pg_url)
    yield conn
    await conn.close()


@pytest.fixture(params=STORES)
def store_for(request: pytest.FixtureRequest, db_path: Path) -> Callable[[str], Any]:
    """The store a test's services use: SQLite at ``db_path``, or one PostgreSQL
    database per test (the same one for every service of that test). A test marked
    ``sqlite_only`` reads the SQLite file itself."""
    if request.param == "sqlite":
        return lambda durability: SqliteStore(db_path, durability)
    if request.node.get_closest_marker("sqlite_only"):
        pytest.skip("reads the SQLite file itself")
    from queueapp.store.postgres.store import PostgresStore

    url = request.getfixturevalue("postgres").create_database(database_name(request, "lib_"))
    return lambda durability: PostgresStore(url)


@pytest.fixture
async def make_service(
    store_for: Callable[[str], Any], registry: HandlerRegistry
) -> AsyncIterator[Callable[..., Any]]:
    """``await make_service(**kwargs)``: a started QueueService over ``db_path``.
    Every service made is stopped at the end of the test."""
    started: list[QueueService] = []

    async def make(**kwargs: Any) -> QueueService:
        kwargs.setdefault("registry", registry)
        durability = kwargs.pop("durability", "normal")
        service = QueueService(store_for(durability), **kwargs)
        await service.start()
        started.append(service)
        return service

    yield make
    for service in started:
        if service.dispatcher._loop_task is not None and not service.dispatcher._stopping:
            await service.stop(grace_s=1)


@pytest.fixture
async def make_client(
    aiohttp_client: Any, db_path: Path, registry: HandlerRegistry
) -> Callable[..., Any]:
    """``await make_client(**settings)``: an aiohttp test client on a real server over
    a real store. Settings override Config fields."""

    async def make(**settings: Any) -> Any:
        settings.setdefault("db", str(db_path))
        settings.setdefault("durability", "normal")
        app = make_app(Config(**settings).validate(), registry=registry)
        return await aiohttp_client(app)

    return make


def iso_ms(iso: str) -> int:
    """An answer's ISO 8601 time (``...Z``) as milliseconds since the epoch."""
    from datetime import datetime

    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServeProcess:
    """A real ``queueapp serve`` child process."""

    def __init__(self, db: Path | str, *args: str, env: dict[str, str] | None = None,
                 folder: Path | None = None) -> None:
        """``db``: a SQLite file, or a PostgreSQL URL (then ``folder`` holds the log)."""
        self.db = db
        self.args = args
        self.env = {**os.environ, **(env or {})}
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = (folder or Path(db).parent) / f"serve-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> ServeProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "queueapp", "serve", "--db", str(self.db),
             "--port", str(self.port), *self.args],
            stdout=log, stderr=log, env=self.env,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited early: {self.log_path.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    pass
                if _livez(self.url):
                    return self
            except OSError:
                pass
            time.sleep(0.05)  # polling a child process for readiness; no event to wait on
        raise RuntimeError(f"serve did not start: {self.log_path.read_text()}")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(20)


def _livez(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url + "/livez", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.fixture
def serve(db_path: Path) -> Iterator[Callable[..., ServeProcess]]:
    made: list[ServeProcess] = []

    def start(*args: str, env: dict[str, str] | None = None) -> ServeProcess:
        p = ServeProcess(db_path, *args, env=env).start()
        made.append(p)
        return p

    yield start
    for p in made:
        if p.proc is not None and p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait(10)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def wait_for(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Wait until ``predicate()`` is truthy, yielding to the loop between checks.
    For conditions with no event to wait on (a counter in another component)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.005)
