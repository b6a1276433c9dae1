"""The one-line warnings of the pull layer (stderr, redacted): a shared remote that fails only warns."""

from __future__ import annotations


def warn(text: str) -> None:
    import sys

    from batuta_sync._redact import redact

    print(redact(f"Warning: {text}"), file=sys.stderr)
