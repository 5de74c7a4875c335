"""Every curl example of docs/api.md, in the page's order, against a real ``queueapp
serve``: each reaches a route the appliance has (no "no route", no 405), and none is
answered with a server error. Examples that name job 42 or a lease token TOKEN are
answered 404 or 409 as any such call would be; what is checked is that the page
describes the API the appliance serves."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

PAGE = Path(__file__).parent.parent.parent / "docs" / "api.md"


def examples() -> list[str]:
    """The page's curl commands, each whole: its continued lines joined, and a quoted
    body that runs over several lines kept with it."""
    found = []
    for block in re.findall(r"```sh\n(.*?)```", PAGE.read_text(), re.S):
        lines = iter(block.replace("\\\n", " ").splitlines())
        for line in lines:
            if not line.strip().startswith("curl"):
                continue
            command = line.strip()
            while command.count("'") % 2:  # a quoted body goes on on the next line
                command += "\n" + next(lines)
            found.append(command)
    return found


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_every_curl_example_reaches_a_route_and_no_server_error(serve, tmp_path):
    server = serve("--audit-interval-ms", "60000")
    body = tmp_path / "answer"
    seen = []
    for example in examples():
        command = example.replace("http://localhost:3000", server.url)
        done = subprocess.run(["bash", "-c", f"{command} -s -o {body} -w '%{{http_code}}' --max-time 5"],
                              capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        status = int(done.stdout[-3:] or 0)
        text = body.read_text(errors="replace") if body.exists() else ""
        seen.append((status, example[:100]))
        assert status and status < 500, (status, example, text[:300])
        assert status != 405, example
        if status == 404:
            assert "no route" not in json.loads(text)["error"]["message"], example
    assert len(seen) >= 60 and sum(1 for s, _ in seen if s < 300) >= 40, seen
