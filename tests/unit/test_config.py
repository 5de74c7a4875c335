from pathlib import Path

import pytest

from queueapp.cli import main
from queueapp.config import ConfigError
from queueapp.settings import load_config


def test_precedence_flag_over_env_over_file_over_default(tmp_path):
    conf = tmp_path / "q.toml"
    conf.write_text('port = 4000\ndb = "file.db"\nconcurrency = 7\n')
    env = {"QUEUEAPP_PORT": "5000", "QUEUEAPP_DB": "env.db"}
    config = load_config({"port": 6000}, str(conf), env)
    assert (config.port, config.db, config.concurrency, config.host) == (6000, "env.db", 7, "127.0.0.1")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"QUEUEAPP_PORT": "abc"}, "whole number"),
        ({"QUEUEAPP_PORT": "70000"}, "port"),
        ({"QUEUEAPP_PORT": "0"}, "port must be at least 1"),
        ({"QUEUEAPP_DURABILITY": "sometimes"}, "durability"),
        ({"QUEUEAPP_CONCURRENCY": "0"}, "concurrency"),
    ],
)
def test_bad_settings_are_refused(env, message):
    with pytest.raises(ConfigError, match=message):
        load_config({}, None, env)


def test_unknown_key_in_config_file(tmp_path):
    conf = tmp_path / "q.toml"
    conf.write_text("prot = 1\n")
    with pytest.raises(ConfigError, match="unknown setting 'prot'"):
        load_config({}, str(conf), {})


def test_migrate_command_creates_the_schema(tmp_path, capsys):
    import sqlite3

    db = tmp_path / "m.db"
    assert main(["migrate", "--db", str(db)]) == 0
    assert main(["migrate", "--db", str(db)]) == 0  # twice is harmless
    with sqlite3.connect(db) as conn:
        versions = conn.execute("select version from schema_migrations").fetchall()
        files = sorted(Path(__file__).parents[2].joinpath("migrations").glob("[0-9]*.sql"))
        assert versions == [(v,) for v in range(1, len(files) + 1)]  # every numbered file, once
        assert conn.execute("pragma journal_mode").fetchone()[0] == "wal"


def test_cli_reports_bad_config_without_a_traceback(capsys):
    assert main(["serve", "--port", "0"]) == 2
    assert "port must be at least 1" in capsys.readouterr().err


def test_the_shipped_config_file_loads(tmp_path):
    from pathlib import Path

    shipped = Path(__file__).parent.parent.parent / "deploy" / "queueapp.toml"
    config = load_config({}, str(shipped), {})
    assert config.durability == "full" and config.port == 3000


def test_version_names_sqlite_json_and_event_loop(capsys):
    import sqlite3

    with pytest.raises(SystemExit):
        main(["--version"])
    text = capsys.readouterr().out
    assert text.startswith("queueapp ") and f"SQLite {sqlite3.sqlite_version}" in text
    assert "JSON " in text and "event loop " in text


def test_a_postgresql_database_runs_no_backup_data_by_default():
    from queueapp.config import Config

    assert "backup-data" in Config(db="./q.db").validate().builtin_job_names
    on_postgres = Config(db="postgresql://queueapp@db.internal:5432/jobs?sslmode=require").validate()
    assert "backup-data" not in on_postgres.builtin_job_names and "http" in on_postgres.builtin_job_names


def test_a_queues_table_overrides_only_what_it_names_for_that_queue():
    from queueapp.config import Config
    from queueapp.flow import Aging, GroupLimits

    config = Config(concurrency=5, aging_every_ms=0, health_waiting_warning=1000, queues={
        "mail": {"concurrency": 2, "aging_every_ms": 60_000, "health_waiting_warning": 10,
                 "groups": {"concurrency": 3}}}).validate()
    queues = config.per_queue()
    assert (queues.concurrency_for("mail"), queues.concurrency_for("other")) == (2, 5)
    assert queues.aging_for("mail") == Aging(60_000, 2) and queues.aging_for("other") is None
    assert queues.group_limits_for("mail") == GroupLimits(concurrency=3)
    assert queues.group_limits_for("other") == GroupLimits()
    mail, other = queues.thresholds_for("mail"), queues.thresholds_for("other")
    assert (mail.waiting_warning, other.waiting_warning) == (10, 1000)
    assert mail.waiting_critical == other.waiting_critical == config.health_waiting_critical
    assert mail.stuck_after_ms == config.stuck_after_ms
