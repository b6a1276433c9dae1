"""A full disk during a download (issue 13, point 8): exit 16 (disk-full), not a network error;
the transfer stops at the first failed write (no retry, nothing more requested), the bytes
written so far are parked as ``<etag>.incomplete`` and the next run resumes from them; no
other partial, temporary file or snapshot entry is left.

The "disk" is a file-size limit (``RLIMIT_FSIZE``, with ``SIGXFSZ`` ignored so writes fail with
``EFBIG``) set in a child process that runs the real CLI against our hostile Hub (honest here).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.hostile.conftest import World, batuta
from tests.hostile.hub import HostileHub, git_sha1

LIMIT = 1 << 20
CHILD = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), resource.RLIM_INFINITY))
from batuta_sync.cli import main
sys.exit(main(sys.argv[2:]))
"""


def _payload(size: int, seed: int) -> bytes:
    block = bytes((i * 7 + seed) % 251 for i in range(4096))
    return (block * (size // len(block) + 1))[:size]


def _run_limited(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(LIMIT), *argv],
        capture_output=True, text=True, timeout=120, env=dict(os.environ), check=False,
    )


@pytest.mark.parametrize(
    "sizes",
    [pytest.param((3 << 20,), id="one file"), pytest.param((9 << 20, 3 << 20), id="two files, one pipelined")],
)
def test_disk_full_exits_16_keeps_the_partial_and_resumes(
    sizes: tuple[int, ...], hub: HostileHub, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    bodies = {f"data{i}.txt": _payload(n, i) for i, n in enumerate(sizes)}
    hub.repo("org/m", bodies, sha="c" * 40)
    proc = _run_limited("hf", "pull", "model", "org/m", "--jobs", "2")
    assert proc.returncode == 16, proc.stderr
    assert "[disk-full]" in proc.stderr and "Traceback" not in proc.stderr and "network" not in proc.stderr
    blobs = world.cache / "models--org--m" / "blobs"
    left = sorted(p.name for p in blobs.iterdir())
    etags = {name: git_sha1(data) for name, data in bodies.items()}
    # only parked partials, each a prefix of its file no longer than the limit let through; the
    # first worker to hit the limit stops the others at their next chunk (or before they start)
    by_name = {f"{e}.incomplete": bodies[name] for name, e in etags.items()}
    assert left and set(left) <= set(by_name), left
    parked = {name: (blobs / name).read_bytes() for name in left}
    assert all(0 < len(part) <= LIMIT and by_name[n].startswith(part) for n, part in parked.items())
    assert LIMIT in {len(part) for part in parked.values()}
    # at most one request per file: the transfer stopped, nothing was retried
    assert len(hub.ranges) <= len(bodies), hub.ranges
    snaps = world.cache / "models--org--m" / "snapshots"
    assert not snaps.exists() or not any(snaps.rglob("data*"))
    assert not list(world.cache.rglob("*.tmp"))
    world.assert_untouched()

    # with room again: resumed from the parked bytes, verified, complete
    before = len(hub.ranges)
    code, _out, err = batuta(capsys, "hf", "pull", "model", "org/m", "--output", str(world.out), "--copy")
    assert code == 0, err
    assert len(hub.ranges) == before + len(bodies)
    first = len(hub.ranges) - len(bodies)
    assert sorted(r for r in hub.ranges[first:] if r) == sorted(f"bytes={len(p)}-" for p in parked.values())
    for name, data in bodies.items():
        assert (world.out / name).read_bytes() == data
    assert sorted(p.name for p in blobs.iterdir()) == sorted(etags.values())
    world.assert_untouched()


def test_a_write_error_that_is_not_disk_full_is_not_reported_as_one(
    hub: HostileHub, world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """EIO from the disk stays an OS error (exit 1): only ENOSPC / EDQUOT / EFBIG are disk-full."""
    import errno

    from batuta_sync.hub import download

    def broken(self: object, data: memoryview, pos: int) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(download._Writer, "write", broken)
    hub.repo("org/m", {"data.txt": b"x" * 5000}, sha="c" * 40)
    code, _out, err = batuta(capsys, "hf", "pull", "model", "org/m")
    assert code != 16 and "[disk-full]" not in err
    world.assert_untouched()
