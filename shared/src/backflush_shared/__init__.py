"""backflush_shared."""
