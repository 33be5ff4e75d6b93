"""The one error type the server answers with, and how errors and echoed values are told short."""

from __future__ import annotations

import reprlib
from typing import Any


class ApiError(Exception):
    """A client-visible error, rendered as `{"error": ..., "detail": ...}` with `status`."""

    def __init__(self, status: int, error: str, detail: Any = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.detail = detail

    def body(self) -> dict[str, Any]:
        """The JSON body of the error response."""
        return {"error": self.error, "detail": self.detail}


def one_line(error: BaseException, limit: int = 300) -> str:
    """The error's message on one line, cut to `limit` characters."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


# Values echoed in error details are cut short: a request may carry megabytes or deep nesting.
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother = 3, 60, 60
_SHORT.maxlist = _SHORT.maxdict = 6


def short(value: Any) -> str:
    """`repr(value)`, bounded in length and depth, for error details."""
    return _SHORT.repr(value)
