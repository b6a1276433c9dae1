"""Developer tooling: generators for the checked-in docs (``python -m batuta_sync._dev.gendocs``)."""
