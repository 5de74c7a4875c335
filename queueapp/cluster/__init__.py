"""A node among several on one PostgreSQL database: the dispatcher that lets the
database choose the next job (node.py), what each node reads of the whole cluster
(view.py), and its ledger and desks."""

from .node import ClusterDispatcher

__all__ = ["ClusterDispatcher"]
