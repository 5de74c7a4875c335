"""JSON encoding: orjson when it is installed (``pip install queueapp[fast]``),
the standard library otherwise. Encoding every job answer is a visible share of
an enqueue's cost, and orjson does it several times faster."""

from __future__ import annotations

import json
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - depends on the install
    orjson = None  # type: ignore[assignment]


def _std_dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


if orjson is not None:
    _OPTIONS = orjson.OPT_NON_STR_KEYS

    def loads(text: str | bytes) -> Any:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:  # integers beyond 64 bits: json copes
            return json.loads(text)

    def dumps_bytes(value: Any) -> bytes:
        try:
            return orjson.dumps(value, option=_OPTIONS)
        except TypeError:  # integers beyond 64 bits: orjson refuses, json copes
            return _std_dumps(value).encode()

    def dumps(value: Any) -> str:
        return dumps_bytes(value).decode()

else:  # pragma: no cover
    loads = json.loads

    def dumps(value: Any) -> str:
        return _std_dumps(value)

    def dumps_bytes(value: Any) -> bytes:
        return _std_dumps(value).encode()
