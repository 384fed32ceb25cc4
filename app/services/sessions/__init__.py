"""Sessions: starting, resuming, overview, cleanup and status."""
