"""Fixtures of the hostile-Hub tests: the server, and a world with a canary outside every place
batuta may touch (the cache/home, the workspace, the chosen output)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from batuta_sync.cli import main
from batuta_sync.errors import EXIT_CODES
from tests.hostile.hub import HostileHub

CANARY = b"canary: this file is outside the cache, the workspace and the output\n" * 3
DOCUMENTED = {code for code, _ in EXIT_CODES.values()}


@dataclass
class World:
    """tmp_path laid out as: home/ (HF_HOME, the cache, batuta's state), ws/ (workspace, cwd),
    out/ (the chosen --output), outside/canary.txt and outside/sentinel/ (must stay as they are)."""

    root: Path
    home: Path
    ws: Path
    out: Path
    outside: Path
    canary: Path
    sentinel: Path
    before: dict[str, tuple[int, int, str]] = field(default_factory=dict)
    planted: set[Path] = field(default_factory=set)  # links the test itself made (the attack)

    @property
    def cache(self) -> Path:
        return Path(os.environ["HF_HUB_CACHE"])

    def plant(self, link: Path, target: Path) -> None:
        """Make ``link`` -> ``target`` (the attacker's move); exempt from the links-out check."""
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target, target_is_directory=target.is_dir())
        self.planted.add(link)

    def allowed(self, p: Path) -> bool:
        return any(p == b or b in p.parents for b in (self.home, self.ws, self.out))

    def outside_state(self) -> dict[str, tuple[int, int, str]]:
        """Every entry under tmp_path that is not in an allowed place: (size, mtime_ns, sha256)."""
        seen: dict[str, tuple[int, int, str]] = {}
        for dirpath, dirs, files in os.walk(self.root):
            d = Path(dirpath)
            dirs[:] = [x for x in dirs if not self.allowed(d / x)]
            for name in [*dirs, *files]:
                p = d / name
                if self.allowed(p):
                    continue
                st = os.lstat(p)
                digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() and not p.is_symlink() else ""
                seen[str(p.relative_to(self.root))] = (st.st_size if digest else 0, st.st_mtime_ns, digest)
        return seen

    def assert_untouched(self) -> None:
        """Nothing outside was written, created, deleted or linked; no allowed place links out or
        holds the canary's bytes (the proof that nothing outside was read into it)."""
        assert self.canary.read_bytes() == CANARY
        assert list(self.sentinel.iterdir()) == []
        assert self.outside_state() == self.before
        for base in (self.home, self.ws, self.out):
            for dirpath, dirs, files in os.walk(base):
                for name in [*dirs, *files]:
                    p = Path(dirpath) / name
                    if p in self.planted:
                        continue
                    if p.is_symlink():  # where the link itself points (a planted folder link aside)
                        target = Path(os.path.normpath(os.path.join(p.parent, os.readlink(p))))
                        assert self.allowed(target), f"{p} links outside: {target}"
                    elif p.is_file() and p.stat().st_size >= len(CANARY):
                        assert CANARY not in p.read_bytes(), f"{p} holds the canary's content"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    outside = tmp_path / "outside"
    sentinel = outside / "sentinel"
    sentinel.mkdir(parents=True)
    canary = outside / "canary.txt"
    canary.write_bytes(CANARY)
    os.utime(canary, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    w = World(tmp_path, tmp_path / "home", tmp_path / "ws", tmp_path / "out", outside, canary, sentinel)
    w.ws.mkdir()
    w.before = w.outside_state()
    cwd = Path.cwd()
    os.chdir(w.ws)
    try:
        yield w
    finally:
        os.chdir(cwd)


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[HostileHub]:
    with HostileHub() as h:
        monkeypatch.setenv("HF_ENDPOINT", h.url)
        monkeypatch.setenv("BATUTA_RETRY_BACKOFF", "0")
        yield h


def batuta(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the CLI in-process; a documented exit code and never a traceback."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code in DOCUMENTED, (code, err)
    assert "Traceback" not in err and "Internal error" not in err, err
    return code, out, err
