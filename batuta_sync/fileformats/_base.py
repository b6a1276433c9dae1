"""The one error type of :mod:`batuta_sync.fileformats`."""

from __future__ import annotations


class FormatError(ValueError):
    """Bytes that are not the format they claim.  ``reason`` is a short stable slug (tests and
    callers branch on it), ``detail`` one sentence fragment for humans."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")
