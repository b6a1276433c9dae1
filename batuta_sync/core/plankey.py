"""The key that signs saved plans (``plan_mac``, HMAC-SHA256): where it lives, how it is made.

Resolution, first match wins:

1. ``BATUTA_PLAN_KEY`` in the environment (at least 32 characters).  For CI, where
   ``batuta plan -o plan.json`` and ``batuta apply plan.json`` run in different jobs or on
   different machines: store one random value as a CI secret and give it to both jobs.
2. ``$HF_HOME/batuta/plan.key`` (HF_HOME defaults to ``~/.cache/huggingface``): 32 random
   bytes (hex), created on first use with mode 0600.  Plans then verify only for the same
   user on the same machine.  A key file that others can read or write is refused.

Whoever can read the key can sign plans; whoever cannot gets a plan that ``apply`` refuses
(exit 3) however carefully its content was recomputed.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

from batuta_sync.errors import ConfigError

ENV_KEY = "BATUTA_PLAN_KEY"
KEY_FILE = "plan.key"
MIN_ENV_KEY_CHARS = 32


def key_path(hf_home: Path) -> Path:
    return hf_home / "batuta" / KEY_FILE


def plan_key(hf_home: Path, *, env: Mapping[str, str] | None = None) -> bytes:
    """The plan key (see the module docstring); creates the per-user key file when needed."""
    env = os.environ if env is None else env
    value = env.get(ENV_KEY)
    if value:
        if len(value.strip()) < MIN_ENV_KEY_CHARS:
            raise ConfigError(
                f"{ENV_KEY} is shorter than {MIN_ENV_KEY_CHARS} characters; refusing a guessable plan key.",
                hint="Generate one with `python -c 'import secrets; print(secrets.token_hex(32))'` and store it as a secret.",
            )
        return value.strip().encode("utf-8")
    path = key_path(hf_home)
    if not path.exists() and not path.is_symlink():
        _create(path)
    return _read(path)


def _read(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:  # a symlink (O_NOFOLLOW), a folder, no permission
        raise ConfigError(
            f"Cannot read the plan key {path}: {exc.strerror or exc}.",
            hint=f"Delete {path} (batuta makes a new one) or set {ENV_KEY}.",
        )
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_mode & 0o077 or st.st_size > 4096:
            raise ConfigError(
                f"The plan key {path} is not a private regular file (mode {stat.filemode(st.st_mode)}); refusing it.",
                hint=f"Delete it (plans saved with it will need re-planning) or `chmod 600 {path}`.",
            )
        text = os.read(fd, 4096).decode("ascii", "replace").strip()
    finally:
        os.close(fd)
    if len(text) < 64:
        raise ConfigError(f"The plan key {path} is too short or damaged.", hint=f"Delete {path}; batuta makes a new one.")
    return text.encode("ascii")


def _create(path: Path) -> None:
    """Write a fresh key at ``path`` (0600); if another process won the race, keep its key."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{KEY_FILE}.{secrets.token_hex(8)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, (secrets.token_hex(32) + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # atomic, and never replaces a key another process just made
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    except OSError as exc:
        raise ConfigError(
            f"Cannot create the plan key {path}: {exc.strerror or exc}.",
            hint=f"Make {path.parent} writable, or set {ENV_KEY} to a random value of at least {MIN_ENV_KEY_CHARS} characters.",
        )
