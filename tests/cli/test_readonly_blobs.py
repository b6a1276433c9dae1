"""Published blobs are read-only (0444, issue #20): a write through an output symlink cannot
corrupt the cache, and everything that later replaces or removes a blob still works.

The suite runs as root, and root ignores a file's write bits (CAP_DAC_OVERRIDE): a plain
``open(..., "r+b")`` by the test itself would succeed and prove nothing.  So these tests check the
mode bits of every blob each publishing path writes, and prove the refusal itself by attempting
the write as an unprivileged user (uid 65534 through ``/bin/sh``, whose open(2) of the link for
writing is what an editor or ``open(out/x, "w")`` does).  When the process cannot switch users
(no CAP_SETUID) that one test is skipped, saying so; run as a non-root user, it writes directly.
Removal (prune, rm, verify --repair) needs the folder's write permission, not the file's, which is
POSIX for the owner of the cache; as root that is not separately demonstrated here.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batuta_sync.hub.cache import BLOB_MODE, HfCache
from tests._builders import run_cli as run

CONFIG = b'{"model_type": "x"}'
NOTES = b"notes " * 500
NOBODY = 65534


def _blobs(repo: str = "org/m") -> list[Path]:
    d = Path(os.environ["HF_HUB_CACHE"]) / ("models--" + repo.replace("/", "--")) / "blobs"
    return sorted(d.iterdir())


def _modes(paths: list[Path]) -> set[int]:
    return {stat.S_IMODE(os.lstat(p).st_mode) for p in paths}


@pytest.fixture
def shared_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """HF_HOME and the outputs in a folder other users may traverse (pytest's tmp is 0700 root)."""
    d = Path(tempfile.mkdtemp(prefix="batuta-ro-"))
    os.chmod(d, 0o755)
    hf_home = d / "hf"
    hf_home.mkdir()
    os.chmod(hf_home, 0o755)
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_HUB_CACHE", str(hf_home / "hub"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def pulled(hub_env: Any, shared_dir: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    hub_env.store.commit("org/m", {"config.json": CONFIG, "notes.txt": NOTES})
    out = shared_dir / "out"
    code, _, err = run(capsys, "hf", "pull", "model", "org/m", "--output", str(out))
    assert code == 0, err
    return out


def test_pulled_blobs_are_0444_and_outputs_link_to_them(pulled: Path) -> None:
    blobs = _blobs()
    assert len(blobs) == 2 and _modes(blobs) == {BLOB_MODE}
    link = pulled / "config.json"
    assert link.is_symlink() and Path(os.path.realpath(link)) in blobs
    assert link.read_bytes() == CONFIG  # reading is unaffected
    from huggingface_hub import hf_hub_download

    got = hf_hub_download("org/m", "notes.txt", local_files_only=True, cache_dir=os.environ["HF_HUB_CACHE"])
    assert Path(got).read_bytes() == NOTES


def _write_as(uid: int, target: Path) -> subprocess.CompletedProcess[str]:
    """As ``uid``: read ``target`` (exit 3 if even that fails: a permission problem of the folders,
    which would make the test meaningless), then open it for writing (exit 13 when refused)."""
    script = 'cat "$1" >/dev/null || exit 3; (printf corrupt >"$1") 2>/dev/null || exit 13; exit 0'
    return subprocess.run(["/bin/sh", "-c", script, "sh", str(target)], user=uid, group=uid,
                          capture_output=True, text=True, timeout=60, check=False)


def test_writing_through_an_output_symlink_is_refused(pulled: Path) -> None:
    link = pulled / "config.json"
    if os.geteuid() != 0:
        with pytest.raises(PermissionError):
            link.open("r+b")
    else:
        for d in (link.parent, *Path(os.path.realpath(link)).parents):
            if str(d).startswith(str(pulled.parent)):
                os.chmod(d, 0o755)  # traversable by the other user (blobs stay as they are)
        try:
            res = _write_as(NOBODY, link)
        except (PermissionError, OSError) as exc:  # no CAP_SETUID in this sandbox
            pytest.skip(f"cannot run a process as uid {NOBODY} here ({exc}); the mode bits are checked above")
        assert res.returncode == 13, (res.returncode, res.stderr)
    assert link.read_bytes() == CONFIG and _modes(_blobs()) == {BLOB_MODE}


def test_the_write_refusal_is_the_mode_not_the_folders(pulled: Path) -> None:
    """Control for the test above: the same unprivileged write succeeds on a 0644 file in the same
    folder, so exit 13 there comes from the blob's mode."""
    if os.geteuid() != 0:
        pytest.skip("runs the control as another user; only meaningful as root")
    blob = Path(os.path.realpath(pulled / "config.json"))
    for d in blob.parents:
        if str(d).startswith(str(pulled.parent)):
            os.chmod(d, 0o755)
    probe = blob.parent / "probe.tmp"
    probe.write_bytes(b"x")
    os.chmod(probe, 0o666)
    try:
        res = _write_as(NOBODY, probe)
    except (PermissionError, OSError) as exc:
        pytest.skip(f"cannot run a process as uid {NOBODY} here ({exc})")
    assert res.returncode == 0, (res.returncode, res.stderr)
    assert probe.read_bytes() == b"corrupt"
    probe.unlink()


def test_repair_prune_and_rm_work_on_read_only_blobs(pulled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blob = Path(os.path.realpath(pulled / "config.json"))
    os.chmod(blob, 0o644)  # someone forced a write anyway (chmod first, as a non-root user must)
    blob.write_bytes(CONFIG.upper())
    code, _, err = run(capsys, "cache", "verify", "--repair")
    assert code == 0, err
    assert blob.read_bytes() == CONFIG and _modes(_blobs()) == {BLOB_MODE}  # re-published read-only
    code, _, err = run(capsys, "cache", "rm", "org/m")
    assert code == 0, err
    assert not blob.parent.exists()


def test_put_model_and_remote_fetched_blobs_are_read_only(
    hub_env: Any, shared_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = shared_dir / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"local")
    cache = HfCache(Path(os.environ["HF_HUB_CACHE"]), state_dir=Path(os.environ["HF_HOME"]) / "batuta")
    cache.put_model("me/local", "main", src)
    assert _modes(_blobs("me/local")) == {BLOB_MODE}
    # a blob served by the shared remote (not the Hub) is published the same way
    hub_env.store.commit("org/r", {"config.json": CONFIG})
    remote = f"file://{shared_dir / 'remote'}"
    assert run(capsys, "hf", "pull", "model", "org/r", "--remote", remote)[0] == 0
    assert run(capsys, "cache", "rm", "org/r")[0] == 0
    hub_env.log.clear()
    code, _, err = run(capsys, "hf", "pull", "model", "org/r", "--remote", remote)
    assert code == 0, err
    assert hub_env.log.count(path_contains="/resolve/") == 0  # the bytes came from the remote
    assert _modes(_blobs("org/r")) == {BLOB_MODE}


def test_partial_downloads_stay_writable_and_resume(hub_env: Any, shared_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Resuming appends to ``<etag>.incomplete`` (never to a blob): a parked partial is 0644 and
    the pull that completes it publishes a 0444 blob."""
    import hashlib

    data = b"w" * 200_000
    hub_env.store.commit("org/p", {"w.safetensors.txt": data})
    etag = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    blobs = Path(os.environ["HF_HUB_CACHE"]) / "models--org--p" / "blobs"
    blobs.mkdir(parents=True)
    part = blobs / f"{etag}.incomplete"
    part.write_bytes(data[:50_000])
    assert stat.S_IMODE(os.lstat(part).st_mode) & 0o200
    code, _, err = run(capsys, "hf", "pull", "model", "org/p")
    assert code == 0, err
    assert not part.exists() and _modes(_blobs("org/p")) == {BLOB_MODE}
    assert (blobs / etag).read_bytes() == data


def test_a_partial_sealed_by_a_failed_publish_is_parked_writable(shared_dir: Path) -> None:
    """``_publish`` seals the partial before linking it: if publishing then fails and the partial is
    parked for resume, it must be writable again (resume opens it O_RDWR)."""
    from batuta_sync.hub.cache import CacheLayout, seal_blob
    from batuta_sync.hub.partials import abandon_partial
    from batuta_sync.types import RepoFile, RepoRef

    ref = RepoRef("org/m")
    layout = CacheLayout.of(Path(os.environ["HF_HUB_CACHE"]), ref)
    layout.blobs_dir.mkdir(parents=True)
    f = RepoFile("w.txt", 100, "a" * 40)
    mine = layout.blobs_dir / f"{'a' * 40}.0badc0de-1-1-0badc0de.incomplete"
    mine.write_bytes(b"x" * 60)
    seal_blob(mine)
    abandon_partial(layout, f, mine, shared_dir / "state", keep=True)
    parked = layout.incomplete_path(f.etag)
    assert parked.read_bytes() == b"x" * 60
    assert stat.S_IMODE(os.lstat(parked).st_mode) == 0o644
