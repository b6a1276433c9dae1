"""A full disk inside an ``apply`` pull step ends as disk-full (exit 16), not partial-apply (6).

The "disk" is a file-size limit (``RLIMIT_FSIZE`` with ``SIGXFSZ`` ignored, so writes fail with
``EFBIG``) in a child process running the real CLI against the local Hub; one model fits, the
other does not, so the apply is partial and the cause must still be the full disk.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

LIMIT = 1 << 20
CHILD = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), resource.RLIM_INFINITY))
from batuta_sync.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_a_full_disk_in_an_apply_step_exits_16(tmp_path: Path, hub_env: Any) -> None:
    hub_env.store.commit("org/small", {"config.json": b"{}"})
    hub_env.store.commit("org/big", {"data.txt": bytes(range(256)) * (3 << 12)})  # 3 MiB > LIMIT
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "hf.yaml").write_text("version: 1\nmodels:\n  a: {repo: org/small}\n  b: {repo: org/big}\n")
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(LIMIT), "apply", "-f", str(ws / "hf.yaml"), "--auto-approve", "--keep-going"],
        capture_output=True, text=True, timeout=120, env=dict(os.environ), check=False, cwd=ws,
    )
    assert proc.returncode == 16, proc.stderr
    assert "[disk-full]" in proc.stderr and "Traceback" not in proc.stderr
    assert "1 done" in proc.stderr and "models.b" in proc.stderr
