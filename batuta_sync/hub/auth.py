"""Who gets the token, and token storage like huggingface_hub (``$HF_HOME/token``, mode 0600).

:func:`request_headers` is the one header builder (the one :data:`USER_AGENT`); inside it,
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

import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from batuta_sync._fs import atomic_write
from batuta_sync._redact import register_secret
from batuta_sync._version import __version__
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


#: the one User-Agent of every request batuta sends (metadata, downloads, and pushes through HfApi)
USER_AGENT = f"batuta/{__version__}; python/{sys.version_info[0]}.{sys.version_info[1]}"


def identity_headers() -> dict[str, str]:
    """The header naming batuta (also given to huggingface_hub's ``HfApi`` for pushes)."""
    return {"user-agent": USER_AGENT}


def request_headers(
    settings: Settings, url: str, extra: Mapping[str, str] | None = None, *, accept_encoding: str = "gzip, deflate"
) -> dict[str, str]:
    """The one header builder: User-Agent, ``Accept-Encoding``, the token only for the endpoint's
    origin (:func:`auth_headers`), then ``extra``.  Called for every request and redirect hop.

    ``accept_encoding``: what the caller decodes: ``gzip, deflate`` for metadata (inflated with a
    bounded output), ``identity`` for downloads (the bytes are hashed as stored).
    """
    h = {**identity_headers(), "accept-encoding": accept_encoding}
    h.update(auth_headers(settings, url))
    if extra:
        h.update({k.lower(): v for k, v in extra.items()})
    return h


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
    atomic_write(path, token, fsync=True, mode=0o600)
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
