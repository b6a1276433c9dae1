"""The one identifier validator per kind (batuta_sync/ids.py) and the one confinement check (_fs.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from batuta_sync import ids
from batuta_sync._fs import PathEscapeError, atomic_write, confine, is_inside
from batuta_sync.errors import exit_code

SHA1 = "a" * 40
SHA256 = "b" * 64


@pytest.mark.parametrize("bad", ["", "A" * 40, "a" * 39, "a" * 41, "../" + "a" * 37, "a" * 40 + "\n", None, 5])
def test_git_sha1_refuses_anything_but_40_lower_hex(bad: object) -> None:
    assert not ids.is_git_sha1(bad)
    with pytest.raises(ids.InvalidIdentifierError) as ei:
        ids.git_sha1(bad, where="the Hub")
    assert ei.value.exit_code == exit_code("integrity")
    assert "the Hub" in ei.value.message


def test_kinds_accept_their_shape() -> None:
    assert ids.git_sha1(SHA1) == SHA1 and ids.commit_sha(SHA1) == SHA1
    assert ids.sha256_hex(SHA256) == SHA256
    assert ids.blob_id(SHA1) == SHA1 and ids.blob_id(SHA256) == SHA256
    for bad in ("../../etc/passwd", SHA256 + "x", "/" + SHA1[1:], SHA1.upper()):
        with pytest.raises(ids.InvalidIdentifierError):
            ids.blob_id(bad)
    with pytest.raises(ids.InvalidIdentifierError):
        ids.sha256_hex(SHA1)


@pytest.mark.parametrize(("header", "want"), [(f'"{SHA1}"', SHA1), (f'W/"{SHA256}"', SHA256), (SHA1, SHA1)])
def test_etag_header_forms(header: str, want: str) -> None:
    assert ids.etag_from_header(header) == want


@pytest.mark.parametrize("bad", ['"../../x"', 'W/"abc"', '""', None, f'"{SHA1}/.."'])
def test_etag_header_refused(bad: object) -> None:
    with pytest.raises(ids.InvalidIdentifierError):
        ids.etag_from_header(bad)


@pytest.mark.parametrize("good", ["main", "v1.0", "refs/pr/12", "release/2024-01", SHA1, "feature_x+y"])
def test_revision_ok(good: str) -> None:
    assert ids.revision(good) == good


@pytest.mark.parametrize(
    "bad", ["", "..", "../x", "a/../b", "/main", "main/", "a//b", "x.lock", "a b", "a\x00", "a~1", "a:b", ".git",
            "a..b", "x" * 300, "con", "-flag"]
)
def test_revision_refused(bad: str) -> None:
    with pytest.raises(ids.InvalidIdentifierError):
        ids.revision(bad)


def test_repo_id_and_path() -> None:
    assert ids.repo_id("org/name") == "org/name"
    for bad in ("org/../x", "a--b", "/x", "a/b/c", ""):
        with pytest.raises(ids.InvalidIdentifierError):
            ids.repo_id(bad)
    assert ids.repo_path("a/b.txt") == "a/b.txt"
    for bad in ("../x", "/etc/passwd", "a/.git/config", "C:x", "a\\b", "a//b", "nul.txt", "x" * 5000, "a\x01"):
        with pytest.raises(ids.InvalidIdentifierError):
            ids.repo_path(bad)


def test_confine_resolves_symlinks(tmp_path: Path) -> None:
    base = tmp_path / "base"
    (base / "sub").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, base / "link")
    assert confine(base, "sub/f") == base / "sub" / "f"
    assert confine(base, base / "sub") == base / "sub"
    with pytest.raises(PathEscapeError) as ei:
        confine(base, "link/f")
    assert ei.value.exit_code == 20
    with pytest.raises(PathEscapeError):
        confine(base, "../outside/f")
    with pytest.raises(PathEscapeError):
        confine(base, str(outside / "f"))
    # a symlink as the last component: following it leaves, replacing it does not
    os.symlink(outside / "f", base / "sub" / "dangling")
    assert not is_inside(base, base / "sub" / "dangling")
    assert confine(base, "sub/dangling", follow_last=False) == base / "sub" / "dangling"
    # a prefix that is not a parent
    (tmp_path / "base2").mkdir()
    assert not is_inside(base, tmp_path / "base2")


def test_atomic_write(tmp_path: Path) -> None:
    p = tmp_path / "d" / "f.json"
    atomic_write(p, "one", fsync=True, mode=0o600)
    assert p.read_text() == "one" and (p.stat().st_mode & 0o777) == 0o600
    atomic_write(p, b"two")
    assert p.read_bytes() == b"two"
    assert [x.name for x in p.parent.iterdir()] == ["f.json"]

    class Boom(bytes):
        pass

    with pytest.raises(TypeError):
        atomic_write(p, 3)  # type: ignore[arg-type]
    assert [x.name for x in p.parent.iterdir()] == ["f.json"] and p.read_bytes() == b"two"
