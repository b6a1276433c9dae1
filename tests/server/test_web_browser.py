"""Browser tier: Debian's headless Chromium loads every page (``--dump-dom``) and takes a screenshot.

Skipped when ``chromium-headless-shell`` is absent (``.ci/run`` installs it with apt).  The
screenshots land in ``$BATUTA_WEB_SCREENSHOTS`` (default: the test's tmp dir) as CI artifacts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from batuta_sync.server import HubServer, UserSpec
from tests.server.test_web import HOSTILE_CARD, HOSTILE_FILE, HOSTILE_MSG, parse

CHROME = shutil.which("chromium-headless-shell") or shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROME is None, reason="chromium-headless-shell is not installed")


def chrome(*args: str) -> str:
    assert CHROME is not None
    flags = ["--no-sandbox", "--headless", "--disable-gpu", "--no-first-run", "--disable-extensions",
             "--disable-background-networking", "--user-data-dir=" + os.environ["HOME"] + "/chrome"]
    out = subprocess.run([CHROME, *flags, *args], capture_output=True, text=True, timeout=60, check=True)
    return out.stdout


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    root = tmp_path_factory.mktemp("web-browser")
    s = HubServer(root / "hub", users=[UserSpec("alice", "tok-alice-browser-1")]).start()
    card = (
        "---\nlicense: apache-2.0\nlibrary_name: transformers\npipeline_tag: text-generation\n"
        "tags: [demo, tiny]\nlanguage: [en]\n---\n# Tiny demo model\n\nA **small** model for tests.\n\n"
        "| metric | value |\n|---|---|\n| loss | 1.23 |\n\n```bash\nbatuta hf pull model acme/tiny-llm\n```\n"
    )
    s.store.commit("acme/tiny-llm", {"README.md": card.encode(), "config.json": b'{"a": 1}',
                                     "tiny-Q4_K_M.gguf": b"GGUF" + b"\0" * 4000,
                                     "model.safetensors": b"\0" * 3000}, message="Add weights")
    s.store.commit("acme/tiny-llm", {"notes/usage.md": b"use it"}, message="Add usage notes")
    s.store.create_tag("acme/tiny-llm", "v1.0")
    s.store.commit("acme/wiki-mini", {"README.md": b"---\ntask_categories: [text-generation]\n---\n# Wiki mini"},
                   repo_type="dataset")
    s.store.commit("eve/evil", {"README.md": HOSTILE_CARD.encode(), HOSTILE_FILE: b"x"}, message=HOSTILE_MSG)
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = os.environ.get("BATUTA_WEB_SCREENSHOTS")
    out = Path(d) if d else tmp_path_factory.mktemp("screenshots")
    out.mkdir(parents=True, exist_ok=True)
    return out


PAGES = {
    "list": "/",
    "repo": "/acme/tiny-llm",
    "tree": "/acme/tiny-llm/tree/main",
    "commits": "/acme/tiny-llm/commits/main",
    "dataset": "/datasets/acme/wiki-mini",
    "login": "/_web/login",
    "evil": "/eve/evil",
    "evil-tree": "/eve/evil/tree/main",
    "evil-commits": "/eve/evil/commits/main",
}


@pytest.mark.parametrize("name", list(PAGES))
def test_chromium_renders_every_page(site: HubServer, shots: Path, name: str) -> None:
    url = site.url + PAGES[name]
    dom = chrome("--dump-dom", url)
    doc = parse(dom)
    # Chromium sends its own Accept header: it got the page, not JSON, with the stylesheet linked.
    assert "batuta hub" in doc.text, dom[:500]
    assert doc.all("link") == [{"rel": "stylesheet", "href": "/_web/style.css"}]
    # The DOM after parsing (and after any script would have run) holds no script and no handlers.
    assert not doc.all("script") and not doc.all("iframe")
    assert not [a for _, a in doc.elements for k in a if k.startswith("on")]
    png = shots / f"{name}.png"
    chrome("--window-size=1200,800", "--hide-scrollbars", f"--screenshot={png}", url)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
