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


# Every module's layer: a module may import only from its own layer or lower ones.
# api -> service -> {background, enqueue, dispatch} -> store; the pure rules at the bottom.
LAYERS: list[tuple[str, ...]] = [
    # pure: depend on nothing but each other
    ("version", "model", "clock", "retry", "priority", "options", "cron", "jsonfast", "histogram", "search",
     "health", "errors", "events", "metrics", "logs", "redact", "networks", "tls",
     "dispatch.lanes", "dispatch.order", "dispatch.timers", "flow",
     "coalesce", "history", "rule_words"),
    ("store",),
    ("workers",),  # code that runs as a job, and the handler API
    ("dispatch", "cluster"),
    ("enqueue", "background", "prometheus", "config", "config_queues"),
    ("service", "service_parts", "service_browse", "service_groups"),
    ("api", "app", "settings", "client", "dashboard"),
    ("cli", "admin", "__main__", ""),  # "": the package itself, which re-exports the library
]


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every module of the package that ``name`` imports, wherever the import stands
    (TYPE_CHECKING blocks and function bodies included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif (node.module or "").startswith("queueapp"):
                target = (node.module or "").removeprefix("queueapp").lstrip(".")
            else:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}" if target else alias.name
                found.add(sub if sub in modules else target)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("queueapp"):
                    found.add(alias.name.removeprefix("queueapp").lstrip("."))
    return {m for m in found if m in modules and m != name}


def _layer(name: str) -> int:
    best = None
    for index, members in enumerate(LAYERS):
        for prefix in members:
            if name == prefix or (prefix and name.startswith(prefix + ".")):
                if best is None or len(prefix) > best[1]:
                    best = (index, len(prefix))
    assert best is not None, f"module {name or 'queueapp'} has no layer in tests/test_boundaries.py"
    return best[0]


def test_no_import_cycles_type_checking_imports_included():
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = trail[trail.index(nxt):] + [nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_every_module_imports_only_its_layer_or_lower():
    modules = _modules()
    wrong = []
    for name, path in modules.items():
        for imported in _imports(name, path, modules):
            if _layer(imported) > _layer(name):
                wrong.append(f"{name or 'queueapp'} imports {imported}")
    assert wrong == []


def test_routes_call_only_the_service():
    """api/ reaches the appliance through QueueService: no store, dispatcher, background
    service or built-in job in sight."""
    modules = _modules()
    for name, path in modules.items():
        if name.startswith("api"):
            reached = _imports(name, path, modules)
            assert not {m for m in reached if m.split(".")[0] in ("store", "dispatch", "background", "workers")}, name


def test_no_class_over_300_lines_and_no_module_over_400():
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        assert len(text.splitlines()) <= 400, (path, len(text.splitlines()))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef):
                length = node.end_lineno - node.lineno + 1
                assert length <= 300, (path, node.name, length)


def test_every_package_is_installed():
    """A plain ``pip install .`` carries every package and the dashboard's files."""
    import tomllib

    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(project["packages"])
    found = {".".join(p.parent.relative_to(PACKAGE.parent).parts) for p in PACKAGE.rglob("__init__.py")}
    assert found - listed == set()
    assert "static/*" in project["package-data"]["queueapp.dashboard"]
