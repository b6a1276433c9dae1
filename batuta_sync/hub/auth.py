"""Who gets the token, and token storage like huggingface_hub (``$HF_HOME/token``, mode 0600).

:func:`auth_headers` is the one place that decides whether a request carries ``Authorization``:
only when its URL's origin (scheme, host, port) is the configured endpoint's.  The API transport
(``hub._http``) and the download engine (``hub.download``) call it for every request and every
redirect hop, so a redirect to a CDN or any other host never gets the token.

Where a token comes from is :class:`batuta_sync.settings.HfAuth` (resolved in
``batuta_sync.settings``: ``--token`` > ``--token-file`` > ``HF_TOKEN`` > ``$HF_HOME/token`` >
the legacy ``~/.huggingface/token``; an empty ``--token ""`` / ``HF_TOKEN=`` is anonymous).  This module only writes and removes the stored file; it
never prints or logs a token.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from batuta_sync._redact import register_secret
from batuta_sync.errors import UsageError
from batuta_sync.settings import HfAuth, Settings


def origin(url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` of ``url``, lower-cased, default ports filled in."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


def auth_headers(settings: Settings, url: str) -> dict[str, str]:
    """``{"authorization": "Bearer …"}`` for ``url`` when it is on the endpoint's origin, else ``{}``."""
    token = settings.token_value()
    if token and origin(url) == origin(settings.endpoint):
        return {"authorization": f"Bearer {token}"}
    return {}


def check_token_shape(token: str) -> str:
    """Strip and sanity-check a token (no whitespace inside, not empty)."""
    token = token.strip()
    if not token:
        raise UsageError(
            "No token given.", hint="Pass --token, or pipe the token on stdin: `batuta hf login < token.txt`."
        )
    if any(c.isspace() for c in token) or len(token) > 4096:
        raise UsageError(
            "That does not look like a Hub token (it contains whitespace or is too long).",
            hint="Copy the token from https://huggingface.co/settings/tokens (it starts with 'hf_').",
        )
    register_secret(token)
    return token


def store_token(settings: Settings, token: str) -> Path:
    """Write ``token`` to ``settings.token_path`` with mode 0600 (temp file + ``os.replace``)."""
    token = check_token_shape(token)
    path = settings.token_path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".token.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(token)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def delete_token(settings: Settings) -> bool:
    """Remove the stored token; True if there was one."""
    try:
        settings.token_path.unlink()
    except FileNotFoundError:
        return False
    return True


def describe_source(settings: Settings) -> str:
    """Human description of where the active token comes from (never the token)."""
    return {
        HfAuth.TOKEN: "the --token option",
        HfAuth.TOKEN_FILE: "the file given with --token-file",
        HfAuth.ENV_TOKEN: "the HF_TOKEN environment variable",
        HfAuth.FILE_TOKEN: "a stored token file (`batuta hf login`)",
        HfAuth.NONE: "no token (anonymous: public repos only)",
    }[settings.auth]
