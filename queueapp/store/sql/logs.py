"""The statements of the ``job_logs`` table: a job's log lines, numbered from 1."""

from __future__ import annotations

from .dialect import Dialect
from .plan import Statement, count, rows, value


def last_seq(d: Dialect, job_id: int) -> Statement:
    """The number of the job's last line (0: none yet)."""
    return value("SELECT COALESCE(MAX(seq), 0) FROM job_logs WHERE job_id = ?1", job_id)


def append(d: Dialect, job_id: int, first_seq: int, lines: list[str], at: int) -> Statement:
    """``lines`` after the job's others, numbered from ``first_seq``."""
    table = d.rows("t", ("n", "line"), 4)
    return count(f"INSERT INTO job_logs (job_id, seq, at, line) SELECT ?1, ?2 + t.n, ?3, t.line FROM {table}",
                 job_id, first_seq, at, *d.row_params([(i, line) for i, line in enumerate(lines)], 2))


def keep_newest(d: Dialect, job_id: int, after_seq: int) -> Statement:
    """Drop the job's lines numbered up to ``after_seq`` (the oldest, past its bound)."""
    return count("DELETE FROM job_logs WHERE job_id = ?1 AND seq <= ?2", job_id, after_seq)


def read(d: Dialect, job_id: int, after_seq: int, limit: int) -> Statement:
    """(seq, at, line) of the job's lines after ``after_seq``, in order."""
    return rows("SELECT seq, at, line FROM job_logs WHERE job_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
                job_id, after_seq, limit)
