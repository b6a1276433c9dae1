"""batuta_sync.publish (see module docs)."""
