"""backflush_manufacturer."""
