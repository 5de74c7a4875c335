"""What differs between SQLite and PostgreSQL in the statements both stores run, as
data: placeholders, a list given as one parameter, JSON functions and casts,
locking clauses, the engine's own extras. Statements are written once with ``?``
placeholders (``?N`` for a numbered one); ``numbered`` turns them into PostgreSQL's
``$N``. Nothing here runs a statement: the stores do (store/sqlite, store/postgres).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ...jsonfast import dumps


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str
    equals: str  # a data field equals a value: (path, value)
    contains: str  # a data field's text contains a string: (path, text)
    names: str  # the distinct names of a group, as one JSON array
    # A queue's (?1) failed jobs by error group: error_group, n, names (a JSON array).
    failed_groups: str
    greatest: str  # the larger of two values
    new_token: str  # a fresh lease token: 24 or 32 hex digits from the engine's random source
    is_number: str  # a JSON column holds a number ({} is the column)
    json: str  # what follows a parameter that is JSON text
    bigint: str  # what follows a parameter that may be null where a number is meant
    lock_rows: str  # after a SELECT whose rows the transaction changes next (other writers exist)
    lock_shared: str  # after a SELECT whose rows must not finish before the transaction ends
    skip_locked: str  # after a SELECT that takes rows no other writer holds
    no_limit: int | None  # a LIMIT parameter that limits nothing
    key_locks: bool  # unique keys are locked by advisory locks (several writers on one database)
    row_types: dict[str, str]  # a column's type, for a table given as parameters
    # Waiting or delayed, spelt as the engine's partial index of expiring jobs is
    # (SQLite uses a partial index only for a condition written as its own is).
    not_started: str

    def path(self, path: str) -> Any:
        """A data condition's path ("$.a.b") as this engine takes it."""
        return path if self.name == "sqlite" else path.removeprefix("$.").split(".")

    def value(self, value: Any) -> Any:
        """A data condition's value as this engine compares it."""
        if self.name == "sqlite":
            if isinstance(value, bool):
                return int(value)  # json_extract gives true as 1
            if isinstance(value, int) and not -(2**63) <= value < 2**63:
                return float(value)  # SQLite keeps such a number of the data as a REAL, as here
            return value
        return dumps(value)

    def boolean(self, value: bool) -> Any:
        """A boolean column's value (SQLite keeps 0 and 1)."""
        return int(value) if self.name == "sqlite" else value

    def ids(self, ids: list[int]) -> Any:
        return dumps(ids) if self.name == "sqlite" else ids

    def one_of(self, column: str, n: int | None = None) -> str:
        """``column`` is one of a list of ids given as one parameter (``ids``): ``?n``,
        or the next ``?`` of a query written with unnumbered placeholders."""
        mark = "?" if n is None else f"?{n}"
        if self.name == "sqlite":
            return f"{column} IN (SELECT value FROM json_each({mark}))"
        return f"{column} = ANY({mark}::bigint[])"

    def rows(self, alias: str, columns: Sequence[str], first: int) -> str:
        """A table ``alias`` of ``columns`` given as parameters from ``?first`` on (see
        ``row_params``): one JSON array of rows on SQLite, an array per column on
        PostgreSQL."""
        if self.name == "sqlite":
            picked = ", ".join(f"json_extract(value, '$[{i}]') AS {c}" for i, c in enumerate(columns))
            return f"(SELECT {picked} FROM json_each(?{first})) AS {alias}"
        arrays = ", ".join(f"?{first + i}::{self.row_types[c]}[]" for i, c in enumerate(columns))
        return f"unnest({arrays}) AS {alias}({', '.join(columns)})"

    def row_params(self, rows: Sequence[Sequence[Any]], width: int) -> tuple[Any, ...]:
        """The parameters of a ``rows`` table of ``width`` columns."""
        if self.name == "sqlite":
            return (dumps([list(r) for r in rows]),)
        return tuple([r[i] for r in rows] for i in range(width))


# Column types of the tables given as parameters (PostgreSQL needs them; SQLite reads JSON).
_ROW_TYPES = {"id": "bigint", "due": "bigint", "at": "bigint", "token": "text", "result": "jsonb", "n": "bigint",
              "line": "text"}

SQLITE = Dialect(
    "sqlite",
    equals="json_extract(data, ?) IS ?",
    contains="instr(json_extract(data, ?), ?) > 0",
    names="json_group_array(DISTINCT name)",
    # counted as they change (migration 0015): a few rows, however many failed
    failed_groups="SELECT error_group, sum(n) AS n, json_group_array(name) AS names FROM failed_group_counts"
                  " WHERE queue = ?1 GROUP BY error_group",
    greatest="max",
    new_token="lower(hex(randomblob(12)))",
    is_number="json_type({}) IN ('integer', 'real')",
    json="",
    bigint="",
    lock_rows="",  # one writer: the transaction is the lock
    lock_shared="",
    skip_locked="",
    no_limit=-1,
    key_locks=False,
    row_types=_ROW_TYPES,
    not_started="(state = 'waiting' OR state = 'delayed')",
)
POSTGRES = Dialect(
    "postgres",
    equals="coalesce(data #> ?::text[], 'null'::jsonb) = ?::jsonb",
    contains="strpos(data #>> ?::text[], ?) > 0",
    names="json_agg(DISTINCT name)",
    # counted here, from the failed jobs' index: counts kept by triggers would make
    # every node's failures of one cause wait on one row
    failed_groups="SELECT error_group, count(*) AS n, json_agg(DISTINCT name) AS names FROM jobs"
                  " WHERE queue = ?1 AND state = 'failed' AND error_group IS NOT NULL GROUP BY error_group",
    greatest="greatest",
    new_token="replace(gen_random_uuid()::text, '-', '')",
    is_number="jsonb_typeof({}) = 'number'",
    json="::jsonb",
    bigint="::bigint",
    lock_rows=" FOR UPDATE",
    lock_shared=" FOR SHARE",
    skip_locked=" FOR UPDATE SKIP LOCKED",
    no_limit=None,
    key_locks=True,
    row_types=_ROW_TYPES,
    not_started="state IN ('waiting', 'delayed')",
)

_PLACEHOLDER = re.compile(r"\?(\d*)")


@lru_cache(maxsize=1024)
def numbered(sql: str) -> str:
    """``?`` and ``?N`` placeholders as ``$N`` (the statements built here hold no ``?``
    inside string literals)."""
    counter = 0

    def number(match: re.Match[str]) -> str:
        nonlocal counter
        if match[1]:
            return f"${match[1]}"
        counter += 1
        return f"${counter}"

    return _PLACEHOLDER.sub(number, sql)
