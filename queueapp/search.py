"""Job search expressions (``GET /queues/jobs?q=...``), parsed into data the store
turns into SQL:

- ``42``: the job with that id;
- ``jobId = "invoice-7"`` (or just ``invoice-7``): the job kept under that key;
- ``data.userId = 42``, ``data.plan = "pro"``, ``data.vip = true``: a field of the
  job's data equal to a JSON value;
- ``data.to contains "example.com"``: a text field holding that text.

Anything else is refused (ValueError) with what is accepted. Depends on nothing."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

MAX_LENGTH = 500
_PATH = r"data((?:\.[A-Za-z_][A-Za-z0-9_]{0,63}){1,8})"
_EQUALS = re.compile(rf"^{_PATH}\s*=\s*(.+)$")
_CONTAINS = re.compile(rf'^{_PATH}\s+contains\s+(".*")$')
_KEY = re.compile(r'^jobId\s*=\s*(".*")$')


@dataclass(frozen=True, slots=True)
class JobFilter:
    kind: str  # id, key, equals, contains
    path: str | None = None  # "$.a.b" for data conditions
    value: Any = None


def parse(expression: str) -> JobFilter:
    text = expression.strip()
    if not text or len(text) > MAX_LENGTH:
        raise ValueError(f"a search is 1 to {MAX_LENGTH} characters")
    if text.isascii() and text.isdigit() and len(text) <= 15:
        return JobFilter("id", value=int(text))
    if match := _CONTAINS.match(text):
        return JobFilter("contains", "$" + match[1], _string(match[2]))
    if match := _EQUALS.match(text):
        return JobFilter("equals", "$" + match[1], _scalar(match[2]))
    if match := _KEY.match(text):
        return JobFilter("key", value=_string(match[1]))
    if text.startswith("data"):
        raise ValueError('write data.field = VALUE (a JSON number, "string", true, false or null)'
                         ' or data.field contains "text"')
    return JobFilter("key", value=text)


def _string(literal: str) -> str:
    value = _json(literal)
    if not isinstance(value, str):
        raise ValueError(f"{literal} is not a quoted string")
    return value


def _scalar(literal: str) -> Any:
    value = _json(literal.strip())
    if isinstance(value, dict | list):
        raise ValueError("compare a data field with a number, a string, true, false or null")
    if isinstance(value, float) and not math.isfinite(value):  # 1e400 reads as infinity; JSON has neither
        raise ValueError(f"{literal.strip()} is not a finite number")
    return value


def _json(literal: str) -> Any:
    try:
        return json.loads(literal)
    except ValueError:
        raise ValueError(f"{literal} is not a JSON value (strings are quoted)") from None


ORDERS = ("asc", "desc")
MAX_SCAN = 50_000  # rows a data condition may look at per page; the next page goes on


FINISHED_STATES = ("completed", "failed", "cancelled", "expired")


@dataclass(frozen=True, slots=True)
class JobSearch:
    """Which jobs of a queue: every field is a condition (None: any). Pages come in
    order of their key, ascending (``asc``) or descending (``desc``), after ``cursor``
    (the key of the last job seen):

    - a finished state (completed, failed, cancelled): the key is (finish time, id),
      and ``created_from``/``created_to`` bound the finish time: the recently failed
      first, say, straight off the (queue, state, finished_at) index;
    - otherwise: the key is (id,), and the bounds are on the creation time.

    ``by="id"`` keeps the id key whatever the state."""

    queue: str
    state: str | None = None
    name: str | None = None
    condition: JobFilter | None = None
    created_from: int | None = None
    created_to: int | None = None
    order: str = "asc"
    cursor: tuple[int, ...] | None = None
    limit: int = 100
    error: str | None = None  # the last attempt's error message starts with this
    by: str = "auto"
    error_group: str | None = None  # the last error's group (fingerprint.py)

    @property
    def scans(self) -> bool:
        """A data condition is answered by reading rows, not by an index."""
        return self.condition is not None and self.condition.kind in ("equals", "contains")

    @property
    def by_finish(self) -> bool:
        return self.by == "auto" and self.state in FINISHED_STATES

    def key_of(self, job: Any) -> tuple[int, ...]:
        """A job's place in this search's order (a cursor)."""
        return (job.finished_at, job.id) if self.by_finish else (job.id,)


@dataclass(frozen=True, slots=True)
class JobPage:
    jobs: list[Any]  # model.Job; this module depends on nothing
    next_cursor: tuple[int, ...] | None
    scanned: int | None = None  # rows read to answer a data condition


def cursor_text(key: tuple[int, ...] | None) -> str | None:
    return None if key is None else ".".join(str(k) for k in key)


def parse_cursor(text: str) -> tuple[int, ...]:
    """"4711" or "1795852800000.4711" (a finished state's pages); ValueError else."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 2 or not all(p.isascii() and p.isdigit() and len(p) <= 15 for p in parts):
        raise ValueError("a cursor is the nextCursor of the previous page")
    return tuple(int(p) for p in parts)
