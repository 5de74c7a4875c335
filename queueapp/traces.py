"""What a job keeps of how it ran, and its bounds: a failed attempt's stack trace,
and the job's log lines.

A stack trace is kept redacted (secrets in URLs and settings hidden, as in every
answer and log) and bounded.

A trace longer than the bound keeps its start (the error and the outermost frames)
and its end (for Python, the innermost frames; JavaScript lists those first, so the
start keeps them), with how much was left out between.
"""

from __future__ import annotations

import traceback

from .redact import redact

# A job's log: lines its handler or worker appends (job.log()); the newest are kept.
MAX_LOG_LINE_CHARS = 2_000
MAX_LOG_LINES_A_CALL = 100
MAX_JOB_LOG_LINES = 1_000

MAX_STACK_CHARS = 16_000  # kept with an attempt
MAX_STACK_CHARS_IN = 100_000  # accepted from a worker, then cut to the above
_HEAD = 6_000


def kept_stack(text: str | None) -> str | None:
    """``text`` as the appliance keeps it: redacted, at most MAX_STACK_CHARS."""
    if not text or not text.strip():
        return None
    text = redact(text)
    if len(text) <= MAX_STACK_CHARS:
        return text
    gap = f"\n... {len(text) - MAX_STACK_CHARS} characters left out ...\n"
    tail = MAX_STACK_CHARS - _HEAD - len(gap)
    return text[:_HEAD] + gap + text[-tail:]


def stack_of(exc: BaseException) -> str | None:
    """A Python exception's traceback (with its causes), as kept."""
    return kept_stack("".join(traceback.format_exception(exc)))


def log_lines(texts: tuple[str, ...] | list[str]) -> list[str]:
    """Texts as a job's log lines: split at newlines, each cut to MAX_LOG_LINE_CHARS."""
    lines = []
    for text in texts:
        for line in str(text).splitlines() or [""]:
            lines.append(line if len(line) <= MAX_LOG_LINE_CHARS else line[:MAX_LOG_LINE_CHARS - 1] + "\u2026")
    return lines
