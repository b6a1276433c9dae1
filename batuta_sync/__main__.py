"""``python -m batuta_sync`` → the ``batuta`` CLI."""

from batuta_sync.cli import main

raise SystemExit(main())  # pragma: no cover - exercised by a subprocess test
