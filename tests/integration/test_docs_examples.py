"""Every curl example of docs/api.md, in the page's order, against a real ``queueapp
serve``, each answered with the status it should have: 201 where it creates, else
200. An example that names job 42 (and a lease token TOKEN) is run on a real job in
the state it needs (failed for retry, delayed for promote, leased for heartbeat,
complete, fail, log and release, waiting otherwise), made just before it; one that
names API key Xr3kq9TzL0aB on a real key, one that names a replica generation on the
appliance's own (it replicates to a folder of the test's); so the page describes the API the
appliance serves, call by call. The appliance has a token, which each example is
sent with."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.request
from itertools import count
from pathlib import Path

import pytest

PAGE = Path(__file__).parent.parent.parent / "docs" / "api.md"
# The routes whose success is 201 Created (API.md); every other example answers 200.
CREATES = re.compile(r"-X POST \S*/queues/(jobs|jobs/schedule|jobs/bulk|schedules|schedules/[^/\s]+/run|keys)['\"?\s]")
# What an example on job 42 needs the job to be, by the last segment of its path.
NEEDS = {"retry": "failed", "promote": "delayed", "heartbeat": "leased", "complete": "leased", "fail": "leased",
         "log": "leased", "release": "leased"}


def examples() -> list[str]:
    """The page's curl commands, each whole: its continued lines joined, a quoted body
    that runs over several lines kept with it, and what is piped into it."""
    found = []
    for block in re.findall(r"```sh\n(.*?)```", PAGE.read_text(), re.S):
        lines = iter(block.replace("\\\n", " ").splitlines())
        for line in lines:
            command = line.strip()
            while command.endswith("|"):  # a producer piped into the curl on the next line
                command += " " + next(lines).strip()
            if "curl" not in command.split("|")[-1].split():
                continue
            while command.count("'") % 2:  # a quoted body goes on on the next line
                command += "\n" + next(lines)
            found.append(command)
    return found


TOKEN = "docs-examples-token"
EXAMPLE_KEY = "Xr3kq9TzL0aB"
EXAMPLE_GENERATION = "0001796212345678-a1b2c3"


class Jobs:
    """Jobs (and API keys) made through the API in the state an example needs."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.serial = count()

    def call(self, method: str, path: str, body: object = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, method=method, data=data,
                                         headers={"Content-Type": "application/json",
                                                  "Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(request, timeout=10) as r:
            return json.loads(r.read())

    def made(self, state: str) -> tuple[str, str]:
        """(id, lease token or "") of a new job in ``state``."""
        name = f"docs-example-{next(self.serial)}"
        options = {"delay": 3_600_000} if state == "delayed" else {"attempts": 1}
        job = self.call("POST", "/queues/jobs", {"name": name, "options": options})
        if state in ("waiting", "delayed"):
            return job["id"], ""
        (leased,) = self.call("POST", "/queues/jobs/lease", {"names": [name], "max": 1})["jobs"]
        if state == "failed":
            self.call("POST", f"/queues/jobs/{job['id']}/fail", {"leaseToken": leased["leaseToken"], "error": "x"})
        return job["id"], leased["leaseToken"]


def on_a_real_key(example: str, jobs: Jobs) -> str:
    if EXAMPLE_KEY not in example:
        return example
    key = jobs.call("POST", "/queues/keys", {"name": f"docs-key-{next(jobs.serial)}", "roles": ["read"],
                                             "queues": ["*"]})
    return example.replace(EXAMPLE_KEY, key["id"])


def on_the_real_copy(example: str, jobs: Jobs) -> str:
    if EXAMPLE_GENERATION not in example:
        return example
    generation = jobs.call("GET", "/queues/replication")["generations"][-1]["name"]
    return example.replace(EXAMPLE_GENERATION, generation)


def with_the_token(example: str) -> str:
    """The example's (last) curl sent with the appliance's token."""
    head, _, tail = example.rpartition("curl ")
    return f"{head}curl -H 'Authorization: Bearer {TOKEN}' {tail}"


def on_a_real_job(example: str, jobs: Jobs) -> str:
    found = re.search(r"/queues/jobs/42(/([a-z]+))?", example)
    if found is None:
        return example
    job_id, token = jobs.made(NEEDS.get(found.group(2) or "", "waiting"))
    return example.replace("/queues/jobs/42", f"/queues/jobs/{job_id}").replace('"TOKEN"', f'"{token}"')


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_every_curl_example_is_answered_as_the_page_says(serve, tmp_path):
    server = serve("--audit-interval-ms", "60000", "--token", TOKEN, "--replicate-to", str(tmp_path / "replica"))
    jobs = Jobs(server.url)
    body = tmp_path / "answer"
    seen = []
    for example in examples():
        command = with_the_token(on_the_real_copy(on_a_real_key(on_a_real_job(example, jobs), jobs), jobs))
        command = command.replace("http://localhost:3000", server.url)
        done = subprocess.run(["bash", "-c", f"{command} -s -o {body} -w '%{{http_code}}' --max-time 5"],
                              capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        status = int(done.stdout[-3:] or 0)
        text = body.read_text(errors="replace") if body.exists() else ""
        expected = 201 if CREATES.search(example) else 200
        assert status == expected, (status, example, text[:300])
        seen.append(example)
    assert len(seen) >= 60
