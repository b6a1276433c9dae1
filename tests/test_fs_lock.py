"""_fs.file_lock (the one lock primitive), atomic_writer / temp_file_beside, disk_free."""

from __future__ import annotations

import os
from pathlib import Path

import filelock
import pytest

from batuta_sync._fs import atomic_write, atomic_writer, disk_free, file_lock, temp_file_beside


def test_exclusive_lock_excludes_another_holder(tmp_path: Path) -> None:
    p = tmp_path / "sub" / "x.lock"
    with file_lock(p) as held:
        assert held.file is not None
        with pytest.raises(TimeoutError):
            file_lock(p, timeout=0).acquire()
        with pytest.raises(TimeoutError):
            file_lock(p, shared=True, timeout=0.1).acquire()
    with file_lock(p, timeout=0):
        pass
    assert oct(p.stat().st_mode & 0o777) in (oct(0o664 & ~_umask()), oct(0o664))


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def test_shared_locks_coexist_and_exclude_a_writer(tmp_path: Path) -> None:
    p = tmp_path / "s.lock"
    with file_lock(p, shared=True), file_lock(p, shared=True, timeout=0), pytest.raises(TimeoutError):
        file_lock(p, timeout=0).acquire()
    with file_lock(p, timeout=0):
        pass


def test_a_wait_can_be_cancelled(tmp_path: Path) -> None:
    p = tmp_path / "c.lock"
    with file_lock(p):
        calls: list[int] = []

        def cancel() -> bool:
            calls.append(1)
            return len(calls) > 2

        with pytest.raises(KeyboardInterrupt):
            file_lock(p, cancel=cancel).acquire()
        assert len(calls) == 3


def test_the_lock_file_keeps_what_the_holder_wrote(tmp_path: Path) -> None:
    p = tmp_path / "h.lock"
    lock = file_lock(p).acquire()
    assert lock.file is not None
    lock.file.write("holder\n")
    lock.file.flush()
    assert p.read_text() == "holder\n"
    lock.release()
    lock.release()  # idempotent
    assert p.read_text() == "holder\n"


def test_soft_lock_where_the_file_system_cannot_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_locks(fd: int, *, blocking: bool = True, poll_interval: float = 0.05) -> bool:
        raise OSError(37, "No locks available")

    monkeypatch.setattr(filelock, "lock_descriptor", no_locks)
    p = tmp_path / "nfs.lock"
    with file_lock(p):
        assert (tmp_path / "nfs.lock.soft").exists()
        with pytest.raises(TimeoutError):
            file_lock(p, timeout=0).acquire()
    assert not (tmp_path / "nfs.lock.soft").exists()
    with file_lock(p, timeout=0):
        pass


def test_atomic_writer_streams_and_leaves_the_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "d" / "f.bin"
    atomic_write(target, b"old")
    with pytest.raises(RuntimeError), atomic_writer(target, fsync=True) as f:
        f.write(b"half")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"old" and os.listdir(target.parent) == ["f.bin"]
    with atomic_writer(target, fsync=True, mode=0o640) as f:
        f.write(b"new")
    assert target.read_bytes() == b"new" and target.stat().st_mode & 0o777 == 0o640
    assert os.listdir(target.parent) == ["f.bin"]


def test_temp_file_beside_is_removed_unless_moved(tmp_path: Path) -> None:
    tmp_path = tmp_path / "t"
    dest = tmp_path / "blob"
    with temp_file_beside(dest, suffix=".remote") as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith(".remote")
        tmp.write_bytes(b"x")
    assert not tmp.exists()
    with temp_file_beside(dest) as tmp:
        tmp.write_bytes(b"y")
        os.replace(tmp, dest)
    assert dest.read_bytes() == b"y" and os.listdir(tmp_path) == ["blob"]


def test_token_is_written_0600_and_durably(tmp_path: Path) -> None:
    from batuta_sync.hub.auth import store_token
    from batuta_sync.settings import resolve_settings

    settings = resolve_settings(env={"HF_HOME": str(tmp_path / "hf")}, home=tmp_path)
    path = store_token(settings, "hf_" + "a" * 30)
    assert path.read_text() == "hf_" + "a" * 30 and path.stat().st_mode & 0o777 == 0o600
    assert os.listdir(path.parent) == [path.name]


def test_disk_free_of_a_path_that_does_not_exist_yet(tmp_path: Path) -> None:
    assert disk_free(tmp_path / "not" / "yet") == disk_free(tmp_path) > 0


def test_the_no_flock_reliability_scenario_restores_flock(tmp_path: Path) -> None:
    """tests/reliability's same_blob(flock=False) replaced fcntl.flock for the rest of the
    session, so every later lock test ran without locks."""
    import fcntl

    from tests.reliability import scenarios

    real = fcntl.flock
    scenarios.same_blob(tmp_path, threads=1, procs=0, flock=False, blob_mib=1, latency_ms=0.0)
    assert fcntl.flock is real
    with file_lock(tmp_path / "x.lock"), pytest.raises(TimeoutError):
        file_lock(tmp_path / "x.lock", timeout=0).acquire()
