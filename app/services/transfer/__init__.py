"""Data transfer: export and import in the dump format."""
