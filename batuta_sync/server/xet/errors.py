"""The one error of the Xet layer: a malformed, oversized or lying object (answered 4xx)."""

from __future__ import annotations


class XetError(Exception):
    """A Xet object or request that cannot be accepted; ``status`` is the HTTP answer (4xx)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
