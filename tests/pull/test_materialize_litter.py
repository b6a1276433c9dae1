"""A writer killed while materializing leaves ``.NAME.<pid>.<rand>.tmp`` beside the output file; the
next materialize of that name removes it (its pid is gone) and never touches a live writer's
(``tests/reliability/test_crash.py`` found the litter after a random SIGKILL)."""

from __future__ import annotations

import os
from pathlib import Path

from batuta_sync.hub.cache import materialize


def test_a_dead_writers_temp_is_swept_and_a_live_ones_kept(tmp_path: Path) -> None:
    repo = tmp_path / "models--o--r"
    snap = repo / "snapshots" / ("a" * 40)
    blob = repo / "blobs" / ("b" * 40)
    blob.parent.mkdir(parents=True)
    snap.mkdir(parents=True)
    blob.write_text("{}")
    (snap / "config.json").symlink_to(blob)
    out = tmp_path / "out"
    out.mkdir()
    dead = out / f".config.json.{2**22 + 12345}.0123456789ab.tmp"  # above pid_max: never a live pid
    dead.write_text("half")
    live = out / f".config.json.{os.getppid()}.0123456789ab.tmp"
    live.write_text("someone else's")
    other = out / f".notes.txt.{2**22 + 12345}.0123456789ab.tmp"  # another name: not this call's business
    other.write_text("x")
    for copy in (True, False):
        (out / "config.json").unlink(missing_ok=True)
        materialize(snap, ["config.json"], out, copy=copy)
        assert (out / "config.json").read_text() == "{}"
    assert not dead.exists() and live.exists() and other.exists()
