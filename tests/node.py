"""The TypeScript packages and the NestJS example, as the tests run them: real Node
processes against a real ``queueapp serve``.

They need ``npm ci`` and a build first (``make typescript``; ``.ci/run`` does it).
Where they are not built the tests skip, except under ``QUEUEAPP_REQUIRE_TYPESCRIPT=1``
(set by ``.ci/run``), where a missing build fails them: CI never passes by skipping.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).parent.parent
TYPESCRIPT = REPO / "clients" / "typescript"
CLIENT_DIST = TYPESCRIPT / "client" / "dist" / "index.js"
NESTJS_DIST = TYPESCRIPT / "nestjs" / "dist" / "index.js"
SEED = REPO / "examples" / "nestjs-seed"
SEED_MAIN = SEED / "dist" / "main.js"


def require_built(*paths: Path) -> str:
    """The node binary, once ``paths`` are built; else skip (or fail in CI)."""
    node = shutil.which("node")
    missing = [str(p.relative_to(REPO)) for p in paths if not p.exists()]
    if node and not missing:
        return node
    reason = "node is not installed" if not node else f"not built: {', '.join(missing)} (make typescript)"
    if os.environ.get("QUEUEAPP_REQUIRE_TYPESCRIPT") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def call(method: str, url: str, body: Any = None, token: str | None = None, timeout: float = 10) -> tuple[int, Any]:
    """One HTTP request: its status and its JSON answer (None when empty)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            text = answer.read()
            return answer.status, json.loads(text) if text else None
    except urllib.error.HTTPError as error:
        text = error.read()
        return error.code, json.loads(text) if text else None


def until(predicate: Any, timeout: float = 30.0, what: str = "condition") -> Any:
    """Wait until ``predicate()`` is truthy: for state in another process, with no
    event to wait on (polled every 20 ms); fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.02)


class NodeProcess:
    """A Node program, its output in a file, stopped by SIGTERM or SIGKILL."""

    def __init__(self, script: Path, *args: str, env: dict[str, str] | None = None, log: Path,
                 cwd: Path | None = None) -> None:
        self.log_path = log
        self._log = log.open("ab")
        node = require_built(script)
        self.proc = subprocess.Popen([node, str(script), *args], stdout=self._log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})}, cwd=cwd)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._log.close()
