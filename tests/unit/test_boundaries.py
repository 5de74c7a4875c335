"""The layout's rules, checked: SQL and SQLite stay inside queueapp/store/, DDL in
migrations/, every change of a job under store/sql/, the pure modules import
nothing of the appliance's machinery, and the shapes that made the code hard to
change (a dispatcher subclassed, mixins borrowing attributes, classes of forwards,
callbacks patched onto objects) stay out. No size limit: a class or module has one
reason to change, whatever its length."""

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).parent.parent.parent / "queueapp"
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
     "coalesce", "history", "rule_words", "builtin_settings", "traces", "fingerprint", "access", "telemetry",
     "telemetry_otel"),
    ("store",),
    ("workers",),  # code that runs as a job, and the handler API
    ("dispatch", "cluster"),
    ("enqueue", "background", "prometheus", "config", "config_queues"),
    ("service", "service_parts", "service_browse", "service_groups", "service_keys"),
    ("api", "app", "settings", "client", "dashboard", "worker_spans", "standby"),
    ("cli", "admin", "completion", "__main__", ""),  # "": the package itself, which re-exports the library
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


def test_the_settings_import_no_job_code():
    """config.py declares settings; the job types it configures take records of them
    (builtin_settings.py), so reading the settings never imports what runs jobs."""
    modules = _modules()
    assert not {m for m in _imports("config", modules["config"], modules) if m.split(".")[0] == "workers"}


def test_routes_call_only_the_service():
    """api/ reaches the appliance through QueueService: no store, dispatcher, background
    service or built-in job in sight."""
    modules = _modules()
    for name, path in modules.items():
        if name.startswith("api"):
            reached = _imports(name, path, modules)
            assert not {m for m in reached if m.split(".")[0] in ("store", "dispatch", "background", "workers")}, name


def test_jobs_change_only_through_the_statements_of_store_sql():
    """Every statement that changes a job is written once, for both engines, under
    store/sql/; the stores only run them."""
    for path in PACKAGE.rglob("*.py"):
        if "UPDATE jobs" in path.read_text():
            assert path.relative_to(PACKAGE).parts[:2] == ("store", "sql"), path


def _plans_run_by(store: Path) -> set[str]:
    return set(re.findall(r"\b((?:transitions|changes)\.[a-z_]+)", store.read_text()))


def _plans_of(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / "store" / f"{module}.py").read_text())
    return {f"{module}.{n.name}" for n in tree.body if isinstance(n, ast.FunctionDef) and not n.name.startswith("_")}


def test_both_stores_run_the_same_transitions_and_mirror_each_other():
    """The two store packages define the same names where they have counterparts: the
    same Store methods, the same plans run (every change, written once), the same runner."""
    from queueapp.store.postgres.store import PostgresStore
    from queueapp.store.sqlite.store import SqliteStore

    def own(cls: type) -> set[str]:
        return {name for name in vars(cls) if not name.startswith("_")}

    # PostgreSQL's extras: a connection of one's own, the pool, and the writer a node shares.
    assert own(PostgresStore) - own(SqliteStore) == {"connect", "pooled", "submit", "writer_pid"}
    assert own(SqliteStore) <= own(PostgresStore)
    sqlite, postgres = PACKAGE / "store" / "sqlite", PACKAGE / "store" / "postgres"
    run = set().union(*(_plans_run_by(p) for p in sqlite.glob("*.py")))
    assert run == set().union(*(_plans_run_by(p) for p in postgres.glob("*.py")))
    # the parts of other plans, and what a callback says
    assert (_plans_of("transitions") | _plans_of("changes")) - run == {"transitions.follow", "transitions.outcome_of"}
    common = {p.name for p in sqlite.glob("*.py")} & {p.name for p in postgres.glob("*.py")}
    assert {"store.py", "run.py", "statements.py", "writer.py", "migrate.py", "adds.py", "reads.py"} <= common

    def names(path: Path) -> set[str]:
        tree = ast.parse(path.read_text())
        return {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
                and not n.name.startswith("_")}

    # PostgreSQL's writer merges single completions itself: it runs one by a name of its own.
    assert names(postgres / "run.py") - names(sqlite / "run.py") == {"complete_one"}
    assert names(sqlite / "run.py") <= names(postgres / "run.py")


def _classes() -> list[tuple[Path, ast.ClassDef]]:
    return [(path, node) for path in PACKAGE.rglob("*.py")
            for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.ClassDef)]


def _base_names(node: ast.ClassDef) -> set[str]:
    return {b.id if isinstance(b, ast.Name) else b.attr if isinstance(b, ast.Attribute) else "" for b in node.bases}


def test_no_class_subclasses_the_dispatcher():
    assert [(p.name, c.name) for p, c in _classes() if "Dispatcher" in _base_names(c)] == []


# Classes whose annotations declare fields or an interface (records, models,
# protocols), not attributes borrowed from another class.
_DECLARING = {"Protocol", "NamedTuple", "TypedDict", "Enum", "StrEnum", "IntEnum", "BaseModel", "Exception",
              "ABC"}


def _declaring_classes() -> set[str]:
    """Names of the package's classes that declare: a dataclass, or one whose bases
    (through the package's own classes) reach a declaring base."""
    classes = _classes()
    declaring = {c.name for _, c in classes if any("dataclass" in ast.unparse(d) for d in c.decorator_list)
                 or _base_names(c) & _DECLARING or any(b.endswith("Error") for b in _base_names(c))}
    grew = True
    while grew:
        more = {c.name for _, c in classes if _base_names(c) & declaring} - declaring
        declaring |= more
        grew = bool(more)
    return declaring


def test_no_class_annotates_attributes_it_never_assigns():
    """An annotation in a class body is a promise that the class sets the attribute:
    no mixin reading state another class keeps."""
    wrong = []
    declaring = _declaring_classes()
    for path, node in _classes():
        if node.name in declaring:
            continue
        annotated = {s.target.id for s in node.body if isinstance(s, ast.AnnAssign) and s.value is None
                     and isinstance(s.target, ast.Name)}
        assigned = {t.attr for n in ast.walk(node) for t in _targets(n)
                    if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"}
        wrong += [f"{path.name}: {node.name}.{name}" for name in sorted(annotated - assigned)]
    assert wrong == []


def _targets(node: ast.AST) -> list[ast.expr]:
    if isinstance(node, ast.Assign):
        return [t for target in node.targets for t in (target.elts if isinstance(target, ast.Tuple) else [target])]
    if isinstance(node, ast.AnnAssign | ast.AugAssign):
        return [node.target]
    return []


def _forwards(method: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """The method only hands its call on to an attribute of ``self``'s (``return
    self.x.y(...)``, awaited or not)."""
    body = [s for s in method.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    if len(body) != 1 or not isinstance(body[0], ast.Return | ast.Expr):
        return False
    call = body[0].value
    if isinstance(call, ast.Await):
        call = call.value
    return (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
            and isinstance(call.func.value, ast.Attribute) and isinstance(call.func.value.value, ast.Name)
            and call.func.value.value.id == "self")


def test_no_class_is_made_only_of_forwards():
    """A class earns its place by deciding something: not one whose every method hands
    the call on to a part of its own (a record's properties are not forwards)."""
    wrong = []
    for path, node in _classes():
        methods = [m for m in node.body if isinstance(m, ast.FunctionDef | ast.AsyncFunctionDef)
                   and not m.name.startswith("__") and not any("property" in ast.unparse(d) for d in m.decorator_list)]
        if len(methods) >= 2 and all(_forwards(m) for m in methods):
            wrong.append(f"{path.name}: {node.name}")
    assert wrong == []


def test_no_callback_is_set_on_another_object_after_it_is_built():
    """What an object calls is given to its constructor (or registered through a
    method of its own): no ``other.on_x = self._x`` from outside."""
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        functions = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Assign):
                continue
            for target in _targets(node):
                if not isinstance(target, ast.Attribute):
                    continue
                own = isinstance(target.value, ast.Name) and target.value.id == "self"
                value = node.value
                callback = isinstance(value, ast.Lambda) or (
                    isinstance(value, ast.Attribute) and isinstance(value.value, ast.Name)
                    and value.value.id == "self" and value.attr in functions) or (
                    isinstance(value, ast.Name) and value.id in functions)
                if callback and not own:
                    wrong.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {ast.unparse(node)}")
    assert wrong == []


def test_every_package_is_installed():
    """A plain ``pip install .`` carries every package and the dashboard's files."""
    import tomllib

    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(project["packages"])
    found = {".".join(p.parent.relative_to(PACKAGE.parent).parts) for p in PACKAGE.rglob("__init__.py")}
    folders = {".".join(p.parent.relative_to(PACKAGE.parent).parts) for p in PACKAGE.rglob("*.py")}
    assert folders - found == set(), "a folder of modules without __init__.py is a namespace package"
    assert found - listed == set()
    assert "static/*" in project["package-data"]["queueapp.dashboard"]
