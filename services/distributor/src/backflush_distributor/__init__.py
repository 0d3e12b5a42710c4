"""backflush_distributor."""
