"""`batuta hf pull` (with and without --output) and the cache commands against the hostile Hub.

Every case ends in a documented exit code without a traceback, and nothing outside the cache,
the workspace or the chosen output is read into them, written, created, linked or deleted
(``World.assert_untouched``: a canary file checked for content and mtime, a sentinel folder
that must stay empty, a snapshot of everything else outside).
"""

from __future__ import annotations

import json
import os
import struct
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.hostile.conftest import CANARY, World, batuta
from tests.hostile.hub import HostileHub, git_sha1, honest_siblings, sha256

CONFIG = b'{"model_type": "llama"}'
_HEADER = b'{"w":{"dtype":"U8","shape":[200],"data_offsets":[0,200]}}'
_HEADER += b" " * (-len(_HEADER) % 8)
WEIGHTS = struct.pack("<Q", len(_HEADER)) + _HEADER + b"w" * 200  # a valid safetensors file
BODIES = {"config.json": CONFIG, "model.safetensors": WEIGHTS}
COMMIT = "c" * 40
REPO = "org/m"

INTEGRITY, PATH_ESCAPE, NAME_COLLISION = 11, 20, 21


def blobs_dir(w: World) -> Path:
    return w.cache / "models--org--m" / "blobs"


def to_canary(w: World) -> str:
    """The canary as a path relative to the cache's blobs folder (what a traversal etag says)."""
    return os.path.relpath(w.canary, blobs_dir(w))


def into_sentinel(w: World, frm: Path) -> str:
    return os.path.relpath(w.sentinel / "planted", frm)


def sib(name: str, size: Any, blob: Any = None, lfs: Any = None) -> dict[str, Any]:
    s: dict[str, Any] = {"rfilename": name, "size": size, "blobId": blob if blob is not None else git_sha1(b"x")}
    if lfs is not None:
        s["lfs"] = {"sha256": lfs, "size": size}
    return s


Case = Callable[[HostileHub, World], int]

# Each case configures the hostile repo and returns the exit code the pull must end with.
CASES: dict[str, Case] = {
    # --- identifiers in the Hub's JSON used as cache file names
    "blob id = ../ path to the canary (its size)": lambda h, w: (
        h.repo(REPO, {"config.json": CANARY}, siblings=[sib("config.json", len(CANARY), to_canary(w))]),
        INTEGRITY,
    )[1],
    "LFS oid = ../ path to the canary": lambda h, w: (
        h.repo(REPO, {"model.safetensors": CANARY},
               siblings=[sib("model.safetensors", len(CANARY), git_sha1(CANARY), to_canary(w))]),
        INTEGRITY,
    )[1],
    "LFS oid = absolute path of the canary": lambda h, w: (
        h.repo(REPO, {"model.safetensors": CANARY},
               siblings=[sib("model.safetensors", len(CANARY), git_sha1(CANARY), str(w.canary))]),
        INTEGRITY,
    )[1],
    "blob id = absolute path in the sentinel": lambda h, w: (
        h.repo(REPO, BODIES, siblings=[sib("config.json", len(CONFIG), str(w.sentinel / "x"))]),
        INTEGRITY,
    )[1],
    "blob id = 40 hex + /../": lambda h, w: (
        h.repo(REPO, BODIES, siblings=[sib("config.json", len(CONFIG), "a" * 40 + "/../../x")]),
        INTEGRITY,
    )[1],
    "blob id with a trailing newline": lambda h, w: (
        h.repo(REPO, BODIES, siblings=[sib("config.json", len(CONFIG), git_sha1(CONFIG) + "\n")]),
        INTEGRITY,
    )[1],
    "LFS oid of the wrong length": lambda h, w: (
        h.repo(REPO, BODIES, siblings=[sib("model.safetensors", len(WEIGHTS), git_sha1(WEIGHTS), "a" * 63)]),
        INTEGRITY,
    )[1],
    "blob id not a string": lambda h, w: (
        h.repo(REPO, BODIES, siblings=[sib("config.json", len(CONFIG), {"$ne": 1})]),
        INTEGRITY,
    )[1],
    "commit sha = ../../x": lambda h, w: (h.repo(REPO, BODIES, sha="../../x"), INTEGRITY)[1],
    "commit sha = ../ path into the sentinel": lambda h, w: (
        h.repo(REPO, BODIES, sha=into_sentinel(w, w.cache / "models--org--m" / "snapshots")),
        INTEGRITY,
    )[1],
    "commit sha = absolute path": lambda h, w: (h.repo(REPO, BODIES, sha=str(w.sentinel)), INTEGRITY)[1],
    "commit sha in upper case": lambda h, w: (h.repo(REPO, BODIES, sha="C" * 40), INTEGRITY)[1],
    "commit sha with a newline": lambda h, w: (h.repo(REPO, BODIES, sha=COMMIT + "\n"), INTEGRITY)[1],
    "commit sha a number": lambda h, w: (h.repo(REPO, BODIES, sha=12345), INTEGRITY)[1],
    "tree oid = ../ path to the canary": lambda h, w: (
        h.repo(REPO, {"config.json": CANARY}, siblings=[{"rfilename": "config.json"}],
               tree=[{"type": "file", "path": "config.json", "size": len(CANARY), "oid": to_canary(w)}]),
        INTEGRITY,
    )[1],
    "tree LFS oid = absolute canary": lambda h, w: (
        h.repo(REPO, {"model.safetensors": CANARY}, siblings=[{"rfilename": "model.safetensors"}],
               tree=[{"type": "file", "path": "model.safetensors", "size": len(CANARY), "oid": git_sha1(CANARY),
                      "lfs": {"oid": str(w.canary), "size": len(CANARY)}}]),
        INTEGRITY,
    )[1],
    # --- file names
    "file name absolute (into the sentinel)": lambda h, w: (
        h.repo(REPO, siblings=[sib(str(w.sentinel / "x.json"), 2, git_sha1(b"{}"))]),
        INTEGRITY,
    )[1],
    "file name ../ into the sentinel": lambda h, w: (
        h.repo(REPO, siblings=[sib(os.path.relpath(w.sentinel / "x.json", w.out), 2, git_sha1(b"{}"))]),
        INTEGRITY,
    )[1],
    "file name .git/config": lambda h, w: (h.repo(REPO, siblings=[sib(".git/config", 2, git_sha1(b"{}"))]), INTEGRITY)[1],
    "file name with backslashes": lambda h, w: (h.repo(REPO, siblings=[sib("..\\..\\x.json", 2, git_sha1(b"{}"))]), INTEGRITY)[1],
    "tree path absolute": lambda h, w: (
        h.repo(REPO, siblings=[{"rfilename": "config.json"}],
               tree=[{"type": "file", "path": str(w.sentinel / "c.json"), "size": 2, "oid": git_sha1(b"{}")}]),
        INTEGRITY,
    )[1],
    # --- sizes that lie
    "negative size": lambda h, w: (h.repo(REPO, BODIES, siblings=[sib("config.json", -5, git_sha1(CONFIG))]), INTEGRITY)[1],
    "size as a string": lambda h, w: (h.repo(REPO, BODIES, siblings=[sib("config.json", "23", git_sha1(CONFIG))]), INTEGRITY)[1],
    "listed size smaller than the body": lambda h, w: (
        h.repo(REPO, BODIES, siblings=[sib("config.json", 5, git_sha1(CONFIG))]),
        INTEGRITY,
    )[1],
    "body differs from the listing (same size)": lambda h, w: (
        h.repo(REPO, {"config.json": CONFIG[::-1]}, siblings=honest_siblings({"config.json": CONFIG})),
        INTEGRITY,
    )[1],
    "LFS body differs from its oid": lambda h, w: (
        h.repo(REPO, {"model.safetensors": WEIGHTS[::-1]}, siblings=honest_siblings({"model.safetensors": WEIGHTS})),
        INTEGRITY,
    )[1],
    # --- names that collide
    "README.md and readme.md": lambda h, w: (
        h.repo(REPO, {"README.md": b"a", "readme.md": b"b", "config.json": CONFIG}),
        NAME_COLLISION,
    )[1],
    "café.json in NFC and NFD": lambda h, w: (
        h.repo(REPO, {unicodedata.normalize("NFC", "café.json"): b"{}",
                      unicodedata.normalize("NFD", "café.json"): b"[]"}),
        NAME_COLLISION,
    )[1],
    "a file and a folder of the same name": lambda h, w: (
        h.repo(REPO, {"config.json": CONFIG, "config.json/x.json": b"{}"}),
        NAME_COLLISION,
    )[1],
    "a file and a folder differing in case": lambda h, w: (
        h.repo(REPO, {"Sub": b"{}", "sub/x.json": b"{}"}),
        NAME_COLLISION,
    )[1],
    # --- headers are never names: traversal ETag / X-Linked-Etag / X-Repo-Commit change nothing
    "traversal ETag, X-Linked-Etag and X-Repo-Commit headers": lambda h, w: (
        h.repo(REPO, BODIES, sha=COMMIT, headers={
            "ETag": f'"{to_canary(w)}"', "X-Linked-Etag": f'"{w.canary}"',
            "X-Repo-Commit": "../../x", "X-Linked-Size": str(len(CANARY)),
        }),
        0,
    )[1],
}

PULLS = {
    "cache only": ("hf", "pull", "model", REPO),
    "--output (symlinks)": ("hf", "pull", "model", REPO, "--output", "{out}"),
    "--output --copy": ("hf", "pull", "model", REPO, "--output", "{out}", "--copy"),
    "pull files": ("hf", "pull", "files", REPO, "{first}", "--output", "{out}"),
}


def _first(hub: HostileHub) -> str:
    """The first file the hostile repo lists (what ``pull files`` asks for)."""
    r = hub.repos[REPO]
    names = (
        [e.get("path") for e in r.tree or []] or [s.get("rfilename") for s in r.siblings or []] or sorted(r.bodies)
    )
    return str(names[0])


def _argv(argv: tuple[str, ...], w: World, hub: HostileHub) -> list[str]:
    return [a.replace("{out}", str(w.out)).replace("{first}", _first(hub)) for a in argv]


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_answers_never_escape(
    case: str, hub: HostileHub, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = CASES[case](hub, world)
    for name, argv in PULLS.items():
        code, _out, err = batuta(capsys, *_argv(argv, world, hub))
        if name == "pull files" and expected == NAME_COLLISION:
            assert code == 0, err  # one file asked for: the clash among others does not concern it
        else:
            assert code == expected, (name, err)
        world.assert_untouched()
    for argv2 in (("cache", "ls"), ("cache", "stats"), ("cache", "ls", "--json")):
        code, _out, err = batuta(capsys, *argv2)
        assert code == 0, err
    world.assert_untouched()
    if expected == 0:  # the honest content arrived despite the lying headers
        assert (world.out / "config.json").read_bytes() == CONFIG


def test_collision_message_names_both_paths(hub: HostileHub, world: World, capsys: pytest.CaptureFixture[str]) -> None:
    hub.repo(REPO, {"config.json": CONFIG, "config.json/x.json": b"{}"})
    code, _out, err = batuta(capsys, "hf", "pull", "model", REPO, "--output", str(world.out))
    assert code == NAME_COLLISION and "'config.json'" in err and "'config.json/x.json'" in err
    assert "[name-collision]" in err and not world.out.exists()


# --------------------------------------------------------------------------- the local side


def _honest(hub: HostileHub) -> None:
    hub.repo(REPO, BODIES, sha=COMMIT)


def _blob(w: World, data: bytes, lfs: bool) -> Path:
    return blobs_dir(w) / (sha256(data) if lfs else git_sha1(data))


def test_a_planted_file_of_the_right_size_is_rehashed_and_replaced(
    hub: HostileHub, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """A size match is not enough: a stamp-less blob is hashed, and a wrong one replaced."""
    _honest(hub)
    blob = _blob(world, WEIGHTS, lfs=True)
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"X" * len(WEIGHTS))  # right name, right size, wrong bytes
    code, _out, err = batuta(capsys, "hf", "pull", "model", REPO, "--output", str(world.out), "--copy")
    assert code == 0, err
    assert blob.read_bytes() == WEIGHTS and (world.out / "model.safetensors").read_bytes() == WEIGHTS
    world.assert_untouched()


def test_a_verified_blob_edited_in_place_is_caught(
    hub: HostileHub, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """After batuta verified a blob, an in-place edit of the same size (mtime even restored)
    loses the stamp (its ctime changed): the next pull re-hashes it and fetches it again."""
    _honest(hub)
    assert batuta(capsys, "hf", "pull", "model", REPO)[0] == 0
    blob = _blob(world, WEIGHTS, lfs=True)
    st = blob.stat()
    with open(blob, "r+b") as fh:
        fh.write(b"X" * 8)
    os.utime(blob, ns=(st.st_atime_ns, st.st_mtime_ns))
    gets = len([p for m, p in hub.log if "/resolve/" in p])
    code, _out, err = batuta(capsys, "hf", "pull", "model", REPO, "--output", str(world.out), "--copy")
    assert code == 0, err
    assert blob.read_bytes() == WEIGHTS and (world.out / "model.safetensors").read_bytes() == WEIGHTS
    assert len([p for m, p in hub.log if "/resolve/" in p]) == gets + 1
    # and a stamped, untouched blob is a hit without hashing or requests
    assert batuta(capsys, "hf", "pull", "model", REPO)[0] == 0
    assert len([p for m, p in hub.log if "/resolve/" in p]) == gets + 1


def test_a_symlink_planted_as_a_blob_is_never_followed(
    hub: HostileHub, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """``blobs/<etag>`` -> the canary, with the listing saying the canary's size."""
    hub.repo(REPO, {"config.json": CONFIG[:1] * len(CANARY)}, sha=COMMIT)
    blob = _blob(world, CONFIG[:1] * len(CANARY), lfs=False)
    world.plant(blob, world.canary)
    code, _out, err = batuta(capsys, "hf", "pull", "model", REPO, "--output", str(world.out), "--copy")
    assert code == 0, err
    assert not blob.is_symlink() and (world.out / "config.json").read_bytes() == CONFIG[:1] * len(CANARY)
    world.assert_untouched()


def test_a_snapshot_entry_pointing_outside_is_relinked(
    hub: HostileHub, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    _honest(hub)
    assert batuta(capsys, "hf", "pull", "model", REPO)[0] == 0
    entry = world.cache / "models--org--m" / "snapshots" / COMMIT / "config.json"
    entry.unlink()
    world.plant(entry, world.canary)
    code, _out, err = batuta(capsys, "hf", "pull", "model", REPO, "--output", str(world.out), "--copy")
    assert code == 0, err
    assert (world.out / "config.json").read_bytes() == CONFIG
    world.assert_untouched()


def test_a_snapshot_entry_pointing_outside_is_refused_offline(
    hub: HostileHub, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """Offline nothing is re-linked from the Hub's listing, so the planted link must be caught
    where it is read: materialize refuses a snapshot entry that resolves outside the cache."""
    from batuta_sync.hub.cache import materialize

    _honest(hub)
    assert batuta(capsys, "hf", "pull", "model", REPO)[0] == 0
    snap = world.cache / "models--org--m" / "snapshots" / COMMIT
    (snap / "config.json").unlink()
    world.plant(snap / "config.json", world.canary)
    from batuta_sync._fs import PathEscapeError

    with pytest.raises(PathEscapeError):
        materialize(snap, ["config.json"], world.out, copy=True)
    world.assert_untouched()


@pytest.mark.parametrize("link", ["repo folder", "blobs folder", "snapshots folder"])
def test_symlinked_cache_folders_do_not_lead_out(
    link: str, hub: HostileHub, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    _honest(hub)
    repo = world.cache / "models--org--m"
    target = {"repo folder": repo, "blobs folder": repo / "blobs", "snapshots folder": repo / "snapshots"}[link]
    world.plant(target, world.sentinel)
    code, _out, err = batuta(capsys, "hf", "pull", "model", REPO, "--output", str(world.out))
    assert code == PATH_ESCAPE, err
    assert "[path-escape]" in err
    world.assert_untouched()


def test_a_symlinked_folder_in_the_output_does_not_lead_out(
    hub: HostileHub, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    hub.repo(REPO, {"config.json": CONFIG, "sub/x.json": b"{}"}, sha=COMMIT)
    world.plant(world.out / "sub", world.sentinel)
    for extra in ((), ("--copy",)):
        code, _out, err = batuta(capsys, "hf", "pull", "model", REPO, "--output", str(world.out), *extra)
        assert code == PATH_ESCAPE, err
        world.assert_untouched()


def test_a_folder_in_the_output_where_a_file_goes_is_a_name_collision(
    hub: HostileHub, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    _honest(hub)
    (world.out / "config.json").mkdir(parents=True)
    code, _out, err = batuta(capsys, "hf", "pull", "model", REPO, "--output", str(world.out))
    assert code == NAME_COLLISION and "'config.json'" in err and "folder" in err, err
    (world.out / "config.json").rmdir()
    (world.out / "model.safetensors").mkdir()
    (world.out / "model.safetensors" / "keep").write_bytes(b"k")
    code, _out, err = batuta(capsys, "hf", "pull", "model", REPO, "--output", str(world.out), "--copy")
    assert code == NAME_COLLISION, err
    assert (world.out / "model.safetensors" / "keep").read_bytes() == b"k"
    world.assert_untouched()


TAMPER = {
    "refs/main = ../ path": lambda w, repo: (repo / "refs" / "main").write_text(
        os.path.relpath(w.sentinel, repo / "snapshots")
    ),
    "refs/main = absolute path": lambda w, repo: (repo / "refs" / "main").write_text(str(w.sentinel)),
    "trees/<sha>.json blob id = ../ canary": lambda w, repo: _tree(
        repo, {"config.json": {"size": len(CANARY), "blob_id": to_canary(w)}}
    ),
    "trees/<sha>.json LFS oid = absolute canary": lambda w, repo: _tree(
        repo, {"model.safetensors": {"size": len(CANARY), "blob_id": "a" * 40, "lfs_sha256": str(w.canary)}}
    ),
    "trees/<sha>.json size negative": lambda w, repo: _tree(repo, {"config.json": {"size": -1, "blob_id": "a" * 40}}),
}


def _tree(repo: Path, files: dict[str, Any]) -> None:
    (repo / "trees" / f"{COMMIT}.json").write_text(json.dumps({"format_version": 1, "files": files}))


@pytest.mark.parametrize("tamper", sorted(TAMPER))
def test_tampered_cache_files_are_refused(
    tamper: str, hub: HostileHub, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    _honest(hub)
    assert batuta(capsys, "hf", "pull", "model", REPO)[0] == 0
    TAMPER[tamper](world, world.cache / "models--org--m")
    code, _out, err = batuta(capsys, "--offline", "hf", "pull", "model", REPO, "--output", str(world.out), "--copy")
    assert code == INTEGRITY, err
    assert "cache file" in err
    for argv in (("cache", "ls"), ("cache", "stats")):
        assert batuta(capsys, *argv)[0] == 0
    world.assert_untouched()


def test_prune_and_clear_never_delete_through_a_symlinked_blobs_folder(
    hub: HostileHub, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """A cached repo (two snapshots) whose ``blobs`` is a symlink to a folder outside: on main,
    prune deleted the outside file (not used by the remaining snapshot); now it refuses (exit 20)
    and clear removes the cached repo without following the link."""
    victim = world.outside / "victim"
    victim.mkdir()
    (victim / ("d" * 40)).write_bytes(b"keep me")
    world.before = world.outside_state()
    hub.repo("org/a", {"config.json": CONFIG}, sha="a" * 40)
    assert batuta(capsys, "hf", "pull", "model", "org/a")[0] == 0
    hub.repo("org/a", {"config.json": b"{}"}, sha="b" * 40)  # a second snapshot of the same repo
    assert batuta(capsys, "hf", "pull", "model", "org/a")[0] == 0
    blobs = world.cache / "models--org--a" / "blobs"
    for p in blobs.iterdir():
        p.unlink()
    blobs.rmdir()
    world.plant(blobs, victim)
    code, _out, err = batuta(capsys, "cache", "prune", "--max-size", "1")
    assert code == PATH_ESCAPE and "[path-escape]" in err, err
    world.assert_untouched()
    assert batuta(capsys, "cache", "clear", "--yes")[0] == 0
    world.assert_untouched()
    assert not (world.cache / "models--org--a").exists()  # the link itself is removed, not followed


def test_a_dataset_split_read_from_a_readme_blob_planted_wrong_is_rehashed(
    hub: HostileHub, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README (for the split rules) is read from the cache only once verified: a planted
    README of the right size that moves the split onto other files is hashed and replaced."""
    readme = b"---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: a/*.csv\n---\n"
    evil = readme.replace(b"a/*.csv", b"b/*.csv")
    hub.repo("org/d", {"README.md": readme, "a/1.csv": b"x,y\n", "b/1.csv": b"z,w\n"}, sha=COMMIT)
    blob = world.cache / "datasets--org--d" / "blobs" / git_sha1(readme)
    blob.parent.mkdir(parents=True)
    blob.write_bytes(evil)
    code, _out, err = batuta(capsys, "hf", "pull", "dataset", "org/d", "--split", "train", "--output", str(world.out))
    assert code == 0, err
    assert blob.read_bytes() == readme
    assert (world.out / "a/1.csv").is_file() and not (world.out / "b").exists()
    world.assert_untouched()


def test_raw_routes_answer_what_json_cannot(hub: HostileHub, world: World, capsys: pytest.CaptureFixture[str]) -> None:
    """A raw route: the file body is cut short forever (a declared length never delivered).
    The pull gives up with a network error after a bounded number of requests; nothing is kept
    in the cache but the parked partial, nothing outside is touched."""
    from http.server import BaseHTTPRequestHandler

    hub.repo(REPO, {"config.json": CONFIG}, sha=COMMIT)

    def short(req: BaseHTTPRequestHandler) -> None:
        req.send_response(200)
        req.send_header("Content-Length", str(len(CONFIG)))
        req.end_headers()
        req.wfile.write(CONFIG[:3])
        req.close_connection = True

    hub.route("GET", r"/resolve/", short)
    code, _out, err = batuta(capsys, "hf", "pull", "model", REPO)
    assert code == 9, err
    assert len(hub.log) < 100
    blob = blobs_dir(world) / git_sha1(CONFIG)
    assert not blob.exists()
    world.assert_untouched()
