"""The Python worker under test: ``queueapp worker`` with the suite's handlers,
its settings taken from the environment as every client's program takes them."""

from __future__ import annotations

import os
import sys


def main() -> None:
    from queueapp.cli import main as queueapp

    env = os.environ
    sys.exit(queueapp([
        "worker", "--url", env["QUEUEAPP_URL"], "--handlers", "conformance_handlers",
        "--queue", env.get("QUEUEAPP_QUEUE", "default"), "--concurrency", env.get("CONCURRENCY", "5"),
        "--lease-ms", env.get("LEASE_MS", "30000"), "--grace-ms", env.get("GRACE_MS", "10000"),
    ]))
