"""batuta_sync.hub (see module docs)."""
