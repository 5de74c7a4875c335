"""The shape of the code, checked: settings declared once and taken from every
source, secrets from files and never shown, services and apps independent of each
other, handler modules found where a user expects them, lint and types clean."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import free_port, wait_for

from queueapp.api.keys import SERVICE
from queueapp.app import make_app
from queueapp.cli import build_parser
from queueapp.config import SETTINGS, Config, ConfigError
from queueapp.service import QueueService
from queueapp.settings import load_config
from queueapp.store import SqliteStore

ROOT = Path(__file__).parent.parent.parent


PARTNERS = {"tls_cert": {"tls_key": "key.pem"}, "tls_key": {"tls_cert": "cert.pem"}, "read_token": {"token": "t"},
            "cluster": {"db": "postgresql://q@127.0.0.1/jobs"}, "sync_standbys": {"replicate_to": "replica"}}


def _sample(setting) -> tuple[str, object]:
    """A valid value other than the default, as text and as the parsed value."""
    if setting.choices:
        value = next(c for c in setting.choices if c != setting.default)
        return value, value
    if setting.kind is int:
        value = int(setting.low or 0) + 2 if setting.high is None or setting.high > 2 else 1
        return str(value), value
    if setting.kind is float:
        return "0.5", 0.5
    special = {"db": "other.db", "payment_url": "http://pay.example/x", "alert_webhook_url": "http://h.example/a",
               "trusted_proxies": "10.0.0.1", "builtin_jobs": "http", "handlers": "",
               "otel_endpoint": "http://collector.example:4318"}
    value = special.get(setting.name, f"value-of-{setting.name}")
    return value, value


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s.name != "handlers"], ids=lambda s: s.name)
def test_every_setting_comes_from_option_environment_and_toml(setting, tmp_path):
    text, value = _sample(setting)
    partner = PARTNERS.get(setting.name, {})  # settings that only go in pairs
    toml = tmp_path / "q.toml"
    toml.write_text(f"{setting.name} = {value!r}\n".replace("'", '"'))
    assert getattr(load_config(partner, str(toml), {}), setting.name) == value
    assert getattr(load_config(partner, None, {setting.env: text}), setting.name) == value
    args = build_parser().parse_args(["serve", setting.option, text])
    assert getattr(load_config({**partner, setting.name: getattr(args, setting.name)}, None, {}), setting.name) == value


def test_serve_help_lists_every_setting():
    help_text = build_parser()._subparsers._group_actions[0].choices["serve"].format_help()  # type: ignore[union-attr]
    for setting in SETTINGS:
        assert setting.option in help_text, setting.name


def test_precedence_and_errors_that_name_their_source(tmp_path):
    toml = tmp_path / "q.toml"
    toml.write_text('port = 4000\nconcurrency = 7\nhost = "10.0.0.1"\n')
    env = {"QUEUEAPP_PORT": "5000", "QUEUEAPP_CONCURRENCY": "8"}
    config = load_config({"port": 6000}, str(toml), env)
    assert (config.port, config.concurrency, config.host) == (6000, 8, "10.0.0.1")
    with pytest.raises(ConfigError, match="QUEUEAPP_PORT"):
        load_config({}, None, {"QUEUEAPP_PORT": "lots"})
    with pytest.raises(ConfigError, match=r"from --port"):
        load_config({"port": 70000}, None, {})
    toml.write_text("concurrency = 0\n")
    with pytest.raises(ConfigError, match=str(toml)):
        load_config({}, str(toml), {})


def test_secrets_come_from_files_and_never_show(tmp_path, capsys):
    secret = tmp_path / "token"
    secret.write_text("from-a-file-s3cret\n")
    assert load_config({"token_file": str(secret)}, None, {}).token == "from-a-file-s3cret"
    assert load_config({}, None, {"QUEUEAPP_SMTP_PASSWORD_FILE": str(secret)}).smtp_password == "from-a-file-s3cret"
    toml = tmp_path / "q.toml"
    toml.write_text(f'payment_token_file = "{secret}"\n')
    config = load_config({}, str(toml), {})
    assert config.payment_token == "from-a-file-s3cret"
    assert "s3cret" not in repr(config) and "s3cret" not in repr(config.builtin_settings())
    with pytest.raises(ConfigError) as refused:
        load_config({"smtp_security": "x"}, None, {"QUEUEAPP_TOKEN": "from-a-file-s3cret"})
    assert "s3cret" not in str(refused.value)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config({"token_file": str(tmp_path / "missing")}, None, {})


async def test_two_services_in_one_process_are_independent(tmp_path):
    first = QueueService(SqliteStore(tmp_path / "a.db", "normal"))
    second = QueueService(SqliteStore(tmp_path / "b.db", "normal"))
    await first.start()
    await second.start()
    try:
        assert first.registry is not second.registry
        done: list[str] = []

        async def mine(job):
            done.append(job.queue)

        first.registry.register("work", mine)
        await first.add_job("work", queue="a")
        await second.add_job("work", queue="b")
        await wait_for(lambda: done == ["a"])
        assert second.get_queue_metrics("b")["waiting"] == 1  # no handler there: it waits
        # the cleanup job of each runs against its own service
        await first.add_job("queueapp.clean", {"completedOlderThanMs": 0})
        await wait_for(lambda: first.get_queue_metrics("a")["completed"] == 0)
        assert second.get_queue_metrics("b")["waiting"] == 1
    finally:
        await first.stop(1)
        await second.stop(1)


async def test_two_apps_in_one_process_are_independent(aiohttp_client, tmp_path):
    one = await aiohttp_client(make_app(Config(db=str(tmp_path / "1.db"), durability="normal")))
    two = await aiohttp_client(make_app(Config(db=str(tmp_path / "2.db"), durability="normal", token="t2")))
    assert (await one.post("/queues/jobs", json={"name": "x"})).status == 201
    assert (await two.post("/queues/jobs", json={"name": "x"})).status == 401
    services = [c.server.app[SERVICE] for c in (one, two)]
    assert services[0].registry is not services[1].registry
    assert "http" in services[0].registry and "http" in services[1].registry


def test_handler_modules_are_found_in_the_current_folder(tmp_path):
    """Through the installed ``queueapp`` command (``python -m`` would put the folder
    on the path by itself)."""
    command = shutil.which("queueapp")
    assert command is not None, "the queueapp command is installed with the package"
    (tmp_path / "myhandlers.py").write_text(
        "from queueapp import registry\n\n@registry.handler('greet')\nasync def greet(job):\n    return 'hi'\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    port = free_port()
    serve = subprocess.Popen([command, "serve", "--db", "q.db", "--port", str(port),
                              "--handlers", "myhandlers"], cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        seen = []
        for line in serve.stdout:  # type: ignore[union-attr]
            seen.append(line)
            if "appliance started" in line:
                break
        assert "appliance started" in seen[-1] and "greet" in seen[-1], seen
    finally:
        serve.terminate()
        serve.wait(20)
    worker = subprocess.Popen([command, "worker", "--url", f"http://127.0.0.1:{free_port()}",
                               "--handlers", "myhandlers", "--grace-ms", "0"], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = worker.stdout.readline()  # type: ignore[union-attr]
        assert "worker started" in first and "names=greet" in first, first
    finally:
        worker.terminate()
        worker.wait(20)


def test_lint_and_types_are_clean():
    """make lint typecheck, as CI's install (the test extra) provides them."""
    for command in (["ruff", "check", "queueapp", "tests", "scripts"], ["mypy", "queueapp"]):
        result = subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def test_the_log_shows_no_secret(caplog):
    config = Config(token="tok-never-logged", durability="normal")
    make_app(config)
    logging.getLogger("queueapp.test").info("token is tok-never-logged")
    from queueapp.logs import LogfmtFormatter

    assert all("tok-never-logged" not in LogfmtFormatter().format(r) for r in caplog.records)
    assert asyncio.iscoroutinefunction(QueueService.start)
