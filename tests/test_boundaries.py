"""The layout's rules, checked: SQL and SQLite stay inside queueapp/store/, DDL in
migrations/, and the pure modules import nothing of the appliance's machinery."""

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "queueapp"
SQL = re.compile(r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+(TABLE|INDEX))\b")


def modules_outside_store():
    return [p for p in PACKAGE.rglob("*.py") if "store" not in p.relative_to(PACKAGE).parts]


def test_no_sql_and_no_sqlite_outside_the_store():
    for path in modules_outside_store():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not any(n.split(".")[0] in ("sqlite3", "aiosqlite") for n in names), path
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert not SQL.search(node.value), (path, node.value[:80])


def test_schema_is_defined_only_in_migrations():
    """The one table made in code is the migrations runner's own bookkeeping."""
    for path in (PACKAGE / "store").rglob("*.py"):
        for match in re.finditer(r"(CREATE|ALTER|DROP)\s+(TABLE|INDEX|VIEW)[^\"]*", path.read_text()):
            assert path.name == "migrate.py" and "schema_migrations" in match.group(0), (path, match.group(0))


def test_pure_modules_depend_on_nothing_of_the_machinery():
    pure = ["model", "clock", "retry", "priority", "dispatch/lanes", "health", "histogram", "cron", "jsonfast"]
    machinery = {"store", "dispatch", "dispatcher", "service", "api", "app", "scheduler", "monitor", "workers",
                 "recovery", "client", "cli"}
    for name in pure:
        tree = ast.parse((PACKAGE / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                top = (node.module or "").split(".")[0]
                assert top not in machinery, (name, node.module)
