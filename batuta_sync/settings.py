"""One settings resolution, used by every command and the Python API.

Precedence, highest first (documented in ``docs/configuration.md``)::

    CLI flag  >  environment  >  hf.yaml (defaults/policies)  >  built-in default

Environment variables: ``HF_ENDPOINT``, ``HF_TOKEN``, ``HF_HOME``, ``HF_HUB_CACHE``,
``HF_HUB_OFFLINE`` (also ``BATUTA_METADATA_TTL`` seconds).  The token is also read
from ``$HF_HOME/token`` (where ``batuta hf login`` stores it, like huggingface_hub)
and the legacy ``~/.huggingface/token``.  It is wrapped in :class:`Secret` so it
never prints.

Pure: :func:`resolve_settings` takes the environment as a mapping and only reads
token files, so it is trivially testable.

Token sources, first match wins: ``--token`` > ``--token-file`` > ``HF_TOKEN`` >
``$HF_HOME/token`` > ``~/.huggingface/token``; an empty ``--token ""`` or a set but empty
``HF_TOKEN=`` means anonymous.  ``--timeout`` / ``BATUTA_TIMEOUT`` (seconds) is
``Settings.timeout``: the longest connect/read timeout and retry wait (``hub/limits.py``).
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batuta_sync._redact import Secret

DEFAULT_ENDPOINT = "https://huggingface.co"
DEFAULT_METADATA_TTL = 600.0
_TRUE = {"1", "true", "yes", "on", "y", "t"}


class HfAuth(enum.Enum):
    """Where the token came from (spec: ``HfAuth``)."""

    TOKEN = "token"  # explicit: --token flag or Python argument
    TOKEN_FILE = "token-file"  # --token-file F
    ENV_TOKEN = "env"  # HF_TOKEN
    FILE_TOKEN = "file"  # $HF_HOME/token or ~/.huggingface/token
    NONE = "none"  # anonymous: public repos only


def env_flag(value: str | None) -> bool:
    return (value or "").strip().lower() in _TRUE


@dataclass(frozen=True)
class Settings:
    endpoint: str = DEFAULT_ENDPOINT
    token: Secret | None = field(default=None, repr=False)
    auth: HfAuth = HfAuth.NONE
    hf_home: Path = field(default_factory=lambda: Path("~/.cache/huggingface").expanduser())
    hub_cache: Path = field(default_factory=lambda: Path("~/.cache/huggingface/hub").expanduser())
    #: --timeout / BATUTA_TIMEOUT: no connect/read timeout and no retry wait longer (hub/limits.py)
    timeout: float | None = None
    offline: bool = False
    metadata_ttl: float = DEFAULT_METADATA_TTL

    @property
    def token_path(self) -> Path:
        """Where ``batuta hf login`` stores the token (same place as huggingface_hub)."""
        return self.hf_home / "token"

    @property
    def batuta_dir(self) -> Path:
        """batuta's own state: metadata cache, hash cache, cache statistics."""
        return self.hf_home / "batuta"

    def token_value(self) -> str | None:
        return self.token.get() if self.token else None


def _read_token_file(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text or None


def parse_timeout(raw: str | float, source: str) -> float:
    """A ``--timeout`` / ``BATUTA_TIMEOUT`` value: seconds, > 0 and finite (ConfigError otherwise)."""
    import math

    from batuta_sync.errors import ConfigError

    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (0 < value < math.inf):
        raise ConfigError(
            f"{source}={raw!r} is not a valid timeout: expected a number of seconds greater than 0 (e.g. 5).",
            hint=f"Fix or unset {source}.",
        )
    return value


def read_token_file(path: Path) -> str | None:
    """The token stored in ``path`` (``--token-file``): ConfigError when unreadable, None when empty."""
    from batuta_sync.errors import ConfigError

    try:
        text = path.expanduser().read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"Cannot read the token file {path}: {getattr(exc, 'strerror', None) or exc}.",
            hint="Check the path given to --token-file (the file holds only the token).",
        ) from None
    return text or None


def resolve_settings(
    *,
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    manifest: Mapping[str, Any] | None = None,
    home: Path | None = None,
) -> Settings:
    """Resolve settings from CLI ``flags`` > ``env`` > ``manifest`` defaults > built-ins.

    ``flags`` keys: endpoint, token, offline, hf_home, hub_cache, metadata_ttl (None = unset).
    ``manifest`` is the hf.yaml ``defaults``/``policies`` merged mapping (keys: endpoint,
    offline, cache_dir, metadata_ttl).
    """
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    env = os.environ if env is None else env
    manifest = manifest or {}
    home = home or Path.home()

    def pick(flag: str, env_key: str | None, man_key: str | None, default: Any) -> Any:
        if flag in flags:
            return flags[flag]
        if env_key and env.get(env_key):
            return env[env_key]
        if man_key and manifest.get(man_key) is not None:
            return manifest[man_key]
        return default

    hf_home = Path(pick("hf_home", "HF_HOME", None, str(home / ".cache" / "huggingface"))).expanduser()
    hub_cache = Path(pick("hub_cache", "HF_HUB_CACHE", "cache_dir", str(hf_home / "hub"))).expanduser()
    endpoint = str(pick("endpoint", "HF_ENDPOINT", "endpoint", DEFAULT_ENDPOINT)).rstrip("/")
    offline_raw = pick("offline", "HF_HUB_OFFLINE", "offline", False)
    offline = offline_raw if isinstance(offline_raw, bool) else env_flag(str(offline_raw))
    ttl = float(pick("metadata_ttl", "BATUTA_METADATA_TTL", "metadata_ttl", DEFAULT_METADATA_TTL))

    # more flags: token_file, timeout; token="" = anonymous
    from batuta_sync._redact import register_url_secrets

    register_url_secrets(endpoint)  # a password in the endpoint URL is masked in every message
    raw_timeout = flags.get("timeout", env.get("BATUTA_TIMEOUT") or None)
    timeout = None
    if raw_timeout is not None:
        timeout = parse_timeout(raw_timeout, "--timeout" if "timeout" in flags else "BATUTA_TIMEOUT")

    token: str | None
    if "token" in flags:  # --token "" = anonymous, whatever HF_TOKEN or the stored login say
        token = str(flags["token"]).strip() or None
        auth = HfAuth.TOKEN if token else HfAuth.NONE
    elif "token_file" in flags:
        token = read_token_file(Path(str(flags["token_file"])))
        auth = HfAuth.TOKEN_FILE if token else HfAuth.NONE
    elif "HF_TOKEN" in env:  # HF_TOKEN= (set, empty) = anonymous
        token = env["HF_TOKEN"].strip() or None
        auth = HfAuth.ENV_TOKEN if token else HfAuth.NONE
    else:
        token = _read_token_file(hf_home / "token") or _read_token_file(home / ".huggingface" / "token")
        auth = HfAuth.FILE_TOKEN if token else HfAuth.NONE

    return Settings(
        endpoint=endpoint,
        token=Secret(token) if token else None,
        auth=auth,
        timeout=timeout,
        hf_home=hf_home,
        hub_cache=hub_cache,
        offline=offline,
        metadata_ttl=ttl,
    )
