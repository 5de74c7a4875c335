"""The part of the service facade an operator's screen needs, reached as
``service.browse``: job search, actions on many jobs at once, failures grouped by
message, and the metrics history."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from .background.history import HistoryKeeper
from .dispatch import Dispatcher
from .errors import ValidationFailed
from .search import JobPage, JobSearch
from .search import parse as parse_search
from .store import ELIGIBLE, Selection, Store

MAX_ACTION = 1_000  # jobs one action call changes; the answer's nextCursor goes on
MAX_IDS = 1_000
ACTIONS = tuple(ELIGIBLE)


def _refuse(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, [{"field": field, "message": message}])


def make_search(queue: str, *, state: str | None = None, name: str | None = None, q: str | None = None,
                created_from: int | None = None, created_to: int | None = None, order: str = "asc",
                cursor: tuple[int, ...] | None = None, limit: int = 100, error: str | None = None,
                by: str = "auto", error_group: str | None = None) -> JobSearch:
    """A JobSearch from the API's parameters; ValidationFailed for a bad ``q`` (an
    empty one too). A ``q`` of only white space (a search box left blank) searches
    for nothing: every job."""
    blank = q is not None and q != "" and not q.strip()
    try:
        condition = None if q is None or blank else parse_search(q)
    except ValueError as exc:
        raise _refuse("q", f"bad search: {exc}") from None
    search = JobSearch(queue, state, name, condition, created_from, created_to, order, cursor, limit, error, by,
                       error_group)
    return search if cursor is None else fitted(search, cursor)


def fitted(search: JobSearch, cursor: tuple[int, ...]) -> JobSearch:
    """``search`` going on after ``cursor``. A cursor from another kind of page still
    means something: a bare job id pages a finished state in id order; a (finish
    time, id) cursor on pages in id order goes on after that id."""
    if search.by_finish and len(cursor) == 1:
        return replace(search, by="id", cursor=cursor)
    if not search.by_finish and len(cursor) == 2:
        return replace(search, cursor=cursor[-1:])
    return replace(search, cursor=cursor)


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    action: str
    changed: int  # jobs this call changed (0 for a dry run)
    matched: int | None  # a dry run: how many jobs the action would change, over every call
    next_cursor: tuple[int, ...] | None
    ids: list[int]


class BrowseDesk:
    def __init__(self, store: Store, dispatcher: Dispatcher, history: HistoryKeeper) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.history = history

    async def search(self, search: JobSearch) -> JobPage:
        return await self.store.search_jobs(search)

    async def act(
        self, action: str, search: JobSearch, ids: list[int] | None = None, *, dry_run: bool = False,
        after: tuple[int, ...] | None = None,
    ) -> ActionOutcome:
        """``action`` on the jobs of ``ids`` (at most MAX_IDS), or on every job the
        search finds, MAX_ACTION a call in the order of its pages, first to last
        (``after``: the last call's nextCursor). Jobs in states the action does not
        apply to are left alone."""
        if action not in ELIGIBLE:
            raise _refuse("action", f"action must be one of {', '.join(ACTIONS)}")
        if ids is not None and len(ids) > MAX_IDS:
            raise _refuse("ids", f"at most {MAX_IDS} ids a call")
        if after is not None:
            search = fitted(search, after)
            after = search.cursor
        selection = Selection(replace(search, cursor=None), None if ids is None else tuple(ids), after)
        if dry_run:
            matched = await self.store.count_action(action, selection)
            return ActionOutcome(action, 0, matched, None, [])
        acted = await self.dispatcher.outcomes.act_on_jobs(action, selection, MAX_ACTION)
        changed = [c.job.id for c in acted.changes]
        return ActionOutcome(action, len(changed), None, acted.next_cursor, changed)

    async def failure_groups(self, queue: str, limit: int = 50) -> list[dict[str, Any]]:
        return await self.store.failure_groups(queue, limit)

    async def chart(self, queue: str, window: str) -> list[dict[str, Any]]:
        return await self.history.chart(queue, window)
