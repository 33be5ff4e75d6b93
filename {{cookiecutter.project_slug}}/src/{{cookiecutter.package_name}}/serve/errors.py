"""The one error type the server answers with: a status, a short name and what was wrong."""

from __future__ import annotations

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
