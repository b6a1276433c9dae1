"""batuta_sync.server (see module docs)."""
