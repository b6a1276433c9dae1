"""batuta_sync.core (see module docs)."""
