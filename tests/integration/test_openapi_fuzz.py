"""An outside fuzzer driven by the appliance's own /openapi.json (schemathesis,
every check) against a real ``queueapp serve``: no server error and no mismatch
between the description and the behaviour, with and without a token; afterwards
the self-audit finds memory and table in agreement. A CI-sized run; longer ones
with scripts/openapi-fuzz."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

CONFIG = Path(__file__).parent.parent / "schemathesis.toml"
# The fuzzer sends wrong credentials on purpose (its ignored_auth check), from one
# address: throttling them would answer its every later request 429.
SERVE = ("--long-poll-max-ms", "200", "--audit-interval-ms", "600000", "--login-attempts-per-minute", "100000")


# One worker thread: on Python 3.11.7, hypothesis describing strategies in several
# threads at once can trip CPython's AST recursion counter (SystemError), a fault of
# the tool's run, not of the API under test.
def run_schemathesis(url: str, examples: int, *extra: str, seed: int = 20261128) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "schemathesis.cli"] if not shutil.which("st") else ["st"]
    return subprocess.run(
        [*command, "--config-file", str(CONFIG), "run", f"{url}/openapi.json", "--max-examples", str(examples),
         "--workers", "1", "--seed", str(seed), "--no-color", "--phases", "coverage,fuzzing,stateful", *extra],
        capture_output=True, text=True, timeout=600,
    )


def audit(url: str, token: str | None = None) -> dict:
    request = urllib.request.Request(f"{url}/debug/audit")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as r:
        return json.loads(r.read())


@pytest.mark.timeout(600)
@pytest.mark.parametrize("token", [None, "fuzz-token"])
def test_the_openapi_description_holds_under_a_fuzzer(serve, token):
    args = SERVE + (("--token", token) if token else ())
    server = serve(*args)
    extra = ("--header", f"Authorization: Bearer {token}") if token else ()
    result = run_schemathesis(server.url, 10, *extra)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert audit(server.url, token) == {"ok": True, "problems": []}
