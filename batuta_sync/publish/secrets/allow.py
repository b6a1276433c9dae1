"""Suppression of findings by fingerprint (SEC-8): ``.batuta-secrets-allow`` and ``--allow-secret``.

Works for every finding the scanner makes, ``scan-incomplete`` included (its fingerprint is
``sha256(rule|path|reason)``): there are no path wildcards, and suppressing one finding leaves the others
in the same file reported.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from batuta_sync.publish.secrets.rules import Finding

ALLOW_FILE = ".batuta-secrets-allow"


@dataclass(frozen=True)
class Allowlist:
    """Suppression by fingerprint only (no path wildcards): a prefix of ≥ 16 hex digits is enough."""

    fingerprints: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def load(cls, root: Path, extra: Sequence[str] = ()) -> Allowlist:
        fps: set[str] = {e.strip().lower() for e in extra if e.strip()}
        f = root / ALLOW_FILE
        if f.is_file():
            for line in f.read_text(encoding="utf-8", errors="replace").splitlines():
                entry = line.split("#", 1)[0].strip().lower()
                if entry:
                    fps.add(entry)
        for fp in fps:
            if not re.fullmatch(r"[0-9a-f]{16,64}", fp):
                from batuta_sync.errors import UsageError

                raise UsageError(
                    f"{fp[:20]!r} is not a finding fingerprint.",
                    hint=f"Copy the fingerprint (16+ hex digits) a finding prints into {ALLOW_FILE} or --allow-secret.",
                )
        return cls(frozenset(fps))

    def allows(self, f: Finding) -> bool:
        return any(f.fingerprint.startswith(fp) for fp in self.fingerprints)


def filter_allowed(findings: Iterable[Finding], allow: Allowlist) -> list[Finding]:
    return [f for f in findings if not allow.allows(f)]
