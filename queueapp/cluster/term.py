"""The leader's term, while this node leads the cluster: what fences the work done
once per cluster (a schedule's run). Leadership (background/leader.py) holds it;
the node's work source reads it when it fires a schedule."""

from __future__ import annotations


class Term:
    def __init__(self) -> None:
        self.current: int | None = None  # None: another node leads, or none does

    def lead(self, term: int | None) -> None:
        self.current = term

    def follow(self) -> int | None:
        """No longer leading; the term that ended."""
        ended, self.current = self.current, None
        return ended
