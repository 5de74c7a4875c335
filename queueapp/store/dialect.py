"""What differs between SQLite and PostgreSQL in the queries both stores build from
the same searches (job_reads.py, actions.py): a data condition, a list of ids as one
parameter, a list aggregate. Queries are written with ``?`` placeholders (``?N`` for
a numbered one); ``numbered`` turns them into PostgreSQL's ``$N``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..jsonfast import dumps


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str
    equals: str  # a data field equals a value: (path, value)
    contains: str  # a data field's text contains a string: (path, text)
    in_ids: str  # the row's id is one of a list given as one parameter
    names: str  # the distinct names of a group, as one JSON array

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

    def ids(self, ids: list[int]) -> Any:
        return dumps(ids) if self.name == "sqlite" else ids


SQLITE = Dialect(
    "sqlite",
    equals="json_extract(data, ?) IS ?",
    contains="instr(json_extract(data, ?), ?) > 0",
    in_ids="id IN (SELECT value FROM json_each(?))",
    names="json_group_array(DISTINCT name)",
)
POSTGRES = Dialect(
    "postgres",
    equals="coalesce(data #> ?::text[], 'null'::jsonb) = ?::jsonb",
    contains="strpos(data #>> ?::text[], ?) > 0",
    in_ids="id = ANY(?::bigint[])",
    names="json_agg(DISTINCT name)",
)

_PLACEHOLDER = re.compile(r"\?(\d*)")


def numbered(sql: str) -> str:
    """``?`` and ``?N`` placeholders as ``$N`` (the queries built here hold no ``?``
    inside string literals)."""
    counter = 0

    def number(match: re.Match[str]) -> str:
        nonlocal counter
        if match[1]:
            return f"${match[1]}"
        counter += 1
        return f"${counter}"

    return _PLACEHOLDER.sub(number, sql)
