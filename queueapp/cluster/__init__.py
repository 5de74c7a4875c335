"""A node among several on one PostgreSQL database: the work source that lets the
database choose the next job (claims.py), what each node reads of the whole cluster
(view.py), the node's membership (node.py) and the leader's term (term.py)."""

from .claims import DatabaseSource
from .node import ClusterNode
from .term import Term
from .view import ClusterView

__all__ = ["ClusterNode", "ClusterView", "DatabaseSource", "Term"]
