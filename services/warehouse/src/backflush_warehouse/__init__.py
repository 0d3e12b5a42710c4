"""backflush_warehouse."""
