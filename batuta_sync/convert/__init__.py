"""batuta_sync.convert (see module docs)."""
