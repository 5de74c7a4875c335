"""Driving the dashboard in a real browser: Debian's chromium, through playwright.

A page made here fails its test on any console error, any uncaught script error,
any dialog the page did not mean to open, and any request to a host other than the
appliance."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Request, sync_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# As root, on a machine whose network reaches nothing: no sandbox, no background
# traffic to Google's hosts.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-default-apps"]
# Screenshots go to a folder of the run's own; `make screenshots` points this at
# docs/img to refresh the documentation's pictures. A test run never writes there.
SHOTS = Path(os.environ.get("QUEUEAPP_SCREENSHOTS") or tempfile.mkdtemp(prefix="queueapp-shots-"))


@contextmanager
def chromium() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        raise RuntimeError("chromium is missing: .ci/run installs it with apt-get (package chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Watched:
    """A page and what went wrong on it."""

    page: Page
    base: str
    problems: list[str] = field(default_factory=list)
    allowed: list[str] = field(default_factory=list)  # console errors a step expects (a 400 it provoked)

    def expect_console_error(self, text: str) -> None:
        self.allowed.append(text)

    def go(self, path: str) -> None:
        self.page.goto(self.base + path)

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

    def check(self) -> None:
        assert not self.problems, self.problems


def watch(context: BrowserContext, base: str) -> Watched:
    page = context.new_page()
    watched = Watched(page, base)
    host = urlsplit(base).netloc

    def on_console(message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        for expected in watched.allowed:
            if expected in message.text:
                watched.allowed.remove(expected)
                return
        watched.problems.append(f"console: {message.text}")

    def on_request(request: Request) -> None:
        where = urlsplit(request.url)
        if where.scheme in ("http", "https", "ws", "wss") and where.netloc != host:
            watched.problems.append(f"request off the appliance: {request.url}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: watched.problems.append(f"script error: {error}"))
    page.on("request", on_request)
    page.on("dialog", lambda dialog: (watched.problems.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    return watched


def call(base: str, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    """The appliance's API, as a script would use it."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")
