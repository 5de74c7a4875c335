"""A failed attempt's stack trace, as it is kept with the job: redacted (secrets in
URLs and settings hidden, as in every answer and log) and bounded.

A trace longer than the bound keeps its start (the error and the outermost frames)
and its end (for Python, the innermost frames; JavaScript lists those first, so the
start keeps them), with how much was left out between.
"""

from __future__ import annotations

import traceback

from .redact import redact

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
